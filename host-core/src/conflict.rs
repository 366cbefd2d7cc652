//! Captured conflicts: one JSON object a line, the two versions a region saw and what it
//! knew. `dry-run` and `policy check` read this format; law-check counterexamples and the
//! conflict log's exports write it.

use policy_types::PartyVersion;
use policy_types::writes::Writes;
use serde::{Deserialize, Serialize};

/// One captured conflict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapturedConflict {
    /// A name for reports (the line number is used when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub tenant: String,
    /// What the conflict shows, for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The version held by the resolving region.
    pub local: PartyVersion,
    /// The version that arrived from another region.
    pub remote: PartyVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<CapturedContext>,
    /// The writes behind the local version's fields, where known (`policy_types::writes`): a
    /// policy of contract revision 1.3 is sent them on replay, as it was when captured.
    #[serde(default, skip_serializing_if = "Writes::is_empty")]
    pub local_writes: Writes,
    /// The writes behind the remote version's fields, where known.
    #[serde(default, skip_serializing_if = "Writes::is_empty")]
    pub remote_writes: Writes,
}

/// What the resolving region knew besides the versions.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapturedContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolving_region: Option<String>,
    /// The tenant's policy configuration document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl CapturedConflict {
    /// The resolving region: the context's, else the local version's origin.
    pub fn region(&self) -> &str {
        self.context
            .as_ref()
            .and_then(|c| c.resolving_region.as_deref())
            .unwrap_or(&self.local.origin_region)
    }

    /// The configuration document as JSON text (`{}` when none was captured).
    pub fn config_text(&self) -> String {
        match self.context.as_ref().and_then(|c| c.config.as_ref()) {
            Some(v) => v.to_string(),
            None => "{}".to_owned(),
        }
    }

    /// Checks what the type system cannot: both versions belong to the conflict's tenant and
    /// are of one party.
    pub fn check(&self) -> Result<(), String> {
        for (side, v) in [("local", &self.local), ("remote", &self.remote)] {
            if v.tenant != self.tenant {
                return Err(format!(
                    "the {side} version is of tenant {:?}, the conflict of {:?}",
                    v.tenant, self.tenant
                ));
            }
        }
        if self.local.party_id != self.remote.party_id {
            return Err(format!(
                "the versions are of different parties: {:?} and {:?}",
                self.local.party_id, self.remote.party_id
            ));
        }
        Ok(())
    }
}

/// A line of a captured-conflict file: its number (from 1) and the conflict or what is wrong.
pub type Line = (usize, Result<CapturedConflict, String>);

/// Parses a captured-conflict file. Blank lines and lines starting with `#` are skipped; a bad
/// line is reported with what is wrong and the rest are still read.
pub fn parse_lines(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let parsed = serde_json::from_str::<CapturedConflict>(l)
                .map_err(|e| format!("not a captured conflict: {e}"))
                .and_then(|c| c.check().map(|()| c));
            (i + 1, parsed)
        })
        .collect()
}

/// One line of a captured-conflict file.
pub fn to_line(conflict: &CapturedConflict) -> String {
    serde_json::to_string(conflict).expect("a captured conflict serialises")
}
