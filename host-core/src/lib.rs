//! The host core: the pipeline that every world runs (AWS Lambda, `serve`'s embedded regions,
//! the simulation), over store traits, with no AWS, no CLI and no law checker inside.
//!
//! Arrows run one way, top to bottom:
//!
//! - [`tenant`]: tenant names and the host's part of a tenant's configuration;
//! - [`resolve`]: one conflict — causality first, the tenant's policy for concurrent versions
//!   (found through [`resolve::PolicyLookup`]), its answer checked and materialised;
//! - [`policies`]: a fixed set of tenants' policies, swapped atomically (a `PolicyLookup`);
//! - [`conflict`]: the captured-conflict format that dry-runs and law checks replay;
//! - [`registry`]: the policy registry's records and storage trait, and its local directory;
//! - [`signing`]: signed versions and the keys a tenant trusts;
//! - [`follow`]: a host following the registry with bounded staleness, and shadow comparisons
//!   (the other `PolicyLookup`);
//! - [`conflict_log`]: every conflict the reconcile path saw, queryable and replayable;
//! - [`failure`]: a backend's failure with its cause, inside the stores' errors;
//! - [`store`]: the pipeline's stores (parties, idempotency records, dead letters) as traits,
//!   with their in-memory implementations;
//! - [`event`], [`ingest`]: TMF632 events validated and applied at most once per idempotency key;
//! - [`reconcile`]: what last-writer-wins overwrote, restored through the tenant's policy;
//! - [`notify`]: the TMF632 event of a change of a stored party, as the hub delivers it;
//! - [`api`]: the TMF632 HTTP API of a region (listener, resource routes, hub), whatever server
//!   carries it.
//!
//! The sandbox that runs a policy is `host-sandbox`; the operator's side (upload behind the law
//! gate, activate, roll back) is `policy-admin`; the simulation is `host-sim`; the AWS stores are
//! `host-aws`.

pub mod api;
pub mod conflict;
pub mod conflict_log;
pub mod event;
pub mod failure;
pub mod follow;
pub mod ingest;
pub mod notify;
pub mod policies;
pub mod reconcile;
pub mod registry;
pub mod resolve;
pub mod signing;
pub mod store;
pub mod tenant;
#[cfg(test)]
mod testing;

pub use host_sandbox as sandbox;
pub use party_model as model;
pub use policy_types as types;

pub use follow::RegistryFollower;
pub use host_sandbox::{
    ArtifactCache, Budget, Call, CallFailure, Limits, LoadError, Metering, Policy, PolicyEngine,
    PolicyInfo, digest,
};
pub use policies::TenantPolicies;
pub use registry::{PolicyRegistry, RegistryError};
pub use resolve::{
    ActivePolicy, Decision, NoPolicy, PolicyLookup, ResolveError, ResolveFailure, Resolved,
    Resolver, apply_resolution, apply_resolution_with, decide_by_host, relation, resolve_with,
    resolve_with_whole_versions, resolve_with_writes,
};
