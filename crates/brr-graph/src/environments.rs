//! The environments of a workspace (`environments.ron` beside the root
//! `brr.ron`), validated against its packages: what a release stage asks
//! for the config of a service in an environment, and where it may promote.
//!
//! The file is optional: without it a workspace has no environments. It is
//! read with the workspace ([`crate::Workspace::load`]), so a mistake in it
//! (a service that is not one, a var that is also a secret) stops the load
//! like any declaration mistake, located at file:line:column, and the saved
//! load is reused only while the file is as it was (or still absent).
//!
//! Merging, in [`Environments::config`]: a service gets its environment's
//! vars with its own on top (its own win), and the union of both secret
//! lists. The parser has refused a name that would end up both a var and a
//! secret, so a config never holds one name twice.

use std::collections::BTreeMap;
use std::path::Path;

use brr_hash::Config;
use brr_schema::{DeclError, ENVIRONMENTS_FILE, EnvironmentDecl, EnvironmentsDecl, SourceFile, cut};
use brr_store::FileStat;

use crate::error::{GraphError, io};
use crate::workspace::{Package, PackageKind, read_source};

/// The validated environments of a workspace; empty when it declares none.
#[derive(Debug, Clone, Default)]
pub struct Environments {
    /// The file and its text, to locate later errors in it.
    source: Option<SourceFile>,
    decl: EnvironmentsDecl,
}

impl Environments {
    /// Validates a parsed `environments.ron` against the workspace's
    /// packages: every service it configures must be a service package.
    pub fn new(source: SourceFile, decl: EnvironmentsDecl, packages: &[Package]) -> Result<Self, GraphError> {
        let kinds: BTreeMap<&str, PackageKind> = packages.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        for (env, e) in &decl.environments {
            for service in e.services.keys() {
                let message = match kinds.get(service.as_str()) {
                    Some(PackageKind::Service) => continue,
                    Some(kind @ (PackageKind::Library | PackageKind::Fetch)) => {
                        let what = if *kind == PackageKind::Fetch { "a fetch" } else { "a library" };
                        format!(
                            "environment `{}` configures `{}`, {what}: only services are released",
                            cut(env),
                            cut(service)
                        )
                    }
                    None => format!("environment `{}` configures unknown service `{}`", cut(env), cut(service)),
                };
                let services: Vec<&str> =
                    kinds.iter().filter(|(_, k)| **k == PackageKind::Service).map(|(n, _)| *n).collect();
                let help = if services.is_empty() {
                    "this workspace has no service".to_owned()
                } else {
                    format!("services of this workspace: {}", services.join(", "))
                };
                let span = brr_schema::service_span(&source, env, service);
                return Err(DeclError::at(&source, span, message, "not a service").with_help(help).into());
            }
        }
        Ok(Self { source: Some(source), decl })
    }

    /// Restores environments validated by an earlier load.
    pub(crate) fn restored(source: Option<SourceFile>, decl: EnvironmentsDecl) -> Self {
        Self { source, decl }
    }

    /// The declaration as parsed (for saving a load).
    pub(crate) fn decl(&self) -> &EnvironmentsDecl {
        &self.decl
    }

    /// The file and its text, to locate errors in it; `None` without one.
    pub fn source(&self) -> Option<&SourceFile> {
        self.source.as_ref()
    }

    /// The file as shown to users (workspace-relative), for messages.
    pub fn path(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.path.as_path())
    }

    /// Names of the declared environments, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.decl.environments.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.decl.environments.is_empty()
    }

    pub fn contains(&self, env: &str) -> bool {
        self.decl.environments.contains_key(env)
    }

    /// The promotion order (`["staging", "production"]`).
    pub fn promotion(&self) -> &[String] {
        &self.decl.promotion
    }

    /// Whether a release may be promoted from `from` to `to`: both are in
    /// the promotion order and `to` comes anywhere later than `from`.
    pub fn promotes_to(&self, from: &str, to: &str) -> bool {
        let at = |env: &str| self.decl.promotion.iter().position(|e| e == env);
        matches!((at(from), at(to)), (Some(f), Some(t)) if f < t)
    }

    /// The config of `service` in `env`: the environment's vars with the
    /// service's on top (the service's win), and the union of their secret
    /// names. A service without an entry gets the environment's alone.
    /// `None` when `env` is not declared.
    pub fn config(&self, env: &str, service: &str) -> Option<Config> {
        let EnvironmentDecl { vars, secrets, services } = self.decl.environments.get(env)?;
        let mut config = Config { vars: vars.clone(), secrets: secrets.iter().cloned().collect() };
        if let Some(own) = services.get(service) {
            config.vars.extend(own.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            config.secrets.extend(own.secrets.iter().cloned());
        }
        Some(config)
    }
}

/// Loads `root/environments.ron` (empty environments when it is missing),
/// with its stamp taken before it was read (`None`: it was missing).
pub(crate) fn load(root: &Path, packages: &[Package]) -> Result<(Environments, Option<FileStat>), GraphError> {
    let path = root.join(ENVIRONMENTS_FILE);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Environments::default(), None)),
        Err(e) => return Err(io(&path)(e)),
        Ok(_) => {}
    }
    let (file, stamp) = read_source(root, &path)?;
    let decl = brr_schema::parse_environments(&file)?;
    Ok((Environments::new(file, decl, packages)?, Some(stamp)))
}
