//! Preparing a build's sandbox folder and cleaning it up.
//!
//! ```text
//! S/src/<workspace-relative inputs>   from the CAS: hard links under Landlock, else copies; read-only
//! S/src/<package dir>                 the builder's working directory
//! S/deps/<name>/…                     dependency artifacts, read-only (linked or copied as inputs are)
//! S/tools/<tool>                      symlinks to the declared host tools (the builder's PATH)
//! S/out/                              $OUT
//! S/tmp/                              $TMPDIR
//! S/log                               the builder's stdout and stderr
//! build-<pid>.lock                    held by the owning brr process while it lives
//! ```
//! With namespaces the builder sees `S` at `/build` (`brr_process::BUILD_PATH`),
//! so its paths (`$OUT` = `/build/out`) do not depend on where `S` is.
//! Inputs and dependencies are hard-linked from the CAS when Landlock keeps
//! the builder from writing anywhere but `$OUT` and `$TMPDIR`; without it a
//! link would let the builder write into the CAS, so inputs are copied.
//!
//! Submodules: `place` (where a sandbox goes, [`default_base`], and
//! [`clean_stale`] for those of killed processes), `reuse` (handing an
//! emptied sandbox to the next build, [`Reuse`]) and `remove` (removing
//! what a build left, [`remove_tree`]).

mod place;
mod remove;
mod reuse;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use brr_hash::{Digest, EntryKind};
use brr_store::Store;

pub(crate) use self::place::owned_dir;
use self::place::{PREFIX, hold_owner_lock};
pub use self::place::{clean_stale, default_base, tmpfs_base};
pub use self::remove::remove_tree;
use self::remove::{open_dir_at, remove_contents};
pub use self::reuse::Reuse;
use crate::error::{ExecError, io};

/// A sandbox folder, removed on drop, or emptied and kept for the next
/// build while a [`Reuse`] guard lives. It is named after this process
/// (`build-<pid>-<n>`), whose lock file `build-<pid>.lock` is held for the
/// process's life: a sandbox whose owner's lock is free was left by a
/// killed brr and is removed by the next [`clean_stale`].
#[derive(Debug)]
pub struct Sandbox {
    pub root: PathBuf,
    /// The folder `root` is in.
    base: PathBuf,
    /// Folders below `src/` created so far.
    made_dirs: HashSet<PathBuf>,
    /// Files made in `src/`: removed by name, not found by listing their
    /// folders (see [`Sandbox::remove`]).
    made_files: Vec<PathBuf>,
    /// The links in `tools/`: name → host path and the link's inode.
    tools: BTreeMap<String, (PathBuf, u64)>,
    /// The inode and mode of the root and of each of [`FIXED_DIRS`] when
    /// made, to tell a sandbox left as it was made from one a builder changed.
    fixed: Vec<(u64, u32)>,
}

/// The folders every sandbox has, below its root.
const FIXED_DIRS: [&str; 5] = ["src", "deps", "tools", "out", "tmp"];

/// The root (`.`) and its fixed folders, in the order of `Sandbox::fixed`.
fn skeleton() -> impl Iterator<Item = &'static str> {
    std::iter::once(".").chain(FIXED_DIRS)
}

