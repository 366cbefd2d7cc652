//! The policy registry: every version of every tenant's policy, which one is active, which one
//! runs in shadow, the tenant's configuration document, and the history of changes.
//!
//! Storage is behind [`PolicyRegistry`] (a local directory in [`crate::local_registry`], DynamoDB
//! and S3 in the Lambda host); the operations an operator runs — upload, activate, roll back,
//! shadow, configure — are [`Registry`]'s, written once over the trait. A tenant's state is one
//! record with a revision: every change is a compare-and-swap on it plus one history entry, so
//! two operators never overwrite each other and a host knows from one read whether anything
//! changed. Component bytes are stored by digest and verified against it on every load.

use std::collections::BTreeSet;
use std::sync::Arc;

use policy_types::{Description, PartyVersion, Relation};
use serde::{Deserialize, Serialize};

use crate::conflict::CapturedConflict;
use crate::engine::{Limits, Metering, PolicyEngine};
use crate::error::LoadError;
use crate::laws::{CheckOptions, check};
use crate::policy::{Policy, digest};

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
    #[error("tenant {tenant:?} is not a valid tenant name: {why}")]
    BadTenant { tenant: String, why: &'static str },
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
    #[error("the registry's storage failed: {0}")]
    Storage(String),
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
}

/// Tenant names become keys and directory names: letters, digits, `-`, `_`, `.`, at most 64.
pub fn check_tenant(tenant: &str) -> Result<(), RegistryError> {
    let bad = |why| {
        Err(RegistryError::BadTenant {
            tenant: tenant.to_owned(),
            why,
        })
    };
    if tenant.is_empty() || tenant.len() > 64 {
        return bad("it must have 1 to 64 characters");
    }
    if tenant.starts_with('.') {
        return bad("it must not start with '.'");
    }
    if !tenant
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
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

/// The seed a law check of `digest` uses when none is given: its first 64 bits, so that a
/// retried upload or workflow step checks the same cases.
pub fn seed_from_digest(digest: &str) -> u64 {
    digest
        .get(..16)
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .unwrap_or(1)
}

/// Loads a component under the host's limits (metered) and checks its laws under the tenant's
/// configuration (as the policy sees it); the loaded policy, or why it is refused.
pub fn check_laws(
    bytes: &[u8],
    config: &str,
    cases: u32,
    seed: u64,
) -> Result<Policy, RegistryError> {
    let engine = PolicyEngine::new(Limits::default(), Metering::Fuel)
        .map_err(|e| RegistryError::Storage(e.to_string()))?;
    let policy = Policy::load(&engine, bytes, None).map_err(RegistryError::Invalid)?;
    let report = check(
        &policy,
        &CheckOptions {
            cases,
            seed,
            config: config.to_owned(),
        },
    );
    if let Some(failed) = report.outcomes.iter().find(|o| o.failure.is_some()) {
        let failure = failed.failure.as_ref().expect("found a failure");
        return Err(RegistryError::LawFailed {
            law: failed.law.name(),
            seed,
            message: failure.message.clone(),
            counterexample: failure
                .conflicts
                .iter()
                .map(crate::conflict::to_line)
                .collect(),
        });
    }
    Ok(policy)
}

/// A version with its status, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedVersion {
    #[serde(flatten)]
    pub version: PolicyVersion,
    pub status: VersionStatus,
}

/// What an operation changed, for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub tenant: String,
    pub action: String,
    /// Whether anything changed (repeating an operation changes nothing).
    pub changed: bool,
    pub revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The version active before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previously_active: Option<String>,
    /// The version active after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// How uploads are checked.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub label: Option<String>,
    /// Generated cases per law.
    pub law_cases: u32,
    pub seed: u64,
}

