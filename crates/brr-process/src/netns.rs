//! Network namespaces made once per build run and lent to builders, one
//! builder at a time each ([`NetSlots`]).
//!
//! Creating a network namespace is the costliest part of starting a
//! sandboxed builder (the kernel sets up loopback, sysctls, netfilter and
//! IPv6 state for each, and tears it down again after RCU grace periods):
//! about a sixth of brr's own time in a build of many small actions. A slot
//! is made once and joined by each builder that holds the matching `-j`
//! permit, so two builders running at once never share one.
//!
//! The slots are owned by a user namespace brr makes for them (mapping the
//! caller's uid and gid to themselves). A builder joins that namespace,
//! then the slot, and only then makes its own user namespace below it: it
//! is root of its own namespace only, which gives it no power over the
//! slot. It cannot bring the loopback interface up (it stays down, as in a
//! fresh namespace) nor change the slot in any other way, so a later
//! builder in the same slot finds it as the first did. Abstract Unix
//! sockets, the one thing a leftover process could still offer there, are
//! scoped to each builder by Landlock.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::child::{Namespaces, write_file};
use super::spawn::clone_suspended;

/// The namespaces one builder joins: the owner of the slots, and its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetSlot {
    pub(super) owner: RawFd,
    pub(super) net: RawFd,
}

/// Network namespaces for builders, one per `-j` permit, with the user
/// namespace that owns them. The descriptors keep them alive; they are
/// removed when this is dropped.
#[derive(Debug)]
pub struct NetSlots {
    owner: OwnedFd,
    nets: Vec<OwnedFd>,
}

impl NetSlots {
    /// Makes `n` network namespaces owned by a new user namespace.
    pub fn create(n: usize) -> io::Result<Self> {
        let ids = Namespaces::same_ids("", false);
        let mut helper = Helper { uid_map: ids.uid_map, gid_map: ids.gid_map, owner: -1, nets: vec![-1; n], errno: 0 };
        let pid = clone_helper(&mut helper)?;
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        // SAFETY: the helper opened these descriptors in our table (it shared
        // it) and nothing else owns them; -1 marks the ones it did not open.
        let take = |fd: c_int| (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        let owner = take(helper.owner);
        let nets: Vec<OwnedFd> = helper.nets.iter().copied().filter_map(take).collect();
        if helper.errno != 0 {
            return Err(io::Error::from_raw_os_error(helper.errno));
        }
        match owner {
            Some(owner) if nets.len() == n => Ok(Self { owner, nets }),
            _ => Err(io::Error::other("the namespace helper opened no namespaces")),
        }
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// What a builder holding permit `i` joins. The descriptors are valid
    /// while `self` lives.
    pub fn slot(&self, i: usize) -> NetSlot {
        NetSlot { owner: self.owner.as_raw_fd(), net: self.nets[i % self.nets.len()].as_raw_fd() }
    }
}

/// What the helper process reads and fills in, on memory it shares with brr.
struct Helper {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    owner: c_int,
    nets: Vec<c_int>,
    errno: c_int,
}

/// The helper's stack: a handful of syscalls.
const STACK_SIZE: usize = 64 * 1024;

/// Runs [`helper_main`] in a child sharing our memory and descriptor table
/// (`CLONE_VM | CLONE_VFORK | CLONE_FILES`), which has exited when this
/// returns.
fn clone_helper(helper: &mut Helper) -> io::Result<rustix::process::Pid> {
    // SAFETY: `helper_main` issues raw syscalls on `helper` only, which
    // outlives it (CLONE_VFORK suspends us until it exits).
    unsafe { clone_suspended(helper_main, std::ptr::from_mut(helper).cast(), STACK_SIZE, libc::CLONE_FILES) }
}

/// The helper: a new user namespace, then one new network namespace per
/// slot, each opened into the shared descriptor table.
extern "C" fn helper_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Helper` the suspended parent passed to clone.
    let helper = unsafe { &mut *arg.cast::<Helper>() };
    let result = (|| -> rustix::io::Result<()> {
        // SAFETY: the child has a single thread and shares no fs_struct.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }?;
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", &helper.uid_map)?;
        write_file(c"/proc/self/gid_map", &helper.gid_map)?;
        let open = |path| {
            rustix::fs::open(path, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        };
        helper.owner = into_raw(open(c"/proc/self/ns/user")?);
        for slot in &mut helper.nets {
            // SAFETY: as above.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            *slot = into_raw(open(c"/proc/self/ns/net")?);
        }
        Ok(())
    })();
    if let Err(e) = result {
        helper.errno = e.raw_os_error();
    }
    // SAFETY: _exit skips every atexit handler, which belong to the parent.
    unsafe { libc::_exit(0) }
}

/// Leaves the descriptor open for the parent, which shares the table.
fn into_raw(fd: OwnedFd) -> c_int {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}
