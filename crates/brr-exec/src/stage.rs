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
//! Inputs and dependencies are hard-linked from the CAS when Landlock keeps
//! the builder from writing anywhere but `$OUT` and `$TMPDIR`; without it a
//! link would let the builder write into the CAS, so inputs are copied.
//!
//! Unless the user picks a folder (`BRR_SANDBOX_DIR`), a sandbox goes to a
//! tmpfs (`/dev/shm/brr-<uid>`) when its staged files are small and the
//! tmpfs has room, else to the store's `tmp/`. Creating and removing a
//! handful of folders per build is the largest cost of many small builds on
//! ext4, whose inode allocator scans past recently deleted inodes for every
//! new folder; on a tmpfs it is cheaper, and the copies it needs instead
//! of hard links are cheap for small inputs.
//!
//! During a build run, a finished build's sandbox is emptied and handed to
//! the next build ([`Reuse`]) when it is exactly as brr made it: the fixed
//! folders and tool links are then made once per worker, not per build.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use brr_hash::{Digest, EntryKind};
use brr_store::Store;

use crate::error::{ExecError, io};

/// Prefix of sandbox folders in the store's `tmp/`.
const PREFIX: &str = "build-";

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

/// Emptied sandboxes waiting for the next build, while reuse is on.
static IDLE: Mutex<Vec<Sandbox>> = Mutex::new(Vec::new());

/// How many [`Reuse`] guards live.
static REUSE: AtomicU64 = AtomicU64::new(0);

/// While one lives, a finished build's sandbox is emptied and kept for the
/// next build instead of removed: its fixed folders and tool links are not
/// made and removed again for every build, name by name, which costs more
/// kernel time than the small copies staged in them. It is kept
/// only when emptying leaves it exactly as brr made it
/// ([`Sandbox::as_made`]), else removed, so each build still starts in a
/// sandbox holding only its own inputs and tools. The last guard to go
/// removes the kept sandboxes.
#[derive(Debug)]
pub struct Reuse(());

