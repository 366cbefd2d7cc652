//! The policy registry: every version of every tenant's policy, which one is active, which one
//! runs in shadow, the tenant's configuration document, and the history of changes.
//!
//! This module is the registry's records and its storage, [`PolicyRegistry`] (a local directory
//! in [`local`], DynamoDB and S3 in `host-aws`): what the hosts read to follow it
//! ([`crate::follow`]). The operations an operator runs — upload behind the law gate, activate,
//! roll back, shadow, configure — are the `policy-admin` crate's, written once over the trait. A tenant's state is one
//! record with a revision: every change is a compare-and-swap on it plus one history entry, so
//! two operators never overwrite each other and a host knows from one read whether anything
//! changed. Component bytes are stored by digest and verified against it on every load.

use std::collections::BTreeSet;

use policy_types::{Description, PartyVersion, Relation};
use serde::{Deserialize, Serialize};

use host_sandbox::{EngineError, LoadError, digest};

use crate::conflict::CapturedConflict;
use crate::failure::Failure;
use crate::tenant::BadTenant;

pub mod local;

/// Where a version stands for its tenant. Derived from the tenant's state, never stored apart
/// from it, so a status cannot disagree with what the hosts serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionStatus {
    /// Serving: conflicts of the tenant are resolved by it.
    Active,
    /// Running beside the active version; its answers are compared, never written.
    Shadow,
    /// Was active or in shadow and was replaced or rolled back.
    Retired,
    /// Uploaded and validated, never served.
    Staged,
}

impl VersionStatus {
    pub fn name(self) -> &'static str {
        match self {
            VersionStatus::Active => "active",
            VersionStatus::Shadow => "shadow",
            VersionStatus::Retired => "retired",
            VersionStatus::Staged => "staged",
        }
    }
}

/// One uploaded version of a tenant's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub tenant: String,
    /// sha256 of the component, hex: the version's identity.
    pub digest: String,
    /// The operator's label (`v3`, `2026-11-27-na-status`), unique per tenant when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the policy says of itself (`describe`).
    pub description: Description,
    pub size: u64,
    pub uploaded_at_ms: u64,
    pub uploaded_by: String,
    /// The seed and number of cases of the law check it passed at upload.
    pub law_check: LawCheckRecord,
    /// Who built it, in the signer's words: a signature over its digest and description
    /// ([`crate::signing`]), checked against the tenant's trusted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<PolicySignature>,
}

/// A signature of a version by one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySignature {
    /// The signing key's id ([`crate::signing::key_id`]).
    pub key_id: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

/// A public key whose signatures a tenant accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKey {
    pub key_id: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    pub added_at_ms: u64,
    pub added_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LawCheckRecord {
    pub seed: u64,
    pub cases: u32,
}

/// A candidate in shadow, since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowState {
    pub digest: String,
    pub since_ms: u64,
}

/// A tenant's state: what the hosts serve for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantState {
    pub tenant: String,
    /// Incremented by every change; hosts reload when it moves.
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowState>,
    /// Previously active versions, the most recent last: what `rollback` returns to.
    #[serde(default)]
    pub previous: Vec<String>,
    /// Versions taken out of service.
    #[serde(default)]
    pub retired: BTreeSet<String>,
    /// The configuration document handed to the policy (JSON text).
    pub config: String,
    /// The keys whose signatures the tenant accepts. Empty: versions need no signature; else
    /// every version activated or run in shadow must carry a signature by one of them, and the
    /// hosts refuse to load one that does not (the version served before keeps serving).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<TrustedKey>,
    pub updated_at_ms: u64,
    pub updated_by: String,
}

impl TenantState {
    pub fn new(tenant: &str) -> Self {
        TenantState {
            tenant: tenant.to_owned(),
            revision: 0,
            active: None,
            shadow: None,
            previous: Vec::new(),
            retired: BTreeSet::new(),
            config: "{}".to_owned(),
            trusted_keys: Vec::new(),
            updated_at_ms: 0,
            updated_by: String::new(),
        }
    }

