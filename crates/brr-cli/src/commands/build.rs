//! `brr build`: build the selected targets and print their artifact hashes.

use brr_exec::action::FailureCause;
use brr_exec::remote_exec::RemoteExecutor;
use brr_exec::{BuildOptions, Outcome, Status};
use brr_graph::{Inputs, Workspace};
use brr_remote::remotes::Remotes;
use brr_store::{CacheRun, CacheRunTarget, Store};

use super::{graph_failure, open_store_and_workspace};
use crate::output::build::{BuildDoc, BuildStatus, BuildTarget, RemoteCacheStats, RemoteExecStats};
use crate::output::{self, Hash};
use crate::printer::{self, BuildProgress};
use crate::settings::Settings;
use crate::{Failure, exit};

/// `brr build`'s flags.
pub struct Options<'a> {
    pub jobs: Option<usize>,
    pub no_sandbox: bool,
    pub fail_on_conflict: bool,
    /// `--out-link PATH`: link the one target's artifact there.
    pub out_link: Option<&'a std::path::Path>,
    pub json: bool,
}

pub fn run(settings: &Settings, targets: &[String], opts: &Options<'_>) -> Result<(), Failure> {
    let &Options { jobs, no_sandbox, fail_on_conflict, out_link, json } = opts;
    if out_link.is_some() && targets.len() != 1 {
        return Err(Failure::User(miette::miette!(
            help = "run one `brr build --out-link PATH TARGET` per target",
            "--out-link takes exactly one target, not {}",
            targets.len()
        )));
    }
    if let Some(path) = out_link {
        super::out_link::check(&settings.cwd.join(path))?;
    }
    let timings = printer::Timings::from_env();
    let (store, ws) = open_store_and_workspace(settings)?;
    timings.mark("store + workspace");
    let mask = ws.select(targets).map_err(graph_failure)?;
    let (outcomes, RunRemotes { cache: remotes, exec }) =
        build_mask(settings, &store, &ws, &mask, jobs, no_sandbox, &timings)?;

    let failed: Vec<_> = outcomes.iter().filter(|o| matches!(o.status, Status::Failed(_))).collect();
    if json {
        print_json(&outcomes, remotes.as_ref(), exec.as_deref())?;
    } else {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for o in &outcomes {
            if let Some(a) = o.artifact {
                writeln!(out, "{}  {}  {}", a, o.status.as_str(), o.name)?;
            }
        }
        out.flush()?;
    }
    let built = outcomes.iter().filter(|o| o.status == Status::Built).count();
    let cached = outcomes.iter().filter(|o| o.status == Status::Cached).count();
    let skipped = outcomes.iter().filter(|o| matches!(o.status, Status::Skipped { .. })).count();
    printer::note(&format!(
        "{} targets: {built} built, {cached} cached, {} failed, {skipped} skipped",
        outcomes.len(),
        failed.len()
    ));
    if let Some(x) = &exec {
        printer::note(&RemoteExecStats::from(&x.stats).summary());
    }
    let mut conflicts = 0;
    if let Some(r) = &remotes {
        use std::fmt::Write as _;
        let s = RemoteCacheStats::from(r);
        let mut line = format!(
            "remote cache: {} hits, {} misses, {} pushed; {} bytes down, {} bytes up; {:.1}s waiting",
            s.hits,
            s.misses,
            s.pushed,
            s.bytes_down,
            s.bytes_up,
            r.stats.wait().as_secs_f64()
        );
        for (n, what) in [(s.healed, "healed"), (s.conflicts, "conflicts"), (s.errors, "errors")] {
            if n > 0 {
                let _ = write!(line, "; {n} {what}");
            }
        }
        printer::note(&line);
        conflicts = s.conflicts;
        record_cache_run(&store, &outcomes, &s);
    }
    if let (Some(path), true) = (out_link, failed.is_empty()) {
        link_target(settings, &store, targets, &outcomes, path)?;
    }
    if failed.is_empty() {
        if conflicts > 0 && (fail_on_conflict || settings.fail_on_conflict) {
            printer::note(&format!(
                "error: {conflicts} target(s) built to other bytes than a remote's entry for the same key (not \
                 reproducible); failing as --fail-on-conflict or BRR_FAIL_ON_CONFLICT asks"
            ));
            printer::note("hint: `brr cache status` lists the conflicts this runner recorded");
            return Err(Failure::Exit(exit::FAILED));
        }
        return Ok(());
    }
    Err(Failure::Exit(report_failures(&failed)))
}

/// `--out-link PATH`: links the one target asked for (not its dependencies).
fn link_target(
    settings: &Settings,
    store: &Store,
    targets: &[String],
    outcomes: &[Outcome],
    path: &std::path::Path,
) -> Result<(), Failure> {
    let named = targets.first().and_then(|t| outcomes.iter().find(|o| &o.name == t));
    if let Some(artifact) = named.and_then(|o| o.artifact) {
        let folder = super::out_link::link(store, artifact, &settings.cwd.join(path))?;
        printer::note(&format!("linked `{}` -> `{}`", path.display(), folder.display()));
    }
    Ok(())
}

