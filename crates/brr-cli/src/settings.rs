//! Settings resolved from the command line and the environment.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Cli;

#[derive(Debug)]
pub struct Settings {
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
    pub cache_read_only: bool,
    /// `BRR_SANDBOX_DIR`: where sandboxes are made instead of the store's `tmp/`.
    pub sandbox_dir: Option<PathBuf>,
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
        Ok(Self {
            root,
            store,
            remote_urls: list_var("BRR_REMOTE_CACHE"),
            trusted_keys: list_var("BRR_TRUSTED_KEYS"),
            signing_key: std::env::var_os("BRR_SIGNING_KEY").filter(|v| !v.is_empty()).map(|v| cwd.join(v)),
            cache_read_only: std::env::var("BRR_CACHE_READ_ONLY").is_ok_and(|v| v == "1" || v == "true"),
            sandbox_dir: std::env::var_os("BRR_SANDBOX_DIR").filter(|v| !v.is_empty()).map(|v| cwd.join(v)),
        })
    }
}
