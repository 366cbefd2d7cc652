//! The operator's operations on the policy registry — upload behind the law gate, activate,
//! roll back, shadow, configure — written once over the storage trait
//! ([`host_core::registry::PolicyRegistry`]). A tenant's state is one record with a revision:
//! every change is a compare-and-swap on it plus one history entry, so two operators never
//! overwrite each other.

use std::sync::Arc;

use host_core::conflict::to_line;
use host_core::registry::{
    HistoryEntry, LawCheckRecord, PolicyRegistry, PolicyVersion, RegistryError, ShadowState,
    ShadowSummary, TenantState, VersionStatus, fetch_component, now_ms, short,
};
use host_core::signing::{self, SigningKey};
use host_core::tenant::{check_tenant, policy_view};
use host_sandbox::{ArtifactCache, Limits, Metering, Policy, PolicyEngine, digest};
use serde::Serialize;

use crate::laws::{CheckOptions, check};

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
///
/// What it covers: every history of the small scopes ([`crate::laws::Law::scope`]: up to
/// three writes over two regions, one write in each of three, and the party created in two or
/// three regions at once, and for associativity three writes one of which follows a version
/// received mid-history ([`crate::laws::Law::plans`]); about 23 500 cases, the same on every
/// run), then `cases` random
/// conflicts per law from `seed`. What it costs: a call may
/// burn the fuel of the serving deadline ([`Limits::fuel_for`], 700 M for 100 ms), so a
/// policy is refused for its cost only when a host would time it out on the same input; the
/// whole gate takes about 5 s of CPU for a Rust policy, 20 s for Python, 30 s for JavaScript
/// (debug build, BENCHMARKS.md "The law gate").
pub fn check_laws(
    bytes: &[u8],
    config: &str,
    cases: u32,
    seed: u64,
) -> Result<Policy, RegistryError> {
    check_laws_cached(bytes, config, cases, seed, None)
}

/// [`check_laws`], the metered compilation loaded from (or stored into) `cache`: a component
/// checked before on this machine (`policy build`, `policy check`) is not compiled again.
pub fn check_laws_cached(
    bytes: &[u8],
    config: &str,
    cases: u32,
    seed: u64,
    cache: Option<&ArtifactCache>,
) -> Result<Policy, RegistryError> {
    let engine =
        PolicyEngine::new(Limits::default(), Metering::Fuel).map_err(RegistryError::Engine)?;
    let policy = Policy::load(&engine, bytes, cache).map_err(RegistryError::Invalid)?;
    // The gate is a function of these four (the scopes are fixed, the random cases seeded,
    // the cost metered in fuel): a component that passed once in this process passes again,
    // and a second upload of it (another tenant, a retried step, `--regions`) is not checked
    // twice.
    let key = (policy.info().digest.clone(), config.to_owned(), cases, seed);
    if PASSED.lock().unwrap().contains(&key) {
        return Ok(policy);
    }
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
            counterexample: failure.conflicts.iter().map(to_line).collect(),
        });
    }
    PASSED.lock().unwrap().insert(key);
    Ok(policy)
}

/// The law checks passed in this process: (digest, configuration, random cases, seed).
static PASSED: std::sync::Mutex<std::collections::BTreeSet<(String, String, u32, u64)>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

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
    /// Signs the version with this key; the upload is then recorded as the key's (its id),
    /// not the actor's.
    pub signer: Option<SigningKey>,
}

/// An upload that passed the checks (loads, laws, signature, trust) and is ready to be
/// recorded: in one store, or, the bytes first, in every region's
/// ([`Registry::prepare_upload`], [`Registry::record_upload`]).
#[derive(Clone, Debug)]
pub struct PreparedUpload {
    /// The version as it will be recorded (the same record in every region).
    pub version: PolicyVersion,
    /// Whether the tenant has this version already (the same bytes): nothing was checked,
    /// and recording it changes nothing but missing bytes.
    pub existing: bool,
    state: Option<TenantState>,
}

/// The operations on a registry, by an operator (or a workflow) named `actor`.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn PolicyRegistry>,
    actor: String,
    /// Whether `actor` is an identity the store's service authenticated (an IAM principal's
    /// ARN), which a signed upload records beside the key id, rather than a name the operator
    /// gave, which the key id replaces.
    authenticated: bool,
    clock: fn() -> u64,
    /// Where compiled components are kept on this machine ([`Registry::with_cache`]).
    cache: Option<ArtifactCache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// How many times an operation re-reads and retries after a concurrent change (with a
/// jittered exponential backoff, so that contending operators spread out).
const CAS_ATTEMPTS: u32 = 12;

impl Registry {
    pub fn new(store: Arc<dyn PolicyRegistry>, actor: impl Into<String>) -> Self {
        Registry {
            store,
            actor: actor.into(),
            authenticated: false,
            clock: now_ms,
            cache: None,
        }
    }

    /// Compiles through `cache`: the law check loads the component precompiled when this
    /// machine compiled it before, and an upload stores beside the component the artifact a
    /// host's engine loads ([`store_precompiled`]).
    pub fn with_cache(self, cache: ArtifactCache) -> Self {
        Registry {
            cache: Some(cache),
            ..self
        }
    }

