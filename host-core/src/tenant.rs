//! Who a tenant is and what its configuration asks of the host: the name rule every store
//! keys by, and the parts of the tenant's configuration document that are the host's own
//! (the conflict log's settings) rather than the policy's.

/// A tenant name that no store accepts.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("tenant {tenant:?} is not a valid tenant name: {why}")]
pub struct BadTenant {
    pub tenant: String,
    pub why: &'static str,
}

/// Tenant names become keys and directory names: letters, digits, `-`, `_`, `.`, at most 64.
pub fn check_tenant(tenant: &str) -> Result<(), BadTenant> {
    let bad = |why| {
        Err(BadTenant {
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

/// The tenant's configuration document as the policy sees it: without the host's own
/// `conflictLog` member.
pub fn policy_view(config: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(config) {
        Ok(serde_json::Value::Object(mut members)) if members.contains_key("conflictLog") => {
            members.remove("conflictLog");
            serde_json::Value::Object(members).to_string()
        }
        _ => config.to_owned(),
    }
}

/// What a tenant asks of the log, from its configuration document's `conflictLog` member:
/// `{"conflictLog": {"capture": "all" | "conflicts", "retentionDays": 30}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// Also store the cases the host settled alone (one version dominated).
    pub full_capture: bool,
    pub retention_days: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            full_capture: false,
            retention_days: 30,
        }
    }
}

impl LogSettings {
    pub fn from_config(config: &str) -> Self {
        let mut s = LogSettings::default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(config) else {
            return s;
        };
        let log = &v["conflictLog"];
        if log["capture"].as_str() == Some("all") {
            s.full_capture = true;
        }
        if let Some(days) = log["retentionDays"].as_u64() {
            s.retention_days = days.clamp(1, 3650);
        }
        s
    }
}
