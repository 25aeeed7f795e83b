//! One process instance (`web.1`): a thread that starts it, probes it until
//! it is ready, watches it, restarts it by its policy with backoff and a
//! start limit, and stops it when asked (SIGTERM, its grace, SIGKILL). It
//! reports every change to the supervisor.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::BorrowedFd;

use rustix::event::{PollFd, PollFlags};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use brr_hash::ReleaseHash;
use brr_process::{Child, Command, Output, Signal};

use crate::probe::Prober;
use crate::{Options, Output as RunOutput, Probe, Restart};

/// Which instance a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub release: ReleaseHash,
    pub process: String,
    pub instance: u32,
}

/// What an instance thread tells the supervisor.
#[derive(Debug)]
pub enum Report {
    Started {
        key: Key,
        pid: u32,
    },
    Ready {
        key: Key,
    },
    Exited {
        key: Key,
        status: String,
    },
    Backoff {
        key: Key,
        delay: Duration,
    },
    /// The start limit was hit, or it cannot start at all.
    Failed {
        key: Key,
        reason: String,
    },
    /// Stopped on request; `forced` when it needed SIGKILL.
    Stopped {
        key: Key,
        status: String,
        forced: bool,
    },
    /// Ended by its policy (an exit that is not restarted).
    Done {
        key: Key,
    },
}

/// What an instance runs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub key: Key,
    /// `web.1`, or `api.web.1` in a run of several services.
    pub label: String,
    pub program: String,
    pub args: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub port: u16,
    /// A `web` process: behind its service's router once ready.
    pub web: bool,
    /// Its policy, grace and probe: declared, or the defaults.
    pub restart: Restart,
    pub grace: Duration,
    pub ready: Probe,
    /// The run's cgroup, which the process joins before it runs.
    pub cgroup: Option<Arc<brr_process::Cgroup>>,
}

/// A stop request to one instance: a flag, and a pipe that wakes the
/// instance's thread, which otherwise sleeps until its process exits (so an
/// idle run costs no wake-ups).
#[derive(Debug)]
pub struct Stop {
    flag: AtomicBool,
    read: std::io::PipeReader,
    write: std::io::PipeWriter,
}

impl Stop {
    pub fn new() -> std::io::Result<Self> {
        let (read, write) = std::io::pipe()?;
        Ok(Self { flag: AtomicBool::new(false), read, write })
    }

    /// Asks the instance to stop; it wakes at once.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = (&self.write).write_all(b"x");
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps until a stop request, `fd` becoming readable (a child's pidfd),
    /// or `timeout` (`None`: no limit).
    fn sleep(&self, fd: Option<BorrowedFd<'_>>, timeout: Option<Duration>) {
        if self.requested() {
            return;
        }
        let timeout = timeout.map(|t| rustix::event::Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = vec![PollFd::new(&self.read, PollFlags::IN)];
        if let Some(fd) = fd {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
    }
}

/// Runs the instance until it is stopped, fails or ends; reports on `tx`.
pub fn run(spec: &Spec, opts: &Options, stop: &Stop, tx: &Sender<Report>, out: &Arc<RunOutput>) {
    let mut starts: Vec<Instant> = Vec::new();
    let mut delay = opts.first_delay;
    loop {
        if stop.requested() {
            let _ = tx.send(Report::Stopped { key: spec.key.clone(), status: "not running".into(), forced: false });
            return;
        }
        let now = Instant::now();
        starts.retain(|t| now.duration_since(*t) < opts.start_interval);
        if starts.len() >= opts.start_limit as usize {
            let reason = format!(
                "started {} times within {} s: start limit reached",
                starts.len(),
                opts.start_interval.as_secs()
            );
            let _ = tx.send(Report::Failed { key: spec.key.clone(), reason });
            return;
        }
        starts.push(now);
        let started_at = Instant::now();
        let mut child = match spawn(spec, out) {
            Ok(c) => c,
            Err(reason) => {
                out.event(&spec.label, &reason);
                let _ = tx.send(Report::Exited { key: spec.key.clone(), status: reason });
                if !backoff(spec, opts, &mut delay, stop, tx, false) {
                    return;
                }
                continue;
            }
        };
        let _ = tx.send(Report::Started { key: spec.key.clone(), pid: child.pid() });
        let mut prober = Prober::new(&spec.ready, spec.port);
        let mut ready = false;
        // Watch it: exit, readiness, or a stop request.
        let status = loop {
            if !ready && prober.poll(&spec.dir, &spec.env) {
                ready = true;
                let _ = tx.send(Report::Ready { key: spec.key.clone() });
            }
            if stop.requested() {
                drop(prober);
                let (status, forced) = match child.terminate(spec.grace) {
                    Ok(s) => (s.to_string(), s.killed_by(Signal::Kill)),
                    Err(e) => (e.to_string(), true),
                };
                let _ = tx.send(Report::Stopped { key: spec.key.clone(), status, forced });
                return;
            }
            // Until it exits or a stop comes; while a probe is pending,
            // every 10 ms to probe again.
            stop.sleep(Some(child.pidfd()), (!ready).then_some(Duration::from_millis(10)));
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Report::Failed { key: spec.key.clone(), reason: e.to_string() });
                    return;
                }
            }
        };
        drop(prober);
        let succeeded = status.success();
        let _ = tx.send(Report::Exited { key: spec.key.clone(), status: status.to_string() });
        let restart = match spec.restart {
            Restart::Never => false,
            Restart::OnFailure => !succeeded,
            Restart::Always => true,
        };
        if !restart {
            let _ = tx.send(Report::Done { key: spec.key.clone() });
            return;
        }
        // Up long enough: the next failure starts the backoff over.
        let stayed_up = started_at.elapsed() >= opts.reset_after;
        if !backoff(spec, opts, &mut delay, stop, tx, stayed_up) {
            return;
        }
    }
}

/// Waits out the next backoff delay (reporting it); false when stopped
/// meanwhile.
fn backoff(spec: &Spec, opts: &Options, delay: &mut Duration, stop: &Stop, tx: &Sender<Report>, reset: bool) -> bool {
    if reset {
        *delay = opts.first_delay;
    }
    let _ = tx.send(Report::Backoff { key: spec.key.clone(), delay: *delay });
    let until = Instant::now() + *delay;
    *delay = (*delay * 2).min(opts.max_delay);
    while Instant::now() < until {
        if stop.requested() {
            let _ = tx.send(Report::Stopped { key: spec.key.clone(), status: "not running".into(), forced: false });
            return false;
        }
        stop.sleep(None, Some(until.saturating_duration_since(Instant::now())));
    }
    true
}

/// Starts the process with its output read line by line into `out`.
fn spawn(spec: &Spec, out: &Arc<RunOutput>) -> Result<Child, String> {
    // A relative path is taken from the working directory, the release.
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .cwd(&spec.dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Output::Pipe)
        .stderr(Output::Pipe)
        .own_process_group(true)
        .death_signal(Some(Signal::Kill))
        .cgroup(spec.cgroup.as_deref())
        .spawn()
        .map_err(|e| brr_process::error_chain(&e))?;
    for stream in [
        child.take_stdout().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.take_stderr().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = Arc::clone(out);
        let label = spec.label.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                out.line(&label, String::from_utf8_lossy(&line).trim_end_matches('\n'));
                line.clear();
            }
        });
    }
    Ok(child)
}
