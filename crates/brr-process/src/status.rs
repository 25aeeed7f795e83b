//! Signals by name and how a process ended, as the supervisor and the
//! release phase report them ("exited with 3", "killed by SIGTERM").

use std::fmt;

/// A signal brr sends, or one that ended a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Ill,
    Trap,
    Abrt,
    Bus,
    Fpe,
    Kill,
    Usr1,
    Segv,
    Usr2,
    Pipe,
    Alrm,
    Term,
    Chld,
    Cont,
    Stop,
    Tstp,
    Ttin,
    Ttou,
    Xcpu,
    Xfsz,
    Winch,
}

/// Every [`Signal`] with its number and name.
const SIGNALS: [(Signal, libc::c_int, &str); 24] = [
    (Signal::Hup, libc::SIGHUP, "SIGHUP"),
    (Signal::Int, libc::SIGINT, "SIGINT"),
    (Signal::Quit, libc::SIGQUIT, "SIGQUIT"),
    (Signal::Ill, libc::SIGILL, "SIGILL"),
    (Signal::Trap, libc::SIGTRAP, "SIGTRAP"),
    (Signal::Abrt, libc::SIGABRT, "SIGABRT"),
    (Signal::Bus, libc::SIGBUS, "SIGBUS"),
    (Signal::Fpe, libc::SIGFPE, "SIGFPE"),
    (Signal::Kill, libc::SIGKILL, "SIGKILL"),
    (Signal::Usr1, libc::SIGUSR1, "SIGUSR1"),
    (Signal::Segv, libc::SIGSEGV, "SIGSEGV"),
    (Signal::Usr2, libc::SIGUSR2, "SIGUSR2"),
    (Signal::Pipe, libc::SIGPIPE, "SIGPIPE"),
    (Signal::Alrm, libc::SIGALRM, "SIGALRM"),
    (Signal::Term, libc::SIGTERM, "SIGTERM"),
    (Signal::Chld, libc::SIGCHLD, "SIGCHLD"),
    (Signal::Cont, libc::SIGCONT, "SIGCONT"),
    (Signal::Stop, libc::SIGSTOP, "SIGSTOP"),
    (Signal::Tstp, libc::SIGTSTP, "SIGTSTP"),
    (Signal::Ttin, libc::SIGTTIN, "SIGTTIN"),
    (Signal::Ttou, libc::SIGTTOU, "SIGTTOU"),
    (Signal::Xcpu, libc::SIGXCPU, "SIGXCPU"),
    (Signal::Xfsz, libc::SIGXFSZ, "SIGXFSZ"),
    (Signal::Winch, libc::SIGWINCH, "SIGWINCH"),
];

impl Signal {
    /// The signal numbered `raw` on this system, if it is one of these.
    pub fn from_raw(raw: i32) -> Option<Self> {
        SIGNALS.iter().find(|(_, n, _)| *n == raw).map(|(s, _, _)| *s)
    }

    /// Its number on this system.
    pub fn as_raw(self) -> i32 {
        self.entry().1
    }

    /// Its name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        self.entry().2
    }

    fn entry(self) -> (Self, libc::c_int, &'static str) {
        SIGNALS[self as usize]
    }

    pub(crate) fn to_rustix(self) -> rustix::process::Signal {
        // Every number in the table is a named signal; SIGKILL is never wrong.
        rustix::process::Signal::from_named_raw(self.as_raw()).unwrap_or(rustix::process::Signal::KILL)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a process ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It called `exit` with this code (0 to 255).
    Exited(i32),
    /// This signal (its number) killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// Whether it exited with 0.
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }

    /// The exit code, when it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            Self::Exited(code) => Some(code),
            Self::Signaled(_) => None,
        }
    }

    /// The number of the signal that killed it.
    pub fn signal(self) -> Option<i32> {
        match self {
            Self::Exited(_) => None,
            Self::Signaled(raw) => Some(raw),
        }
    }

    /// Whether `signal` killed it.
    pub fn killed_by(self, signal: Signal) -> bool {
        self == Self::Signaled(signal.as_raw())
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Exited(code),
            (None, Some(raw)) => Self::Signaled(raw),
            // Stopped or continued: reported only to waits that ask for it,
            // which brr never makes.
            (None, None) => Self::Signaled(status.stopped_signal().unwrap_or(0)),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exited with {code}"),
            Self::Signaled(raw) => match Signal::from_raw(raw) {
                Some(signal) => write!(f, "killed by {signal}"),
                None => write!(f, "killed by signal {raw}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ExitStatus, SIGNALS, Signal};

    #[test]
    fn the_table_is_in_declaration_order_and_names_each_number() {
        for (i, (signal, raw, name)) in SIGNALS.iter().enumerate() {
            assert_eq!(*signal as usize, i, "{name}");
            assert_eq!(Signal::from_raw(*raw), Some(*signal));
            assert_eq!(signal.to_rustix().as_raw(), *raw, "{name}");
        }
        assert_eq!(Signal::Term.to_string(), "SIGTERM");
        assert_eq!(Signal::from_raw(0), None);
    }

    #[test]
    fn statuses_read_like_a_sentence() {
        assert_eq!(ExitStatus::Exited(3).to_string(), "exited with 3");
        assert_eq!(ExitStatus::Signaled(libc::SIGTERM).to_string(), "killed by SIGTERM");
        assert_eq!(ExitStatus::Signaled(40).to_string(), "killed by signal 40");
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(libc::SIGKILL).success());
        assert!(ExitStatus::Signaled(libc::SIGKILL).killed_by(Signal::Kill));
    }
}
