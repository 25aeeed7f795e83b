//! A cgroup (v2) of brr's own, for all the processes of one run: [`Cgroup`].
//!
//! A process group or a session is something a process can leave: a
//! daemon that forks twice and calls `setsid` is beyond every signal sent
//! to the group its parent started, and `ps` no longer ties it to the run.
//! A cgroup cannot be left: a process can only be moved out of it by
//! someone allowed to write to another cgroup's `cgroup.procs`, and every
//! child starts in its parent's. So the members of a run's cgroup
//! ([`Cgroup::procs`]) are exactly what the run started, however deep, and
//! [`Cgroup::kill`] ends them all at once (`cgroup.kill`, or `SIGKILL` to
//! each member on kernels before 5.14).
//!
//! A [`Command`](crate::Command) given a cgroup joins it in the child,
//! between `fork` and `execve` (it writes `0` to `cgroup.procs`), so the
//! program does not run a single instruction outside it.
//!
//! # Where the machine delegates one
//!
//! brr makes its cgroups as children of its own (the `0::` line of
//! `/proc/self/cgroup`), in the cgroup v2 hierarchy wherever it is mounted
//! (`/proc/self/mountinfo`, file system `cgroup2`: `/sys/fs/cgroup` on
//! unified machines, `/sys/fs/cgroup/unified` on hybrid ones). That is
//! possible for root, and for a user under a systemd unit with
//! `Delegate=yes`; elsewhere (no v2 hierarchy, a read-only mount, a cgroup
//! owned by someone else) [`Cgroup::create`] returns `None`, and the
//! caller relies on its child subreaper alone: it still inherits every
//! orphan, but finds a daemon only once its parent has exited, and cannot
//! tell a run's orphans from another's.
//!
//! Each cgroup is named `brr-<pid>-<name>` (with a `.2`, `.3`… suffix if
//! that exists), so runs of two brr processes never collide; making one
//! first removes the empty cgroups a killed brr left behind (`brr-<pid>-…`
//! whose pid is gone). Non-empty ones are left for the operator: their
//! processes are not ours to kill.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::ProcessError;

/// The start of the name of every cgroup brr makes.
const PREFIX: &str = "brr-";

/// How long [`Cgroup::remove`] (and drop) waits for killed members to be
/// gone: `SIGKILL` is not ignored, but a process in uninterruptible sleep
/// (a hung NFS read) dies only when it wakes.
const REMOVE_PATIENCE: Duration = Duration::from_secs(10);

/// The longest a wait sleeps between two readings of `cgroup.events`, in
/// case a change is not reported by `poll` (the kernel does report it).
const RECHECK: Duration = Duration::from_millis(100);

/// A cgroup brr made for the processes of one run. Dropping it kills what
/// is left in it, waits (up to 10 s) for them to be gone, and removes it.
#[derive(Debug)]
pub struct Cgroup {
    /// Its folder in the mounted hierarchy.
    path: PathBuf,
    /// Its path in the hierarchy, as `/proc/<pid>/cgroup` shows it.
    hierarchy_path: String,
    /// `<path>/cgroup.procs`, ready for a child to write to between `fork`
    /// and `execve` (no allocation there).
    procs_file: CString,
    /// Set once removed.
    removed: bool,
}

/// Why brr cannot make cgroups here; see [`Cgroup::parent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupUnavailable {
    /// No `cgroup2` file system in `/proc/self/mountinfo`.
    NoHierarchy,
    /// brr's own cgroup (`/proc/self/cgroup`'s `0::` line) is missing, or
    /// lies outside what the mount shows.
    NotFound { detail: String },
    /// brr's own cgroup may not be written to (not delegated to this user,
    /// or mounted read-only).
    NotWritable { path: PathBuf, reason: String },
}

impl fmt::Display for CgroupUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHierarchy => {
                f.write_str("no cgroup v2 hierarchy is mounted (no `cgroup2` in /proc/self/mountinfo)")
            }
            Self::NotFound { detail } => write!(f, "brr's own cgroup is not found: {detail}"),
            Self::NotWritable { path, reason } => {
                write!(f, "brr's cgroup `{}` is not delegated to it: {reason}", path.display())
            }
        }
    }
}

