//! Starting an ordinary process for the release phase and the supervisor:
//! [`Command`], a builder in the manner of `std::process::Command` with the
//! choices those callers need and builders do not (separate streams, a
//! process group to signal, a chosen death signal, a cgroup to join, the
//! host's network, no sandbox).
//!
//! Under the hood it is `std::process::Command` (`fork`, then a
//! `pre_exec` hook doing only async-signal-safe syscalls): these callers
//! start a handful of processes, not thousands, so the `clone(CLONE_VM |
//! CLONE_VFORK)` path of builders (`spawn.rs`) buys nothing here, while std
//! brings pipes and reports a failed `execve` by its errno.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::ProcessError;
use crate::cgroup::Cgroup;
use crate::running::Child;
use crate::status::Signal;

/// Where a stream of the child goes.
#[derive(Debug)]
pub enum Output {
    /// Appends to (or writes at the position of) this file; the child gets
    /// its own descriptor of it.
    File(File),
    /// A pipe the caller reads through [`Child::take_stdout`] or
    /// [`Child::take_stderr`].
    Pipe,
    /// `/dev/null`.
    Null,
    /// brr's own stream.
    Inherit,
}

impl From<Output> for Stdio {
    fn from(output: Output) -> Self {
        match output {
            Output::File(file) => file.into(),
            Output::Pipe => Self::piped(),
            Output::Null => Self::null(),
            Output::Inherit => Self::inherit(),
        }
    }
}

/// A process to start, unsandboxed, with the host's network.
///
/// ```no_run
/// # fn main() -> Result<(), brr_process::ProcessError> {
/// use brr_process::{Command, Output, Signal};
/// let mut child = Command::new("python3")
///     .args(["migrate.py"])
///     .env_clear()
///     .envs([("PATH", "/usr/bin:/bin"), ("DATABASE_URL", "postgres://db")])
///     .cwd("/srv/release")
///     .stdout(Output::Null)
///     .death_signal(Some(Signal::Kill))
///     .spawn()?;
/// let status = child.terminate(std::time::Duration::from_secs(10))?;
/// println!("migrate.py {status}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdout: Output,
    stderr: Output,
    own_process_group: bool,
    death_signal: Option<Signal>,
    /// The cgroup to join: its folder, and its `cgroup.procs`.
    cgroup: Option<(PathBuf, CString)>,
}

