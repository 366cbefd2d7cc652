//! The operator's side of the policies, apart from what serves them: the registry operations
//! ([`registry`]: upload behind the law gate, activate, roll back, shadow) and the law checker
//! ([`laws`]: property-based checks on generated conflicts, and on every history of the small
//! [`scopes`]). It carries proptest and the model's generators, which the serving hosts (the
//! Lambda functions) never link.

pub mod laws;
pub mod registry;
pub mod scopes;

pub use registry::{
    Registry, UploadOptions, check_laws, check_laws_cached, seed_from_digest, store_precompiled,
};