/// Where brr is in the v2 hierarchy.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    /// The folder of brr's own cgroup.
    dir: PathBuf,
    /// Its path in the hierarchy (`/` for the root).
    hierarchy_path: String,
}

impl Cgroup {
    /// The folder of brr's own cgroup, under which [`Cgroup::create`] makes
    /// its cgroups, or why there is none to write to.
    pub fn parent() -> Result<PathBuf, CgroupUnavailable> {
        let location = locate()?;
        match rustix::fs::access(&location.dir, rustix::fs::Access::WRITE_OK) {
            Ok(()) => Ok(location.dir),
            Err(errno) => {
                Err(CgroupUnavailable::NotWritable { path: location.dir, reason: io::Error::from(errno).to_string() })
            }
        }
    }

    /// Makes a cgroup for `name` (a run, a service: no `/`), a child of
    /// brr's own, empty. `None` where the machine delegates no cgroup v2
    /// hierarchy to brr ([`Cgroup::parent`] says why): the caller then
    /// relies on its child subreaper alone. Removes the empty cgroups of
    /// brr processes that are gone first.
    pub fn create(name: &str) -> Result<Option<Self>, ProcessError> {
        if name.is_empty() || name.contains(['/', '\n', '\0']) {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "a cgroup name must be a non-empty file name");
            return Err(ProcessError::Cgroup { action: "make the cgroup", path: PathBuf::from(name), source });
        }
        let Ok(location) = locate() else { return Ok(None) };
        remove_stale(&location.dir);
        let pid = std::process::id();
        for attempt in 1..=100_u32 {
            let leaf =
                if attempt == 1 { format!("{PREFIX}{pid}-{name}") } else { format!("{PREFIX}{pid}-{name}.{attempt}") };
            let path = location.dir.join(&leaf);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let hierarchy_path = match location.hierarchy_path.as_str() {
                        "/" => format!("/{leaf}"),
                        parent => format!("{parent}/{leaf}"),
                    };
                    return Self::made(path, hierarchy_path).map(Some);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) if matches!(err.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS)) => {
                    return Ok(None);
                }
                Err(source) => return Err(ProcessError::Cgroup { action: "make the cgroup", path, source }),
            }
        }
        let source = io::Error::new(io::ErrorKind::AlreadyExists, "100 cgroups of that name exist already");
        Err(ProcessError::Cgroup { action: "make the cgroup", path: location.dir.join(name), source })
    }

    /// Wraps a just-made cgroup (removing it if that fails).
    fn made(path: PathBuf, hierarchy_path: String) -> Result<Self, ProcessError> {
        let procs = path.join("cgroup.procs");
        if let Ok(procs_file) = CString::new(procs.into_os_string().into_vec()) {
            Ok(Self { path, hierarchy_path, procs_file, removed: false })
        } else {
            let _ = std::fs::remove_dir(&path);
            let source = io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte");
            Err(ProcessError::Cgroup { action: "make the cgroup", path, source })
        }
    }

    /// Its folder in the cgroup v2 hierarchy.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `cgroup.procs` of this cgroup, for a child to join it.
    pub(crate) fn procs_file(&self) -> &CStr {
        &self.procs_file
    }

    /// The pids of its members, those of the cgroups its members made in it
    /// included, in no particular order. Exited processes (even unreaped)
    /// are not members.
    pub fn procs(&self) -> Result<Vec<u32>, ProcessError> {
        let mut pids = Vec::new();
        members(&self.path, true, &mut pids)?;
        Ok(pids)
    }

    /// Whether it has members (in it or below it).
    pub fn populated(&self) -> Result<bool, ProcessError> {
        let events = self.path.join("cgroup.events");
        let text = std::fs::read_to_string(&events).map_err(|source| read_error(&events, source))?;
        Ok(populated(&text))
    }

    /// Sends `SIGKILL` to every member, those of nested cgroups included,
    /// without waiting for them to die (see [`Cgroup::wait_empty`]). A
    /// member forking at that moment does not save its child: the kernel
    /// (`cgroup.kill`) or the repeated listing (before Linux 5.14) gets it
    /// too.
    pub fn kill(&self) -> Result<(), ProcessError> {
        let file = self.path.join("cgroup.kill");
        match write_file(&file, b"1") {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => self.kill_each(),
            Err(source) => Err(ProcessError::Cgroup { action: "kill the members of the cgroup", path: file, source }),
        }
    }

    /// `SIGKILL` to each member through a pidfd, listing them again until
    /// a listing shows none not yet killed: a killed process cannot fork,
    /// so whatever forked before the kill shows in the next listing. A pid
    /// is checked to be a member once its pidfd is open, so a stranger that
    /// got the pid of an exited member is never killed.
    fn kill_each(&self) -> Result<(), ProcessError> {
        let mut killed: BTreeMap<u32, OwnedFd> = BTreeMap::new();
        loop {
            let mut more = false;
            for pid in self.procs()? {
                // A listed pid whose killed process has exited was reused.
                if killed.get(&pid).is_some_and(|pidfd| !crate::running::has_exited(pidfd)) {
                    continue;
                }
                let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else { continue };
                let Ok(pidfd) = rustix::process::pidfd_open(raw, PidfdFlags::empty()) else { continue };
                if !self.holds(pid) {
                    continue;
                }
                match rustix::process::pidfd_send_signal(&pidfd, Signal::KILL) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                    Err(errno) => {
                        let path = self.path.clone();
                        return Err(ProcessError::Cgroup {
                            action: "kill the members of the cgroup",
                            path,
                            source: errno.into(),
                        });
                    }
                }
                killed.insert(pid, pidfd);
                more = true;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Whether the process `pid` is in this cgroup or below it.
    fn holds(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return false };
        text.lines().filter_map(|line| line.strip_prefix("0::")).any(|path| within(path, &self.hierarchy_path))
    }

    /// Waits up to `timeout` for it to have no member left; whether it has
    /// none. Returns as soon as the kernel reports it empty (`populated 0`
    /// in `cgroup.events`, watched with `poll`).
    pub fn wait_empty(&self, timeout: Duration) -> Result<bool, ProcessError> {
        let events = self.path.join("cgroup.events");
        let mut file = File::open(&events).map_err(|source| read_error(&events, source))?;
        let deadline = Instant::now().checked_add(timeout);
        let mut text = String::new();
        loop {
            text.clear();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_string(&mut text))
                .map_err(|source| read_error(&events, source))?;
            if !populated(&text) {
                return Ok(true);
            }
            let left = deadline.map_or(RECHECK, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(false);
            }
            // The kernel flags the file (POLLPRI) when it changes.
            let mut fds = [PollFd::new(&file, PollFlags::PRI)];
            match rustix::event::poll(&mut fds, Some(&crate::running::timespec(left.min(RECHECK)))) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(read_error(&events, errno.into())),
            }
        }
    }

    /// Kills what is left in it, waits for it to be empty, and removes it
    /// (with the cgroups its members made in it).
    pub fn remove(mut self) -> Result<(), ProcessError> {
        self.clear()
    }

    fn clear(&mut self) -> Result<(), ProcessError> {
        if self.removed {
            return Ok(());
        }
        self.kill()?;
        if !self.wait_empty(REMOVE_PATIENCE)? {
            let source = io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("members are left {} s after SIGKILL", REMOVE_PATIENCE.as_secs()),
            );
            return Err(ProcessError::Cgroup { action: "remove the cgroup", path: self.path.clone(), source });
        }
        remove_tree(&self.path).map_err(|(path, source)| ProcessError::Cgroup {
            action: "remove the cgroup",
            path,
            source,
        })?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.clear();
    }
}

