//! `brr run`, `brr ps`, `brr logs`, and the running half of `brr up`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use brr_hash::{ObjectKind, ReleaseHash};
use brr_run::{Options, Outcome, Reporter, Supervisor, Target};
use brr_store::Store;

use super::{existing_store, user_error};
use crate::output::run::{ProcessEntry, PsDoc};
use crate::output::{self, Hash};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

/// What `brr run` was asked for, besides the target.
pub struct RunArgs<'a> {
    pub processes: &'a [String],
    pub formation: BTreeMap<String, u32>,
    pub restart: brr_run::Restart,
    pub grace: Duration,
}

impl Default for RunArgs<'_> {
    fn default() -> Self {
        let defaults = Options::default();
        Self { processes: &[], formation: BTreeMap::new(), restart: defaults.restart, grace: defaults.grace }
    }
}

fn run_failure(e: brr_run::RunError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string(), None) } else { Failure::Internal(e.into()) }
}

/// `web=2,worker=1`.
pub fn parse_formation(text: &str) -> Result<BTreeMap<String, u32>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, count) = item.split_once('=').ok_or_else(|| format!("`{item}` is not TYPE=COUNT"))?;
        let count = count.parse::<u32>().map_err(|_| format!("`{count}` is not a count in `{item}`"))?;
        out.insert(name.to_owned(), count);
    }
    Ok(out)
}

/// The releases `asked` names: an environment (the current release of each
/// of its services) or a release hash or prefix. Anything else, a build
/// hash or a service name included, is refused.
fn resolve(settings: &Settings, store: &Store, asked: &str) -> Result<Vec<Target>, Failure> {
    if store.ledger_envs()?.iter().any(|e| e == asked) {
        let mut targets = Vec::new();
        for service in store.ledger_services(asked)? {
            if let Some(row) = store.ledger_current(asked, &service)? {
                printer::note(&format!(
                    "{asked}: `{service}` runs release {} (v{})",
                    row.entry.release, row.entry.version
                ));
                targets.push(Target { release: row.entry.release, service, env: Some(asked.to_owned()) });
            }
        }
        if targets.is_empty() {
            return Err(user_error(&format!("`{asked}` has no current release: every entry failed"), None));
        }
        return Ok(targets);
    }
    let expected = "`brr run` takes a release hash (or a unique prefix of 8+ characters) or an environment name";
    let looks_like_hash = asked.len() >= 8 && asked.bytes().all(|b| b.is_ascii_hexdigit());
    if looks_like_hash {
        let d = store.resolve_prefix(asked).map_err(|e| user_error(&format!("{e}"), Some(expected)))?;
        return match store.kind_of(d)? {
            Some(ObjectKind::Release) => {
                let release = ReleaseHash(d);
                let service =
                    store.ledger_last_of_release(release)?.map_or_else(|| "release".to_owned(), |r| r.entry.service);
                printer::note(&format!("running release {release}"));
                Ok(vec![Target { release, service, env: None }])
            }
            Some(ObjectKind::Artifact) => Err(user_error(
                &format!("`{asked}` is a build (artifact) hash, not a release: a build has no config to run with"),
                Some(&format!("{expected}; make a release with `brr release --env ENV`")),
            )),
            other => Err(user_error(
                &format!("`{asked}` is a {}, not a release", other.map_or("blob", ObjectKind::as_str)),
                Some(expected),
            )),
        };
    }
    let is_service = super::load_workspace(settings).ok().is_some_and(|ws| ws.get(asked).is_some());
    if is_service {
        return Err(user_error(
            &format!("`{asked}` is a service, not a release: runs name what they run by release hash"),
            Some(&format!("{expected}; e.g. `brr run staging` after `brr release --env staging`")),
        ));
    }
    let envs = store.ledger_envs()?;
    let known =
        if envs.is_empty() { String::new() } else { format!(" (environments with releases: {})", envs.join(", ")) };
    Err(user_error(
        &format!("`{asked}` is neither an environment with releases nor a release hash{known}"),
        Some(expected),
    ))
}

/// Prints a run's output: process lines on stdout (`web.1 | …`), the
/// supervisor's events on stderr.
struct Terminal {
    color: bool,
}

impl Terminal {
    fn label(&self, label: &str) -> String {
        if !self.color {
            return label.to_owned();
        }
        // A stable colour per process type.
        let colors = [36, 33, 32, 35, 34, 31];
        let sum: usize = label.bytes().map(usize::from).sum();
        format!("\x1b[{}m{label}\x1b[0m", colors[sum % colors.len()])
    }
}

impl Reporter for Terminal {
    fn line(&self, label: &str, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{} | {line}", self.label(label));
        let _ = out.flush();
    }

    fn event(&self, label: &str, what: &str) {
        printer::note(&format!("{} * {what}", self.label(label)));
    }
}

/// Stops on SIGINT or SIGTERM.
fn stop_flag() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// `brr run RELEASE|ENV`.
pub fn run(settings: &Settings, asked: &str, args: &RunArgs<'_>) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let targets = resolve(settings, &store, asked)?;
    supervise(&store, asked, &targets, args, false)
}

