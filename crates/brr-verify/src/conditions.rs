//! What each verification round varies. Round 0 builds under the normal
//! conditions; later rounds change everything a reproducible build must not
//! depend on, alternating between two variants so three or more rounds also
//! compare two varied rounds with each other.

use std::path::PathBuf;

use brr_exec::action::Conditions;
use brr_store::Store;
use serde::Serialize;

/// One thing a round varies, or what is left when none alone explains a
/// difference: the unit `verify` names as the cause of a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The sandbox's folder: the build path where builders see it (without
    /// namespaces), else only its host folder and file system.
    BuildPath,
    StagingOrder,
    EnvOrder,
    Umask,
    Hostname,
    Cpus,
    /// A re-run under round 1's own conditions differs too: the clock or
    /// randomness.
    EveryRun,
    /// No single condition changes the output, only several together.
    Combination,
}

impl Condition {
    /// What a round can vary, each checked alone when a round differs.
    pub const VARIED: [Self; 6] =
        [Self::BuildPath, Self::StagingOrder, Self::EnvOrder, Self::Umask, Self::Hostname, Self::Cpus];

    /// Whether `c` varies this against `normal`.
    pub fn varied(self, c: &Conditions, normal: &Conditions) -> bool {
        match self {
            Self::BuildPath => c.sandbox_dir != normal.sandbox_dir,
            Self::StagingOrder => c.reverse_staging != normal.reverse_staging,
            Self::EnvOrder => c.reverse_env != normal.reverse_env,
            Self::Umask => c.umask != normal.umask,
            Self::Hostname => c.hostname != normal.hostname,
            Self::Cpus => c.cpus != normal.cpus,
            Self::EveryRun | Self::Combination => false,
        }
    }

    /// `normal` with only this condition taken from `varied`.
    pub fn alone(self, varied: &Conditions, normal: &Conditions) -> Conditions {
        let mut c = normal.clone();
        match self {
            Self::BuildPath => c.sandbox_dir.clone_from(&varied.sandbox_dir),
            Self::StagingOrder => c.reverse_staging = varied.reverse_staging,
            Self::EnvOrder => c.reverse_env = varied.reverse_env,
            Self::Umask => c.umask = varied.umask,
            Self::Hostname => c.hostname.clone_from(&varied.hostname),
            Self::Cpus => c.cpus = varied.cpus,
            Self::EveryRun | Self::Combination => {}
        }
        c
    }

    /// What is varied, in words (for progress lines).
    pub fn label(self) -> &'static str {
        match self {
            Self::BuildPath => "the build path",
            Self::StagingOrder => "the staging order",
            Self::EnvOrder => "the environment order",
            Self::Umask => "the umask",
            Self::Hostname => "the hostname",
            Self::Cpus => "the CPU count",
            Self::EveryRun => "a re-run under round 1's conditions",
            Self::Combination => "several conditions together",
        }
    }

    /// The cause in words; `fixed_path`: builders saw the fixed build path,
    /// so a changed sandbox folder changed only where it is on the host.
    pub fn message(self, fixed_path: bool) -> &'static str {
        match self {
            Self::BuildPath if fixed_path => "differs when the sandbox's host folder (its file system) changes",
            Self::BuildPath => "differs when the build path changes",
            Self::StagingOrder => "differs when the inputs are staged in another order",
            Self::EnvOrder => "differs when the environment variables come in another order",
            Self::Umask => "differs when the umask changes",
            Self::Hostname => "differs when the hostname changes",
            Self::Cpus => "differs when the number of CPUs changes",
            Self::EveryRun if fixed_path => "differs in every run (time or randomness)",
            // Each build has a folder of its own, seen by the builder.
            Self::EveryRun => {
                "differs in every run (time, randomness, or the build path, which changes in every run without the sandbox's fixed build path)"
            }
            Self::Combination => "differs only when several conditions change together",
        }
    }
}

/// What a round changed, for reports.
pub fn describe(c: &Conditions, normal: &Conditions) -> Vec<String> {
    let mut v = Vec::new();
    if c.sandbox_dir != normal.sandbox_dir {
        v.push("sandbox folder".to_owned());
    }
    if c.reverse_staging {
        v.push("input staging order".to_owned());
    }
    if c.reverse_env {
        v.push("environment order".to_owned());
    }
    if c.umask != normal.umask {
        v.push(format!("umask {:03o}", c.umask));
    }
    if c.hostname != normal.hostname {
        v.push(format!("hostname {}", c.hostname.as_deref().unwrap_or("brr")));
    }
    if let Some(n) = c.cpus {
        v.push(format!("{n} CPU visible"));
    }
    v
}

/// A folder on another file system than normal builds use when there is
/// one (tmpfs lists directories in creation order, ext4 in hash order): the
/// store's when normal builds go to the tmpfs, and the tmpfs otherwise.
/// The build path changes either way.
fn other_folder(store: &Store, round: u32) -> PathBuf {
    let in_store = store.tmp_dir().join(format!("verify/a/deeper/folder/r{round}"));
    match brr_exec::stage::tmpfs_base() {
        Some(tmpfs) if brr_exec::stage::default_base(&store.tmp_dir(), 0) == store.tmp_dir() => {
            tmpfs.join(format!("verify-{}-r{round}", std::process::id()))
        }
        _ => in_store,
    }
}

/// The conditions of round `round` (0-based).
pub fn for_round(store: &Store, round: u32) -> Conditions {
    let normal = Conditions::normal(None);
    match round {
        0 => normal,
        r if r % 2 == 1 => Conditions {
            sandbox_dir: Some(other_folder(store, r)),
            reverse_staging: true,
            reverse_env: true,
            umask: 0o077,
            hostname: Some(format!("brr-verify-{r}")),
            cpus: Some(1),
            builders: None,
            net_slots: None,
            jobserver: None,
            remote_exec: None,
        },
        r => Conditions {
            sandbox_dir: Some(store.tmp_dir().join(format!("verify/r{r}"))),
            reverse_staging: false,
            reverse_env: false,
            umask: 0o002,
            hostname: Some(format!("v{r}")),
            cpus: None,
            builders: None,
            net_slots: None,
            jobserver: None,
            remote_exec: None,
        },
    }
}
