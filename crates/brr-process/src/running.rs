//! A started [`Command`](crate::Command): waits that block, time out or
//! only look, signals to its process group, and SIGTERM-then-SIGKILL.
//!
//! Each child comes with a pidfd. Waits poll it (no busy loop, no sleeps),
//! and a child is reaped only once the pidfd says it has exited: until
//! then its pid, and so its process group id, cannot be reused, so a
//! signal sent to the group never reaches a stranger. Right before
//! reaping, whatever is left of its group is killed (as Kubernetes kills a
//! container's remaining processes when its first one exits).
//!
//! There is no PID namespace here: a process that leaves the group
//! (`setsid`, `setpgid`) is beyond these signals, as it is beyond a
//! systemd unit's without cgroups: start it in a [`Cgroup`](crate::Cgroup)
//! to keep track of those too.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Pid;

use crate::ProcessError;
use crate::status::{ExitStatus, Signal};

/// A process started by [`Command::spawn`](crate::Command::spawn).
///
/// Dropping a `Child` that has not been waited for kills it (its whole
/// process group, when it has one) with `SIGKILL` and reaps it: nothing
/// keeps running unseen. Call [`Child::terminate`] for a graceful stop.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    pid: Pid,
    pidfd: OwnedFd,
    program: PathBuf,
    own_process_group: bool,
    /// Set once reaped.
    status: Option<ExitStatus>,
}

impl Child {
    /// Wraps a just-started child; kills and reaps it if its pidfd cannot
    /// be opened.
    pub(crate) fn started(
        mut inner: std::process::Child,
        program: PathBuf,
        own_process_group: bool,
    ) -> io::Result<Self> {
        let opened = i32::try_from(inner.id())
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::other("the child has no valid pid"))
            .and_then(|pid| {
                // Not reaped yet, so `pid` is surely this child.
                let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
                Ok((pid, pidfd))
            });
        match opened {
            Ok((pid, pidfd)) => Ok(Self { inner, pid, pidfd, program, own_process_group, status: None }),
            Err(err) => {
                let _ = inner.kill();
                let _ = inner.wait();
                crate::reaper::unspare(inner.id());
                Err(err)
            }
        }
    }

    /// Its pid, which is also its process group id when it has its own.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// The program it runs (resolved on `PATH` if it was a name).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A pidfd of the child, readable once it has exited: for a
    /// supervisor's poll loop over many children. Then call
    /// [`Child::try_wait`] to reap it.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The read end of its stdout, given [`Output::Pipe`](crate::Output::Pipe) (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.inner.stdout.take()
    }

    /// The read end of its stderr, given [`Output::Pipe`](crate::Output::Pipe) (once).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.inner.stderr.take()
    }

    /// Its status if it has exited (reaping it), `None` while it runs.
    /// Does not block.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        self.wait_for(Some(Duration::ZERO))
    }

    /// Waits up to `timeout` for it to exit, returning as soon as it does;
    /// `None` if it still runs then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        self.wait_for(Some(timeout))
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> Result<ExitStatus, ProcessError> {
        match self.wait_for(None)? {
            Some(status) => Ok(status),
            None => Err(self.wait_error(io::Error::other("the wait ended before the child did"))),
        }
    }

    /// Sends `signal` to its process group (to the child alone if it has
    /// none, or nothing is left in its group). Nothing happens once it has been reaped: what
    /// was left of its group was killed then.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        if self.status.is_some() {
            return Ok(());
        }
        let sig = signal.to_rustix();
        let mut sent = if self.own_process_group {
            rustix::process::kill_process_group(self.pid, sig)
        } else {
            Err(rustix::io::Errno::SRCH)
        };
        if sent == Err(rustix::io::Errno::SRCH) {
            sent = rustix::process::pidfd_send_signal(&self.pidfd, sig);
        }
        match sent {
            // Already exited, not yet reaped.
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(errno) => Err(ProcessError::Signal { program: self.program.clone(), signal, source: errno.into() }),
        }
    }

    /// Stops it the way systemd and Kubernetes do: `SIGTERM` (and
    /// `SIGCONT`, so a stopped process sees it) to its group, up to `grace`
    /// for it to exit, then `SIGKILL` to the group. Returns once it is
    /// reaped. The rest of the group has until the child exits or the grace
    /// ends, whichever comes first.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, ProcessError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal(Signal::Term)?;
        self.signal(Signal::Cont)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.signal(Signal::Kill)?;
        self.wait()
    }

    /// Polls the pidfd up to `timeout` (forever with `None`), then reaps.
    fn wait_for(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>, ProcessError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = match (timeout, left) {
                // A timeout too long to represent: as good as none.
                (Some(_), None) | (None, _) => None,
                (Some(_), Some(left)) => Some(timespec(left)),
            };
            let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, wait.as_ref()) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(self.wait_error(errno.into())),
            }
        }
        self.reap().map(Some)
    }

    /// Kills what is left of its group, then reaps the exited child.
    fn reap(&mut self) -> Result<ExitStatus, ProcessError> {
        if self.own_process_group {
            // The exited child still holds its pid (a zombie), so the group
            // id is still ours to signal.
            let _ = rustix::process::kill_process_group(self.pid, rustix::process::Signal::KILL);
        }
        let status = self.inner.wait().map_err(|source| self.wait_error(source))?;
        crate::reaper::unspare(self.inner.id());
        let status = ExitStatus::from(status);
        self.status = Some(status);
        Ok(status)
    }

    fn wait_error(&self, source: io::Error) -> ProcessError {
        ProcessError::Wait { program: self.program.clone(), source }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Without the kill, the wait could block forever.
            if self.signal(Signal::Kill).is_ok() {
                let _ = self.wait();
            }
        }
    }
}

/// Whether the process of `pidfd` has exited (a zombie counts), without waiting.
pub(crate) fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
}

pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX), tv_nsec: i64::from(d.subsec_nanos()) }
}