impl Sandbox {
    /// An empty sandbox below `tmp`: a kept one when reuse is on and one is
    /// idle, else a new one.
    pub fn create(tmp: &Path) -> Result<Self, ExecError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        if let Some(kept) = reuse::take_idle(tmp) {
            return Ok(kept);
        }
        hold_owner_lock(tmp)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = tmp.join(format!("{PREFIX}{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&root) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(io(&root)(e));
            }
            // Left by an earlier process with the same pid.
            remove_tree(&root)?;
            std::fs::create_dir(&root).map_err(io(&root))?;
        }
        let mut fixed = Vec::with_capacity(FIXED_DIRS.len() + 1);
        for d in skeleton() {
            let p = root.join(d);
            if d != "." {
                std::fs::create_dir(&p).map_err(io(&p))?;
            }
            let st = rustix::fs::lstat(&p).map_err(|e| io(&p)(e.into()))?;
            fixed.push((st.st_ino, st.st_mode));
        }
        Ok(Self {
            root,
            base: tmp.to_path_buf(),
            made_dirs: HashSet::new(),
            made_files: Vec::new(),
            tools: BTreeMap::new(),
            fixed,
        })
    }

    /// The sandbox's own folder, holding all of the below.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// Stages one input at `src/<rel>` from store object `d`: a hard link to
    /// its CAS file when `link` (only when Landlock keeps the builder from
    /// writing to `src/`, since the link shares the CAS file), else a
    /// read-only copy.
    pub fn stage_file(
        &mut self,
        store: &Store,
        rel: &str,
        d: Digest,
        kind: EntryKind,
        link: bool,
    ) -> Result<(), ExecError> {
        let dest = self.input_path(rel)?;
        // Executables are copied: a link would share the CAS file's 0444 mode.
        if link && kind != EntryKind::Executable {
            store.link_out(d, &dest)?;
        } else {
            store.copy_out(d, &dest, input_mode(kind))?;
        }
        Ok(())
    }

    /// Stages one input at `src/<rel>` as a read-only file holding `bytes`.
    pub fn stage_bytes(&mut self, rel: &str, bytes: &[u8], kind: EntryKind) -> Result<(), ExecError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dest = self.input_path(rel)?;
        let mode = input_mode(kind);
        let mut file = File::options().write(true).create_new(true).mode(mode).open(&dest).map_err(io(&dest))?;
        file.write_all(bytes).map_err(io(&dest))?;
        // Exactly the mode a copy from the store gets, whatever brr's umask.
        if process_umask().is_none_or(|umask| umask & mode != 0) {
            file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io(&dest))?;
        }
        Ok(())
    }

    /// `src/<rel>`, its folder created.
    fn input_path(&mut self, rel: &str) -> Result<PathBuf, ExecError> {
        let dest = self.src().join(rel);
        if let Some(parent) = dest.parent() {
            self.src_dir(parent)?;
        }
        self.made_files.push(dest.clone());
        Ok(dest)
    }

    /// Creates `dir` (below `src/`) unless this sandbox already made it.
    /// Parents are made first, so no `mkdir` fails on a missing parent.
    pub fn src_dir(&mut self, dir: &Path) -> Result<(), ExecError> {
        if self.made_dirs.contains(dir) {
            return Ok(());
        }
        let src = self.src();
        if let Some(parent) = dir.parent().filter(|p| *p != src && p.starts_with(&src)) {
            self.src_dir(parent)?;
        }
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(dir)(e)),
            _ => {}
        }
        self.made_dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Makes `tools/` hold exactly `tools` (name → host path), the builder's
    /// PATH: links a kept sandbox already has are left as they are.
    pub fn set_tools<'a>(
        &mut self,
        tools: impl IntoIterator<Item = (&'a String, &'a PathBuf)>,
    ) -> Result<(), ExecError> {
        let wanted: BTreeMap<&String, &PathBuf> = tools.into_iter().collect();
        let dir = self.tools();
        let stale: Vec<String> =
            self.tools.iter().filter(|(n, (p, _))| wanted.get(n) != Some(&p)).map(|(n, _)| n.clone()).collect();
        for name in stale {
            self.tools.remove(&name);
            let link = dir.join(&name);
            std::fs::remove_file(&link).map_err(io(&link))?;
        }
        for (name, host_path) in wanted {
            if self.tools.contains_key(name) {
                continue;
            }
            let link = dir.join(name);
            std::os::unix::fs::symlink(host_path, &link).map_err(io(&link))?;
            let st = rustix::fs::lstat(&link).map_err(|e| io(&link)(e.into()))?;
            self.tools.insert(name.clone(), (host_path.clone(), st.st_ino));
        }
        Ok(())
    }

    /// Removes what this sandbox made by name, and lists only the folders
    /// the builder or a dependency's tree filled (`out/`, `tmp/`, `deps/`):
    /// listing every folder was most of the cost of removing a sandbox.
    /// Anything else found (a builder may write into `src/` without
    /// Landlock) makes a folder's removal fail, and the whole tree is
    /// then removed by listing.
    fn remove(&mut self) -> Result<(), ExecError> {
        if self.empty().is_err() || self.remove_fixed().is_err() {
            return remove_tree(&self.root);
        }
        Ok(())
    }

    /// Removes what builds put in the fixed folders: the files and folders
    /// staged in `src/` (by name), the log, and all of `out/`, `tmp/` and
    /// `deps/`. A folder in `src/` holding anything else fails it.
    fn empty(&mut self) -> rustix::io::Result<()> {
        let gone_ok = |r: rustix::io::Result<()>| match r {
            Err(rustix::io::Errno::NOENT) => Ok(()),
            other => other,
        };
        for f in self.made_files.iter().chain(std::iter::once(&self.log())) {
            gone_ok(rustix::fs::unlink(f))?;
        }
        self.made_files.clear();
        for d in [self.out(), self.tmp(), self.deps()] {
            remove_contents(open_dir_at(rustix::fs::CWD, &d)?)?;
        }
        let mut dirs: Vec<PathBuf> = self.made_dirs.drain().collect();
        // Deepest first: a folder is empty once its subfolders are gone.
        dirs.sort_unstable_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            gone_ok(rustix::fs::rmdir(&d))?;
        }
        Ok(())
    }

    /// Removes the emptied fixed folders, the tool links and the root.
    fn remove_fixed(&self) -> rustix::io::Result<()> {
        for name in self.tools.keys() {
            rustix::fs::unlink(self.tools().join(name))?;
        }
        for d in FIXED_DIRS {
            rustix::fs::rmdir(self.root.join(d))?;
        }
        rustix::fs::rmdir(&self.root)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.root.as_os_str().is_empty() {
            return;
        }
        if self.keep() {
            return;
        }
        // Best effort: a leftover is removed by the next `clean_stale`.
        let _ = self.remove();
    }
}

