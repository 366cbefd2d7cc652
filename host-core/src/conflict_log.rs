//! The conflict log: every conflict the reconcile path sees, once, with both versions as the
//! policy saw them, the context, what was decided, by which policy, and later re-resolutions.
//!
//! It is where captured conflicts come from: a record exports as exactly the captured-conflict
//! line `dry-run` and `policy check` read, replays against a candidate policy, and drives
//! resolution again (redrive, `host-cli conflicts resolve`), appending the new outcome.
//! Storage is behind [`ConflictLog`]: in memory, in a local directory (the CLI and the
//! simulation), and on DynamoDB in the Lambda host. A record's id is a digest of the tenant,
//! the party and the two version vectors (in either order), so the same conflict seen again —
//! a re-delivery, a retry, the other region resolving it too — is the same record.

use policy_types::writes::Writes;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use policy_types::{PartyVersion, Relation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conflict::{CapturedConflict, CapturedContext};
use crate::failure::Failure;
use crate::resolve::{Resolved, Resolver, relation};
use crate::tenant::{BadTenant, LogSettings};

/// One resolution of a conflict: the first by the reconcile path, later ones by a redrive or an
/// operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictOutcome {
    pub at_ms: u64,
    /// Who resolved: `reconcile`, `redrive`, `host-cli`, `simulation`.
    pub by: String,
    /// `keep-local`, `take-remote`, `merged`, `rejected`, `failed`.
    pub decision: String,
    /// Why it was rejected or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy that decided (`None` when the host decided alone: one side dominated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    /// The party that was written (`None` when rejected or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<PartyVersion>,
}

impl ConflictOutcome {
    /// From a resolution that was written.
    pub fn from_resolved(
        by: &str,
        at_ms: u64,
        resolved: &Resolved,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Self {
        ConflictOutcome {
            at_ms,
            by: by.to_owned(),
            decision: resolved.decision.kind().to_owned(),
            reason: match &resolved.decision {
                crate::resolve::Decision::Rejected(r) => Some(r.clone()),
                _ => None,
            },
            policy_digest: resolved.policy_digest.clone(),
            written: resolved.written(local, remote).cloned(),
        }
    }

    /// A conflict that could not be resolved (rejected by the policy, a trap, retries exhausted).
    pub fn failed(
        by: &str,
        at_ms: u64,
        decision: &str,
        reason: &str,
        policy_digest: Option<String>,
    ) -> Self {
        ConflictOutcome {
            at_ms,
            by: by.to_owned(),
            decision: decision.to_owned(),
            reason: Some(reason.to_owned()),
            policy_digest,
            written: None,
        }
    }

    /// Whether the conflict ended resolved (a party was written).
    pub fn resolved(&self) -> bool {
        self.written.is_some()
    }
}

/// One conflict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictRecord {
    pub id: String,
    pub tenant: String,
    pub party_id: String,
    /// The region that resolved it.
    pub region: String,
    /// Every region involved: the resolver and the two versions' origins.
    pub regions: Vec<String>,
    /// When it was first seen.
    pub at_ms: u64,
    pub relation: Relation,
    /// The resolving region's version, as the policy saw it.
    pub local: PartyVersion,
    /// The version that arrived from another region.
    pub remote: PartyVersion,
    /// The tenant's configuration document the policy was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// The resolutions, first one first.
    pub outcomes: Vec<ConflictOutcome>,
    /// When the record expires (seconds since the epoch; the store's TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The writes behind the local version's fields, where known: a policy of contract
    /// revision 1.3 was sent them, and a replay sends them again.
    #[serde(default, skip_serializing_if = "Writes::is_empty")]
    pub local_writes: Writes,
    /// The writes behind the remote version's fields, where known.
    #[serde(default, skip_serializing_if = "Writes::is_empty")]
    pub remote_writes: Writes,
}

