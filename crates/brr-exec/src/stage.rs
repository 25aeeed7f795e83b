//! Preparing a build's sandbox folder and cleaning it up.
//!
//! ```text
//! S/src/<workspace-relative inputs>   from the CAS: hard links under Landlock, else copies; read-only
//! S/src/<package dir>                 the builder's working directory
//! S/deps/<name>/…                     dependency artifacts, hard-linked from the CAS, read-only
//! S/tools/<tool>                      symlinks to the declared host tools (the builder's PATH)
//! S/out/                              $OUT
//! S/tmp/                              $TMPDIR
//! S/log                               the builder's stdout and stderr
//! S.lock                              held while the sandbox is in use
//! ```
//! Inputs and dependencies are hard-linked from the CAS when Landlock keeps
//! the builder from writing anywhere but `$OUT` and `$TMPDIR`; without it a
//! link would let the builder write into the CAS, so inputs are copied.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use brr_hash::EntryKind;

use crate::error::{ExecError, io};

/// Prefix of sandbox folders in the store's `tmp/`.
const PREFIX: &str = "build-";

/// A sandbox folder, locked while alive and removed on drop.
#[derive(Debug)]
pub struct Sandbox {
    pub root: PathBuf,
    /// Folders below `src/` created so far.
    made_dirs: HashSet<PathBuf>,
    _lock: File,
    lock_path: PathBuf,
}

impl Sandbox {
    /// Creates a fresh sandbox below `tmp`, named after the build key.
    pub fn create(tmp: &Path, key_short: &str) -> Result<Self, ExecError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = tmp.join(format!("{PREFIX}{key_short}-{}-{n}", std::process::id()));
        let lock_path = root.with_extension("lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        if root.exists() {
            remove_tree(&root)?;
        }
        for d in ["src", "deps", "tools", "out", "tmp"] {
            let p = root.join(d);
            fs_err::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Self { root, made_dirs: HashSet::new(), _lock: lock, lock_path })
    }

    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }
    pub fn deps(&self) -> PathBuf {
        self.root.join("deps")
    }
    pub fn tools(&self) -> PathBuf {
        self.root.join("tools")
    }
    pub fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Stages one input at `src/<rel>` from the CAS file `from`: a hard link
    /// when `link` (only when Landlock keeps the builder from writing to
    /// `src/`, since the link shares the CAS file), else a read-only copy.
    pub fn stage_file(&mut self, rel: &str, from: &Path, kind: EntryKind, link: bool) -> Result<(), ExecError> {
        let dest = self.src().join(rel);
        if let Some(parent) = dest.parent()
            && self.made_dirs.insert(parent.to_path_buf())
        {
            fs_err::create_dir_all(parent).map_err(io(parent))?;
        }
        // Executables are copied: a link would share the CAS file's 0444 mode.
        if link && kind != EntryKind::Executable && std::fs::hard_link(from, &dest).is_ok() {
            return Ok(());
        }
        fs_err::copy(from, &dest).map_err(io(&dest))?;
        let mode = if kind == EntryKind::Executable { 0o555 } else { 0o444 };
        fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(io(&dest))?;
        Ok(())
    }

    /// Puts a declared tool on the builder's PATH.
    pub fn link_tool(&self, name: &str, host_path: &Path) -> Result<(), ExecError> {
        let link = self.tools().join(name);
        std::os::unix::fs::symlink(host_path, &link).map_err(io(&link))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Best effort: a leftover is removed by the next `clean_stale`.
        let _ = remove_tree(&self.root);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes a folder tree even where it was made read-only.
pub fn remove_tree(root: &Path) -> Result<(), ExecError> {
    if !root.exists() {
        return Ok(());
    }
    // Most sandboxes hold no read-only folder (root, whose permissions do
    // not stop it, never needs the second pass).
    if std::fs::remove_dir_all(root).is_ok() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(root).into_iter().filter_map(Result::ok) {
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
    fs_err::remove_dir_all(root).map_err(io(root))
}

/// Removes sandboxes left by killed brr processes: those whose lock is free.
pub fn clean_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(PREFIX) || path.extension().is_some_and(|x| x == "lock") {
            continue;
        }
        let lock_path = path.with_extension("lock");
        let free = match File::options().write(true).create(true).truncate(false).open(&lock_path) {
            Ok(f) => f.try_lock().is_ok(),
            Err(_) => false,
        };
        if free {
            let _ = remove_tree(&path);
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}
