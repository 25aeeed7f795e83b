//! Starting processes: builders isolated where the kernel allows, and the
//! ordinary processes of the release phase and the supervisor.
//!
//! This is the lowest layer that starts processes: it depends on no other
//! brr crate, so the build engine (`brr-exec`) and the layers that release
//! and run artifacts without the build scheduler share one implementation
//! of spawning, namespaces, Landlock, resource limits, signals and reaping.
//!
//! Two ways in, for two kinds of callers:
//! - **sandboxed** ([`spawn`], [`run`]): [`SandboxSpec`] (what to start and
//!   what it may touch), [`Isolation`] (what the kernel allows, probed once)
//!   and [`SandboxedProcess`] (a started process to wait for, with a
//!   timeout past which it is killed with all it started:
//!   [`SandboxedProcess::wait_timeout`]). Built for
//!   thousands of short builders: `clone(CLONE_VM | CLONE_VFORK)`, network
//!   slots, one shared log;
//! - **supervised** ([`Command`], [`Child`]): a release command or a
//!   service, unsandboxed and with the host's network, as `brr release`
//!   and `brr run` start them. Separate stdout and stderr ([`Output`]), its
//!   own process group to signal, a chosen death signal, waits that block,
//!   time out or only look (on a pidfd, so a supervisor can poll many),
//!   [`Child::terminate`] (SIGTERM, a grace period, then SIGKILL to the
//!   group), and an [`ExitStatus`] that reads "exited with 3" or "killed by
//!   SIGTERM". A dropped `Child` is killed, never left running unseen.
//!
//! A run's supervised processes can also share a [`Cgroup`] (cgroup v2,
//! where the machine delegates one): [`Command::cgroup`] joins it before
//! `execve`, so a daemon that forks twice and calls `setsid`, which leaves
//! every process group, is still listed ([`Cgroup::procs`]) and killed
//! ([`Cgroup::kill`]) with the run. Where there is none ([`Cgroup::create`]
//! returns `None`, [`Cgroup::parent`] says why), the supervisor's child
//! subreaper is what catches such orphans.
//!
//! Both return [`ProcessError`], which names the program and the cause.
//!
//! # What is isolated
//!
//! With [`Isolation::Full`], the builder starts in new user, mount, network,
//! UTS and PID namespaces:
//! - **processes**: the builder is the first process (pid 1) of its own PID
//!   namespace. When it exits, the kernel kills every process it left
//!   behind (a `setsid` daemon, a double fork), and the wait for it returns
//!   only once they are all gone: nothing of a build outlives it to write
//!   into its outputs or into a sandbox reused for the next build. It gets
//!   a `/proc` of its own, showing only the build's processes;
//! - **network**: the network namespace has only a loopback interface, and
//!   it is down, so nothing (not even a server on the host's 127.0.0.1) is
//!   reachable. Builders of one build run join one of the [`NetSlots`] made
//!   for it (one per `-j` permit, so builders running at once never share
//!   one), in which they cannot bring loopback up; a builder given no slot
//!   makes its own namespace. A process with
//!   [`SandboxSpec::host_network`] (a service, never a build) keeps the
//!   host's network and all the other isolation;
//! - **identity**: the user namespace maps the caller's effective uid and gid
//!   to themselves (not to 0): a builder started by a user does not believe
//!   it is root, and what it creates belongs to that user on the host (under
//!   a root brr, the builder is root of its own namespace only). `setgroups`
//!   is denied, and the host name is [`SandboxSpec::hostname`] (default
//!   `brr`);
//! - **mounts**: the mount tree is made private, so nothing the builder mounts
//!   propagates to the host;
//! - **build path**: given a [`SandboxSpec::build_dir`], the builder gets a
//!   new root, a tmpfs holding the host's top-level entries bound in place
//!   and that folder at [`BUILD_PATH`] (`/build`), entered with
//!   `pivot_root`: every build sees its own folder at the same path, so
//!   what it embeds of it is the same on every machine. The root itself is
//!   read-only. Landlock rules (made on the host's paths) still hold: they
//!   attach to inodes, which bind mounts share;
//! - **writes**: with Landlock, the builder may write only below
//!   [`SandboxSpec::writable`] (plus `/dev/null` and similar devices);
//! - **reads**: with Landlock, it may read and execute only below
//!   [`SandboxSpec::readable`], the writable paths and the system folders
//!   host tools need ([`SYSTEM_READABLE`]): not the workspace, the store,
//!   other sandboxes, `/tmp` or home folders. Landlock also scopes signals
//!   and abstract Unix sockets to the builder's own processes;
//! - **privileges**: `no_new_privs` is set, so set-uid binaries do not elevate.
//!
//! Every builder runs in its own process group (its pgid is its pid, see
//! [`SandboxedProcess::pid`]) so the caller can signal the whole group.
//!
//! # Why the child does only syscalls
//!
//! brr starts builders from rayon threads with `clone(CLONE_VM |
//! CLONE_VFORK)` (`spawn.rs`, cheaper than `fork` for a big,
//! busy process): the child shares brr's memory, in which another thread may
//! hold the allocator's or another lock, until it execs. All strings, map
//! contents and the Landlock ruleset fd are therefore prepared before the
//! clone, and the child (`ChildSetup` in `child.rs`) issues
//! raw syscalls on them only.
//!
//! # Fallback
//!
//! [`isolation`] probes once per process, by spawning `/bin/true` with the
//! same setup. Where mounting a `/proc` is refused, builders keep the host's
//! and Landlock denies reading it. If namespaces are refused
//! ([`Isolation::Off`], with the reason for the caller to print once),
//! builders run unsandboxed, confined by Landlock alone when it is
//! available; Landlock then also denies TCP bind and connect, standing in
//! for the missing network namespace. Without a PID namespace, brr becomes
//! its builders' child subreaper and kills what each leaves behind when it
//! exits (`reaper.rs`); the caller must still not hand such a
//! sandbox to another build. `run(…, false)` (`--no-sandbox`) skips all of
//! it, except that the builder's process group is killed when it exits.