/// The operations on a registry, by an operator (or a workflow) named `actor`.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn PolicyRegistry>,
    actor: String,
    clock: fn() -> u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How many times an operation re-reads and retries after a concurrent change (with a
/// jittered exponential backoff, so that contending operators spread out).
const CAS_ATTEMPTS: u32 = 12;

impl Registry {
    pub fn new(store: Arc<dyn PolicyRegistry>, actor: impl Into<String>) -> Self {
        Registry {
            store,
            actor: actor.into(),
            clock: now_ms,
        }
    }

    pub fn store(&self) -> &Arc<dyn PolicyRegistry> {
        &self.store
    }

    /// Validates the component (it loads under the host's limits), checks its laws under the
    /// tenant's configuration, then stores it. The same bytes again change nothing.
    pub fn upload(
        &self,
        tenant: &str,
        bytes: &[u8],
        options: &UploadOptions,
    ) -> Result<(Change, PolicyVersion), RegistryError> {
        check_tenant(tenant)?;
        let digest = digest(bytes);
        let versions = self.store.versions(tenant)?;
        let state = self.store.state(tenant)?;
        let report = |changed: bool, label: Option<String>| Change {
            tenant: tenant.to_owned(),
            action: "upload".into(),
            changed,
            revision: state.as_ref().map_or(0, |s| s.revision),
            digest: Some(digest.clone()),
            label,
            previously_active: None,
            active: state.as_ref().and_then(|s| s.active.clone()),
            shadow: None,
        };
        if let Some(label) = &options.label
            && let Some(other) = versions
                .iter()
                .find(|v| v.label.as_ref() == Some(label) && v.digest != digest)
        {
            return Err(RegistryError::LabelTaken {
                tenant: tenant.to_owned(),
                label: label.clone(),
                digest: other.digest.clone(),
            });
        }
        if let Some(existing) = versions.iter().find(|v| v.digest == digest) {
            // Idempotent, but the bytes must be in this store (an upload to another region's
            // bucket finds the record, replicated, and adds only the bytes).
            if fetch_component(&*self.store, &digest).is_err() {
                self.store.put_component(&digest, bytes)?;
            }
            return Ok((report(false, existing.label.clone()), existing.clone()));
        }
        let config = state
            .as_ref()
            .map(|s| crate::registry::policy_view(&s.config))
            .unwrap_or_else(|| "{}".to_owned());
        let policy = check_laws(bytes, &config, options.law_cases, options.seed)?;
        // Bytes first: a version record never points at a component that is not stored.
        self.store.put_component(&digest, bytes)?;
        let version = PolicyVersion {
            tenant: tenant.to_owned(),
            digest: digest.clone(),
            label: options.label.clone(),
            description: policy.description().clone(),
            size: bytes.len() as u64,
            uploaded_at_ms: (self.clock)(),
            uploaded_by: self.actor.clone(),
            law_check: LawCheckRecord {
                seed: options.seed,
                cases: options.law_cases,
            },
        };
        let created = self.store.put_version(&version)?;
        if created {
            self.store.append_history(&HistoryEntry {
                tenant: tenant.to_owned(),
                revision: 0,
                at_ms: version.uploaded_at_ms,
                by: self.actor.clone(),
                action: "upload".into(),
                digest: Some(digest.clone()),
                replaced: None,
                detail: Some(format!(
                    "{} {} ({} bytes), laws checked on {} cases, seed {}",
                    version.description.name,
                    version.description.version,
                    version.size,
                    options.law_cases,
                    options.seed
                )),
            })?;
        }
        Ok((report(created, version.label.clone()), version))
    }

    /// Finds a version by label, full digest or digest prefix (at least 6 hex digits).
    pub fn find(&self, tenant: &str, selector: &str) -> Result<PolicyVersion, RegistryError> {
        check_tenant(tenant)?;
        let versions = self.store.versions(tenant)?;
        if let Some(v) = versions
            .iter()
            .find(|v| v.label.as_deref() == Some(selector) || v.digest == selector)
        {
            return Ok(v.clone());
        }
        let matches: Vec<&PolicyVersion> = if selector.len() >= 6 {
            versions
                .iter()
                .filter(|v| v.digest.starts_with(selector))
                .collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(RegistryError::UnknownVersion {
                tenant: tenant.to_owned(),
                selector: selector.to_owned(),
                known: versions.iter().map(describe_version).collect(),
            }),
            many => Err(RegistryError::Ambiguous {
                tenant: tenant.to_owned(),
                selector: selector.to_owned(),
                matches: many.iter().map(|v| v.digest.clone()).collect(),
            }),
        }
    }

    /// Every version of the tenant with its status, oldest upload first.
    pub fn list(&self, tenant: &str) -> Result<(Vec<ListedVersion>, TenantState), RegistryError> {
        check_tenant(tenant)?;
        let state = self
            .store
            .state(tenant)?
            .unwrap_or_else(|| TenantState::new(tenant));
        let mut versions = self.store.versions(tenant)?;
        versions.sort_by(|a, b| (a.uploaded_at_ms, &a.digest).cmp(&(b.uploaded_at_ms, &b.digest)));
        let listed = versions
            .into_iter()
            .map(|v| ListedVersion {
                status: state.status(&v.digest),
                version: v,
            })
            .collect();
        Ok((listed, state))
    }

    pub fn history(&self, tenant: &str) -> Result<Vec<HistoryEntry>, RegistryError> {
        check_tenant(tenant)?;
        let mut h = self.store.history(tenant)?;
        h.sort_by_key(|e| (e.at_ms, e.revision));
        Ok(h)
    }

    /// Makes a version the tenant's active policy; the one it replaces can be rolled back to.
    pub fn activate(&self, tenant: &str, selector: &str) -> Result<Change, RegistryError> {
        let version = self.find(tenant, selector)?;
        // The bytes must be loadable by the hosts before they are told to load them.
        fetch_component(&*self.store, &version.digest)?;
        let digest = version.digest.clone();
        self.change(tenant, "activate", Some(&version), |state| {
            if state.active.as_deref() == Some(digest.as_str()) {
                return Ok(None);
            }
            let replaced = state.active.take();
            if let Some(old) = &replaced {
                state.previous.retain(|p| p != old);
                state.previous.push(old.clone());
            }
            state.previous.retain(|p| p != &digest);
            state.retired.remove(&digest);
            if state.shadow.as_ref().is_some_and(|s| s.digest == digest) {
                state.shadow = None;
            }
            state.active = Some(digest.clone());
            Ok(Some((replaced, None)))
        })
    }

    /// Without `candidate`: retires the active version and restores the previously active one.
    /// With it (what the rollout workflow does): takes that version out of service wherever it
    /// is — out of shadow, or out of the active slot with the previous version restored — and
    /// retires it; a version already out of service changes nothing.
    pub fn rollback(
        &self,
        tenant: &str,
        candidate: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Change, RegistryError> {
        check_tenant(tenant)?;
        let target = match candidate {
            Some(selector) => Some(self.find(tenant, selector)?),
            None => None,
        };
        let reason = reason.map(str::to_owned);
        self.change(tenant, "rollback", target.as_ref(), |state| {
            let digest = match &target {
                Some(v) => v.digest.clone(),
                None => state.active.clone().ok_or_else(|| {
                    RegistryError::Refused(format!(
                        "tenant {tenant} has no active version to roll back"
                    ))
                })?,
            };
            if state.shadow.as_ref().is_some_and(|s| s.digest == digest) {
                state.shadow = None;
                state.previous.retain(|p| p != &digest);
                state.retired.insert(digest);
                return Ok(Some((None, reason.clone())));
            }
            if state.active.as_deref() != Some(digest.as_str()) {
                // Retired versions are never rolled back to.
                let was_previous = state.previous.iter().any(|p| p == &digest);
                state.previous.retain(|p| p != &digest);
                if state.retired.insert(digest) || was_previous {
                    return Ok(Some((None, reason.clone())));
                }
                return Ok(None);
            }
            let previous = loop {
                match state.previous.pop() {
                    Some(p) if state.retired.contains(&p) || p == digest => continue,
                    Some(p) => break p,
                    None => {
                        return Err(RegistryError::Refused(format!(
                            "tenant {tenant} has no previously active version to roll back to; activate one instead"
                        )));
                    }
                }
            };
            state.retired.insert(digest);
            if state.shadow.as_ref().is_some_and(|s| s.digest == previous) {
                state.shadow = None;
            }
            let replaced = state.active.replace(previous);
            Ok(Some((replaced, reason.clone())))
        })
    }

    /// Runs a version in shadow beside the active one (replacing any other candidate).
    pub fn shadow(&self, tenant: &str, selector: &str) -> Result<Change, RegistryError> {
        let version = self.find(tenant, selector)?;
        fetch_component(&*self.store, &version.digest)?;
        let digest = version.digest.clone();
        let now = (self.clock)();
        self.change(tenant, "shadow", Some(&version), |state| {
            if state.active.is_none() {
                return Err(RegistryError::Refused(format!(
                    "tenant {tenant} has no active version to compare a candidate with; activate one first"
                )));
            }
            if state.active.as_deref() == Some(digest.as_str()) {
                return Err(RegistryError::Refused(format!(
                    "version {} is the active one; shadow a different version",
                    short(&digest)
                )));
            }
            if state.shadow.as_ref().is_some_and(|s| s.digest == digest) {
                return Ok(None);
            }
            state.retired.remove(&digest);
            state.shadow = Some(ShadowState {
                digest: digest.clone(),
                since_ms: now,
            });
            Ok(Some((None, None)))
        })
    }

    /// Stops the shadow run, if any (the candidate stays staged; its report stays readable).
    pub fn stop_shadow(&self, tenant: &str) -> Result<Change, RegistryError> {
        check_tenant(tenant)?;
        self.change(tenant, "shadow-stop", None, |state| {
            Ok(state.shadow.take().map(|_| (None, None)))
        })
    }

    /// Sets the configuration document handed to the tenant's policy (a JSON object).
    pub fn set_config(&self, tenant: &str, config: &str) -> Result<Change, RegistryError> {
        check_tenant(tenant)?;
        let value: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| RegistryError::Refused(format!("the configuration is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(RegistryError::Refused(
                "the configuration must be a JSON object".into(),
            ));
        }
        let text = value.to_string();
        self.change(tenant, "config", None, |state| {
            if state.config == text {
                return Ok(None);
            }
            state.config = text.clone();
            Ok(Some((None, Some(text.clone()))))
        })
    }

    /// How the candidate (the current shadow when `None`) did against the active policy.
    pub fn shadow_report(
        &self,
        tenant: &str,
        candidate: Option<&str>,
    ) -> Result<(String, ShadowSummary), RegistryError> {
        check_tenant(tenant)?;
        let digest = match candidate {
            Some(selector) => self.find(tenant, selector)?.digest,
            None => self
                .store
                .state(tenant)?
                .and_then(|s| s.shadow)
                .map(|s| s.digest)
                .ok_or_else(|| {
                    RegistryError::Refused(format!(
                        "tenant {tenant} has no candidate in shadow; name the version"
                    ))
                })?,
        };
        let summary = self.store.shadow_summary(tenant, &digest)?;
        Ok((digest, summary))
    }

    /// Applies `edit` to the tenant's state with compare-and-swap, retrying on concurrent
    /// changes. `edit` returns `None` when there is nothing to change, else the replaced
    /// active version and a detail for the history.
    fn change(
        &self,
        tenant: &str,
        action: &str,
        version: Option<&PolicyVersion>,
        mut edit: impl FnMut(
            &mut TenantState,
        ) -> Result<Option<(Option<String>, Option<String>)>, RegistryError>,
    ) -> Result<Change, RegistryError> {
        let mut last = None;
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                let ceiling = 1u64 << attempt.min(7);
                std::thread::sleep(std::time::Duration::from_millis(
                    1 + rand::random::<u64>() % ceiling,
                ));
            }
            let current = self
                .store
                .state(tenant)?
                .unwrap_or_else(|| TenantState::new(tenant));
            let mut next = current.clone();
            let outcome = edit(&mut next)?;
            let report = |state: &TenantState, changed: bool, replaced: Option<String>| Change {
                tenant: tenant.to_owned(),
                action: action.to_owned(),
                changed,
                revision: state.revision,
                digest: version.map(|v| v.digest.clone()),
                label: version.and_then(|v| v.label.clone()),
                previously_active: if changed {
                    replaced
                } else {
                    state.active.clone()
                },
                active: state.active.clone(),
                shadow: state.shadow.as_ref().map(|s| s.digest.clone()),
            };
            let Some((replaced, detail)) = outcome else {
                return Ok(report(&current, false, None));
            };
            next.revision = current.revision + 1;
            next.updated_at_ms = (self.clock)();
            next.updated_by = self.actor.clone();
            let entry = HistoryEntry {
                tenant: tenant.to_owned(),
                revision: next.revision,
                at_ms: next.updated_at_ms,
                by: self.actor.clone(),
                action: action.to_owned(),
                digest: version.map(|v| v.digest.clone()),
                replaced: replaced.clone(),
                detail,
            };
            match self.store.put_state(&next, current.revision, &entry) {
                Ok(()) => {
                    tracing::info!(
                        tenant,
                        action,
                        revision = next.revision,
                        active = next.active.as_deref().unwrap_or("-"),
                        "registry.change"
                    );
                    return Ok(report(&next, true, replaced));
                }
                Err(e @ RegistryError::Conflict { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }
}

/// A short form of a digest for messages.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn describe_version(v: &PolicyVersion) -> String {
    match &v.label {
        Some(l) => format!("{l} ({})", short(&v.digest)),
        None => short(&v.digest).to_owned(),
    }
}