impl Reuse {
    pub fn begin() -> Self {
        REUSE.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Reuse {
    fn drop(&mut self) {
        if REUSE.fetch_sub(1, Ordering::SeqCst) == 1 {
            let idle = std::mem::take(&mut *IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for mut sb in idle {
                let _ = remove_tree(&sb.root);
                sb.root = PathBuf::new();
            }
        }
    }
}

/// This process's lock files, one per sandbox folder, held until exit.
static OWNER_LOCKS: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Takes (once per process and folder) the lock that marks this process's
/// sandboxes in `tmp` as alive.
fn hold_owner_lock(tmp: &Path) -> Result<(), ExecError> {
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

impl Sandbox {
    /// An empty sandbox below `tmp`: a kept one when reuse is on and one is
    /// idle, else a new one.
    pub fn create(tmp: &Path) -> Result<Self, ExecError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        {
            let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(at) = idle.iter().position(|sb| sb.base == tmp) {
                return Ok(idle.swap_remove(at));
            }
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

    /// Whether an emptied sandbox is as brr made it: the root holds just the
    /// fixed folders, `src/` nothing and `tools/` just its links, each still
    /// the same file with the same mode (a builder without Landlock may have
    /// added, replaced or `chmod`ed any of them).
    fn as_made(&self) -> rustix::io::Result<bool> {
        let names = |dir: &Path| -> rustix::io::Result<Vec<std::ffi::CString>> {
            let mut entries = rustix::fs::Dir::new(open_dir_at(rustix::fs::CWD, dir)?)?;
            let mut names = Vec::new();
            while let Some(entry) = entries.read() {
                let name = entry?.file_name().to_owned();
                if name.as_bytes() != b"." && name.as_bytes() != b".." {
                    names.push(name);
                }
            }
            Ok(names)
        };
        let mut root = names(&self.root)?;
        root.sort_unstable();
        let mut fixed: Vec<&[u8]> = FIXED_DIRS.iter().map(|d| d.as_bytes()).collect();
        fixed.sort_unstable();
        if !root.iter().map(std::ffi::CString::as_bytes).eq(fixed) || !names(&self.src())?.is_empty() {
            return Ok(false);
        }
        let tools = names(&self.tools())?;
        if tools.len() != self.tools.len()
            || !tools.iter().all(|n| n.to_str().is_ok_and(|n| self.tools.contains_key(n)))
        {
            return Ok(false);
        }
        for (rel, &(ino, mode)) in skeleton().zip(&self.fixed) {
            let st = rustix::fs::lstat(self.root.join(rel))?;
            if st.st_ino != ino || st.st_mode != mode {
                return Ok(false);
            }
        }
        for (name, &(_, ino)) in &self.tools {
            if rustix::fs::lstat(self.tools().join(name))?.st_ino != ino {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.root.as_os_str().is_empty() {
            return;
        }
        if REUSE.load(Ordering::SeqCst) > 0 && self.empty().is_ok() && self.as_made().unwrap_or(false) {
            let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Checked under the lock: the last `Reuse` guard empties `IDLE`
            // under it too, so nothing is kept after it is gone.
            if REUSE.load(Ordering::SeqCst) > 0 {
                idle.push(Sandbox {
                    root: std::mem::take(&mut self.root),
                    base: std::mem::take(&mut self.base),
                    made_dirs: HashSet::new(),
                    made_files: Vec::new(),
                    tools: std::mem::take(&mut self.tools),
                    fixed: std::mem::take(&mut self.fixed),
                });
                return;
            }
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

/// Removes a folder tree even where folders were made read-only or
/// unreadable; one that is not there is not an error.
pub fn remove_tree(root: &Path) -> Result<(), ExecError> {
    match remove_tree_fast(root) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io(root)(e.into())),
    }
}

/// Removes `root` and everything below it, not following symlinks, with
/// one open and one `getdents` pass per folder: a sandbox is removed after
/// every build, and std's `remove_dir_all` spends twice the system calls.
fn remove_tree_fast(root: &Path) -> rustix::io::Result<()> {
    remove_contents(open_dir_at(rustix::fs::CWD, root)?)?;
    rustix::fs::rmdir(root)
}

/// Opens the folder `name` below `dir` for listing, not following a
/// symlink; one this user cannot read is made readable first (only root
/// ignores its mode).
fn open_dir_at<P: rustix::path::Arg + Copy>(
    dir: std::os::fd::BorrowedFd<'_>,
    name: P,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Err(rustix::io::Errno::ACCESS) => {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rustix::fs::openat(dir, name, flags, Mode::empty())
        }
        other => other,
    }
}

/// Empties the folder open as `dir` (consumed).
fn remove_contents(dir: std::os::fd::OwnedFd) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, FileType};
    let mut entries = rustix::fs::Dir::new(dir)?;
    // Names first, removals after: the folder is not changed while read.
    let mut names: Vec<(std::ffi::CString, FileType)> = Vec::new();
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push((name.to_owned(), entry.file_type()));
        }
    }
    let fd = entries.fd()?;
    for (name, file_type) in names {
        let is_dir = match file_type {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            remove_contents(open_dir_at(fd, name.as_c_str())?)?;
            unlink_in(fd, &name, AtFlags::REMOVEDIR)?;
        } else {
            unlink_in(fd, &name, AtFlags::empty())?;
        }
    }
    Ok(())
}

/// `unlinkat`, and once more after making the folder writable when it was
/// read-only (a dependency's staged tree is; only root ignores that).
fn unlink_in(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    flags: rustix::fs::AtFlags,
) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Err(rustix::io::Errno::ACCESS) => {
            rustix::fs::fchmod(dir, rustix::fs::Mode::from_raw_mode(0o700))?;
            rustix::fs::unlinkat(dir, name, flags)
        }
        other => other,
    }
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
    use super::{Sandbox, TMPFS_MAX_STAGED, default_base, remove_tree, tmpfs_base};
    use brr_hash::EntryKind;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    #[test]
    fn remove_tree_removes_everything_below_and_nothing_a_symlink_points_at() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sandbox");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/f"), "f").unwrap();
        std::fs::write(root.join("top"), "t").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("missing", root.join("dangling")).unwrap();
        // A read-only folder (as staged dependencies are) with a file in it.
        std::fs::create_dir(root.join("ro")).unwrap();
        std::fs::write(root.join("ro/f"), "r").unwrap();
        std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        // One its owner cannot even list.
        std::fs::create_dir_all(root.join("closed/sub")).unwrap();
        std::fs::set_permissions(root.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();

        remove_tree(&root).unwrap();
        assert!(!root.exists(), "the sandbox is still there");
        assert!(outside.path().join("keep").exists(), "a symlink was followed");
        // Removing what is not there is not an error.
        remove_tree(&root).unwrap();
    }

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
