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
        Ok(Self { root, store })
    }
}
