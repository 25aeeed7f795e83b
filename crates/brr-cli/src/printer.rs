//! All terminal output. Progress bars on a terminal, plain lines otherwise;
//! `NO_COLOR` honoured. Data goes to stdout, everything else to stderr.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use brr_exec::{Outcome, Reporter, Status, sandbox};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

pub fn install_miette_hook() {
    let color = color();
    let _ = miette::set_hook(Box::new(move |_| {
        let theme = if color { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
        Box::new(miette::GraphicalReportHandler::new_themed(theme).with_context_lines(2))
    }));
}

/// True when stdout's reader has gone: a pipe whose read end is closed
/// (`brr show HASH | head`) reports `POLLERR` to its writer.
pub fn stdout_closed() -> bool {
    let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&raw mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// True when `e` is a write failing because stdout's reader went away (and
/// not some other broken pipe, such as a remote cache's connection).
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    let broken = e
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
    broken && stdout_closed()
}

/// `println!` panics when stdout's reader has gone (Rust ignores SIGPIPE);
/// that panic ends the process quietly with success instead, wherever in
/// any command it printed. Every other panic is reported as before.
pub fn install_closed_stdout_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && stdout_closed() {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Prints a line to stderr (a warning, a note), above any progress bar.
pub fn note(line: &str) {
    eprintln!("{line}");
}

/// Writes `line` and a newline to stderr in one system call: unbuffered
/// `eprintln!` writes each piece of its format separately, and a build of
/// many small targets prints two lines per target.
fn stderr_line(line: &str) {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// Build progress: a bar on a terminal, one line per finished target otherwise.
pub struct BuildProgress {
    bar: Option<ProgressBar>,
    running: Mutex<Vec<String>>,
    /// Sandboxed builds: say once, when the first builder starts, if the
    /// kernel refused namespaces. Not before: probing starts a process, which
    /// a build of cached targets has no reason to pay for.
    isolate: bool,
    isolation_noted: std::sync::Once,
}

impl BuildProgress {
    pub fn new(total: usize, isolate: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar, running: Mutex::new(Vec::new()), isolate, isolation_noted: std::sync::Once::new() }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(b) => b.println(s),
            None => stderr_line(&s),
        }
    }

    fn update(&self) {
        if let Some(b) = &self.bar {
            let running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            b.set_message(format!("building {}", running.join(", ")));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Reporter for BuildProgress {
    fn started(&self, name: &str) {
        // Probed only for sandboxed builds: the probe starts a process.
        self.isolation_noted.call_once(|| {
            if !self.isolate {
                return;
            }
            if let sandbox::Isolation::Off { reason, landlock } = sandbox::isolation() {
                let extra = if *landlock { " (Landlock still confines writes)" } else { "" };
                self.line(format!("warning: builds run without namespaces{extra}: {reason}"));
            }
        });
        if self.bar.is_none() {
            stderr_line(&format!("   building {name}"));
            return;
        }
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name.to_owned());
        self.update();
    }

    fn finished(&self, o: &Outcome) {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|n| n != &o.name);
        let secs = o.duration.as_secs_f64();
        let line = match &o.status {
            Status::Built => format!("      built {} ({secs:.2}s)", o.name),
            // A no-op build of thousands of targets should not print thousands
            // of lines: cached targets only count in the summary.
            Status::Cached => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                return;
            }
            Status::Failed(f) => format!("     FAILED {} ({secs:.2}s): {}", o.name, f.reason),
            Status::Skipped { dependency } => format!("    skipped {} (dependency `{dependency}` failed)", o.name),
        };
        self.line(line);
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        self.update();
    }
}

/// Phase timings on stderr when `BRR_TIMINGS` is set, for profiling.
pub struct Timings {
    last: Option<std::sync::Mutex<std::time::Instant>>,
}

impl Timings {
    pub fn from_env() -> Self {
        let on = std::env::var_os("BRR_TIMINGS").is_some();
        Self { last: on.then(|| std::sync::Mutex::new(std::time::Instant::now())) }
    }

    /// Prints the time since the previous mark, labelled, the resident
    /// memory so far (its peak is what the benchmark reports), and the CPU
    /// time so far of brr itself and of the builders it waited for.
    pub fn mark(&self, phase: &str) {
        if let Some(last) = &self.last {
            let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // VmHWM: the peak resident set, in kB.
            let peak = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned())))
                .unwrap_or_default();
            // User and system CPU time so far, in ms.
            let cpu_ms = |who| {
                // SAFETY: getrusage fills the zeroed struct it is given.
                let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                unsafe { libc::getrusage(who, &raw mut ru) };
                let ms = |t: libc::timeval| t.tv_sec.saturating_mul(1000).saturating_add(t.tv_usec / 1000);
                (ms(ru.ru_utime), ms(ru.ru_stime), ru.ru_minflt, ru.ru_nvcsw + ru.ru_nivcsw)
            };
            let (own, builders) = (cpu_ms(libc::RUSAGE_SELF), cpu_ms(libc::RUSAGE_CHILDREN));
            eprintln!(
                "timing: {phase:<16} {:>8.1} ms   peak {peak}   cpu (user+sys ms): brr {}+{}, builders {}+{}   brr: {} page faults, {} context switches",
                last.elapsed().as_secs_f64() * 1000.0,
                own.0,
                own.1,
                builders.0,
                builders.1,
                own.2,
                own.3
            );
            *last = std::time::Instant::now();
        }
    }
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn fmt_time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}
