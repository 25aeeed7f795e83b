//! The Landlock ruleset of a builder, built in the parent before the fork.
//!
//! Only write-like accesses are handled, so reading and executing stay
//! allowed everywhere; writes are granted below the `writable` paths and on a
//! few harmless device files. Without network namespaces, TCP bind and
//! connect are handled (and so denied) as well.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{ABI, Access, AccessFs, AccessNet, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope};
use rustix::fs::{FileType, Mode, OFlags};

use super::SandboxError;

/// The newest Landlock ABI this code was written and tested against; the
/// crate drops (best effort) whatever the running kernel does not know.
const TARGET_ABI: ABI = ABI::V6;

/// Device files every builder may write to, wherever they are.
const DEVICES: [&str; 5] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Builds the ruleset; `None` when the kernel has no Landlock.
pub(super) fn build(writable: &[PathBuf], deny_tcp: bool) -> Result<Option<OwnedFd>, SandboxError> {
    let write = AccessFs::from_write(TARGET_ABI);
    let write_file = write & AccessFs::from_file(TARGET_ABI);
    let mut ruleset = Ruleset::default().handle_access(write)?.scope(Scope::from_all(TARGET_ABI))?;
    if deny_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let mut created = ruleset.create()?;
    for path in writable {
        let fd = open_path(path).map_err(|source| SandboxError::Writable { path: path.clone(), source })?;
        let access = if is_dir(&fd) { write } else { write_file };
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    for device in DEVICES {
        // A device missing from this system cannot be written anyway.
        if let Ok(fd) = open_path(Path::new(device)) {
            created = created.add_rule(PathBeneath::new(fd, write_file))?;
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
