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
//! `ChildSetup::apply` does: raw syscalls on data prepared here (no
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
use super::child::ChildSetup;

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
    umask: rustix::fs::Mode,
    cpus: Option<rustix::thread::CpuSet>,
    parent: rustix::process::Pid,
    setup: Option<ChildSetup>,
    /// The error code of the step that failed, written by the child before
    /// it exits; 0 while none failed.
    failed: AtomicI32,
}

/// Every builder's stdin, opened once.
static DEV_NULL: OnceLock<File> = OnceLock::new();
/// brr's pid, which its builders check they still have as parent.
static PID: OnceLock<rustix::process::Pid> = OnceLock::new();

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// Starts `spec`'s program with stdout and stderr on `log` and `log_err`,
/// stdin on `/dev/null`, after `setup`. Returns the child's pid once it has
/// called `execve`, or the error of the step that failed (encoded as
/// `ChildSetup::apply` encodes it).
pub(super) fn spawn(
    spec: &SandboxSpec,
    setup: Option<ChildSetup>,
    log: &File,
    log_err: &File,
) -> io::Result<rustix::process::Pid> {
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
        umask: rustix::fs::Mode::from_raw_mode(spec.umask),
        cpus,
        parent: *PID.get_or_init(rustix::process::getpid),
        setup,
        failed: AtomicI32::new(0),
    };
    let pid = clone_vfork(&mut child)?;
    // The child has exec'd or exited: what it wrote is visible now.
    match child.failed.load(Ordering::Acquire) {
        0 => Ok(pid),
        code => {
            // The child reported a failure and exited: reap it.
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            Err(io::Error::from_raw_os_error(code))
        }
    }
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
        let top = stack.base.cast::<u8>().add(stack_size).cast::<c_void>();
        let pid = libc::clone(func, top, libc::CLONE_VM | libc::CLONE_VFORK | extra_flags | libc::SIGCHLD, arg);
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
    let err = match run_child(args) {
        Ok(()) => io::Error::from_raw_os_error(libc::EINVAL),
        Err(e) => e,
    };
    // Never 0, which means success to the parent.
    let code = err.raw_os_error().filter(|&c| c != 0).unwrap_or(libc::EINVAL);
    args.failed.store(code, Ordering::Release);
    // SAFETY: _exit skips every atexit handler, which belong to the parent.
    unsafe { libc::_exit(127) }
}

/// The child's steps; returns only on failure.
fn run_child(args: &ChildArgs) -> io::Result<()> {
    // SAFETY: syscalls on prepared data only (see the module docs).
    unsafe {
        // Default dispositions for every signal (this child has its own copy
        // of the table), then an empty mask, as a fresh process expects.
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
    // A builder dies with the brr that started it: a killed brr must not
    // leave builders writing into sandboxes the next run removes.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if rustix::process::getppid() != Some(args.parent) {
        // The parent died before the death signal was armed.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // Its own process group, so the caller can signal all it starts.
    rustix::process::setpgid(None, None)?;
    for (from, to) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
        // SAFETY: dup2 on descriptors the parent keeps open until we exec.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::chdir(args.cwd.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    rustix::process::umask(args.umask);
    if let Some(set) = &args.cpus {
        rustix::thread::sched_setaffinity(None, set)?;
    }
    if let Some(setup) = &args.setup {
        setup.apply()?;
    }
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