/// Keeps this build's remote-cache statistics for `brr cache stats`: the
/// targets fetched, and those built here (a miss), with their durations.
fn record_cache_run(store: &Store, outcomes: &[Outcome], s: &RemoteCacheStats) {
    let targets: Vec<CacheRunTarget> = outcomes
        .iter()
        .filter(|o| o.remote || o.status == Status::Built)
        .map(|o| CacheRunTarget {
            name: o.name.clone(),
            hit: o.remote,
            build_ms: if o.remote { 0 } else { u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX) },
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let run = CacheRun {
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        hits: s.hits,
        misses: s.misses,
        pushed: s.pushed,
        bytes_down: s.bytes_down,
        bytes_up: s.bytes_up,
        wait_ms: s.wait_ms,
        targets,
    };
    if let Err(e) = store.record_cache_run(&run) {
        printer::note(&format!("warning: cannot record the remote cache statistics: {e}"));
    }
}

/// `brr build --json`'s document.
fn print_json(outcomes: &[Outcome], remotes: Option<&Remotes>, exec: Option<&RemoteExecutor>) -> Result<(), Failure> {
    let targets = outcomes
        .iter()
        .map(|o| {
            let (reason, log) = match &o.status {
                Status::Failed(f) => (Some(f.reason.clone()), Some(f.log.map(Hash::from))),
                Status::Skipped { dependency } => (Some(format!("dependency `{dependency}` failed")), None),
                Status::Built | Status::Cached => (None, None),
            };
            BuildTarget {
                name: o.name.clone(),
                key: o.key.map(Hash::from),
                artifact: o.artifact.map(Hash::from),
                status: match o.status {
                    Status::Built => BuildStatus::Built,
                    Status::Cached => BuildStatus::Cached,
                    Status::Failed(_) => BuildStatus::Failed,
                    Status::Skipped { .. } => BuildStatus::Skipped,
                },
                remote: o.remote,
                reason,
                log,
            }
        })
        .collect();
    output::print(&BuildDoc {
        targets,
        remote_cache: remotes.map(RemoteCacheStats::from),
        remote_exec: exec.map(|x| RemoteExecStats::from(&x.stats)),
    })?;
    Ok(())
}

/// The remotes of one run: caches and the executor, each when configured
/// (and reachable, for the executor).
pub struct RunRemotes {
    pub cache: Option<Remotes>,
    pub exec: Option<std::sync::Arc<RemoteExecutor>>,
}

/// Builds the targets `mask` selects, with progress on stderr.
pub fn build_mask(
    settings: &Settings,
    store: &Store,
    ws: &Workspace,
    mask: &[bool],
    jobs: Option<usize>,
    no_sandbox: bool,
    timings: &printer::Timings,
) -> Result<(Vec<Outcome>, RunRemotes), Failure> {
    let inputs = Inputs::hash_holding(ws, store, mask).map_err(graph_failure)?;
    timings.mark("hash inputs");
    let remotes = super::remote::open(settings, ws)?;
    // `--no-sandbox` builds here: remote execution needs the fixed build path.
    let exec = if no_sandbox {
        None
    } else {
        RemoteExecutor::connect(ws.decl.remote_exec.as_deref()).map(std::sync::Arc::new)
    };
    let opts = BuildOptions {
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)),
        isolate: !no_sandbox,
        remotes: remotes.as_ref(),
        sandbox_dir: settings.sandbox_dir.as_deref(),
        remote_exec: exec.as_ref(),
    };
    let progress = BuildProgress::new(mask.iter().filter(|m| **m).count(), !no_sandbox);
    // The stat cache is written while the first builds run: nothing in a
    // build reads it, and a cold build's first builders wait on nothing else.
    let (outcomes, recorded) = std::thread::scope(|s| {
        let recorded = s.spawn(|| inputs.record_stats(store));
        let outcomes = brr_exec::build(ws, &inputs, store, mask, &opts, &progress);
        (outcomes, recorded.join())
    });
    let outcomes = outcomes?;
    recorded.unwrap_or_else(|panic| std::panic::resume_unwind(panic)).map_err(graph_failure)?;
    progress.finish();
    timings.mark("build");
    Ok((outcomes, RunRemotes { cache: remotes, exec }))
}

/// Builds what a release needs; fails (after reporting why) unless every
/// build succeeded.
pub fn build_for_release(
    settings: &Settings,
    store: &Store,
    ws: &Workspace,
    mask: &[bool],
    no_sandbox: bool,
) -> Result<Vec<Outcome>, Failure> {
    let (outcomes, _) = build_mask(settings, store, ws, mask, None, no_sandbox, &printer::Timings::from_env())?;
    let failed: Vec<_> = outcomes.iter().filter(|o| matches!(o.status, Status::Failed(_))).collect();
    if failed.is_empty() {
        return Ok(outcomes);
    }
    let code = report_failures(&failed);
    printer::note("error: nothing was released: a build failed");
    Err(Failure::Exit(code))
}

/// Prints why each failed target failed; returns the exit code.
fn report_failures(failed: &[&Outcome]) -> u8 {
    for o in failed {
        if let Status::Failed(f) = &o.status {
            printer::note(&format!("\nerror: `{}` failed: {}", o.name, f.reason));
            if !f.log_tail.is_empty() {
                for l in f.log_tail.lines() {
                    printer::note(&format!("  | {l}"));
                }
            }
            if f.log.is_some() {
                printer::note(&format!("hint: full log: `brr log {}`", o.name));
            }
        }
    }
    // A damaged store or a full disk is brr's failure, not the builders'.
    let causes: Vec<FailureCause> = failed
        .iter()
        .filter_map(|o| match &o.status {
            Status::Failed(f) => Some(f.cause),
            _ => None,
        })
        .collect();
    if causes.contains(&FailureCause::DamagedStore) {
        printer::note(
            "hint: run `brr store verify --repair` to drop the damaged objects and what depends on them; the next \
             build writes them again",
        );
        return exit::INTERNAL;
    }
    if causes.iter().any(|c| c.is_environment()) { exit::INTERNAL } else { exit::FAILED }
}
