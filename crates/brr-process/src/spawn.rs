//! Starting a builder the way `posix_spawn` does: `clone(CLONE_VM |
//! CLONE_VFORK)`, so the child borrows brr's memory until it calls `execve`
//! instead of getting a copy of it.
//!
//! `fork` copies the page tables of the whole (multi-threaded, busy) brr
//! process and write-protects every page, so each builder start cost a TLB
//! shoot-down on every CPU and a page fault for every page brr touched next:
//! about a fifth of the time of a build of many small actions. std only
//! takes the `posix_spawn` path when no `pre_exec` hook is set, and the
//! sandbox needs one, hence this module.
//!
//! The child runs on its own small stack, on memory it shares with brr, while
//! the thread that started it is suspended. It therefore does only what
//! `ChildSetup` does: raw syscalls on data prepared here (no
//! allocation, no locks). Signals are blocked in the parent thread around the
//! `clone` and reset to their defaults in the child before anything else, so
//! no brr signal handler ever runs on the shared memory. A failing step
//! leaves its error code in that shared memory before `_exit`; none left
//! means `execve` succeeded (as glibc's `posix_spawn` does). What every
//! start needs alike (`/dev/null`, brr's pid, the child's stack) is made
//! once, not per builder.

use std::cell::Cell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use super::SandboxSpec;
use super::child::{self, ChildSetup, SetupStep};

/// The child's stack: it runs a handful of syscalls before `execve`.
const STACK_SIZE: usize = 256 * 1024;

/// Everything the child reads, prepared (and owned) by the parent.
struct ChildArgs {
    program: CString,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: CString,
    stdin: c_int,
    stdout: c_int,
    stderr: c_int,
    /// Descriptors whose close-on-exec flag the child clears.
    inherit: Vec<c_int>,
    umask: rustix::fs::Mode,
    cpus: Option<rustix::thread::CpuSet>,
    limits: Option<super::Limits>,
    parent: rustix::process::Pid,
    setup: Option<ChildSetup>,
    /// With a PID namespace: the top of the stack the builder starts on.
    init_stack: *mut c_void,
    /// A pidfd of brr, which the builder polls once its death signal is
    /// armed (inside a PID namespace `getppid` says 0); -1 when unavailable.
    brr_pidfd: c_int,
    /// With a PID namespace: the builder's pid (the child's own child,
    /// adopted by brr through `CLONE_PARENT`), written by the child.
    init_pid: AtomicI32,
    /// The error code of the step that failed, written by the child (or the
    /// builder) before it exits; 0 while none failed.
    failed: AtomicI32,
}

