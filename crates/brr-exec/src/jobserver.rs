//! A GNU make jobserver shared by every builder of a run, so that a
//! builder's own `make -j`, `cargo` or other jobserver client and brr's
//! `-j N` together never run more than N jobs.
//!
//! The protocol: a pipe holds one byte ("token") per job that may start;
//! a client reads one before starting an extra job and writes it back
//! when that job ends. Each process also has one implicit job: the one it
//! is. Here the pipe starts with N tokens and brr takes one for every
//! builder it runs, held until the builder exits, as that builder's
//! implicit job; so builders and their sub-jobs add up to at most N.
//!
//! The pipe is a FIFO in the store's `tmp/` (in a `build-<pid>-jobserver`
//! folder, removed with the run or, after a crash, with its stale
//! sandboxes). Builders get it two ways: the descriptors `R,W`, inherited
//! across exec (`MAKEFLAGS=-j --jobserver-auth=R,W`, which every GNU make
//! since 4.2, `cargo` and the `jobserver` crate read), and the FIFO's path
//! (`CARGO_MAKEFLAGS=-j --jobserver-auth=fifo:PATH`, for make ≥ 4.4, cargo
//! and ninja ≥ 1.13; the sandbox may read and write it). GNU make 4.3,
//! Debian 12's, refuses the `fifo:` form, so `MAKEFLAGS` carries the
//! descriptors. The `jobserver` crate is not used: it hands its pipe to
//! children through `std::process::Command::pre_exec`, which brr's own
//! spawn does not go through, and does not expose the descriptors.
//!
//! brr reads tokens through its own non-blocking open of the FIFO, under a
//! lock, so it always knows how many it holds. A builder killed while its
//! sub-jobs held tokens never returns them; whenever brr holds none (no
//! builder is running, so every process that could hold one is gone) it
//! counts the bytes in the pipe and puts back the missing ones (or takes
//! out extra ones), so a crash shrinks the pool only until then.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most tokens a jobserver holds: they must fit in the pipe's buffer
/// (64 KiB on Linux), or filling it would block. A larger `-j` runs
/// without one.
const TOKENS_MAX: usize = 4096;

/// How long a waiting thread sleeps in `poll` before it looks again; a
/// returned token wakes it sooner.
const POLL_MS: i32 = 1000;

/// The jobserver of one run.
#[derive(Debug)]
pub struct Jobserver {
    total: usize,
    dir: PathBuf,
    fifo: PathBuf,
    /// brr's own non-blocking read end, and its write end.
    read: File,
    write: File,
    /// The ends builders inherit: their own open file descriptions, blocking.
    child_read: File,
    child_write: File,
    /// Tokens brr holds for running builders.
    held: Mutex<usize>,
}

/// A token held for one builder; returned on drop.
#[derive(Debug)]
pub struct Token<'a> {
    server: &'a Jobserver,
    /// False when the pipe failed and the builder runs without one.
    counted: bool,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.server.release();
        }
    }
}

impl Jobserver {
    /// A jobserver with `total` tokens, its FIFO in `tmp` (the store's `tmp/`).
    pub fn new(tmp: &Path, total: usize) -> io::Result<Self> {
        let total = total.max(1);
        if total > TOKENS_MAX {
            return Err(io::Error::other(format!("a jobserver holds at most {TOKENS_MAX} tokens")));
        }
        let dir = crate::stage::owned_dir(tmp, "jobserver").map_err(io::Error::other)?;
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(fifo.as_os_str()))
            .map_err(io::Error::other)?;
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            let e = io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        let open = |write: bool, nonblock: bool| {
            let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
            std::fs::OpenOptions::new().read(!write).write(write).custom_flags(flags).open(&fifo)
        };
        let opened = (|| {
            // A read end first (non-blocking: no writer yet), then the write ends.
            let read = open(false, true)?;
            let child_read = open(false, true)?;
            let write = open(true, false)?;
            let child_write = open(true, false)?;
            set_blocking(&child_read)?;
            Ok::<_, io::Error>((read, write, child_read, child_write))
        })();
        let (read, write, child_read, child_write) = match opened {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo);
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let server = Self { total, dir, fifo, read, write, child_read, child_write, held: Mutex::new(0) };
        server.put(total)?;
        Ok(server)
    }

    /// The number of jobs it allows.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The descriptors builders inherit (read end, write end).
    pub fn fds(&self) -> [i32; 2] {
        [self.child_read.as_raw_fd(), self.child_write.as_raw_fd()]
    }

    /// The FIFO's path.
    pub fn fifo(&self) -> &Path {
        &self.fifo
    }

    /// `MAKEFLAGS` and `CARGO_MAKEFLAGS` for a builder: the descriptors and
    /// the FIFO (see the module docs).
    pub fn env(&self) -> [(&'static str, String); 2] {
        let [r, w] = self.fds();
        [
            ("MAKEFLAGS", format!("-j --jobserver-fds={r},{w} --jobserver-auth={r},{w}")),
            ("CARGO_MAKEFLAGS", format!("-j --jobserver-auth=fifo:{}", self.fifo.display())),
        ]
    }

    /// Takes a token for a builder, waiting until one is free.
    pub fn acquire(&self) -> Token<'_> {
        loop {
            {
                let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match (&self.read).read(&mut [0u8]) {
                    Ok(1) => {
                        *held += 1;
                        return Token { server: self, counted: true };
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                    // Cannot happen while brr holds a write end; never wait forever.
                    _ => return Token { server: self, counted: false },
                }
            }
            let mut poll = libc::pollfd { fd: self.read.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one valid pollfd.
            unsafe { libc::poll(&raw mut poll, 1, POLL_MS) };
        }
    }

    fn release(&self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = held.saturating_sub(1);
        let _ = self.put(1);
        if *held == 0 {
            self.restore();
        }
    }

    /// With no builder running, makes the pipe hold exactly `total` tokens
    /// again (see the module docs). Called under the lock.
    fn restore(&self) {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        if unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &raw mut queued) } != 0 {
            return;
        }
        let queued = usize::try_from(queued).unwrap_or(0);
        if queued < self.total {
            let _ = self.put(self.total - queued);
        } else if queued > self.total {
            let mut extra = vec![0u8; queued - self.total];
            let _ = (&self.read).read(&mut extra);
        }
    }

    fn put(&self, n: usize) -> io::Result<()> {
        (&self.write).write_all(&vec![b'+'; n])
    }
}

impl Drop for Jobserver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.fifo);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn set_blocking(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an open descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: the same.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
