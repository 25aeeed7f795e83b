//! Where a sandbox goes, and whose it is.
//!
//! Unless the user picks a folder (`BRR_SANDBOX_DIR`), a sandbox goes to a
//! tmpfs (`/dev/shm/brr-<uid>`) when its staged files are small and the
//! tmpfs has room, else to the store's `tmp/`. Creating and removing a
//! handful of folders per build is the largest cost of many small builds on
//! ext4, whose inode allocator scans past recently deleted inodes for every
//! new folder; on a tmpfs it is cheaper, and the copies it needs instead
//! of hard links are cheap for small inputs.
//!
//! Each brr process holds a lock file `build-<pid>.lock` next to its
//! sandboxes for its life; a sandbox whose owner's lock is free was left by
//! a killed brr and is removed by [`clean_stale`].

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::remove::remove_tree;
use crate::error::{ExecError, io};

/// Prefix of sandbox folders in the store's `tmp/`.
pub(super) const PREFIX: &str = "build-";

/// A sandbox whose inputs and dependencies add up to more than this is not
/// put on a tmpfs (it would hold them in memory).
const TMPFS_MAX_STAGED: u64 = 64 << 20;

/// A tmpfs with less room than this (or than 8× the staged bytes) is not used.
const TMPFS_MIN_FREE: u64 = 1 << 30;

/// This user's sandbox folder on `/dev/shm`, when that is a tmpfs and the
/// folder is a real folder owned by this user (probed once per process).
pub fn tmpfs_base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let fs = rustix::fs::statfs(shm).ok()?;
        if fs.f_type != libc::TMPFS_MAGIC {
            return None;
        }
        let uid = rustix::process::geteuid().as_raw();
        let dir = shm.join(format!("brr-{uid}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        // Not a symlink or someone else's folder: /dev/shm is world-writable.
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o777 == 0o700).then_some(dir)
    })
    .as_deref()
}

/// Where a sandbox staging `staged` bytes goes when the user did not pick a
/// folder: the tmpfs when it is small enough and there is room, else `fallback`.
pub fn default_base(fallback: &Path, staged: u64) -> PathBuf {
    let room = |base: &Path| {
        rustix::fs::statvfs(base)
            .is_ok_and(|st| st.f_bavail.saturating_mul(st.f_frsize) >= TMPFS_MIN_FREE.max(staged * 8))
    };
    match tmpfs_base() {
        Some(base) if staged <= TMPFS_MAX_STAGED && room(base) => base.to_path_buf(),
        _ => fallback.to_path_buf(),
    }
}

/// This process's lock files, one per sandbox folder, held until exit.
static OWNER_LOCKS: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Takes (once per process and folder) the lock that marks this process's
/// sandboxes in `tmp` as alive.
pub(super) fn hold_owner_lock(tmp: &Path) -> Result<(), ExecError> {
    let mut held = OWNER_LOCKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if held.iter().any(|(dir, _)| dir == tmp) {
        return Ok(());
    }
    let path = tmp.join(format!("{PREFIX}{}.lock", std::process::id()));
    loop {
        let file = File::options().write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        // A cleaner may have removed the file between open and lock (it was
        // free then): only a lock on the file still at `path` counts.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            held.push((tmp.to_path_buf(), file));
            return Ok(());
        }
    }
}

/// A new folder `build-<pid>-<what><n>` in `tmp` for this process's own
/// use, kept alive by its owner lock like a sandbox: a killed run's is
/// removed by [`clean_stale`].
pub(crate) fn owned_dir(tmp: &Path, what: &str) -> Result<PathBuf, ExecError> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    hold_owner_lock(tmp)?;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tmp.join(format!("{PREFIX}{}-{what}{n}", std::process::id()));
    // Left by an earlier process of the same pid.
    remove_tree(&dir)?;
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Removes sandboxes left by killed brr processes: those whose owner's lock
/// is free (or gone).
pub fn clean_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    let mut free_owners: Vec<(String, Option<File>)> = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let (pid, is_lock) = match rest.strip_suffix(".lock") {
            Some(pid) => (pid, true),
            None => (rest.split('-').next().unwrap_or_default(), false),
        };
        if pid.parse::<u32>().is_err() {
            continue;
        }
        if pid == std::process::id().to_string() {
            continue;
        }
        if !free_owners.iter().any(|(p, _)| p == pid) {
            let lock_path = tmp.join(format!("{PREFIX}{pid}.lock"));
            let lock = match File::options().write(true).open(&lock_path) {
                Ok(f) if f.try_lock().is_ok() => Some(f),
                Ok(_) => continue, // its owner is alive
                Err(_) => None,    // no lock file: no owner
            };
            free_owners.push((pid.to_owned(), lock));
        }
        if !is_lock {
            let _ = remove_tree(&e.path());
        }
    }
    // Still holding them: an owner that re-opens finds a new file.
    for (pid, lock) in free_owners {
        if lock.is_some() {
            let _ = std::fs::remove_file(tmp.join(format!("{PREFIX}{pid}.lock")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TMPFS_MAX_STAGED, default_base, tmpfs_base};
    use std::path::Path;

    #[test]
    fn large_sandboxes_and_machines_without_a_tmpfs_use_the_fallback() {
        let fallback = Path::new("/nonexistent/store/tmp");
        assert_eq!(default_base(fallback, TMPFS_MAX_STAGED + 1), fallback);
        let small = default_base(fallback, 4096);
        match tmpfs_base() {
            Some(base) => assert_eq!(small, base, "a small sandbox skipped the tmpfs"),
            None => assert_eq!(small, fallback),
        }
    }
}