/// Every builder's stdin, opened once.
static DEV_NULL: OnceLock<File> = OnceLock::new();
/// brr's pid, which its builders check they still have as parent.
static PID: OnceLock<rustix::process::Pid> = OnceLock::new();
/// A pidfd of brr (see [`ChildArgs::brr_pidfd`]).
static PIDFD: OnceLock<Option<std::os::fd::OwnedFd>> = OnceLock::new();

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// Starts `spec`'s program with stdout and stderr on `log` and `log_err`,
/// stdin on `/dev/null`, after `setup`. Returns the child's pid once it has
/// called `execve`, or the error of the step that failed (encoded as
/// `child::failed` encodes it).
pub(super) fn spawn(spec: &SandboxSpec, setup: Option<ChildSetup>, log: &File, log_err: &File) -> io::Result<Spawned> {
    let program = cstring(spec.program.as_os_str().as_bytes())?;
    let mut args = vec![program.clone()];
    for a in &spec.args {
        args.push(cstring(a.as_bytes())?);
    }
    let env: Vec<CString> =
        spec.env.iter().map(|(k, v)| cstring(format!("{k}={v}").as_bytes())).collect::<io::Result<_>>()?;
    // A failed open is not kept: the next start tries again.
    let stdin = if let Some(f) = DEV_NULL.get() {
        f
    } else {
        let f = File::open("/dev/null")?;
        DEV_NULL.get_or_init(|| f)
    };
    let cpus = spec.cpus.map(|n| {
        let mut set = rustix::thread::CpuSet::new();
        for cpu in 0..n.clamp(1, rustix::thread::CpuSet::MAX_CPU) {
            set.set(cpu);
        }
        set
    });
    let pid_namespace = setup.as_ref().is_some_and(ChildSetup::pid_namespace);
    let init_stack = if pid_namespace { Some(take_stack(&SPARE_INIT_STACK)?) } else { None };
    let null_terminated =
        |v: &[CString]| v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut child = ChildArgs {
        argv: null_terminated(&args),
        envp: null_terminated(&env),
        program,
        cwd: cstring(spec.cwd.as_os_str().as_bytes())?,
        stdin: stdin.as_raw_fd(),
        stdout: log.as_raw_fd(),
        stderr: log_err.as_raw_fd(),
        inherit: spec.inherit_fds.clone(),
        umask: rustix::fs::Mode::from_raw_mode(spec.umask),
        cpus,
        limits: spec.limits,
        parent: *PID.get_or_init(rustix::process::getpid),
        setup,
        init_stack: init_stack.as_ref().map_or(std::ptr::null_mut(), Stack::top),
        brr_pidfd: brr_pidfd(),
        init_pid: AtomicI32::new(0),
        failed: AtomicI32::new(0),
    };
    let result = clone_vfork(&mut child);
    if let Some(stack) = init_stack {
        SPARE_INIT_STACK.set(Some(stack));
    }
    let pid = result?;
    // The child has exec'd or exited: what it wrote is visible now.
    let init = rustix::process::Pid::from_raw(child.init_pid.load(Ordering::Acquire));
    match child.failed.load(Ordering::Acquire) {
        // The child only started the builder and is exiting: it is reaped
        // with the builder ([`Spawned::wait`]), not waited for now.
        0 if pid_namespace => {
            if let Some(init) = init {
                return Ok(Spawned { pid: init, helper: Some(pid) });
            }
            let _ = wait(pid);
            Err(io::Error::other("the builder's pid was not reported"))
        }
        0 => Ok(Spawned { pid, helper: None }),
        code => {
            // The child (and the builder, if it started one) reported a
            // failure and exited: reap them.
            let _ = wait(pid);
            if let Some(init) = init {
                let _ = wait(init);
            }
            Err(io::Error::from_raw_os_error(code))
        }
    }
}

/// A started builder and, in a PID namespace, the exited child that
/// started it (a zombie until [`Spawned::wait`] reaps it).
#[derive(Debug)]
pub(super) struct Spawned {
    pub(super) pid: rustix::process::Pid,
    helper: Option<rustix::process::Pid>,
}

impl Spawned {
    /// Waits for the builder to exit, then reaps its starter.
    pub(super) fn wait(&self) -> io::Result<ExitStatus> {
        let status = wait(self.pid);
        if let Some(helper) = self.helper {
            let _ = wait(helper);
        }
        status
    }
}

/// brr's pidfd, opened once; -1 where the kernel has no `pidfd_open`.
fn brr_pidfd() -> c_int {
    PIDFD
        .get_or_init(|| {
            let pid = rustix::process::getpid();
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        })
        .as_ref()
        .map_or(-1, AsRawFd::as_raw_fd)
}

/// `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)` running [`child_main`] on a
/// fresh stack, with every signal blocked in this thread meanwhile.
fn clone_vfork(args: &mut ChildArgs) -> io::Result<rustix::process::Pid> {
    // SAFETY: `child_main` only reads `args` and issues raw syscalls; `args`
    // outlives its use, since CLONE_VFORK suspends us until it execs or exits.
    unsafe { clone_suspended(child_main, std::ptr::from_mut(args).cast(), STACK_SIZE, 0) }
}

