//! The operator's side of the policies, apart from what serves them: the registry operations
//! ([`registry`]: upload behind the law gate, activate, roll back, shadow) and the law checker
//! ([`laws`]: property-based checks on generated conflicts). It carries proptest and the
//! model's generators, which the serving hosts (the Lambda functions) never link.

pub mod laws;
pub mod registry;

pub use registry::{Registry, UploadOptions, check_laws, seed_from_digest};
