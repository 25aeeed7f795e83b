//! The part of the sandbox that runs in the child, between `clone` and
//! `execve`.
//!
//! The child shares the memory of the multi-threaded parent until it execs,
//! and another thread may hold the allocator's lock at any moment.
//! [`ChildSetup`] is therefore built completely in the parent (map contents,
//! host name, the Landlock ruleset fd), and its
//! [`enter_namespaces`](ChildSetup::enter_namespaces) and
//! [`confine`](ChildSetup::confine) only issue raw syscalls on those
//! prepared bytes: no allocation, no locks, no formatting.
//!
//! A failing step is reported as one error code through the spawner's pipe:
//! the step number goes in the bits above the errno ([`encode`]/[`decode`]).

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use super::netns::NetSlot;

/// Everything the child needs, prepared before the clone.
#[derive(Debug)]
pub(super) struct ChildSetup {
    /// New user, mount, network and UTS namespaces, when available.
    pub(super) namespaces: Option<Namespaces>,
    /// With namespaces: a network namespace to join instead of a new one.
    pub(super) net_slot: Option<NetSlot>,
    /// With namespaces: stay in the host's network namespace (no slot, no
    /// new one).
    pub(super) host_network: bool,
    /// A Landlock ruleset to enforce on the child, when available.
    pub(super) ruleset: Option<OwnedFd>,
    /// The Landlock access bits granted below the builder's own `/proc`,
    /// added to `ruleset` once it is mounted (a rule on the host's `/proc`
    /// does not reach a mount on top of it).
    pub(super) proc_access: u64,
}

/// `struct landlock_path_beneath_attr` of the kernel ABI (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: libc::c_int = 1;

/// The prepared contents written inside the new namespaces.
#[derive(Debug)]
pub(super) struct Namespaces {
    /// `"<inner> <outer> 1\n"` for `/proc/self/uid_map`.
    pub(super) uid_map: Vec<u8>,
    /// The same for `/proc/self/gid_map`.
    pub(super) gid_map: Vec<u8>,
    pub(super) hostname: Vec<u8>,
    /// Whether the builder mounts a `/proc` of its own PID namespace over the
    /// host's (where the kernel refuses, the host's `/proc` stays, and
    /// Landlock denies reading it).
    pub(super) mount_proc: bool,
    /// `"<n>\n"` for the namespace's `/proc/sys/kernel/pid_max`, which
    /// limits how many processes it can have; written where the kernel
    /// allows (Linux 6.14 and later).
    pub(super) pid_max: Option<Vec<u8>>,
    /// A new root showing the sandbox at the fixed build path, when asked.
    pub(super) root: Option<FixedRoot>,
}

/// A new root (a tmpfs) holding the host's top-level entries, bound in
/// place, and the sandbox folder at [`BUILD_PATH`](crate::BUILD_PATH): the
/// builder sees the host as before, but its own folder at the same path in
/// every build, round and machine (as Nix's `/build`).
#[derive(Debug)]
pub(super) struct FixedRoot {
    /// The host's `/` as it is listed once per process.
    pub(super) entries: &'static [RootEntry],
    /// The sandbox folder as seen below [`OLD_ROOT`] (`/.host/<host path>`).
    pub(super) sandbox: CString,
}

/// One entry of the host's `/`, recreated in the new root.
#[derive(Debug)]
pub(super) struct RootEntry {
    /// `/<name>`.
    pub(super) path: CString,
    /// `/.host/<name>`, where the host's entry is once the new root is in place.
    pub(super) source: CString,
    pub(super) kind: RootKind,
}

#[derive(Debug)]
pub(super) enum RootKind {
    /// A folder, bound with all mounts below it.
    Dir,
    /// A file, bound onto an empty file.
    File,
    /// A symbolic link (`/bin -> usr/bin`), made again with this target.
    Link(CString),
}

/// Where the tmpfs of the new root is mounted before it becomes `/`; any
/// existing folder will do, the host's shows again once the root moved.
const NEW_ROOT_AT: &CStr = c"/tmp";
/// Where the host's root is while the new one is filled, below the new one.
const OLD_ROOT: &CStr = c"/.host";
const OLD_ROOT_NAME: &CStr = c".host";
/// The fixed build path, as a C string.
const BUILD_PATH_C: &CStr = c"/build";

impl Namespaces {
    /// Maps the current effective uid and gid to themselves inside the new
    /// user namespace: a builder started by a user keeps seeing that user
    /// (and does not believe it is root), and files it creates are owned by
    /// the same ids on the host.
    pub(super) fn same_ids(hostname: &str, mount_proc: bool) -> Self {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        Self {
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            hostname: hostname.as_bytes().to_vec(),
            mount_proc,
            pid_max: None,
            root: None,
        }
    }
}