mod cgroup;
mod child;
mod command;
mod netns;
mod reaper;
mod ruleset;
mod running;
mod spawn;
mod status;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use cgroup::{Cgroup, CgroupUnavailable};
pub use child::SetupStep;
use child::{ChildSetup, Namespaces};
pub use command::{Command, Output};
pub use netns::{NetSlot, NetSlots};
pub use reaper::{become_subreaper, kill_orphans};
pub use running::Child;
pub use status::{ExitStatus, Signal};

/// The host name inside the UTS namespace when the spec names none.
pub const DEFAULT_HOSTNAME: &str = "brr";

/// Everything needed to start one builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Absolute path of the executable (already resolved: no `PATH` lookup).
    pub program: PathBuf,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The complete environment: the child's environment is cleared first.
    pub env: Vec<(String, String)>,
    /// The working directory of the builder.
    pub cwd: PathBuf,
    /// The only paths (absolute, existing) the builder may write below: its
    /// output directory and its temporary directory. It may read them too.
    pub writable: Vec<PathBuf>,
    /// Paths (absolute, existing) the builder may read and execute below,
    /// besides the system folders ([`SYSTEM_READABLE`]): its sandbox, and
    /// where its tools live. With Landlock, nothing else can be read.
    pub readable: Vec<PathBuf>,
    /// The host name inside the sandbox; [`DEFAULT_HOSTNAME`] when `None`.
    pub hostname: Option<String>,
    /// The builder's file-creation mask ([`DEFAULT_UMASK`] for builds;
    /// verification varies it).
    pub umask: u32,
    /// Pin the builder to this many CPUs (verification varies it); all when `None`.
    pub cpus: Option<usize>,
    /// With namespaces, the network namespace to join instead of making one
    /// (see [`NetSlots`]); its descriptors must stay open until the builder
    /// has started.
    pub net_slot: Option<NetSlot>,
    /// Keep the host's network (and any [`net_slot`](Self::net_slot) is
    /// ignored): a released service must listen and connect. Every other
    /// isolation still applies. Builds never set it.
    pub host_network: bool,
    /// Resource limits of the builder and all it starts; none when `None`.
    pub limits: Option<Limits>,
    /// The sandbox folder (absolute, existing) to show the builder at
    /// [`BUILD_PATH`], where [`Isolation::fixed_path`] says the kernel
    /// allows it; [`cwd`](Self::cwd) and the paths in `args` and `env` are
    /// then given as the builder sees them there. Ignored otherwise.
    pub build_dir: Option<PathBuf>,
    /// Open descriptors the program inherits at the same numbers, besides
    /// stdio (a jobserver's pipe, named in its `MAKEFLAGS`); every other one
    /// is closed on exec. They must stay open until it has started.
    pub inherit_fds: Vec<i32>,
}