    pub fn status(&self, digest: &str) -> VersionStatus {
        if self.active.as_deref() == Some(digest) {
            VersionStatus::Active
        } else if self.shadow.as_ref().is_some_and(|s| s.digest == digest) {
            VersionStatus::Shadow
        } else if self.retired.contains(digest) || self.previous.iter().any(|p| p == digest) {
            VersionStatus::Retired
        } else {
            VersionStatus::Staged
        }
    }
}

/// One change to a tenant's policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub tenant: String,
    /// The tenant revision this change produced (0 for uploads, which change no state).
    pub revision: u64,
    pub at_ms: u64,
    pub by: String,
    /// `upload`, `activate`, `rollback`, `retire`, `shadow`, `shadow-stop`, `config`.
    pub action: String,
    /// The version the change is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The version that was active before (activate, rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One conflict resolved by the active policy and by the candidate in shadow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowComparison {
    pub tenant: String,
    pub party_id: String,
    pub region: String,
    pub at_ms: u64,
    pub active: String,
    pub candidate: String,
    pub relation: Relation,
    pub agreed: bool,
    /// What each side answered; kept for disagreements only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_outcome: Option<ShadowOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_outcome: Option<ShadowOutcome>,
    /// The conflict, replayable with `dry-run`; kept for disagreements only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<CapturedConflict>,
}

/// What one policy answered in a shadow comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowOutcome {
    /// `keep-local`, `take-remote`, `merged`, `rejected`, or `failed`.
    pub decision: String,
    /// The party it would have written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<PartyVersion>,
    /// The rejection reason or the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a candidate did in shadow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowSummary {
    pub compared: u64,
    pub disagreed: u64,
    pub disagreements: Vec<ShadowComparison>,
}

impl ShadowSummary {
    /// Disagreements per comparison (0 when nothing was compared yet).
    pub fn rate(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.disagreed as f64 / self.compared as f64
        }
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    BadTenant(#[from] BadTenant),
    #[error("no component with digest {0} is stored")]
    MissingComponent(String),
    #[error(
        "the stored component does not match its digest: expected {expected}, the bytes hash to {found}; refusing it"
    )]
    DigestMismatch { expected: String, found: String },
    #[error("tenant {tenant} has no version matching {selector:?}{}", if .known.is_empty() { String::new() } else { format!(" (versions: {})", .known.join(", ")) })]
    UnknownVersion {
        tenant: String,
        selector: String,
        known: Vec<String>,
    },
    #[error("{selector:?} matches more than one version of tenant {tenant}: {}", .matches.join(", "))]
    Ambiguous {
        tenant: String,
        selector: String,
        matches: Vec<String>,
    },
    #[error("label {label:?} is already used by version {digest} of tenant {tenant}")]
    LabelTaken {
        tenant: String,
        label: String,
        digest: String,
    },
    #[error("the policy was refused: {0}")]
    Invalid(#[source] LoadError),
    #[error("the policy breaks the law of {law} (seed {seed}): {message}")]
    LawFailed {
        law: &'static str,
        seed: u64,
        message: String,
        /// The smallest counterexample, as captured-conflict lines `dry-run` replays.
        counterexample: Vec<String>,
    },
    #[error("{0}")]
    Refused(String),
    #[error(
        "tenant {tenant} changed meanwhile (revision {expected} expected, {found} found); run the command again"
    )]
    Conflict {
        tenant: String,
        expected: u64,
        found: u64,
    },
    /// The registry's storage failed in a way a retry may fix (an I/O error, throttling, a
    /// service's own failure).
    #[error("the registry's storage failed: {0}")]
    Storage(#[source] Failure),
    /// A stored record or file does not read as what was written there: a retry reads the
    /// same bytes again.
    #[error("the registry's storage is corrupt: {0}")]
    Corrupt(#[source] Failure),
    /// The host could not build the engine to check a policy with: not the policy's fault,
    /// and not one a retry fixes.
    #[error("building the engine to check the policy with: {0}")]
    Engine(#[source] EngineError),
}

impl RegistryError {
    /// Whether trying again may succeed (storage trouble, a concurrent change).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Storage(_) | RegistryError::Conflict { .. }
        )
    }
}

