//! The release stage: a build combined with an environment's config becomes
//! a release, recorded in the environment's append-only ledger.
//!
//! A release is a content-addressed object ({build hash, config hash}, see
//! [`brr_hash::release`]), so the same build and config give the same
//! release hash on any machine. Making one ([`release`]) puts the config and
//! release objects, materializes the release folder ([`folder`]), runs the
//! release phase ([`phase`]) and appends one ledger entry; only a succeeded
//! entry moves the service's `current` link. Promotion and rollback are the
//! same steps with a build or release taken from the ledger instead of from
//! a fresh build ([`promotion_source`], [`rollback_target`]); nothing here
//! can build. [`diff`] compares two releases file by file.
//!
//! Why the ledger entry is appended after the release phase and not before:
//! an entry is immutable, so a "pending" entry could never become
//! "succeeded". A release killed during its release phase leaves no entry
//! at all, and the environment's current release is the old one.
//!
//! This crate takes builds, configs and secrets as plain values: resolving
//! a workspace's environments and building are the caller's job, so the
//! release stage never imports the build scheduler.

pub mod diff;
pub mod folder;
pub mod phase;
mod secrets;

use std::path::{Path, PathBuf};

use brr_hash::{Artifact, ArtifactHash, Config, LedgerAction, PromotionSource, Release, ReleaseHash, ReleaseStatus};
use brr_store::{LedgerRow, NewEntry, Store, StoreError};

pub use phase::PhaseOutcome;
pub use secrets::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret{} {} not set in the environment", plural(names.len()), quoted(names))]
    MissingSecrets { names: Vec<String> },
    #[error(
        "the build of release `{release}` has an output named `.env`, which the release folder keeps for the config"
    )]
    EnvFileClash { release: ReleaseHash },
    #[error("`{env}` has no release of `{service}`")]
    NoRelease { env: String, service: String },
    #[error("the latest release of `{service}` in `{env}` (v{version}) failed, so there is nothing settled to promote")]
    SourceFailed { env: String, service: String, version: u64 },
    #[error("`{env}` has no v{version} of `{service}` (its latest is v{latest})")]
    NoSuchVersion { env: String, service: String, version: u64, latest: u64 },
    #[error(
        "v{version} of `{service}` in `{env}` failed its release phase; only a succeeded release can be rolled back to"
    )]
    RollbackToFailed { env: String, service: String, version: u64 },
    #[error("`{service}` in `{env}` has no earlier succeeded release to roll back to")]
    NothingToRollBackTo { env: String, service: String },
    #[error("v{version} of `{service}` in `{env}` is already the current release")]
    AlreadyCurrent { env: String, service: String, version: u64 },
    #[error("the build `{build}` of v{version} is no longer in the store")]
    BuildGone { build: ArtifactHash, version: u64 },
}

impl ReleaseError {
    /// A mistake in what the user asked for (exit 2), not a failure of brr.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Store(_) | Self::Io { .. })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn quoted(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", names.join(", "))
}

/// Attaches a path to I/O errors.
pub(crate) trait IoAt<T> {
    fn at(self, path: &Path) -> Result<T, ReleaseError>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, ReleaseError> {
        self.map_err(|source| ReleaseError::Io { path: path.to_path_buf(), source })
    }
}

/// One service's release to make.
#[derive(Debug, Clone)]
pub struct Request {
    pub env: String,
    pub service: String,
    /// The build hash; the artifact must be in the store.
    pub build: ArtifactHash,
    pub config: Config,
    pub action: LedgerAction,
    pub source: Option<PromotionSource>,
    pub actor: String,
    pub note: Option<String>,
}

/// A release made and recorded.
#[derive(Debug, Clone)]
pub struct Released {
    pub row: LedgerRow,
    pub phase: PhaseOutcome,
    /// The materialized release folder.
    pub dir: PathBuf,
}

/// The release `req` would make, without making it: its hash.
pub fn release_of(req: &Request) -> Release {
    Release { build: req.build, config: req.config.hash() }
}