/// Where a builder sees its sandbox folder with [`Isolation::fixed_path`]:
/// the same on every machine and in every build, so a build that embeds its
/// folder (debug info, `__FILE__`) makes the same bytes everywhere.
pub const BUILD_PATH: &str = "/build";

/// Resource limits of one builder and every process it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file any of its processes may write (`RLIMIT_FSIZE`): a
    /// runaway writer is stopped with `SIGXFSZ` before it fills the disk
    /// or, on the tmpfs, memory.
    pub file_bytes: u64,
    /// The most processes the build may have at once: the `pid_max` of its
    /// PID namespace (Linux 6.14 and later; the kernel's floor is 300).
    pub processes: u32,
    /// The most data memory (heap, anonymous mappings) of each process
    /// (`RLIMIT_DATA`).
    pub data_bytes: u64,
}

/// The umask of every build: modes must not depend on the caller's shell.
pub const DEFAULT_UMASK: u32 = 0o022;

pub use ruleset::SYSTEM_READABLE;

/// What isolation this process can give its builders; see [`isolation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// User, mount, network, UTS and PID namespaces, plus Landlock if
    /// `landlock`; with `own_proc`, each builder's `/proc` shows only its own
    /// processes (else Landlock denies reading `/proc`); with `fixed_path`,
    /// builders see their [`SandboxSpec::build_dir`] at [`BUILD_PATH`].
    Full { landlock: bool, own_proc: bool, fixed_path: bool },
    /// No namespaces, for `reason`; Landlock alone still applies if `landlock`.
    Off { reason: String, landlock: bool },
}

impl Isolation {
    /// Whether builders get their own namespaces.
    pub fn namespaces(&self) -> bool {
        matches!(self, Self::Full { .. })
    }

    /// Whether builders' writes are confined with Landlock.
    pub fn landlock(&self) -> bool {
        match self {
            Self::Full { landlock, .. } | Self::Off { landlock, .. } => *landlock,
        }
    }

    /// Whether builders see a `/proc` of their own PID namespace.
    pub fn own_proc(&self) -> bool {
        matches!(self, Self::Full { own_proc: true, .. })
    }

    /// Whether builders see their sandbox folder at [`BUILD_PATH`] (else at
    /// its host path, which differs between builds and machines).
    pub fn fixed_path(&self) -> bool {
        matches!(self, Self::Full { fixed_path: true, .. })
    }
}