/// A child's stack: an anonymous mapping, unmapped on drop.
struct Stack {
    base: *mut c_void,
    size: usize,
}

impl Stack {
    fn map(size: usize) -> io::Result<Self> {
        // SAFETY: a new anonymous private mapping, owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { base, size })
    }

    /// Where a child starts using it: stacks grow down.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping this value owns.
        unsafe { self.base.cast::<u8>().add(self.size).cast::<c_void>() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns, used by no child any more.
        unsafe { libc::munmap(self.base, self.size) };
    }
}

thread_local! {
    /// The stack this thread's last child ran on, free again once that
    /// child exec'd or exited: reused, so a start maps and faults in no new
    /// memory.
    static SPARE_STACK: Cell<Option<Stack>> = const { Cell::new(None) };
    /// The same for the builder a child starts in a PID namespace.
    static SPARE_INIT_STACK: Cell<Option<Stack>> = const { Cell::new(None) };
}

/// This thread's spare stack of [`STACK_SIZE`] from `spare`, or a new one.
fn take_stack(spare: &'static std::thread::LocalKey<Cell<Option<Stack>>>) -> io::Result<Stack> {
    match spare.take() {
        Some(stack) if stack.size == STACK_SIZE => Ok(stack),
        _ => Stack::map(STACK_SIZE),
    }
}

/// `clone(CLONE_VM | CLONE_VFORK | extra_flags | SIGCHLD)` running `func(arg)`
/// on a stack of `stack_size` bytes, with every signal blocked in
/// this thread meanwhile (the child shares our memory: no handler of ours
/// may run in it). Returns once the child has exec'd or exited.
///
/// # Safety
/// `func` must only issue raw syscalls on data reachable from `arg` (no
/// allocation, no locks), and `arg` must stay valid until this returns.
pub(super) unsafe fn clone_suspended(
    func: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    stack_size: usize,
    extra_flags: c_int,
) -> io::Result<rustix::process::Pid> {
    let stack = match SPARE_STACK.take() {
        Some(spare) if spare.size == stack_size => spare,
        _ => Stack::map(stack_size)?,
    };
    // SAFETY: plain signal-mask calls on local sigsets; the stack grows down
    // from its top and no other child uses it (this thread is suspended
    // until this one is done with it); the caller vouches for `func` and `arg`.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let pid = libc::clone(func, stack.top(), libc::CLONE_VM | libc::CLONE_VFORK | extra_flags | libc::SIGCHLD, arg);
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        SPARE_STACK.set(Some(stack));
        if pid < 0 {
            return Err(err);
        }
        pid
    };
    rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("clone returned pid 0"))
}

/// The child, between `clone` and `execve`. Never returns.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent passed to clone.
    let args = unsafe { &*arg.cast::<ChildArgs>() };
    fail(args, run_child(args))
}

/// Leaves the error of a child's (or a builder's) setup for the parent and
/// exits. `Ok` cannot happen (the steps return only on failure).
fn fail(args: &ChildArgs, result: io::Result<()>) -> ! {
    let err = match result {
        Ok(()) => io::Error::from_raw_os_error(libc::EINVAL),
        Err(e) => e,
    };
    // Never 0, which means success to the parent.
    let code = err.raw_os_error().filter(|&c| c != 0).unwrap_or(libc::EINVAL);
    args.failed.store(code, Ordering::Release);
    // SAFETY: _exit skips every atexit handler, which belong to the parent.
    unsafe { libc::_exit(127) }
}