/// One step of the child's setup, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum SetupStep {
    /// `setns` into the user namespace owning the network slots, then into
    /// the builder's slot.
    JoinNetwork = 1,
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID)`,
    /// and `CLONE_NEWNET` unless a network slot was joined or the host's
    /// network is kept.
    Unshare,
    /// Writing `deny` to `/proc/self/setgroups`.
    Setgroups,
    /// Writing `/proc/self/uid_map`.
    UidMap,
    /// Writing `/proc/self/gid_map`.
    GidMap,
    /// `sethostname` in the new UTS namespace.
    Hostname,
    /// Making the mount tree private so nothing propagates to the host.
    MountPrivate,
    /// Making the new root that shows the sandbox at the fixed build path.
    BuildPath,
    /// Starting the builder as the first process of its PID namespace.
    StartInit,
    /// Mounting `/proc` for the new PID namespace.
    MountProc,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// `landlock_restrict_self` on the prepared ruleset.
    Landlock,
}

impl SetupStep {
    const ALL: [Self; 12] = [
        Self::JoinNetwork,
        Self::Unshare,
        Self::Setgroups,
        Self::UidMap,
        Self::GidMap,
        Self::Hostname,
        Self::MountPrivate,
        Self::BuildPath,
        Self::StartInit,
        Self::MountProc,
        Self::NoNewPrivs,
        Self::Landlock,
    ];

    /// Whether the step belongs to the namespace part of the setup.
    pub fn is_namespace(self) -> bool {
        self < Self::NoNewPrivs
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::JoinNetwork => "setns(network slot)",
            Self::Unshare => "unshare(user, mount, net, uts, pid)",
            Self::Setgroups => "write /proc/self/setgroups",
            Self::UidMap => "write /proc/self/uid_map",
            Self::GidMap => "write /proc/self/gid_map",
            Self::Hostname => "sethostname",
            Self::MountPrivate => "make / a private mount",
            Self::BuildPath => "mount the sandbox at /build in a new root",
            Self::StartInit => "clone(the first process of the PID namespace)",
            Self::MountProc => "mount /proc",
            Self::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Self::Landlock => "landlock_restrict_self",
        })
    }
}

/// Errnos stay below this; the step number goes above it.
const STEP_SHIFT: u32 = 16;

/// Packs a failed step and its errno into one raw OS error code.
fn encode(step: SetupStep, errno: i32) -> io::Error {
    io::Error::from_raw_os_error((i32::from(step as u8) << STEP_SHIFT) | errno)
}

/// Splits an error returned by `spawn` into the failed setup step (if the
/// failure happened during the setup) and the plain OS error.
pub(super) fn decode(err: io::Error) -> (Option<SetupStep>, io::Error) {
    let Some(code) = err.raw_os_error() else { return (None, err) };
    let step = code >> STEP_SHIFT;
    match SetupStep::ALL.into_iter().find(|s| i32::from(*s as u8) == step) {
        Some(step) => (Some(step), io::Error::from_raw_os_error(code & ((1 << STEP_SHIFT) - 1))),
        None => (None, err),
    }
}

impl ChildSetup {
    /// Runs in the child before it starts the builder: joins or makes the
    /// namespaces. The PID namespace made here is entered by the child's
    /// next child, the builder. Raw syscalls on prepared data only.
    pub(super) fn enter_namespaces(&self) -> io::Result<()> {
        let Some(ns) = &self.namespaces else { return Ok(()) };
        let mut flags = UnshareFlags::NEWUSER | UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWPID;
        match &self.net_slot {
            Some(slot) => {
                // The slots' owner first: joining the slot takes its
                // CAP_SYS_ADMIN. The builder's own namespace, made next,
                // is nested in it and has no power over the slot.
                // SAFETY: setns on two descriptors the parent keeps open.
                let joined = unsafe {
                    libc::setns(slot.owner, libc::CLONE_NEWUSER) == 0 && libc::setns(slot.net, libc::CLONE_NEWNET) == 0
                };
                if !joined {
                    return Err(failed(SetupStep::JoinNetwork));
                }
            }
            None if self.host_network => {}
            None => flags |= UnshareFlags::NEWNET,
        }
        // SAFETY: the flags do not include CLONE_FILES, so no file
        // descriptor table is split between threads (and the child has a
        // single thread anyway).
        step(SetupStep::Unshare, unsafe { rustix::thread::unshare_unsafe(flags) })?;
        // Required before an unprivileged process may write its gid_map.
        step(SetupStep::Setgroups, write_file(c"/proc/self/setgroups", b"deny"))?;
        step(SetupStep::UidMap, write_file(c"/proc/self/uid_map", &ns.uid_map))?;
        step(SetupStep::GidMap, write_file(c"/proc/self/gid_map", &ns.gid_map))?;
        step(SetupStep::Hostname, rustix::system::sethostname(&ns.hostname))?;
        let private = MountPropagationFlags::PRIVATE | MountPropagationFlags::REC;
        step(SetupStep::MountPrivate, rustix::mount::mount_change(c"/", private))?;
        if let Some(root) = &ns.root {
            step(SetupStep::BuildPath, enter_root(root))?;
        }
        Ok(())
    }

    /// Whether the builder's cwd is a path inside the new root (so it is
    /// entered only after [`Self::enter_namespaces`]).
    pub(super) fn fixed_root(&self) -> bool {
        self.namespaces.as_ref().is_some_and(|ns| ns.root.is_some())
    }

    /// Whether [`Self::enter_namespaces`] makes a PID namespace, so that the
    /// builder must be started as its first process.
    pub(super) fn pid_namespace(&self) -> bool {
        self.namespaces.is_some()
    }

    /// Runs in the builder itself, last before `execve`: its own `/proc`
    /// (inside the PID namespace), then no new privileges and Landlock.
    pub(super) fn confine(&self) -> io::Result<()> {
        if let Some(ns) = &self.namespaces
            && ns.mount_proc
        {
            // Only the build's own processes are visible: no other process's
            // command line or environment can be read.
            let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
            step(SetupStep::MountProc, rustix::mount::mount(c"proc", c"/proc", c"proc", flags, None::<&CStr>))?;
            if let Some(ruleset) = &self.ruleset {
                let proc = step(
                    SetupStep::MountProc,
                    rustix::fs::open(c"/proc", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()),
                )?;
                let attr = PathBeneathAttr { allowed_access: self.proc_access, parent_fd: proc.as_raw_fd() };
                // SAFETY: a plain syscall on a valid ruleset fd and an attr
                // that lives across it.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_landlock_add_rule,
                        ruleset.as_raw_fd(),
                        RULE_PATH_BENEATH,
                        std::ptr::from_ref(&attr),
                        0u32,
                    )
                };
                if rc != 0 {
                    return Err(failed(SetupStep::Landlock));
                }
            }
        }
        if let Some(pid_max) = self.namespaces.as_ref().and_then(|ns| ns.pid_max.as_deref()) {
            // Older kernels have one pid_max for all namespaces, which a
            // builder may not change: the build then runs without this limit.
            let _ = write_file(c"/proc/sys/kernel/pid_max", pid_max);
        }
        // A sandboxed builder never gains privileges through set-uid binaries;
        // Landlock requires this anyway for an unprivileged caller.
        step(SetupStep::NoNewPrivs, rustix::thread::set_no_new_privs(true))?;
        if let Some(ruleset) = &self.ruleset {
            // SAFETY: a plain syscall on a valid, open ruleset fd and no flags.
            let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
            if rc != 0 {
                return Err(failed(SetupStep::Landlock));
            }
        }
        Ok(())
    }
}

/// Makes `root` the process's `/`: a tmpfs, the host's old root below it
/// while its entries are bound in place and the sandbox at the build path,
/// then the old root detached. Rules of a Landlock ruleset stay in force:
/// they hold on the inodes, which bind mounts share.
fn enter_root(root: &FixedRoot) -> rustix::io::Result<()> {
    use rustix::fs::{mkdir, rmdir, symlink};
    use rustix::mount::{MountFlags, UnmountFlags, mount, mount_bind_recursive, mount_remount, unmount};
    let dir = Mode::from_raw_mode(0o755);
    mount(c"tmpfs", NEW_ROOT_AT, c"tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=0755")?;
    rustix::process::chdir(NEW_ROOT_AT)?;
    mkdir(OLD_ROOT_NAME, dir)?;
    rustix::process::pivot_root(c".", OLD_ROOT_NAME)?;
    rustix::process::chdir(c"/")?;
    for entry in root.entries {
        match &entry.kind {
            RootKind::Dir => {
                mkdir(entry.path.as_c_str(), dir)?;
                mount_bind_recursive(entry.source.as_c_str(), entry.path.as_c_str())?;
            }
            RootKind::File => {
                let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC;
                drop(rustix::fs::open(entry.path.as_c_str(), flags, Mode::from_raw_mode(0o644))?);
                mount_bind_recursive(entry.source.as_c_str(), entry.path.as_c_str())?;
            }
            RootKind::Link(target) => symlink(target.as_c_str(), entry.path.as_c_str())?,
        }
    }
    mkdir(BUILD_PATH_C, dir)?;
    mount_bind_recursive(root.sandbox.as_c_str(), BUILD_PATH_C)?;
    unmount(OLD_ROOT, UnmountFlags::DETACH)?;
    rmdir(OLD_ROOT)?;
    // Nothing but the bound folders can be written; where the kernel
    // refuses, the root stays a private, writable tmpfs that ends with the build.
    let _ = mount_remount(c"/", MountFlags::BIND | MountFlags::RDONLY, c"");
    Ok(())
}

/// The error of `step`, whose raw syscall just failed (errno is read
/// first), as [`decode`] reads it.
pub(super) fn failed(step: SetupStep) -> io::Error {
    encode(step, io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
}

fn step<T>(step: SetupStep, result: rustix::io::Result<T>) -> io::Result<T> {
    result.map_err(|errno| encode(step, errno.raw_os_error()))
}

/// Writes `bytes` to `path` in one `write`, as `/proc` map files require.
pub(super) fn write_file(path: &CStr, bytes: &[u8]) -> rustix::io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let written = rustix::io::write(&fd, bytes)?;
    if written == bytes.len() { Ok(()) } else { Err(rustix::io::Errno::IO) }
}
