//! Settings resolved from the command line and the environment.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Cli;

#[derive(Debug)]
pub struct Settings {
    /// The folder brr was started in: relative paths given outside the
    /// workspace (`--out-link`) are read from it.
    pub cwd: PathBuf,
    /// Workspace root (where the root `brr.ron` is).
    pub root: PathBuf,
    /// Store folder.
    pub store: PathBuf,
    /// `BRR_REMOTE_CACHE`: remote URLs added to the workspace's.
    pub remote_urls: Vec<String>,
    /// `BRR_TRUSTED_KEYS`: public keys added to the workspace's.
    pub trusted_keys: Vec<String>,
    /// `BRR_SIGNING_KEY`: this runner's private key; without one nothing is pushed.
    pub signing_key: Option<PathBuf>,
    /// `BRR_CACHE_READ_ONLY=1`: never push (untrusted runners, pull requests).
    /// Any value but a clear "no" (`0`, `false`, `no`, `off`, empty) means yes.
    pub cache_read_only: bool,
    /// `BRR_FAIL_ON_CONFLICT=1` (or `build --fail-on-conflict`): a conflict
    /// seen by a push makes the build exit 1.
    pub fail_on_conflict: bool,
    /// Flag values that were not a clear yes or no: warned about once.
    pub unclear_flags: Vec<(&'static str, String)>,
    /// `BRR_REMOTE_TIMEOUT`, `BRR_REMOTE_BUDGET`, `BRR_REMOTE_RETRIES`,
    /// `BRR_REMOTE_BREAKER`, `BRR_CACHE_ON_CONFLICT`: raw, checked when the
    /// remotes are opened (they override the workspace's `remote_cache`).
    pub remote_env: RemoteEnv,
    /// `BRR_REMOTE_TOKEN` and `BRR_REMOTE_HEADERS`: sent to every remote
    /// (or why they are malformed: a user error when remotes are opened).
    pub remote_headers: Result<RemoteHeaders, String>,
    /// `BRR_SANDBOX_DIR`: where sandboxes are made instead of the store's `tmp/`.
    pub sandbox_dir: Option<PathBuf>,
}

/// Remote-cache settings from the environment, unchecked.
#[derive(Debug, Default)]
pub struct RemoteEnv {
    pub timeout: Option<String>,
    pub budget: Option<String>,
    pub retries: Option<String>,
    pub breaker: Option<String>,
    pub on_conflict: Option<String>,
}

/// Headers for the remotes: `Authorization: Bearer $BRR_REMOTE_TOKEN`, and
/// each `Name: value` line (or `;`-separated item) of `BRR_REMOTE_HEADERS`.
/// Its `Debug` shows header names only: values are credentials.
#[derive(Default)]
pub struct RemoteHeaders(pub Vec<(String, String)>);

impl std::fmt::Debug for RemoteHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(n, _)| format!("{n}: ***"))).finish()
    }
}

impl RemoteHeaders {
    /// Parses `BRR_REMOTE_TOKEN` and `BRR_REMOTE_HEADERS`; an item without
    /// `:` or `=` is an error naming the item's position, never its text.
    pub fn from_env() -> Result<Self, String> {
        let mut headers = Vec::new();
        if let Some(token) = std::env::var("BRR_REMOTE_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            headers.push(("Authorization".to_owned(), format!("Bearer {}", token.trim())));
        }
        let all = std::env::var("BRR_REMOTE_HEADERS").unwrap_or_default();
        for (i, item) in all.split(['\n', ';']).map(str::trim).filter(|i| !i.is_empty()).enumerate() {
            let Some((name, value)) = item.split_once([':', '=']) else {
                return Err(format!("BRR_REMOTE_HEADERS: item {} is not `Name: value` (nor `Name=value`)", i + 1));
            };
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Self(headers))
    }
}

/// A yes/no variable: `Some(true)` for `1`/`true`/`yes`/`on`, `Some(false)`
/// for `0`/`false`/`no`/`off`/empty/unset (any case), `None` otherwise.
pub fn flag(value: Option<&str>) -> Option<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no" | "off" | "n") => Some(false),
        Some("1" | "true" | "yes" | "on" | "y") => Some(true),
        Some(_) => None,
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A comma-separated environment variable, without empty items.
fn list_var(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Settings {
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let root = match &cli.dir {
            Some(d) => cwd.join(d),
            None => cwd.clone(),
        };
        let store = match &cli.store {
            Some(s) => cwd.join(s),
            None => root.join(".brr"),
        };
        let mut unclear_flags = Vec::new();
        let mut yes_no = |name: &'static str| {
            let value = std::env::var(name).ok();
            flag(value.as_deref()).unwrap_or_else(|| {
                // Fail closed: an unclear value is a yes.
                unclear_flags.push((name, value.unwrap_or_default()));
                true
            })
        };
        let cache_read_only = yes_no("BRR_CACHE_READ_ONLY");
        let fail_on_conflict = yes_no("BRR_FAIL_ON_CONFLICT");
        Ok(Self {
            cache_read_only,
            fail_on_conflict,
            unclear_flags,
            remote_env: RemoteEnv {
                timeout: var("BRR_REMOTE_TIMEOUT"),
                budget: var("BRR_REMOTE_BUDGET"),
                retries: var("BRR_REMOTE_RETRIES"),
                breaker: var("BRR_REMOTE_BREAKER"),
                on_conflict: var("BRR_CACHE_ON_CONFLICT"),
            },
            remote_headers: RemoteHeaders::from_env(),
            root,
            store,
            remote_urls: list_var("BRR_REMOTE_CACHE"),
            trusted_keys: list_var("BRR_TRUSTED_KEYS"),
            signing_key: std::env::var_os("BRR_SIGNING_KEY").filter(|v| !v.is_empty()).map(|v| cwd.join(v)),
            sandbox_dir: std::env::var_os("BRR_SANDBOX_DIR").filter(|v| !v.is_empty()).map(|v| cwd.join(v)),
            cwd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::flag;

    #[test]
    fn flags_fail_closed() {
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on", "ON"] {
            assert_eq!(flag(Some(yes)), Some(true), "{yes}");
        }
        for no in ["0", "false", "FALSE", "no", "off", "", " "] {
            assert_eq!(flag(Some(no)), Some(false), "{no}");
        }
        assert_eq!(flag(None), Some(false));
        assert_eq!(flag(Some("maybe")), None);
    }
}