/// The child's steps; returns only on failure (or, having started the
/// builder in a PID namespace, once it has).
fn run_child(args: &ChildArgs) -> io::Result<()> {
    reset_signals();
    // A builder dies with the brr that started it: a killed brr must not
    // leave builders writing into sandboxes the next run removes.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if rustix::process::getppid() != Some(args.parent) {
        // The parent died before the death signal was armed.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    for (from, to) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
        // SAFETY: dup2 on descriptors the parent keeps open until we exec.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for &fd in &args.inherit {
        // SAFETY: clears FD_CLOEXEC in this child's own descriptor table
        // (no CLONE_FILES), on a descriptor the parent keeps open.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // With a fixed build path, the cwd exists only in the new root.
    if !args.setup.as_ref().is_some_and(ChildSetup::fixed_root) {
        chdir(args)?;
    }
    rustix::process::umask(args.umask);
    if let Some(set) = &args.cpus {
        rustix::thread::sched_setaffinity(None, set)?;
    }
    if let Some(limits) = &args.limits {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let limit = |bytes: u64| Rlimit { current: Some(bytes), maximum: Some(bytes) };
        setrlimit(Resource::Fsize, limit(limits.file_bytes))?;
        setrlimit(Resource::Data, limit(limits.data_bytes))?;
    }
    match &args.setup {
        Some(setup) if setup.pid_namespace() => {
            setup.enter_namespaces()?;
            if setup.fixed_root() {
                chdir(args)?;
            }
            // The builder becomes the first process of the new PID namespace,
            // so every process it starts ends when it does (the kernel kills
            // them, and brr's wait returns only once they are gone). With
            // CLONE_PARENT it is brr's child, not ours: we exit now.
            // SAFETY: `builder_main` only issues raw syscalls on `args`,
            // which the suspended parent keeps alive; the stack is unused.
            let pid = unsafe {
                libc::clone(
                    builder_main,
                    args.init_stack,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT | libc::SIGCHLD,
                    std::ptr::from_ref(args).cast_mut().cast(),
                )
            };
            if pid < 0 {
                return Err(child::failed(SetupStep::StartInit));
            }
            args.init_pid.store(pid, Ordering::Release);
            // SAFETY: _exit skips every atexit handler, which belong to the
            // parent. The builder reported its own failure, if any.
            unsafe { libc::_exit(0) }
        }
        Some(setup) => {
            own_process_group()?;
            setup.enter_namespaces()?;
            setup.confine()?;
        }
        None => own_process_group()?,
    }
    exec(args)
}

/// The builder in a new PID namespace, between its `clone` and `execve`.
extern "C" fn builder_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent passed on.
    let args = unsafe { &*arg.cast::<ChildArgs>() };
    fail(args, run_builder(args))
}

/// The builder's own steps; returns only on failure.
fn run_builder(args: &ChildArgs) -> io::Result<()> {
    // The death signal is not inherited; the parent it refers to is brr's
    // thread (CLONE_PARENT), which `getppid` cannot show from inside the
    // namespace: brr's pidfd tells whether it already died.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if args.brr_pidfd >= 0 {
        let mut poll = libc::pollfd { fd: args.brr_pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd, without waiting.
        if unsafe { libc::poll(&raw mut poll, 1, 0) } != 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    own_process_group()?;
    if let Some(setup) = &args.setup {
        setup.confine()?;
    }
    exec(args)
}

/// Default dispositions for every signal (this child has its own copy of the
/// table), then an empty mask, as a fresh process expects.
pub(super) fn reset_signals() {
    // SAFETY: syscalls on local data only.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
    }
}

/// Enters the builder's working directory.
fn chdir(args: &ChildArgs) -> io::Result<()> {
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::chdir(args.cwd.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Its own process group, so the caller can signal all it starts.
fn own_process_group() -> io::Result<()> {
    Ok(rustix::process::setpgid(None, None)?)
}

/// `execve`; returns only its error.
fn exec(args: &ChildArgs) -> io::Result<()> {
    // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays, alive
    // in the suspended parent.
    unsafe { libc::execve(args.program.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr()) };
    Err(io::Error::last_os_error())
}

/// Waits for `pid` to exit.
pub(super) fn wait(pid: rustix::process::Pid) -> io::Result<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
            Ok(None) => return Err(io::Error::other("waitpid returned no status")),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
