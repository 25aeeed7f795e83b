//! The run stage: `brr run` supervises the processes of releases, named by
//! release hash only.
//!
//! [`plan`] turns releases into [`Unit`]s (one per process type, from the
//! build's manifest), each started in the release's read-only folder with
//! the config as environment, the secrets from brr's own environment,
//! `PORT`, `BRR_RELEASE` and `BRR_PROCESS`. [`Supervisor`] runs them: one
//! thread per instance ([`instance`]) restarts its process by the policy,
//! with backoff and a start limit; web processes are reached through a
//! [`router::Router`] on a stable port, so [`Supervisor::switch`] can
//! replace a release without refusing a connection; a stop sends SIGTERM,
//! then SIGKILL after the grace, and brr, a child subreaper, kills what
//! escaped its process groups (a double-forked daemon). Every state change
//! is written to the store's `run_processes` table for `brr ps`.
//!
//! Defaults, beside systemd's and Kubernetes'. A process type may set the
//! ones marked "per type" in its declaration (`restart`, `grace_s`,
//! `ready`), carried in the artifact's [`brr_hash::ProcessSpec`]; what it
//! leaves out takes [`Options`] (`brr run --restart`, `--grace`).
//!
//! | setting | brr | systemd | Kubernetes |
//! |---|---|---|---|
//! | restart policy (per type) | `on-failure` | `Restart=no` | `Always` |
//! | first restart delay | 100 ms, doubling | `RestartSec=100ms` (fixed) | 10 s, doubling |
//! | delay cap | 10 s | — | 5 min |
//! | backoff reset after up for | 10 s | — | 10 min |
//! | start limit | 5 starts in 10 s, then `failed` | `StartLimitBurst=5` in `StartLimitIntervalSec=10s` | none (CrashLoopBackOff) |
//! | stop (grace per type) | SIGTERM, 10 s grace, SIGKILL | SIGTERM, `TimeoutStopSec=90s`, SIGKILL | SIGTERM, 30 s grace, SIGKILL |
//! | readiness (per type) | `web`: TCP, its `PORT` accepts a connection; others: once started | `Type=notify` | probes (none: ready once started) |
//! | readiness probes | TCP connect, HTTP GET answering 2xx, a command exiting 0 (5 s per try) | — | `tcpSocket`, `httpGet` (200–399), `exec` (1 s per try) |
//!
//! Until its probe passes a process is `running`, not `ready`: a web
//! process gets no traffic from the router, and a switch keeps the old
//! release. Probes are tried from the start, every 10 ms (TCP), 50 ms
//! (HTTP) or 100 ms (command), against `127.0.0.1:PORT`.

pub mod instance;
pub mod ports;
mod probe;
pub mod router;
mod supervisor;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use brr_hash::{Artifact, ArtifactHash, Config, Release, ReleaseHash};
use brr_release::Secrets;
use brr_store::{Store, StoreError};

pub use supervisor::{Outcome, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Release(#[from] brr_release::ReleaseError),
    #[error("i/o error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("release `{release}` has no process type `{process}` (it has: {})", known.join(", "))]
    UnknownProcess { release: ReleaseHash, process: String, known: Vec<String> },
    #[error("nothing to run: the releases declare no process types")]
    NothingToRun,
    #[error("no free port from {base} up")]
    NoPort { base: u16 },
}

impl RunError {
    /// A mistake in what the user asked for (exit 2).
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Release(e) => e.is_user_error(),
            Self::UnknownProcess { .. } | Self::NothingToRun => true,
            _ => false,
        }
    }
}

/// When a process that exited is started again (the default: `OnFailure`).
pub use brr_hash::{Probe, Restart};

