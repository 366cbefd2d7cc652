//! Untrusted policy code, contained. A policy is a WebAssembly component that a tenant
//! uploaded; this crate is everything that touches it:
//!
//! - [`engine`]: the wasmtime engine (epoch deadline or fuel, memory cap, pooling allocator);
//! - [`policy`]: load-time checks (component, imports, contract, signatures) and the call on a
//!   warm instance, a trap costing that instance and nothing else;
//! - [`strip`]: what a contract 1.1 policy is sent (only what differs) and how its answer is
//!   completed;
//! - [`cache`]: precompiled artifacts by engine and digest (the engine compiles, the cache
//!   stores);
//! - [`files`]: whole-file writes and directory locks shared by every on-disk store.
//!
//! It knows nothing of tenants, stores or causality: the host core asks it for one call.

pub mod cache;
pub mod engine;
pub mod error;
pub mod files;
pub mod policy;
pub mod strip;

pub use cache::ArtifactCache;
pub use engine::{Limits, Metering, PolicyEngine};
pub use error::{Budget, CallFailure, EngineError, LoadError};
pub use policy::{Call, Policy, PolicyInfo, digest};
/// The engine's kind of trap, as [`CallFailure::Trap`] carries it.
pub use wasmtime::Trap as TrapCode;