    /// Operations by an authenticated `principal` (on AWS, the caller's IAM principal ARN from
    /// STS): every history entry names it, and a signed upload is recorded as
    /// `key:<id> by <principal>`.
    pub fn authenticated(store: Arc<dyn PolicyRegistry>, principal: impl Into<String>) -> Self {
        Registry {
            authenticated: true,
            ..Registry::new(store, principal)
        }
    }

    /// Who an upload is recorded as: the signing key when signed (and the authenticated
    /// principal beside it), else the actor.
    fn uploader(&self, signature: Option<&host_core::registry::PolicySignature>) -> String {
        match signature {
            Some(s) if self.authenticated => format!("key:{} by {}", s.key_id, self.actor),
            Some(s) => format!("key:{}", s.key_id),
            None => self.actor.clone(),
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
        let prepared = self.prepare_upload(tenant, bytes, options)?;
        self.record_upload(&prepared, bytes)
    }

    /// The checks of an upload, with nothing stored: the label is free, the component loads
    /// and passes its laws under the tenant's configuration, and its signature satisfies the
    /// tenant's trusted keys. A version the tenant has already is returned as `existing`,
    /// unchecked.
    pub fn prepare_upload(
        &self,
        tenant: &str,
        bytes: &[u8],
        options: &UploadOptions,
    ) -> Result<PreparedUpload, RegistryError> {
        check_tenant(tenant)?;
        let digest = digest(bytes);
        let versions = self.store.versions(tenant)?;
        let state = self.store.state(tenant)?;
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
            return Ok(PreparedUpload {
                version: existing.clone(),
                existing: true,
                state,
            });
        }
        let config = state
            .as_ref()
            .map(|s| policy_view(&s.config))
            .unwrap_or_else(|| "{}".to_owned());
        let policy = check_laws_cached(
            bytes,
            &config,
            options.law_cases,
            options.seed,
            self.cache.as_ref(),
        )?;
        let description = policy.description().clone();
        let signature = options
            .signer
            .as_ref()
            .map(|key| signing::sign(key, &digest, &description));
        // A tenant that trusts keys takes only versions one of them signed: refused here, and
        // refused again by every host that would load it.
        let trusted = state.as_ref().map_or(&[][..], |s| &s.trusted_keys[..]);
        signing::verify(tenant, trusted, &digest, &description, signature.as_ref()).map_err(
            |e| RegistryError::Refused(format!("{e}; sign it at upload with --sign KEY")),
        )?;
        let version = PolicyVersion {
            tenant: tenant.to_owned(),
            digest,
            label: options.label.clone(),
            description,
            size: bytes.len() as u64,
            uploaded_at_ms: (self.clock)(),
            uploaded_by: self.uploader(signature.as_ref()),
            law_check: LawCheckRecord {
                seed: options.seed,
                cases: options.law_cases,
            },
            signature,
        };
        Ok(PreparedUpload {
            version,
            existing: false,
            state,
        })
    }

    /// Records a prepared upload in this registry: the bytes first (a version record never
    /// points at a component that is not stored), then the version and its history entry.
    /// A version the tenant has already only gets its bytes, if this store lacks them (an
    /// upload to another region's bucket finds the record, replicated, and adds the bytes).
    pub fn record_upload(
        &self,
        prepared: &PreparedUpload,
        bytes: &[u8],
    ) -> Result<(Change, PolicyVersion), RegistryError> {
        let version = &prepared.version;
        let report = |changed: bool| Change {
            tenant: version.tenant.clone(),
            action: "upload".into(),
            changed,
            revision: prepared.state.as_ref().map_or(0, |s| s.revision),
            digest: Some(version.digest.clone()),
            label: version.label.clone(),
            previously_active: None,
            active: prepared.state.as_ref().and_then(|s| s.active.clone()),
            shadow: None,
        };
        if prepared.existing {
            store_component(&*self.store, &version.digest, bytes)?;
            if let Some(cache) = &self.cache {
                store_precompiled(&*self.store, cache, bytes)?;
            }
            return Ok((report(false), version.clone()));
        }
        self.store.put_component(&version.digest, bytes)?;
        if let Some(cache) = &self.cache {
            store_precompiled(&*self.store, cache, bytes)?;
        }
        let created = self.store.put_version(version)?;
        if created {
            self.store.append_history(&HistoryEntry {
                tenant: version.tenant.clone(),
                revision: 0,
                at_ms: version.uploaded_at_ms,
                by: version.uploaded_by.clone(),
                action: "upload".into(),
                digest: Some(version.digest.clone()),
                replaced: None,
                detail: Some(format!(
                    "{} {} ({} bytes), laws checked on {} cases, seed {}",
                    version.description.name,
                    version.description.version,
                    version.size,
                    version.law_check.cases,
                    version.law_check.seed
                )),
            })?;
        }
        Ok((report(created), version.clone()))
    }

