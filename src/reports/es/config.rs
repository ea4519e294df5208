//! Where and how to push: `ROLLCI_ES_*` read into a checked configuration (secrets in
//! [`Secret`], never in a message).

use std::time::Duration;

use crate::exit::{Kind, fail};
use crate::secret::Secret;

/// Index used when `ROLLCI_ES_INDEX` is not set.
pub const DEFAULT_INDEX: &str = "rollci";
/// Connect and whole-request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How to authenticate to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// `Authorization: ApiKey <key>` (the base64 "encoded" key ES hands out).
    ApiKey(Secret),
}

/// Where and how to push, read from `ROLLCI_ES_*` (see [`EsConfig::from_env`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsConfig {
    /// Base URL without a trailing slash, e.g. `https://es.example:9200`.
    pub url: String,
    pub index: String,
    pub auth: Auth,
    pub timeout: Duration,
}

impl EsConfig {
    /// Reads `ROLLCI_ES_URL` (unset or empty: `Ok(None)`, nothing to push),
    /// `ROLLCI_ES_INDEX`, `ROLLCI_ES_USER` + `ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`.
    pub fn from_env() -> anyhow::Result<Option<EsConfig>> {
        EsConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// [`EsConfig::from_env`] over any lookup (tests pass a map, not the process env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<EsConfig>> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let Some(url) = var("ROLLCI_ES_URL") else {
            return Ok(None);
        };
        let index = var("ROLLCI_ES_INDEX").unwrap_or_else(|| DEFAULT_INDEX.into());
        check_index(&index)?;
        let auth = match (
            var("ROLLCI_ES_USER"),
            var("ROLLCI_ES_PASSWORD"),
            var("ROLLCI_ES_API_KEY"),
        ) {
            (None, None, None) => Auth::None,
            (Some(user), Some(password), None) => Auth::Basic {
                user,
                password: Secret::new(password),
            },
            (None, None, Some(key)) => Auth::ApiKey(Secret::new(key)),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(usage(
                    "`ROLLCI_ES_USER` and `ROLLCI_ES_PASSWORD` go together: set both or neither",
                ));
            }
            _ => {
                return Err(usage(
                    "set either `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`, not both",
                ));
            }
        };
        Ok(Some(EsConfig {
            url: check_url(&url)?,
            index,
            auth,
            timeout: TIMEOUT,
        }))
    }

    pub(super) fn bulk_url(&self) -> String {
        format!("{}/_bulk", self.url)
    }
}

pub(super) fn usage(message: &str) -> anyhow::Error {
    fail(
        Kind::Usage,
        format!("{message} (hint: see `ROLLCI_ES_*` in the README)"),
    )
}

/// An `http(s)://` base URL with no credentials in it (they belong in `ROLLCI_ES_*`,
/// where they cannot leak through a message that quotes the URL).
fn check_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| usage("`ROLLCI_ES_URL` must start with `http://` or `https://`"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(usage(
            "`ROLLCI_ES_URL` must not contain credentials; use `ROLLCI_ES_USER`/`ROLLCI_ES_PASSWORD` or `ROLLCI_ES_API_KEY`",
        ));
    }
    if authority.is_empty() || url.contains(['?', '#']) {
        return Err(usage(
            "`ROLLCI_ES_URL` must be a base URL like `https://es.example:9200`",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Elasticsearch's rules for index names, checked before anything is sent.
fn check_index(index: &str) -> anyhow::Result<()> {
    let bad_char = index
        .chars()
        .any(|c| c.is_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c));
    let bad_start = index.starts_with(['-', '_', '+']) || index == "." || index == "..";
    if index.is_empty() || bad_char || bad_start || index.len() > 255 {
        return Err(usage(&format!(
            "`ROLLCI_ES_INDEX` `{index}` is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:, not starting with -_+)"
        )));
    }
    Ok(())
}
