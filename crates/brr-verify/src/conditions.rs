//! What each verification round varies. Round 0 builds under the normal
//! conditions; later rounds change everything a reproducible build must not
//! depend on, alternating between two variants so three or more rounds also
//! compare two varied rounds with each other.

use std::path::PathBuf;

use brr_exec::action::Conditions;
use brr_store::Store;

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
        },
    }
}