/// An error starting, signalling or waiting for a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start `{}` in `{}`", program.display(), cwd.display())]
    Spawn {
        program: PathBuf,
        cwd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot sandbox `{}`: `{step}` failed", program.display())]
    Setup {
        program: PathBuf,
        step: SetupStep,
        #[source]
        source: io::Error,
    },
    #[error("cannot find `{}` on the PATH `{search}`", program.display())]
    NotOnPath { program: PathBuf, search: String },
    #[error("cannot send {signal} to `{}`", program.display())]
    Signal {
        program: PathBuf,
        signal: Signal,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for `{}`", program.display())]
    Wait {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot share the build log between stdout and stderr of `{}`", program.display())]
    Log {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot confine the builder to `{}`", path.display())]
    Writable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} `{}`", path.display())]
    Cgroup {
        /// What failed, e.g. "make the cgroup", "read".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{}` in the cgroup `{}`", program.display(), cgroup.display())]
    JoinCgroup {
        program: PathBuf,
        cgroup: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot build the Landlock ruleset")]
    Landlock {
        #[from]
        source: landlock::RulesetError,
    },
}

/// The former name of [`ProcessError`], from when only builders were
/// started here; kept so code written against it still compiles.
pub type SandboxError = ProcessError;

/// The isolation available to this process, probed on first use by
/// actually starting a trivial sandboxed child.
pub fn isolation() -> &'static Isolation {
    static ISOLATION: OnceLock<Isolation> = OnceLock::new();
    ISOLATION.get_or_init(probe)
}

/// `n` network slots for the builders of one run, checked by starting a
/// trivial builder in one; `None` where builders get no namespaces or the
/// slots cannot be made (each builder then makes its own network
/// namespace, as before).
pub fn net_slots(n: usize) -> Option<NetSlots> {
    let isolation = isolation();
    if !isolation.namespaces() || n == 0 {
        return None;
    }
    let slots = NetSlots::create(n).ok()?;
    try_isolation_in(isolation, Some(slots.slot(0))).ok()?;
    Some(slots)
}

/// What a builder that declares the tool at `path` must be able to read
/// besides the system folders: the tool's installation, so an interpreter
/// installed elsewhere (pyenv, nvm, a toolchain in `/opt`) finds what it
/// loads. That is the folder above its `bin/` (`~/.pyenv/versions/3.12.4`
/// for `…/3.12.4/bin/python3`), else its own folder; never a home folder
/// or `/` as a whole (then only the tool itself). Both the path and where
/// its links lead count. Looked up once per path and process.
pub fn tool_readable(path: &Path) -> Vec<PathBuf> {
    static KNOWN: Mutex<BTreeMap<PathBuf, Vec<PathBuf>>> = Mutex::new(BTreeMap::new());
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = known.get(path) {
        return found.clone();
    }
    let mut found: Vec<PathBuf> = Vec::new();
    let real = std::fs::canonicalize(path).ok();
    for p in std::iter::once(path).chain(real.as_deref()) {
        if let Some(root) = installation(p)
            && !found.contains(&root)
        {
            found.push(root);
        }
    }
    known.insert(path.to_path_buf(), found.clone());
    found
}

/// The installation holding the tool at `path`; `None` below a system folder.
fn installation(path: &Path) -> Option<PathBuf> {
    if SYSTEM_READABLE.iter().any(|sys| path.starts_with(sys)) {
        return None;
    }
    let dir = path.parent()?;
    let root = match dir.file_name().and_then(|n| n.to_str()) {
        Some("bin" | "sbin") => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let is_home = home.as_deref() == Some(root)
        || root == Path::new("/root")
        || root.parent() == Some(Path::new("/home"))
        || root.parent().is_none();
    Some(if is_home { path.to_path_buf() } else { root.to_path_buf() })
}

/// A process started from a [`SandboxSpec`] (a builder, usually).
#[derive(Debug)]
pub struct SandboxedProcess {
    spawned: spawn::Spawned,
    program: PathBuf,
    /// Whether it runs in a PID namespace, whose end ends all it started.
    pid_namespace: bool,
    /// Whether brr reaps what it leaves behind instead (sandboxed, but
    /// without namespaces: see `reaper.rs`).
    reaped: bool,
}

impl SandboxedProcess {
    /// The builder's pid, which is also the id of its process group.
    pub fn pid(&self) -> u32 {
        self.spawned.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// Waits for the builder to exit. Without a PID namespace, what is left
    /// of its process group is killed then, and a sandboxed builder's other
    /// leftovers (a `setsid` daemon) are killed by brr as their subreaper;
    /// such builds never hand their sandbox on.
    pub fn wait(self) -> Result<std::process::ExitStatus, ProcessError> {
        let status = self.spawned.wait();
        if !self.pid_namespace {
            let _ = rustix::process::kill_process_group(self.spawned.pid, rustix::process::Signal::KILL);
        }
        if self.reaped {
            reaper::finished(self.spawned.pid);
        }
        status.map_err(|source| ProcessError::Wait { program: self.program, source })
    }

    /// [`wait`](Self::wait), but past `timeout` (none: no limit) the
    /// builder is killed with all it started: its PID namespace, else its
    /// process group (and, sandboxed, what brr reaps), as
    /// [`wait`](Self::wait) does when it exits. The wait polls a pidfd,
    /// so it wakes when the builder exits or the time is up, never between.
    pub fn wait_timeout(self, timeout: Option<Duration>) -> Result<Ended, ProcessError> {
        let Some(limit) = timeout else { return self.wait().map(Ended::Exited) };
        // Not reaped yet, so the pid (and group id) is surely the builder's.
        let pidfd = match rustix::process::pidfd_open(self.spawned.pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(errno) => {
                // No way to time the wait: the builder must not run on unseen.
                let _ = rustix::process::kill_process_group(self.spawned.pid, rustix::process::Signal::KILL);
                let _ = rustix::process::kill_process(self.spawned.pid, rustix::process::Signal::KILL);
                let program = self.program.clone();
                let _ = self.wait();
                return Err(ProcessError::Wait { program, source: errno.into() });
            }
        };
        // A limit too far to represent is as good as none.
        let deadline = Instant::now().checked_add(limit);
        loop {
            let left = deadline.map(|d| running::timespec(d.saturating_duration_since(Instant::now())));
            let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, left.as_ref()) {
                Ok(0) => break,
                Ok(_) => return self.wait().map(Ended::Exited),
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => {
                    let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                    let program = self.program.clone();
                    let _ = self.wait();
                    return Err(ProcessError::Wait { program, source: errno.into() });
                }
            }
        }
        // The group first: a builder without a PID namespace may have
        // started others in it. The builder as the namespace's init takes
        // the whole namespace with it.
        if !self.pid_namespace {
            let _ = rustix::process::kill_process_group(self.spawned.pid, rustix::process::Signal::KILL);
        }
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        self.wait()?;
        Ok(Ended::TimedOut(limit))
    }
}

/// How a [`SandboxedProcess`] waited for with a timeout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited (or a signal ended it) within the time.
    Exited(std::process::ExitStatus),
    /// It ran past this timeout and was killed, with all it started.
    TimedOut(Duration),
}

/// Starts the builder with stdout and stderr both appending to `log`
/// (interleaved) and stdin null. `isolate = false` skips namespaces and
/// Landlock (`--no-sandbox`).
/// The builder gets its own descriptors for `log`; the caller's stays open
/// (to read the log back).
pub fn spawn(spec: &SandboxSpec, log: &File, isolate: bool) -> Result<SandboxedProcess, ProcessError> {
    spawn_with_streams(spec, log, log, isolate)
}

/// [`spawn`] with stdout and stderr kept apart: on `stdout` and `stderr`
/// (which may be the same file), as a supervised service's streams are.
pub fn spawn_with_streams(
    spec: &SandboxSpec,
    stdout: &File,
    stderr: &File,
    isolate: bool,
) -> Result<SandboxedProcess, ProcessError> {
    let setup = if isolate { Some(prepare(spec, isolation())?) } else { None };
    let pid_namespace = setup.as_ref().is_some_and(ChildSetup::pid_namespace);
    let reaped = isolate && !pid_namespace;
    let started = if reaped {
        reaper::start(|| spawn::spawn(spec, setup, stdout, stderr))
    } else {
        spawn::spawn(spec, setup, stdout, stderr)
    };
    let spawned = started.map_err(|err| spawn_error(spec, err))?;
    Ok(SandboxedProcess { spawned, program: spec.program.clone(), pid_namespace, reaped })
}

/// Runs the builder to completion; see [`spawn`].
pub fn run(spec: &SandboxSpec, log: &File, isolate: bool) -> Result<std::process::ExitStatus, ProcessError> {
    spawn(spec, log, isolate)?.wait()
}

/// Prepares, in the parent, what the child applies after the clone.
fn prepare(spec: &SandboxSpec, isolation: &Isolation) -> Result<ChildSetup, ProcessError> {
    let hostname = spec.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME);
    let mut namespaces = isolation.namespaces().then(|| Namespaces::same_ids(hostname, isolation.own_proc()));
    if let (Some(ns), Some(dir), true) = (&mut namespaces, &spec.build_dir, isolation.fixed_path()) {
        ns.root = Some(child::FixedRoot { entries: root_entries(), sandbox: below_old_root(dir)? });
    }
    if let (Some(ns), Some(limits)) = (&mut namespaces, spec.limits) {
        // pid_max caps the pids handed out in the namespace, so the number of
        // processes alive in it at once.
        let pid_max = limits.processes.saturating_add(1).max(301);
        ns.pid_max = Some(format!("{pid_max}\n").into_bytes());
    }
    let ruleset = if isolation.landlock() {
        let access = ruleset::Access {
            writable: &spec.writable,
            readable: &spec.readable,
            deny_tcp: !isolation.namespaces() && !spec.host_network,
        };
        ruleset::build(&access)?
    } else {
        None
    };
    let net_slot = spec.net_slot.filter(|_| namespaces.is_some() && !spec.host_network);
    Ok(ChildSetup {
        namespaces,
        net_slot,
        host_network: spec.host_network,
        ruleset,
        proc_access: ruleset::proc_access(),
    })
}

/// The host's `/`, listed once: what the new root of a builder with a fixed
/// build path holds (all of it but a host folder named like the build path).
fn root_entries() -> &'static [child::RootEntry] {
    use std::os::unix::ffi::OsStrExt;
    static ENTRIES: OnceLock<Vec<child::RootEntry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let Ok(dir) = std::fs::read_dir("/") else { return Vec::new() };
        let mut entries: Vec<child::RootEntry> = dir
            .filter_map(Result::ok)
            .filter(|e| Path::new("/").join(e.file_name()) != Path::new(BUILD_PATH))
            .filter_map(|e| {
                let name = e.file_name();
                let kind = match e.file_type().ok()? {
                    t if t.is_dir() => child::RootKind::Dir,
                    t if t.is_file() => child::RootKind::File,
                    t if t.is_symlink() => {
                        let target = std::fs::read_link(e.path()).ok()?;
                        child::RootKind::Link(CString::new(target.as_os_str().as_bytes()).ok()?)
                    }
                    _ => return None,
                };
                let path = CString::new([b"/", name.as_bytes()].concat()).ok()?;
                let source = CString::new([b"/.host/", name.as_bytes()].concat()).ok()?;
                Some(child::RootEntry { path, source, kind })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    })
}

/// `dir` as the child finds it while the host's root is below the new one.
fn below_old_root(dir: &Path) -> Result<CString, ProcessError> {
    use std::os::unix::ffi::OsStrExt;
    let invalid = |msg: &str| ProcessError::Writable { path: dir.to_path_buf(), source: io::Error::other(msg) };
    if !dir.is_absolute() {
        return Err(invalid("the build folder must be an absolute path"));
    }
    CString::new([b"/.host", dir.as_os_str().as_bytes()].concat()).map_err(|_| invalid("a NUL byte in the path"))
}

/// Names the failed setup step if the error came from the child's setup.
fn spawn_error(spec: &SandboxSpec, err: io::Error) -> ProcessError {
    match child::decode(err) {
        (Some(step), source) => ProcessError::Setup { program: spec.program.clone(), step, source },
        (None, source) => ProcessError::Spawn { program: spec.program.clone(), cwd: spec.cwd.clone(), source },
    }
}

/// Finds the strongest isolation that works: namespaces (with a `/proc` of
/// their own, then without) and Landlock, then namespaces alone, then
/// Landlock alone.
fn probe() -> Isolation {
    let landlock = matches!(ruleset::build(&ruleset::Access::default()), Ok(Some(_)));
    let mut full = Isolation::Full { landlock, own_proc: true, fixed_path: true };
    let mut result = try_isolation(&full);
    if matches!(&result, Err(ProcessError::Setup { step: SetupStep::BuildPath, .. })) {
        full = Isolation::Full { landlock, own_proc: true, fixed_path: false };
        result = try_isolation(&full);
    }
    if matches!(&result, Err(ProcessError::Setup { step: SetupStep::MountProc, .. })) {
        let fixed_path = full.fixed_path();
        full = Isolation::Full { landlock, own_proc: false, fixed_path };
        result = try_isolation(&full);
    }
    let Err(err) = result else { return full };
    let namespaces_failed = matches!(&err, ProcessError::Setup { step, .. } if step.is_namespace());
    if landlock && !namespaces_failed {
        let (own_proc, fixed_path) = (full.own_proc(), full.fixed_path());
        let without = Isolation::Full { landlock: false, own_proc, fixed_path };
        if try_isolation(&without).is_ok() {
            return without;
        }
    }
    let landlock = landlock && try_isolation(&Isolation::Off { reason: String::new(), landlock: true }).is_ok();
    Isolation::Off { reason: reason(&err), landlock }
}

/// Starts `/bin/true` with the setup `isolation` describes.
fn try_isolation(isolation: &Isolation) -> Result<(), ProcessError> {
    try_isolation_in(isolation, None)
}

/// [`try_isolation`], joining `net_slot` if given.
fn try_isolation_in(isolation: &Isolation, net_slot: Option<NetSlot>) -> Result<(), ProcessError> {
    let spec = SandboxSpec {
        program: PathBuf::from("/bin/true"),
        args: Vec::new(),
        env: Vec::new(),
        cwd: PathBuf::from("/"),
        writable: Vec::new(),
        readable: Vec::new(),
        hostname: None,
        umask: DEFAULT_UMASK,
        cpus: None,
        net_slot,
        host_network: false,
        limits: None,
        // Any folder every machine has shows whether the new root works.
        build_dir: Some(PathBuf::from("/usr")),
        inherit_fds: Vec::new(),
    };
    let setup = prepare(&spec, isolation)?;
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .map_err(|source| ProcessError::Log { program: spec.program.clone(), source })?;
    match spawn::spawn(&spec, Some(setup), &null, &null) {
        Ok(spawned) => {
            let status =
                spawned.wait().map_err(|source| ProcessError::Wait { program: spec.program.clone(), source })?;
            if status.success() {
                Ok(())
            } else {
                let source = io::Error::other(format!("the probe exited with {status}"));
                Err(ProcessError::Spawn { program: spec.program, cwd: spec.cwd, source })
            }
        }
        Err(err) => match spawn_error(&spec, err) {
            // The whole setup ran and only the exec failed (no `/bin/true`?):
            // the isolation itself works.
            ProcessError::Spawn { .. } => Ok(()),
            err => Err(err),
        },
    }
}

/// One line for the CLI, e.g. "namespaces are unavailable: `unshare(user,
/// mount, net, uts)` failed: Operation not permitted (os error 1)".
fn reason(err: &ProcessError) -> String {
    match err {
        ProcessError::Setup { step, source, .. } if step.is_namespace() => {
            format!("namespaces are unavailable: `{step}` failed: {source}")
        }
        ProcessError::Setup { step, source, .. } => format!("`{step}` failed: {source}"),
        ProcessError::Spawn { source, .. } | ProcessError::Wait { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// An error and its causes on one line (`a: b: c`), for messages that show
/// a process's failure in a log line rather than as a report.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::installation;

    #[test]
    fn a_tool_installation_is_the_folder_above_its_bin_and_never_a_home() {
        let of = |p: &str| installation(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(of("/usr/bin/cc"), None);
        assert_eq!(of("/bin/sh"), None);
        assert_eq!(of("/home/ann/.pyenv/versions/3.12.4/bin/python3"), Some("/home/ann/.pyenv/versions/3.12.4".into()));
        assert_eq!(of("/opt/zig/zig"), Some("/opt/zig".into()));
        assert_eq!(of("/home/ann/bin/tool"), Some("/home/ann/bin/tool".into()));
        assert_eq!(of("/home/ann/tool"), Some("/home/ann/tool".into()));
        assert_eq!(of("/root/bin/tool"), Some("/root/bin/tool".into()));
        assert_eq!(of("/tool"), Some("/tool".into()));
        assert_eq!(of("/home/ann/.local/bin/tool"), Some("/home/ann/.local".into()));
    }
}