/// The mode of a staged input: read-only, executable if it was.
fn input_mode(kind: EntryKind) -> u32 {
    if kind == EntryKind::Executable { 0o555 } else { 0o444 }
}

/// brr's umask, read once from `/proc/self/status` (`umask(2)` cannot read
/// it without setting it, which would race with other threads); `None`
/// where the kernel does not report it. brr never changes its umask while
/// it runs (builders get theirs in the child), so once is enough.
fn process_umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::Sandbox;
    use brr_hash::EntryKind;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A sandbox as a build leaves it: staged inputs and tools, a read-only
    /// dependency, outputs, a log, and whatever else the builder wrote.
    fn used_sandbox(tmp: &Path, extra: Option<&str>) -> std::path::PathBuf {
        let mut sb = Sandbox::create(tmp).unwrap();
        sb.stage_bytes("pkg/sub/a.txt", b"a", EntryKind::File).unwrap();
        sb.stage_bytes("pkg/b.txt", b"b", EntryKind::Executable).unwrap();
        sb.src_dir(&sb.src().join("pkg")).unwrap();
        sb.set_tools([(&"sh".to_owned(), &PathBuf::from("/bin/sh"))]).unwrap();
        let dep = sb.deps().join("lib");
        std::fs::create_dir(&dep).unwrap();
        std::fs::write(dep.join("out"), "o").unwrap();
        std::fs::set_permissions(&dep, std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::create_dir(sb.out().join("d")).unwrap();
        std::fs::write(sb.out().join("d/o"), "o").unwrap();
        std::fs::write(sb.tmp().join("t"), "t").unwrap();
        std::fs::write(sb.log(), "log").unwrap();
        if let Some(extra) = extra {
            std::fs::write(sb.root.join(extra), "x").unwrap();
        }
        let root = sb.root.clone();
        drop(sb);
        root
    }

    #[test]
    fn a_sandbox_is_removed_with_what_the_builder_added_anywhere() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!used_sandbox(tmp.path(), None).exists(), "removed by name: left behind");
        // Files the removal by name does not know make it list the folders.
        for extra in ["src/pkg/new.txt", "src/pkg/sub/new.txt", "tools/new", "new"] {
            assert!(!used_sandbox(tmp.path(), Some(extra)).exists(), "left behind with {extra}");
        }
        // A staged file the builder replaced by a folder.
        let mut sb = Sandbox::create(tmp.path()).unwrap();
        sb.stage_bytes("a.txt", b"a", EntryKind::File).unwrap();
        std::fs::remove_file(sb.src().join("a.txt")).unwrap();
        std::fs::create_dir(sb.src().join("a.txt")).unwrap();
        let root = sb.root.clone();
        drop(sb);
        assert!(!root.exists());
    }
}