/// Where brr is in the cgroup v2 hierarchy, from this process's files.
fn locate() -> Result<Location, CgroupUnavailable> {
    let not_read =
        |file: &str, err: io::Error| CgroupUnavailable::NotFound { detail: format!("cannot read `{file}`: {err}") };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| not_read("/proc/self/mountinfo", e))?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| not_read("/proc/self/cgroup", e))?;
    locate_in(&mountinfo, &cgroup)
}

/// [`locate`] on the text of `/proc/self/mountinfo` and `/proc/self/cgroup`.
fn locate_in(mountinfo: &str, cgroup: &str) -> Result<Location, CgroupUnavailable> {
    let mounts: Vec<(PathBuf, String)> = mountinfo.lines().filter_map(v2_mount).collect();
    if mounts.is_empty() {
        return Err(CgroupUnavailable::NoHierarchy);
    }
    let own = cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| CgroupUnavailable::NotFound { detail: "no `0::` line in /proc/self/cgroup".to_owned() })?;
    if !own.starts_with('/') || own.ends_with(" (deleted)") {
        return Err(CgroupUnavailable::NotFound { detail: format!("brr's cgroup is `{own}`") });
    }
    // A mount may show only part of the hierarchy (its root), as in a
    // container; brr's cgroup must lie in what it shows.
    for (mount_point, root) in &mounts {
        if !within(own, root) {
            continue;
        }
        let below = own[root.trim_end_matches('/').len()..].trim_start_matches('/');
        let dir = if below.is_empty() { mount_point.clone() } else { mount_point.join(below) };
        return Ok(Location { dir, hierarchy_path: own.to_owned() });
    }
    let detail = format!("its path `{own}` lies outside every cgroup2 mount");
    Err(CgroupUnavailable::NotFound { detail })
}