    /// The compiled form hosts load: stored beside the component by an upload with a cache.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_ref()
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
            signed(state, &version)?;
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
            signed(state, &version)?;
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

    /// Adds a key whose signatures the tenant accepts. From the first key on, every version
    /// activated or run in shadow for the tenant must be signed by a trusted key, and the hosts
    /// refuse to load one that is not. Refused when the active version would not pass: sign
    /// and activate a version first, so that trusting a key never stops the hosts serving.
    pub fn trust(
        &self,
        tenant: &str,
        public: &signing::VerifyingKey,
    ) -> Result<Change, RegistryError> {
        check_tenant(tenant)?;
        let key = signing::trusted_key(public, (self.clock)(), &self.actor);
        let versions = self.store.versions(tenant)?;
        self.change(tenant, "trust", None, |state| {
            if state.trusted_keys.iter().any(|k| k.key_id == key.key_id) {
                return Ok(None);
            }
            let mut keys = state.trusted_keys.clone();
            keys.push(key.clone());
            still_served(state, &versions, &keys)?;
            state.trusted_keys = keys;
            Ok(Some((None, Some(format!("trusts key {}", key.key_id)))))
        })
    }

    /// Stops trusting a key (the last one removed: versions need no signature again).
    pub fn untrust(&self, tenant: &str, key_id: &str) -> Result<Change, RegistryError> {
        check_tenant(tenant)?;
        let versions = self.store.versions(tenant)?;
        self.change(tenant, "untrust", None, |state| {
            if !state.trusted_keys.iter().any(|k| k.key_id == key_id) {
                return Err(RegistryError::Refused(format!(
                    "tenant {tenant} does not trust key {key_id} (trusted: {})",
                    state
                        .trusted_keys
                        .iter()
                        .map(|k| k.key_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let keys: Vec<_> = state
                .trusted_keys
                .iter()
                .filter(|k| k.key_id != key_id)
                .cloned()
                .collect();
            still_served(state, &versions, &keys)?;
            state.trusted_keys = keys;
            Ok(Some((None, Some(format!("no longer trusts key {key_id}")))))
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

/// Stores a component's bytes in `store` unless it holds them already (verified against the
/// digest); whether it stored them now.
pub fn store_component(
    store: &dyn PolicyRegistry,
    digest: &str,
    bytes: &[u8],
) -> Result<bool, RegistryError> {
    if fetch_component(store, digest).is_ok() {
        return Ok(false);
    }
    store.put_component(digest, bytes)?;
    Ok(true)
}

fn describe_version(v: &PolicyVersion) -> String {
    match &v.label {
        Some(l) => format!("{l} ({})", short(&v.digest)),
        None => short(&v.digest).to_owned(),
    }
}

/// Refuses a change of the trusted keys to `keys` after which the hosts would refuse the
/// version the tenant is served (active or in shadow).
fn still_served(
    state: &TenantState,
    versions: &[PolicyVersion],
    keys: &[host_core::registry::TrustedKey],
) -> Result<(), RegistryError> {
    let serving = state
        .active
        .iter()
        .chain(state.shadow.iter().map(|s| &s.digest));
    for digest in serving {
        if let Some(v) = versions.iter().find(|v| &v.digest == digest) {
            signing::verify(&state.tenant, keys, digest, &v.description, v.signature.as_ref())
                .map_err(|e| {
                    RegistryError::Refused(format!(
                        "version {} serves tenant {}, and after this change the hosts would refuse it: {e}; sign and activate a version the new keys accept first",
                        short(digest),
                        state.tenant
                    ))
                })?;
        }
    }
    Ok(())
}

/// Refuses a version the tenant's trusted keys did not sign.
fn signed(state: &TenantState, version: &PolicyVersion) -> Result<(), RegistryError> {
    signing::verify(
        &state.tenant,
        &state.trusted_keys,
        &version.digest,
        &version.description,
        version.signature.as_ref(),
    )
    .map_err(|e| RegistryError::Refused(e.to_string()))
}

/// Stores in `store`, beside the component, the component compiled for the hosts' engine (the
/// serving engine with the default limits, which the CLI's hosts and the Lambda functions
/// build), from `cache` or compiled into it: a host's first load of the version then
/// deserializes ([`host_core::follow`]). Returns whether the store keeps artifacts. A host
/// whose engine differs (another CPU, another wasmtime) finds none for its own and compiles.
pub fn store_precompiled(
    store: &dyn PolicyRegistry,
    cache: &ArtifactCache,
    bytes: &[u8],
) -> Result<bool, RegistryError> {
    let engine =
        PolicyEngine::new(Limits::default(), Metering::Epoch).map_err(RegistryError::Engine)?;
    let digest = digest(bytes);
    if !cache.contains(&engine, &digest) {
        Policy::load(&engine, bytes, Some(cache)).map_err(RegistryError::Invalid)?;
    }
    let Some(artifact) = cache.artifact(&engine, &digest) else {
        return Ok(false);
    };
    store.put_precompiled(&engine.compatibility_hash(), &digest, &artifact)
}
