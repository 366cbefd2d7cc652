//! The shared host library: everything a host needs to run conflict-resolution policies, with
//! no AWS and no CLI inside.
//!
//! - [`engine`]: the wasmtime engine for untrusted code (deadline, memory cap, pooling);
//! - [`policy`]: load-time validation and calls on warm or fresh instances;
//! - [`cache`]: precompiled artifacts by digest;
//! - [`registry`]: each tenant's active policy, swapped atomically;
//! - [`policy_registry`], [`local_registry`]: the versions of every tenant's policy, what is
//!   active and in shadow, and the operator's operations on them (upload, activate, roll back);
//! - [`refresh`]: hosts following the registry with bounded staleness, and shadow comparisons;
//! - [`resolver`]: causality first, the policy for concurrent versions, results validated;
//! - [`conflict`]: the captured-conflict format that dry-runs and law checks replay;
//! - [`conflict_log`]: every conflict the reconcile path saw, queryable, replayable, re-resolvable;
//! - [`laws`]: property-based law checks of a policy on generated conflicts;
//! - [`event`], [`ingest`]: TMF632 events validated and applied at most once per idempotency key;
//! - [`reconcile`]: what last-writer-wins overwrote, restored through the tenant's policy;
//! - [`sim`]: a seeded simulation of three regions on Global-Tables-style replication.

pub mod cache;
pub mod conflict;
pub mod conflict_log;
pub mod engine;
pub mod error;
pub mod event;
mod files;
pub mod ingest;
pub mod laws;
pub mod local_registry;
pub mod policy;
pub mod policy_registry;
pub mod reconcile;
pub mod refresh;
pub mod registry;
pub mod resolver;
pub mod sim;
pub mod strip;

pub use party_model as model;
pub use policy_types as types;

pub use cache::ArtifactCache;
pub use engine::{Limits, Metering, PolicyEngine};
pub use error::{CallFailure, LoadError, NoPolicy, ResolveError};
pub use policy::{Policy, PolicyInfo, digest};
pub use policy_registry::{PolicyRegistry, Registry, RegistryError};
pub use refresh::PolicySource;
pub use registry::{ActivePolicy, TenantPolicies};
pub use resolver::{
    Decision, ResolveFailure, Resolved, Resolver, apply_resolution, apply_resolution_with,
    decide_by_host, relation, resolve_with, resolve_with_whole_versions,
};