/// The mount point and root of a `cgroup2` line of `/proc/self/mountinfo`:
/// `id parent major:minor root mount-point options [optional…] - type source options`.
fn v2_mount(line: &str) -> Option<(PathBuf, String)> {
    let (before, after) = line.split_once(" - ")?;
    if after.split(' ').next() != Some("cgroup2") {
        return None;
    }
    let mut fields = before.split(' ');
    let root = unescape(fields.nth(3)?);
    let mount_point = unescape(fields.next()?);
    Some((PathBuf::from(OsString::from_vec(mount_point)), String::from_utf8(root).ok()?))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(digits) = code {
            let value = digits.iter().fold(0_u32, |n, d| n * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Whether the hierarchy path `path` is `ancestor` or lies below it.
fn within(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    path.strip_prefix(ancestor).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `cgroup.events` reads `populated 1`.
fn populated(events: &str) -> bool {
    events.lines().any(|line| line == "populated 1")
}

/// Appends the members of the cgroup at `dir`, then of those below it; a
/// nested cgroup removed meanwhile is skipped (`top` is not).
fn members(dir: &Path, top: bool, pids: &mut Vec<u32>) -> Result<(), ProcessError> {
    let procs = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&procs) {
        Ok(text) => text,
        Err(err) if !top && err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(read_error(&procs, source)),
    };
    pids.extend(text.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
    for sub in subgroups(dir) {
        members(&sub, false, pids)?;
    }
    Ok(())
}

/// The cgroups right below `dir` (its sub-folders).
fn subgroups(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

/// Removes the (empty) cgroup at `dir` and the cgroups below it, deepest
/// first; on failure, the folder and why.
fn remove_tree(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    for sub in subgroups(dir) {
        remove_tree(&sub)?;
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err((dir.to_path_buf(), err)),
    }
}

/// Removes, below `parent`, the empty cgroups of brr processes that are
/// gone. Best effort: another brr may be removing them too.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = stale_pid(name.as_bytes()) else { continue };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        let empty = std::fs::read_to_string(path.join("cgroup.events")).is_ok_and(|text| !populated(&text));
        if empty {
            let _ = remove_tree(&path);
        }
    }
}

/// The pid in a cgroup name `brr-<pid>-…`.
fn stale_pid(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX.as_bytes())?;
    let end = rest.iter().position(|b| *b == b'-')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok().filter(|pid| *pid > 0)
}

/// Writes `bytes` to the cgroup file `path` in one `write`.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = File::options().write(true).open(path)?;
    let written = file.write(bytes)?;
    if written == bytes.len() { Ok(()) } else { Err(io::Error::new(io::ErrorKind::WriteZero, "a short write")) }
}

fn read_error(path: &Path, source: io::Error) -> ProcessError {
    ProcessError::Cgroup { action: "read", path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Cgroup, CgroupUnavailable, Location, locate_in, stale_pid, unescape, within};

    // Made-up mount points, laid out as machines lay them out: v1
    // hierarchies and a v2 one side by side in a tmpfs (hybrid), or the v2
    // hierarchy alone (unified).
    const HYBRID: &str = "\
31 23 0:28 / /cg rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /cg/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /cg/v2 rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "\
25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
26 25 0:24 / /cg2 rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    fn at(dir: &str, hierarchy_path: &str) -> Location {
        Location { dir: PathBuf::from(dir), hierarchy_path: hierarchy_path.to_owned() }
    }

    #[test]
    fn brrs_cgroup_is_found_below_the_v2_mount_wherever_it_is() {
        assert_eq!(locate_in(HYBRID, "4:memory:/x\n0::/\n"), Ok(at("/cg/v2", "/")));
        let session = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            locate_in(UNIFIED, session),
            Ok(at("/cg2/user.slice/user-1000.slice/session-2.scope", "/user.slice/user-1000.slice/session-2.scope"))
        );
        // A container sees only its part of the hierarchy.
        let container = "99 1 0:24 /kube/pod1 /cg2 rw - cgroup2 cgroup2 rw\n";
        assert_eq!(locate_in(container, "0::/kube/pod1/app\n"), Ok(at("/cg2/app", "/kube/pod1/app")));
        assert_eq!(locate_in(container, "0::/kube/pod1\n"), Ok(at("/cg2", "/kube/pod1")));
        assert!(matches!(locate_in(container, "0::/kube/pod10\n"), Err(CgroupUnavailable::NotFound { .. })));
    }

    #[test]
    fn without_a_v2_hierarchy_or_a_0_line_there_is_no_cgroup() {
        let v1_only = "32 31 0:29 / /cg/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        assert_eq!(locate_in(v1_only, "0::/\n"), Err(CgroupUnavailable::NoHierarchy));
        assert!(matches!(locate_in(UNIFIED, "1:name=systemd:/\n"), Err(CgroupUnavailable::NotFound { .. })));
        assert!(matches!(locate_in(UNIFIED, "0::/gone (deleted)\n"), Err(CgroupUnavailable::NotFound { .. })));
        assert!(CgroupUnavailable::NoHierarchy.to_string().contains("cgroup2"));
    }

    #[test]
    fn mountinfo_escapes_and_names_are_read() {
        assert_eq!(unescape(r"/mnt/my\040cgroups"), b"/mnt/my cgroups");
        assert_eq!(unescape(r"a\\b\01"), br"a\\b\01");
        assert!(within("/a/b", "/a") && within("/a", "/a") && within("/a", "/") && !within("/ab", "/a"));
        assert_eq!(stale_pid(b"brr-123-web"), Some(123));
        assert_eq!(stale_pid(b"brr-123-web-2"), Some(123));
        assert_eq!(stale_pid(b"brr-x-web"), None);
        assert_eq!(stale_pid(b"brr-123"), None);
        assert_eq!(stale_pid(b"system.slice"), None);
    }

    /// The fallback of kernels without `cgroup.kill`, on real processes.
    #[test]
    fn killing_each_member_empties_the_cgroup() {
        let made = Cgroup::create("each").expect("make a cgroup");
        let hint = "a cgroup v2 hierarchy in which brr's own cgroup is writable (root, or `Delegate=yes`)";
        let detail = format!("{:?}", Cgroup::parent());
        if !brr_test_support::require(made.is_some(), "a delegated cgroup v2 hierarchy", &detail, hint) {
            return;
        }
        let Some(cgroup) = made else { return };
        // A shell forking sleeps in a loop, some of them in a new session.
        let script = "while :; do sleep 1000 & setsid sleep 1000 & sleep 0.01; done";
        let child = crate::Command::new("/bin/sh").args(["-c", script]).cgroup(Some(&cgroup)).spawn();
        let mut child = child.expect("start the forking shell");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while cgroup.procs().expect("list the members").len() < 5 {
            assert!(std::time::Instant::now() < deadline, "the shell did not fork: {:?}", cgroup.procs());
            std::thread::yield_now();
        }
        cgroup.kill_each().expect("kill each member");
        assert!(cgroup.wait_empty(std::time::Duration::from_secs(30)).expect("wait"), "{:?}", cgroup.procs());
        assert!(child.wait().expect("reap the shell").killed_by(crate::Signal::Kill));
    }
}
