//! The Landlock ruleset of a builder, built in the parent before the clone.
//!
//! Writes are granted below the `writable` paths and on a few harmless
//! device files. Reads and execution are granted below the `readable` and
//! `writable` paths and the system folders in [`SYSTEM_READABLE`], and
//! nowhere else: a builder cannot read another package's sources, the
//! store, `/tmp` or a home folder, so it cannot copy a private key into an
//! artifact that is then signed and pushed. Without network namespaces, TCP
//! bind and connect are handled (and so denied) as well.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};
use rustix::fs::{FileType, Mode, OFlags};

use super::ProcessError;

/// The newest Landlock ABI this code was written and tested against; the
/// crate drops (best effort) whatever the running kernel does not know.
const TARGET_ABI: ABI = ABI::V6;

/// Device files every builder may read and write, wherever they are (a
/// device missing from this system cannot be used anyway).
const DEVICES: [&str; 5] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// What every builder may read and execute: the system folders host tools
/// are installed in, and the few files below `/etc` that the C library, the
/// dynamic loader and Debian's tool links need. Missing ones are skipped.
pub const SYSTEM_READABLE: [&str; 16] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    // How many CPUs there are (`nproc`, `os.cpu_count()`).
    "/sys/devices/system/cpu",
];

/// What one builder may access beyond the system folders.
#[derive(Debug, Default)]
pub(super) struct Access<'a> {
    pub(super) writable: &'a [PathBuf],
    pub(super) readable: &'a [PathBuf],
    pub(super) deny_tcp: bool,
}

/// The rules every builder gets alike, opened once (`O_PATH`) with their
/// rights: reading the system folders, reading and writing the devices. A
/// builder's start then only adds them. Missing paths are skipped.
fn fixed_rules() -> &'static [(OwnedFd, BitFlags<AccessFs>)] {
    static RULES: OnceLock<Vec<(OwnedFd, BitFlags<AccessFs>)>> = OnceLock::new();
    RULES.get_or_init(|| {
        let read = AccessFs::from_read(TARGET_ABI);
        let device = (read | AccessFs::from_write(TARGET_ABI)) & AccessFs::from_file(TARGET_ABI);
        let readable = SYSTEM_READABLE.iter().filter_map(|p| open_path(Path::new(p)).ok()).map(|fd| {
            let rights = rights(&fd, read);
            (fd, rights)
        });
        let devices = DEVICES.iter().filter_map(|p| open_path(Path::new(p)).ok()).map(|fd| (fd, device));
        readable.chain(devices).collect()
    })
}

/// `granted`, less the rights that only folders take when `fd` is a file.
fn rights(fd: &OwnedFd, granted: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    if is_dir(fd) { granted } else { granted & AccessFs::from_file(TARGET_ABI) }
}

/// The access bits a builder gets below its own `/proc` (mounted after the
/// ruleset is built, so its rule is added in the child).
pub(super) fn proc_access() -> u64 {
    AccessFs::from_read(TARGET_ABI).bits()
}

/// Builds the ruleset; `None` when the kernel has no Landlock.
pub(super) fn build(access: &Access<'_>) -> Result<Option<OwnedFd>, ProcessError> {
    let write = AccessFs::from_write(TARGET_ABI);
    let read = AccessFs::from_read(TARGET_ABI);
    let mut ruleset = Ruleset::default().handle_access(write | read)?.scope(Scope::from_all(TARGET_ABI))?;
    if access.deny_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let mut created = ruleset.create()?;
    for (fd, rights) in fixed_rules() {
        created = created.add_rule(PathBeneath::new(fd.as_fd(), *rights))?;
    }
    for (paths, granted) in [(access.readable, read), (access.writable, read | write)] {
        for path in paths {
            let fd = open_path(path).map_err(|source| ProcessError::Writable { path: path.clone(), source })?;
            let rights = rights(&fd, granted);
            created = created.add_rule(PathBeneath::new(fd, rights))?;
        }
    }
    Ok(created.into())
}

fn open_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?)
}

fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode).is_dir())
}