/// How the supervisor treats its processes; see the module docs.
#[derive(Debug, Clone)]
pub struct Options {
    /// For process types that declare none.
    pub restart: Restart,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub reset_after: Duration,
    pub start_limit: u32,
    pub start_interval: Duration,
    /// From SIGTERM to SIGKILL, for process types that declare none; also
    /// how long a switch lets old web processes finish their connections.
    pub grace: Duration,
    pub port_base: u16,
    /// How long a switch waits for the new release to be ready.
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            restart: Restart::OnFailure,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            reset_after: Duration::from_secs(10),
            start_limit: 5,
            start_interval: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            port_base: ports::PORT_BASE,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// A release to run, with what the ledger says about it (labels only: the
/// release hash alone identifies what runs).
#[derive(Debug, Clone)]
pub struct Target {
    pub release: ReleaseHash,
    /// The service, for labels and `BRR_SERVICE`.
    pub service: String,
    /// The environment it is current in, when run by environment: gives
    /// `BRR_ENV`, `BRR_DATA_DIR`, and switches when the environment's
    /// current release changes.
    pub env: Option<String>,
}

/// One process type of one release, ready to start.
#[derive(Debug, Clone)]
pub struct Unit {
    pub target: Target,
    pub build: ArtifactHash,
    pub config: Config,
    pub process: String,
    pub command: Vec<String>,
    /// Its declared restart policy (`None`: [`Options::restart`]).
    pub restart: Option<Restart>,
    /// Its declared grace (`None`: [`Options::grace`]).
    pub grace: Option<Duration>,
    /// Its declared readiness probe (`None`: TCP for `web`, none for others).
    pub ready: Option<Probe>,
    pub instances: u32,
    /// The materialized release folder: the working directory.
    pub dir: PathBuf,
}

/// The units of `targets`: every process type of each release (only
/// `processes` when given), with `formation`'s instance counts (default 1).
pub fn plan(
    store: &Store,
    targets: &[Target],
    processes: &[String],
    formation: &BTreeMap<String, u32>,
) -> Result<Vec<Unit>, RunError> {
    let mut units = Vec::new();
    for target in targets {
        let release: Release = store.get_object(target.release.0)?;
        let artifact: Artifact = store.get_object(release.build.0)?;
        let config: Config = store.get_object(release.config.0)?;
        let known: Vec<String> = artifact.manifest.processes.keys().cloned().collect();
        for p in processes.iter().chain(formation.keys()) {
            if !known.contains(p) && targets.len() == 1 {
                return Err(RunError::UnknownProcess { release: target.release, process: p.clone(), known });
            }
        }
        let dir = brr_release::folder::materialize(store, target.release, &artifact, &config)?;
        for (name, spec) in &artifact.manifest.processes {
            if !processes.is_empty() && !processes.contains(name) {
                continue;
            }
            let instances = formation.get(name).copied().unwrap_or(1);
            if instances == 0 || spec.command.is_empty() {
                continue;
            }
            units.push(Unit {
                target: target.clone(),
                build: release.build,
                config: config.clone(),
                process: name.clone(),
                command: spec.command.clone(),
                restart: spec.restart,
                grace: spec.grace_s.map(|s| Duration::from_secs(u64::from(s))),
                ready: spec.ready.clone(),
                instances,
                dir: dir.clone(),
            });
        }
    }
    if units.is_empty() {
        return Err(RunError::NothingToRun);
    }
    Ok(units)
}

/// The secrets every unit needs, read from brr's environment now; a missing
/// one refuses the run, naming it.
pub fn secrets_of(units: &[Unit]) -> Result<Secrets, RunError> {
    let names: std::collections::BTreeSet<String> =
        units.iter().flat_map(|u| u.config.secrets.iter().cloned()).collect();
    Ok(Secrets::from_env(&names)?)
}

/// Where a run's output goes: the caller's [`Reporter`] (the terminal) and
/// the run's log file in the store, with secrets masked in both.
pub struct Output {
    reporter: Box<dyn Reporter>,
    file: Mutex<Option<File>>,
    secrets: Secrets,
}

/// Receives a run's output; implemented by the CLI.
pub trait Reporter: Send + Sync {
    /// A line a process printed.
    fn line(&self, label: &str, line: &str);
    /// Something the supervisor did (started, ready, restarting, stopped).
    fn event(&self, label: &str, what: &str);
}

impl Output {
    pub fn new(reporter: Box<dyn Reporter>, file: Option<File>, secrets: Secrets) -> Self {
        Self { reporter, file: Mutex::new(file), secrets }
    }

    pub fn line(&self, label: &str, line: &str) {
        let line = self.secrets.mask(line);
        self.reporter.line(label, &line);
        self.write(&format!("{label} | {line}\n"));
    }

    pub fn event(&self, label: &str, what: &str) {
        let what = self.secrets.mask(what);
        self.reporter.event(label, &what);
        self.write(&format!("{label} * {what}\n"));
    }

    fn write(&self, text: &str) {
        if let Some(f) = self.file.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// `<store>/runs/<id>.log`: a run's output, every line prefixed.
pub fn log_path(store: &Store, run: i64) -> PathBuf {
    store.root().join("runs").join(format!("{run}.log"))
}

/// `<store>/runs/<id>.lock`: held by the run's supervisor while it lives.
pub fn lock_path(store: &Store, run: i64) -> PathBuf {
    store.root().join("runs").join(format!("{run}.lock"))
}

/// Whether run `id`'s supervisor still lives: its lock is held.
pub fn supervisor_alive(store: &Store, run: i64) -> bool {
    let Ok(file) = File::open(lock_path(store, run)) else { return false };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}