/// Runs `targets` until SIGINT or SIGTERM; with `announce`, waits for
/// readiness first and prints where the web processes answer.
pub fn supervise(
    store: &Store,
    asked: &str,
    targets: &[Target],
    args: &RunArgs<'_>,
    announce: bool,
) -> Result<(), Failure> {
    let stop = stop_flag()?;
    let units = brr_run::plan(store, targets, args.processes, &args.formation).map_err(run_failure)?;
    let secrets = brr_run::secrets_of(&units).map_err(|e| {
        user_error(
            &format!("{e}, needed to run `{asked}`"),
            Some("export each secret in the environment that runs brr"),
        )
    })?;
    let opts = Options { restart: args.restart, grace: args.grace, ..Options::default() };
    let color = printer::color() && std::io::stdout().is_terminal();
    let masking = secrets.clone();
    let mut sup = Supervisor::start(store, asked, &units, secrets, opts, |id| {
        let path = brr_run::log_path(store, id);
        let file = std::fs::File::options().create(true).append(true).open(&path).ok();
        brr_run::Output::new(Box::new(Terminal { color }), file, masking)
    })
    .map_err(run_failure)?;
    printer::note(&format!("run {} started; stop it with Ctrl-C (SIGINT) or SIGTERM; `brr ps` shows it", sup.id()));
    if announce {
        if sup.wait_ready(Duration::from_secs(60), &stop) {
            for (service, port) in sup.routers() {
                printer::note(&format!("{service}: web answers at http://127.0.0.1:{port}/"));
            }
        } else {
            printer::note("warning: not every process became ready within 60 s; see the lines above");
        }
    } else {
        for (service, port) in sup.routers() {
            printer::note(&format!("{service}: web is routed from port {port}"));
        }
    }
    let env_of: BTreeMap<String, Option<String>> = targets.iter().map(|t| (t.service.clone(), t.env.clone())).collect();
    sup.supervise(
        &stop,
        |service| {
            let env = env_of.get(service)?.as_deref()?;
            store.ledger_current(env, service).ok().flatten().map(|r| r.entry.release)
        },
        |service, release| {
            let env = env_of.get(service).cloned().flatten();
            let target = Target { release, service: service.to_owned(), env };
            brr_run::plan(store, &[target], args.processes, &args.formation)
        },
    );
    printer::note("stopping: SIGTERM to every process, then SIGKILL after the grace period");
    let outcome = sup.shutdown();
    match outcome {
        Outcome::Stopped => {
            printer::note("every process stopped");
            Ok(())
        }
        Outcome::Forced => {
            printer::note("stopped, but some processes had to be killed (SIGKILL) after the grace period");
            Err(Failure::Exit(exit::FAILED))
        }
        Outcome::Failed => {
            printer::note("stopped; a process type had failed (start limit reached)");
            Err(Failure::Exit(exit::FAILED))
        }
    }
}

/// `brr ps`: processes of running runs (and of lost and recent ones).
pub fn ps(settings: &Settings, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let now = brr_release::now_ms();
    let mut entries = Vec::new();
    for run in store.runs_recent(10)? {
        let run_state = match &run.outcome {
            Some(o) => o.clone(),
            None if brr_run::supervisor_alive(&store, run.id) => "running".to_owned(),
            None => "lost".to_owned(),
        };
        for p in store.run_processes(run.id)? {
            // A running run lists what runs: instances a switch replaced are history.
            if run_state == "running" && p.state == "stopped" {
                continue;
            }
            let state = if run_state == "lost" && !matches!(p.state.as_str(), "stopped" | "exited" | "failed") {
                "lost".to_owned()
            } else {
                p.state.clone()
            };
            let up = matches!(state.as_str(), "running" | "ready");
            entries.push(ProcessEntry {
                run: run.id,
                run_state: run_state.clone(),
                release: Hash::from(p.release),
                process: p.process.clone(),
                instance: p.instance,
                pid: p.pid.filter(|_| up),
                state,
                restarts: p.restarts,
                last_exit: p.last_exit.clone(),
                port: p.port,
                uptime_s: p.started_ms.filter(|_| up).map(|s| u64::try_from((now - s).max(0) / 1000).unwrap_or(0)),
            });
        }
    }
    if json {
        return output::print(&PsDoc { processes: entries });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<5} {:<9} {:<12} {:<10} {:<8} {:<9} {:>6} {:>8} {:>5}  last exit",
        "run", "run state", "release", "process", "pid", "state", "port", "uptime", "rest."
    )?;
    for e in &entries {
        writeln!(
            out,
            "{:<5} {:<9} {:<12} {:<10} {:<8} {:<9} {:>6} {:>8} {:>5}  {}",
            e.run,
            e.run_state,
            &e.release.to_string()[..12],
            format!("{}.{}", e.process, e.instance),
            e.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            e.state,
            e.port.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            e.uptime_s.map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            e.restarts,
            e.last_exit.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// `brr logs [RUN|ENV] [--process TYPE] [--follow]`.
pub fn logs(settings: &Settings, which: Option<&str>, process: Option<&str>, follow: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let runs = store.runs_recent(1000)?;
    let run = match which {
        None => runs.iter().max_by_key(|r| r.id),
        Some(w) => match w.parse::<i64>() {
            Ok(id) => runs.iter().find(|r| r.id == id),
            Err(_) => runs.iter().filter(|r| r.asked == w).max_by_key(|r| r.id),
        },
    };
    let Some(run) = run else {
        let what =
            which.map_or_else(|| "no runs in this store".to_owned(), |w| format!("no run of `{w}` in this store"));
        return Err(user_error(&what, Some("start one with `brr run ENV`")));
    };
    let path = brr_run::log_path(&store, run.id);
    let keep = |line: &str| {
        process.is_none_or(|p| {
            let label = line.split([' ']).next().unwrap_or("");
            label.starts_with(&format!("{p}.")) || label.contains(&format!(".{p}."))
        })
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => return Err(user_error(&format!("run {} has no log at `{}`: {e}", run.id, path.display()), None)),
    };
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut file, &mut line)?;
        if n == 0 {
            if follow && brr_run::supervisor_alive(&store, run.id) {
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            break;
        }
        if keep(&line) {
            out.write_all(line.as_bytes())?;
        }
    }
    Ok(())
}