/// Where the registry keeps its records and components.
pub trait PolicyRegistry: Send + Sync {
    /// Stores component bytes under their digest; storing the same bytes again is a no-op.
    fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<(), RegistryError>;
    /// The bytes stored under `digest`, unverified (use [`fetch_component`]).
    fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError>;
    /// Records a version unless one with its digest exists; returns whether it was created.
    /// The version's label is taken in the same atomic step: if another version holds it,
    /// nothing is recorded and the answer is [`RegistryError::LabelTaken`] (two operators
    /// uploading different policies under one label at once: one wins, the other is told).
    fn put_version(&self, version: &PolicyVersion) -> Result<bool, RegistryError>;
    fn versions(&self, tenant: &str) -> Result<Vec<PolicyVersion>, RegistryError>;
    /// The tenant's state; `None` before its first change.
    fn state(&self, tenant: &str) -> Result<Option<TenantState>, RegistryError>;
    /// Writes `state` if the stored revision is still `expected` (0: no state yet), with the
    /// history entry of the change, both or neither.
    fn put_state(
        &self,
        state: &TenantState,
        expected: u64,
        entry: &HistoryEntry,
    ) -> Result<(), RegistryError>;
    /// Appends a history entry that changes no state (uploads).
    fn append_history(&self, entry: &HistoryEntry) -> Result<(), RegistryError>;
    /// The tenant's history, oldest first.
    fn history(&self, tenant: &str) -> Result<Vec<HistoryEntry>, RegistryError>;
    fn tenants(&self) -> Result<Vec<String>, RegistryError>;
    /// Records one shadow comparison (counted; stored in full when the two disagreed).
    fn record_shadow(&self, comparison: &ShadowComparison) -> Result<(), RegistryError>;
    /// What the candidate did in shadow for the tenant.
    fn shadow_summary(&self, tenant: &str, candidate: &str)
    -> Result<ShadowSummary, RegistryError>;
    /// Stores the component `digest` precompiled for engines of compatibility hash `engine`
    /// (an upload does, so that a host's first load deserializes instead of compiling);
    /// returns whether this store keeps artifacts. The default keeps none: a host then
    /// compiles on its first load, as before.
    fn put_precompiled(
        &self,
        _engine: &str,
        _digest: &str,
        _artifact: &[u8],
    ) -> Result<bool, RegistryError> {
        Ok(false)
    }
    /// The artifact [`PolicyRegistry::put_precompiled`] stored, if any. It is native code:
    /// only a registry that only operators write may be asked for it
    /// ([`host_sandbox::ArtifactCache::install`]).
    fn precompiled(&self, _engine: &str, _digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(None)
    }
}

/// A component's name in a registry: its sha256, never a path.
pub fn check_digest(digest: &str) -> Result<(), RegistryError> {
    if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RegistryError::Refused(format!(
            "{digest:?} is not a sha256 digest (64 hex digits)"
        )))
    }
}

/// An engine's compatibility hash names a directory or a key prefix: hex digits, never a path.
pub fn check_engine(engine: &str) -> Result<(), RegistryError> {
    if !engine.is_empty() && engine.len() <= 64 && engine.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RegistryError::Refused(format!(
            "{engine:?} is not an engine's compatibility hash (hex digits)"
        )))
    }
}

/// The component stored under `digest`, checked against it.
pub fn fetch_component(
    registry: &dyn PolicyRegistry,
    expected: &str,
) -> Result<Vec<u8>, RegistryError> {
    let bytes = registry.component(expected)?;
    let found = digest(&bytes);
    if found != expected {
        return Err(RegistryError::DigestMismatch {
            expected: expected.to_owned(),
            found,
        });
    }
    Ok(bytes)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A short form of a digest for messages.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
