//! Who a request to `serve` acts for. With no key file, `serve` is one tenant's service on a
//! laptop: every request acts for `--tenant`. With `--api-keys FILE`, a request acts for the
//! tenant of the key it carries (`Authorization: Bearer KEY`, or `x-api-key: KEY`); a request
//! without a known key is refused (401). Either way a request whose `x-tenant-id` names another
//! tenant is refused (403, [`host_core::api::tenant_of`]).
//!
//! The key file: one `KEY TENANT` pair a line; blank lines and lines starting with `#` are
//! skipped. Keys are compared in constant time.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

#[derive(Debug, Clone)]
pub enum Auth {
    /// Every request acts for this tenant.
    Single(String),
    /// Each key acts for its tenant.
    Keys(BTreeMap<String, String>),
}

impl Auth {
    /// Reads a key file.
    pub fn from_file(path: &Path) -> anyhow::Result<Auth> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key file {}", path.display()))?;
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(key), Some(tenant), None) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!("{}:{}: expected `KEY TENANT`", path.display(), n + 1);
            };
            host_core::tenant::check_tenant(tenant)
                .with_context(|| format!("{}:{}", path.display(), n + 1))?;
            if key.len() < 16 {
                anyhow::bail!(
                    "{}:{}: the key is {} characters; use at least 16",
                    path.display(),
                    n + 1,
                    key.len()
                );
            }
            if keys.insert(key.to_owned(), tenant.to_owned()).is_some() {
                anyhow::bail!("{}:{}: the key is listed twice", path.display(), n + 1);
            }
        }
        if keys.is_empty() {
            anyhow::bail!("{} lists no key", path.display());
        }
        Ok(Auth::Keys(keys))
    }

    /// The tenant the request's credential names, if any (`header`: a request header by its
    /// lower-case name).
    pub fn tenant<'a>(&'a self, header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        match self {
            Auth::Single(tenant) => Some(tenant.clone()),
            Auth::Keys(keys) => {
                let given = header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .or_else(|| header("x-api-key"))?
                    .trim();
                keys.iter()
                    .find(|(key, _)| constant_time_eq(key.as_bytes(), given.as_bytes()))
                    .map(|(_, tenant)| tenant.clone())
            }
        }
    }

    /// The tenant the page and the demo act for: the single one, or `default`.
    pub fn describe(&self) -> String {
        match self {
            Auth::Single(t) => format!("every request acts for tenant {t}"),
            Auth::Keys(keys) => {
                let tenants: std::collections::BTreeSet<&String> = keys.values().collect();
                format!(
                    "{} API keys for tenants {}",
                    keys.len(),
                    tenants.into_iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        }
    }

    /// A key of `tenant`, for the demo client (none in single-tenant mode).
    pub fn key_of(&self, tenant: &str) -> Option<String> {
        match self {
            Auth::Single(_) => None,
            Auth::Keys(keys) => keys
                .iter()
                .find(|(_, t)| *t == tenant)
                .map(|(k, _)| k.clone()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_tenants_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(
            &file,
            "# local keys\nacme-key-0123456789 acme\n\nglobex-key-0123456789 globex\n",
        )
        .unwrap();
        let auth = Auth::from_file(&file).unwrap();
        let with =
            |name: &'static str, value: &'static str| move |h: &str| (h == name).then_some(value);
        assert_eq!(
            auth.tenant(with("authorization", "Bearer acme-key-0123456789")),
            Some("acme".into())
        );
        assert_eq!(
            auth.tenant(with("x-api-key", "globex-key-0123456789")),
            Some("globex".into())
        );
        assert_eq!(auth.tenant(with("x-api-key", "acme-key-012345678")), None);
        assert_eq!(auth.tenant(|_| None), None);
        std::fs::write(&file, "short acme\n").unwrap();
        assert!(
            Auth::from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("at least 16")
        );
    }
}