/// The stable id of a conflict between two versions of a party (either order).
pub fn conflict_id(tenant: &str, a: &PartyVersion, b: &PartyVersion) -> String {
    let vv = |v: &PartyVersion| {
        let mut dots: Vec<String> = v
            .version_vector
            .iter()
            .filter(|d| d.counter > 0)
            .map(|d| format!("{}:{}", d.region, d.counter))
            .collect();
        dots.sort();
        dots.join(",")
    };
    let mut pair = [vv(a), vv(b)];
    pair.sort();
    let mut h = Sha256::new();
    for part in [tenant, &a.party_id, &pair[0], &pair[1]] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

impl ConflictRecord {
    /// A new record of a conflict between `local` and `remote`, resolved in `region`.
    pub fn new(
        region: &str,
        local: &PartyVersion,
        remote: &PartyVersion,
        config: &str,
        at_ms: u64,
        settings: &LogSettings,
        outcome: ConflictOutcome,
    ) -> Self {
        let regions: BTreeSet<String> = [
            region.to_owned(),
            local.origin_region.clone(),
            remote.origin_region.clone(),
        ]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
        ConflictRecord {
            id: conflict_id(&local.tenant, local, remote),
            tenant: local.tenant.clone(),
            party_id: local.party_id.clone(),
            region: region.to_owned(),
            regions: regions.into_iter().collect(),
            at_ms,
            relation: relation(local, remote),
            local: local.clone(),
            remote: remote.clone(),
            config: serde_json::from_str(config)
                .ok()
                .filter(|v: &serde_json::Value| v.as_object().is_some_and(|o| !o.is_empty())),
            outcomes: vec![outcome],
            expires_at: Some(at_ms / 1000 + settings.retention_days * 86_400),
            local_writes: Writes::default(),
            remote_writes: Writes::default(),
        }
    }

    /// The record with the writes behind its versions.
    pub fn with_writes(mut self, local: &Writes, remote: &Writes) -> Self {
        self.local_writes = local.clone();
        self.remote_writes = remote.clone();
        self
    }

    /// The record of a conflict resolved by `resolver`'s region with the tenant's active
    /// configuration and log settings; `None` for a case the host settled alone (one version
    /// dominated), which is counted, not stored, unless the tenant asks for full capture.
    pub fn for_resolver(
        resolver: &Resolver,
        local: &PartyVersion,
        remote: &PartyVersion,
        at_ms: u64,
        outcome: ConflictOutcome,
    ) -> Option<Self> {
        let (config, settings) = resolver
            .lookup()
            .policy(&local.tenant)
            .map(|a| (a.config.clone(), a.log.clone()))
            .unwrap_or_else(|_| ("{}".to_owned(), LogSettings::default()));
        let settled_by_host = outcome.policy_digest.is_none() && outcome.written.is_some();
        if settled_by_host && !settings.full_capture {
            return None;
        }
        Some(Self::new(
            resolver.region(),
            local,
            remote,
            &config,
            at_ms,
            &settings,
            outcome,
        ))
    }

    /// The first outcome: what the reconcile path decided.
    pub fn first(&self) -> &ConflictOutcome {
        &self.outcomes[0]
    }

    /// The latest outcome.
    pub fn latest(&self) -> &ConflictOutcome {
        self.outcomes.last().expect("a record has an outcome")
    }

    /// The conflict as a captured-conflict line's content (what `dry-run` replays).
    pub fn captured(&self) -> CapturedConflict {
        let first = self.first();
        CapturedConflict {
            id: Some(self.id.clone()),
            tenant: self.tenant.clone(),
            note: Some(format!(
                "{} by {}",
                first.decision,
                first.policy_digest.as_deref().unwrap_or("the host")
            )),
            local: self.local.clone(),
            remote: self.remote.clone(),
            context: Some(CapturedContext {
                resolving_region: Some(self.region.clone()),
                config: self.config.clone(),
            }),
            local_writes: self.local_writes.clone(),
            remote_writes: self.remote_writes.clone(),
        }
    }
}

/// Reads a stored record; one without an outcome is refused (every record has its first).
pub fn parse_record(bytes: &[u8]) -> Result<ConflictRecord, String> {
    let r: ConflictRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if r.outcomes.is_empty() {
        return Err("the record has no outcome".into());
    }
    Ok(r)
}

/// Orders query results: oldest first, then by id (what every backend returns).
pub fn sort_records(records: &mut [ConflictRecord]) {
    records.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
}

/// Which records a query selects.
#[derive(Clone, Debug, Default)]
pub struct ConflictQuery {
    pub tenant: String,
    pub party: Option<String>,
    /// From this time (ms, inclusive).
    pub from_ms: Option<u64>,
    /// Until this time (ms, exclusive).
    pub to_ms: Option<u64>,
    /// The latest outcome's decision.
    pub outcome: Option<String>,
    /// A prefix of the first outcome's policy digest.
    pub policy: Option<String>,
}

impl ConflictQuery {
    pub fn tenant(tenant: &str) -> Self {
        ConflictQuery {
            tenant: tenant.to_owned(),
            ..Default::default()
        }
    }

    pub fn matches(&self, r: &ConflictRecord) -> bool {
        r.tenant == self.tenant
            && self.party.as_ref().is_none_or(|p| &r.party_id == p)
            && self.from_ms.is_none_or(|f| r.at_ms >= f)
            && self.to_ms.is_none_or(|t| r.at_ms < t)
            && self
                .outcome
                .as_ref()
                .is_none_or(|o| &r.latest().decision == o)
            && self.policy.as_ref().is_none_or(|p| {
                r.first()
                    .policy_digest
                    .as_ref()
                    .is_some_and(|d| d.starts_with(p.as_str()))
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no conflict {id} is recorded for tenant {tenant}")]
    NotFound { tenant: String, id: String },
    #[error(transparent)]
    BadTenant(#[from] BadTenant),
    #[error("the conflict log's storage failed: {0}")]
    Storage(#[source] Failure),
}

/// Where conflicts are recorded.
pub trait ConflictLog: Send + Sync + std::fmt::Debug {
    /// Records a conflict unless one with its id exists; returns whether it was created.
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError>;
    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError>;
    /// The records a query selects, oldest first.
    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError>;
    /// Appends a later resolution to a record.
    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError>;
}

// A log shared by the regions of one process is the same log behind an `Arc`.
impl<T: ConflictLog + ?Sized> ConflictLog for std::sync::Arc<T> {
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError> {
        (**self).record(record)
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError> {
        (**self).get(tenant, id)
    }

    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError> {
        (**self).query(query)
    }

    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError> {
        (**self).append(tenant, id, outcome)
    }
}

/// Told of what an [`Observed`] log is asked to write, after the log has answered.
pub trait LogObserver: Send + Sync + std::fmt::Debug {
    /// `record` was offered to the log, which answered `stored` (`Ok(true)`: stored anew,
    /// `Ok(false)`: it had a record with this id already).
    fn recorded(&self, record: &ConflictRecord, stored: &Result<bool, LogError>);
    /// `outcome` was appended to `record` (as the log holds it afterwards); `appended` is false
    /// where the append failed but the record could be read.
    fn outcome_added(&self, record: &ConflictRecord, outcome: &ConflictOutcome, appended: bool);
}

/// A conflict log that tells an observer what it was asked to write (the simulation's oracle
/// keeps every resolution; `serve`'s page keeps the latest records in memory).
#[derive(Debug)]
pub struct Observed<L, O> {
    pub log: L,
    pub observer: O,
}

impl<L: ConflictLog, O: LogObserver> ConflictLog for Observed<L, O> {
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError> {
        let stored = self.log.record(record);
        self.observer.recorded(record, &stored);
        stored
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError> {
        self.log.get(tenant, id)
    }

    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError> {
        self.log.query(query)
    }

    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError> {
        let appended = self.log.append(tenant, id, outcome);
        if let Ok(Some(record)) = self.log.get(tenant, id) {
            self.observer
                .outcome_added(&record, outcome, appended.is_ok());
        }
        appended
    }
}

/// The log in memory (tests, embedded use).
#[derive(Debug, Default)]
pub struct MemoryConflictLog {
    records: Mutex<Vec<ConflictRecord>>,
}

impl MemoryConflictLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn all(&self) -> Vec<ConflictRecord> {
        self.records.lock().unwrap().clone()
    }
}

impl ConflictLog for MemoryConflictLog {
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError> {
        let mut records = self.records.lock().unwrap();
        if records
            .iter()
            .any(|r| r.tenant == record.tenant && r.id == record.id)
        {
            return Ok(false);
        }
        records.push(record.clone());
        Ok(true)
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.tenant == tenant && r.id == id)
            .cloned())
    }

    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError> {
        let mut found: Vec<ConflictRecord> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        sort_records(&mut found);
        Ok(found)
    }

    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError> {
        let mut records = self.records.lock().unwrap();
        let r = records
            .iter_mut()
            .find(|r| r.tenant == tenant && r.id == id)
            .ok_or_else(|| LogError::NotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            })?;
        r.outcomes.push(outcome.clone());
        Ok(())
    }
}

/// The log in a directory, one JSON file per record: `{root}/{tenant}/{id}.json`. Writers
/// (threads or processes) serialise on `{root}/{tenant}/.lock`; readers need no lock, since a
/// record is replaced whole by a rename.
#[derive(Clone, Debug)]
pub struct DirConflictLog {
    root: PathBuf,
}

impl DirConflictLog {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirConflictLog { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, tenant: &str, id: &str) -> Result<PathBuf, LogError> {
        crate::tenant::check_tenant(tenant)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LogError::NotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(self.root.join(tenant).join(format!("{id}.json")))
    }

    /// Holds the tenant's lock file exclusively until dropped: recording and adding an outcome
    /// read, change and write a record, and two processes (two `host-cli conflicts resolve`,
    /// say) must not both start from the same version of it.
    fn lock(&self, tenant: &str) -> Result<std::fs::File, LogError> {
        host_sandbox::files::lock_dir(&self.root.join(tenant))
            .map_err(|e| LogError::Storage(Failure::caused_by(e.to_string(), e)))
    }

    fn write(&self, path: &Path, record: &ConflictRecord) -> Result<(), LogError> {
        let bytes = serde_json::to_vec(record).expect("records serialise");
        host_sandbox::files::write_atomically(path, &bytes)
            .map_err(|e| LogError::Storage(Failure::caused_by(e.to_string(), e)))
    }

    fn read(path: &Path) -> Result<Option<ConflictRecord>, LogError> {
        match std::fs::read(path) {
            Ok(b) => parse_record(&b).map(Some).map_err(|e| {
                LogError::Storage(Failure::caused_by(
                    format!("{} is corrupt: {e}", path.display()),
                    e,
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError::Storage(Failure::caused_by(
                format!("{}: {e}", path.display()),
                e,
            ))),
        }
    }
}

impl ConflictLog for DirConflictLog {
    fn record(&self, record: &ConflictRecord) -> Result<bool, LogError> {
        let path = self.path(&record.tenant, &record.id)?;
        let _locked = self.lock(&record.tenant)?;
        if path.is_file() {
            return Ok(false);
        }
        self.write(&path, record)?;
        Ok(true)
    }

    fn get(&self, tenant: &str, id: &str) -> Result<Option<ConflictRecord>, LogError> {
        Self::read(&self.path(tenant, id)?)
    }

    fn query(&self, query: &ConflictQuery) -> Result<Vec<ConflictRecord>, LogError> {
        crate::tenant::check_tenant(&query.tenant)?;
        let dir = self.root.join(&query.tenant);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(LogError::Storage(Failure::caused_by(
                    format!("{}: {e}", dir.display()),
                    e,
                )));
            }
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(r) = Self::read(&path)?
                && query.matches(&r)
            {
                found.push(r);
            }
        }
        sort_records(&mut found);
        Ok(found)
    }

    fn append(&self, tenant: &str, id: &str, outcome: &ConflictOutcome) -> Result<(), LogError> {
        let path = self.path(tenant, id)?;
        let _locked = self.lock(tenant)?;
        let mut record = Self::read(&path)?.ok_or_else(|| LogError::NotFound {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
        })?;
        record.outcomes.push(outcome.clone());
        self.write(&path, &record)
    }
}