impl Command {
    /// Starts `program`: a path (with a `/`; a relative one is taken from
    /// the child's working directory), or a name looked up on the `PATH`
    /// the child gets (see [`Command::spawn`]).
    ///
    /// The defaults: brr's environment and working directory, stdin, stdout
    /// and stderr on `/dev/null`, a process group of its own, and `SIGKILL`
    /// when brr dies.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            stdout: Output::Null,
            stderr: Output::Null,
            own_process_group: true,
            death_signal: Some(Signal::Kill),
            cgroup: None,
        }
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Starts from an empty environment instead of brr's: the child then
    /// gets exactly the variables given with [`Command::env`] and
    /// [`Command::envs`].
    #[must_use]
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets one variable (the last value given for a name wins).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets variables.
    #[must_use]
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())));
        self
    }

    /// The working directory of the child.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    #[must_use]
    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    #[must_use]
    pub fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// Whether the child leads a process group of its own (the default):
    /// then [`Child::signal`] reaches everything it started that stayed in
    /// the group, and what is left of the group is killed once the child
    /// has exited. Otherwise it stays in brr's group and signals reach the
    /// child alone.
    #[must_use]
    pub fn own_process_group(mut self, own: bool) -> Self {
        self.own_process_group = own;
        self
    }

    /// The signal the child gets when brr dies (`PR_SET_PDEATHSIG`), so a
    /// killed brr leaves no service running unsupervised; `SIGKILL` by
    /// default, none with `None`.
    ///
    /// The kernel sends it when the *thread* that called [`Command::spawn`]
    /// exits, not only the whole process: spawn from a thread that lives as
    /// long as the child should (the supervisor's own, not a short-lived
    /// worker).
    #[must_use]
    pub fn death_signal(mut self, signal: Option<Signal>) -> Self {
        self.death_signal = signal;
        self
    }

    /// The cgroup the child joins before it executes the program, so that
    /// nothing it starts escapes it (see [`Cgroup`]); brr's own with `None`
    /// (the default). If it cannot join (the cgroup was removed, or may not
    /// be written to), the spawn fails with [`ProcessError::JoinCgroup`].
    #[must_use]
    pub fn cgroup(mut self, cgroup: Option<&Cgroup>) -> Self {
        self.cgroup = cgroup.map(|c| (c.path().to_path_buf(), c.procs_file().to_owned()));
        self
    }

    /// The child's working directory (brr's own by default).
    fn working_dir(&self) -> PathBuf {
        let here = || std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        match &self.cwd {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => here().join(dir),
            None => here(),
        }
    }

    /// The `PATH` the child gets: the last one given, else brr's unless the
    /// environment was cleared.
    fn child_path(&self) -> Option<OsString> {
        let given = self.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
        given.or_else(|| if self.env_clear { None } else { std::env::var_os("PATH") })
    }

    /// The program to execute: `program` itself when it holds a `/`, else
    /// the first executable file of that name on the child's `PATH`.
    /// A relative path is taken from the child's working directory.
    fn resolve(&self) -> Result<PathBuf, ProcessError> {
        if self.program.as_os_str().as_bytes().contains(&b'/') {
            return Ok(self.working_dir().join(&self.program));
        }
        let search = self.child_path().unwrap_or_default();
        std::env::split_paths(&search)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| self.working_dir().join(dir).join(&self.program))
            .find(|candidate| is_executable_file(candidate))
            .ok_or_else(|| ProcessError::NotOnPath {
                program: self.program.clone(),
                search: search.to_string_lossy().into_owned(),
            })
    }

    /// Starts the child with stdin on `/dev/null`, and returns once it has
    /// called `execve`. A program without a `/` is looked up on the `PATH`
    /// the child gets. An error names the program and why: not found, not
    /// an executable file, a missing working directory or interpreter.
    pub fn spawn(self) -> Result<Child, ProcessError> {
        let program = self.resolve()?;
        let cwd = self.working_dir();
        let spawn_error = |source| ProcessError::Spawn { program: program.clone(), cwd: cwd.clone(), source };
        check_program(&program).map_err(spawn_error)?;
        if !cwd.is_dir() {
            let source = io::Error::new(io::ErrorKind::NotFound, "the working directory is not a folder");
            return Err(spawn_error(source));
        }
        let mut command = std::process::Command::new(&program);
        command.args(&self.args);
        if self.env_clear {
            command.env_clear();
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.current_dir(&cwd);
        command.stdin(Stdio::null());
        if self.own_process_group {
            command.process_group(0);
        }
        let parent = rustix::process::getpid();
        let death_signal = self.death_signal.map(Signal::to_rustix);
        let (cgroup, procs_file) = self.cgroup.unzip();
        // SAFETY: the hook runs in the forked child and only issues
        // async-signal-safe syscalls on values moved into it before the
        // fork (no allocation: its error is a raw OS error).
        unsafe {
            command.pre_exec(move || in_child(parent, death_signal, procs_file.as_deref()));
        }
        command.stdout(self.stdout).stderr(self.stderr);
        let own_process_group = self.own_process_group;
        let started = crate::reaper::spare(|| command.spawn(), std::process::Child::id);
        let child = started.map_err(|err| match (cgroup, not_joined(&err)) {
            (Some(cgroup), Some(source)) => ProcessError::JoinCgroup { program: program.clone(), cgroup, source },
            _ => spawn_error(explain(err)),
        })?;
        Child::started(child, program.clone(), own_process_group).map_err(spawn_error)
    }
}

/// Marks the error of a child that could not join its cgroup (above any
/// errno), for [`not_joined`].
const JOIN_FAILED: i32 = 1 << 20;

/// The cause, if a spawn failed because the child could not join its cgroup.
fn not_joined(err: &io::Error) -> Option<io::Error> {
    let code = err.raw_os_error()?;
    (code & JOIN_FAILED != 0).then(|| io::Error::from_raw_os_error(code & !JOIN_FAILED))
}

/// The child's steps between `fork` and `execve`.
fn in_child(
    parent: rustix::process::Pid,
    death_signal: Option<rustix::process::Signal>,
    cgroup_procs: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    // First of all: whatever the child does from here on, it does in the
    // cgroup (`0` is the writer itself).
    if let Some(procs) = cgroup_procs {
        crate::child::write_file(procs, b"0")
            .map_err(|errno| io::Error::from_raw_os_error(JOIN_FAILED | errno.raw_os_error()))?;
    }
    // Handlers and ignored signals of brr are not the child's: an ignored
    // SIGTERM would survive `execve` and make the service deaf to it.
    crate::spawn::reset_signals();
    if death_signal.is_some() {
        rustix::process::set_parent_process_death_signal(death_signal)?;
        // brr may have died before the signal was armed: then it never comes.
        if rustix::process::getppid() != Some(parent) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks, before the fork, what makes the clearest error.
fn check_program(program: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(program)?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not executable (no `x` permission)"));
    }
    Ok(())
}

/// `execve`'s "not found" for a program that exists means its interpreter
/// (a `#!` line's, or the dynamic loader) is missing.
fn explain(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(libc::ENOENT) {
        io::Error::new(io::ErrorKind::NotFound, "its interpreter (`#!` line or dynamic loader) is missing")
    } else {
        err
    }
}