/// Makes `req`'s release: puts its config and release objects, materializes
/// its folder, runs the release phase with `secrets` (each output line,
/// masked, goes to `on_line`), then appends the ledger entry and, when the
/// phase succeeded, points `current` at it.
pub fn release(
    store: &Store,
    req: &Request,
    secrets: &Secrets,
    on_line: &mut dyn FnMut(&str),
) -> Result<Released, ReleaseError> {
    let artifact: Artifact = store.get_object(req.build.0)?;
    store.put_object(&req.config)?;
    let release = release_of(req);
    let hash = release.hash();
    store.put_object(&release)?;
    let dir = folder::materialize(store, hash, &artifact, &req.config)?;
    let data_dir = folder::data_dir(store, &req.env)?;
    let phase = phase::Phase {
        env: &req.env,
        service: &req.service,
        release: hash,
        build: req.build,
        dir: &dir,
        data_dir: &data_dir,
        command: artifact.manifest.release.as_deref(),
        config: &req.config,
        secrets,
    };
    let outcome = phase.run(store, on_line)?;
    let _lock = folder::EnvLock::acquire(store, &req.env)?;
    let row = store.ledger_append(&NewEntry {
        env: req.env.clone(),
        service: req.service.clone(),
        release: hash,
        build: req.build,
        config: release.config,
        action: req.action,
        status: outcome.status,
        actor: req.actor.clone(),
        time_ms: now_ms(),
        note: req.note.clone(),
        source: req.source.clone(),
        log: outcome.log,
    })?;
    sync_current(store, &req.env, &req.service)?;
    Ok(Released { row, phase: outcome, dir })
}

/// Points `service`'s `current` link in `env` at what the ledger says is
/// current (or removes it), healing a link left behind by a killed process.
/// Call with the environment's lock held.
pub fn sync_current(store: &Store, env: &str, service: &str) -> Result<(), ReleaseError> {
    match store.ledger_current(env, service)? {
        Some(row) => {
            // A current release whose folder is gone (a deleted store
            // folder) is materialized again from the store.
            let dir = folder::release_dir(store, row.entry.release);
            if !dir.is_dir() {
                let artifact: Artifact = store.get_object(row.build.0)?;
                let config: Config = store.get_object(row.config.0)?;
                folder::materialize(store, row.entry.release, &artifact, &config)?;
            }
            folder::switch_current(store, env, service, row.entry.release)
        }
        None => folder::clear_current(store, env, service),
    }
}

/// The entry of `service` in `from` that a promotion takes: the current
/// release, refused when the newest entry failed (the source is not
/// settled) or there is none.
pub fn promotion_source(store: &Store, from: &str, service: &str) -> Result<LedgerRow, ReleaseError> {
    let none = || ReleaseError::NoRelease { env: from.to_owned(), service: service.to_owned() };
    let latest = store.ledger_latest(from, service)?.ok_or_else(none)?;
    if latest.entry.status == ReleaseStatus::Failed {
        return Err(ReleaseError::SourceFailed {
            env: from.to_owned(),
            service: service.to_owned(),
            version: latest.entry.version,
        });
    }
    store.ledger_current(from, service)?.ok_or_else(none)
}

/// What a rollback of `service` in `env` goes back to: entry `to`, or by
/// default the newest succeeded entry before the current one whose release
/// differs from it. Returns (current, target).
pub fn rollback_target(
    store: &Store,
    env: &str,
    service: &str,
    to: Option<u64>,
) -> Result<(LedgerRow, LedgerRow), ReleaseError> {
    let (e, s) = (env.to_owned(), service.to_owned());
    let current = store
        .ledger_current(env, service)?
        .ok_or_else(|| ReleaseError::NoRelease { env: e.clone(), service: s.clone() })?;
    let target = if let Some(version) = to {
        let Some(row) = store.ledger_entry(env, service, version)? else {
            let latest = store.ledger_latest(env, service)?.map_or(0, |r| r.entry.version);
            return Err(ReleaseError::NoSuchVersion { env: e, service: s, version, latest });
        };
        if row.entry.status == ReleaseStatus::Failed {
            return Err(ReleaseError::RollbackToFailed { env: e, service: s, version });
        }
        if row.entry.release == current.entry.release {
            return Err(ReleaseError::AlreadyCurrent { env: e, service: s, version: current.entry.version });
        }
        row
    } else {
        store
            .ledger_history(env, Some(service), usize::MAX)?
            .into_iter()
            .find(|r| {
                r.entry.status == ReleaseStatus::Succeeded
                    && r.entry.version < current.entry.version
                    && r.entry.release != current.entry.release
            })
            .ok_or(ReleaseError::NothingToRollBackTo { env: e, service: s })?
    };
    Ok((current, target))
}

/// Who is releasing: `$BRR_ACTOR`, else `$USER`, else the user name of
/// this process's uid in `/etc/passwd`, else `uid N`.
pub fn actor() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::env::var("BRR_ACTOR")
        .ok()
        .filter(|a| !a.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| user_name(&std::fs::read_to_string("/etc/passwd").ok()?, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of `uid` in a passwd file's text.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_name_reads_the_uid_field() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nci:x:1001:1001::/home/ci:/bin/sh\n";
        assert_eq!(super::user_name(passwd, 1001).as_deref(), Some("ci"));
        assert_eq!(super::user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(super::user_name(passwd, 7), None);
    }
}
