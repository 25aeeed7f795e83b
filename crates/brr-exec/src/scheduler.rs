//! Running the selected part of the DAG in parallel.
//!
//! A target becomes ready when all its dependencies have finished. Its key is
//! then computed from their **artifact** hashes (early cutoff), looked up in
//! the action cache, and built only on a miss. A failed target skips its
//! dependents; independent targets go on. Finished builds are stored in
//! groups by the committer (`commit`).

mod commit;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use brr_graph::{Inputs, Workspace, action_key, service_manifest};
use brr_hash::{Artifact, ArtifactHash, BuildKey, Object};
use brr_store::{ActionRecord, BuildRow, Store, StoreError};

use self::commit::{Commits, ToCommit, commit, committer};
use crate::action::{Action, Conditions, Failure, FailureCause, execute_uncommitted, unix_now};
use crate::error::ExecError;
pub use crate::explain::{Planned, plan};

/// How to build.
#[derive(Clone, Copy)]
pub struct BuildOptions<'a> {
    /// Builders running at once.
    pub jobs: usize,
    /// Use namespaces and Landlock where available (`--no-sandbox` clears it).
    pub isolate: bool,
    /// Remote caches: asked on a local miss, pushed to after a build.
    pub remotes: Option<&'a brr_remote::remotes::Remotes>,
    /// Where sandboxes are made (default: the store's `tmp/`); a tmpfs such
    /// as `/dev/shm` saves file-system work on many small builds.
    pub sandbox_dir: Option<&'a std::path::Path>,
    /// Where cache-missing builds run instead of here (only when isolated:
    /// remote execution needs the fixed build path).
    pub remote_exec: Option<&'a std::sync::Arc<crate::remote_exec::RemoteExecutor>>,
}

/// How a target ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Built,
    Cached,
    Failed(Failure),
    /// Not attempted because this dependency failed.
    Skipped {
        dependency: String,
    },
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Built => "built",
            Self::Cached => "cached",
            Self::Failed(_) => "failed",
            Self::Skipped { .. } => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    /// Cached because a remote cache had it.
    pub remote: bool,
    pub key: Option<BuildKey>,
    pub artifact: Option<ArtifactHash>,
    pub status: Status,
    /// For a build whose builder ran, from the builder's start to its
    /// outputs (or, if it failed, its log) being written: not the wait for
    /// a `-j` permit or for the group commit. Otherwise from when the
    /// target was ready.
    pub duration: Duration,
}

/// Receives progress; implemented by the CLI's printer.
pub trait Reporter: Sync {
    /// A target's builder process is about to start (it holds a `-j` permit).
    fn started(&self, name: &str);
    fn finished(&self, outcome: &Outcome);
}

/// The cached artifact of `key`, with `manifest` applied: a changed process
/// or release command makes a new artifact without re-running the builder.
pub(crate) fn cached_artifact(
    store: &Store,
    key: BuildKey,
    action: &Action<'_>,
) -> Result<Option<ArtifactHash>, ExecError> {
    match store.lookup_action(key)? {
        Some(rec) => Ok(Some(artifact_of(store, &rec, action)?)),
        None => Ok(None),
    }
}

/// The artifact of a cached action with the action's current manifest,
/// recomputed in memory: the same hash as recorded unless the manifest
/// changed, and only then is a new artifact object written.
fn artifact_of(store: &Store, rec: &ActionRecord, action: &Action<'_>) -> Result<ArtifactHash, ExecError> {
    let outputs = match rec.outputs {
        Some(t) => t,
        None => store.get_object::<Artifact>(rec.artifact.0)?.outputs,
    };
    let fresh = Artifact { outputs, manifest: action.manifest.clone() };
    let hash = fresh.hash();
    if hash != rec.artifact {
        store.put_object(&fresh)?;
    }
    Ok(hash)
}

/// The fast path: every target whose key is in the local action cache,
/// found level by level of the DAG with one database read per level. A
/// no-op build ends here without a thread pool.
fn resolve_cached(
    ws: &Workspace,
    inputs: &Inputs,
    store: &Store,
    mask: &[bool],
) -> Result<Vec<Option<Outcome>>, ExecError> {
    let n = ws.packages.len();
    let mut done: Vec<Option<Outcome>> = vec![None; n];
    let mut level = vec![0usize; n];
    // Packages are in topological order, so dependencies come first.
    for i in 0..n {
        level[i] = ws.packages[i].deps.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    let top = level.iter().copied().max().unwrap_or(0);
    for l in 0..=top {
        // Keys are independent within a level: computed in parallel.
        let this_level: Vec<usize> = (0..n).filter(|&i| mask[i] && level[i] == l).collect();
        let batch: Vec<(usize, Action<'_>)> = this_level
            .par_iter()
            .with_min_len(64)
            .filter_map(|&i| {
                let deps: Option<BTreeMap<String, ArtifactHash>> = ws.packages[i]
                    .deps
                    .iter()
                    .map(|&d| Some((ws.packages[d].name.clone(), done[d].as_ref()?.artifact?)))
                    .collect();
                Some((i, make_action(ws, inputs, i, deps?)))
            })
            .collect();
        let keys: Vec<BuildKey> = batch.iter().map(|(_, a)| a.key_hash).collect();
        let recs = store.lookup_actions(&keys)?;
        let hits: Vec<(usize, BuildKey, ArtifactHash)> = batch
            .par_iter()
            .with_min_len(64)
            .zip(recs)
            .filter_map(|((i, action), rec)| Some(artifact_of(store, &rec?, action).map(|a| (*i, action.key_hash, a))))
            .collect::<Result<_, ExecError>>()?;
        for (i, key, artifact) in hits {
            done[i] = Some(Outcome {
                name: ws.packages[i].name.clone(),
                remote: false,
                key: Some(key),
                artifact: Some(artifact),
                status: Status::Cached,
                duration: Duration::ZERO,
            });
        }
    }
    Ok(done)
}

/// The build action of package `i`, given its dependencies' artifacts.
pub fn make_action<'a>(
    ws: &'a Workspace,
    inputs: &'a Inputs,
    i: usize,
    deps: BTreeMap<String, ArtifactHash>,
) -> Action<'a> {
    let pkg = &ws.packages[i];
    let key = action_key(pkg, inputs.sources[i], &inputs.tools[i], &inputs.host[i], deps);
    let key_hash = BuildKey(key.digest());
    Action { pkg, key, key_hash, leaves: inputs.leaves(i), tools: &inputs.tools[i], manifest: service_manifest(pkg) }
}

struct State {
    /// Dependencies not finished yet, per target.
    waiting: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    /// Build history, written in one transaction at the end.
    history: Vec<BuildRow>,
}

/// Builds the targets selected by `mask`, dependencies first, in parallel.
pub fn build(
    ws: &Workspace,
    inputs: &Inputs,
    store: &Store,
    mask: &[bool],
    opts: &BuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Vec<Outcome>, ExecError> {
    let n = ws.packages.len();
    let resolved = resolve_cached(ws, inputs, store, mask)?;
    let mut history = Vec::new();
    for o in resolved.iter().flatten() {
        reporter.finished(o);
        history.extend(history_row(o));
    }
    if (0..n).all(|i| !mask[i] || resolved[i].is_some()) {
        store.record_builds(&history)?;
        return Ok(resolved.into_iter().flatten().collect());
    }
    crate::stage::clean_stale(&store.tmp_dir());
    for dir in opts.sandbox_dir.into_iter().chain(crate::stage::tmpfs_base()) {
        crate::stage::clean_stale(dir);
    }
    let dependents = ws.dependents();
    // What is left waits only for dependencies that are not resolved yet.
    let waiting =
        (0..n).map(|i| ws.packages[i].deps.iter().filter(|&&d| mask[d] && resolved[d].is_none()).count()).collect();
    let state = Mutex::new(State { waiting, outcomes: resolved, history });
    let cond = Conditions {
        builders: Some(std::sync::Arc::new(crate::action::Permits::new(opts.jobs))),
        // One network namespace per permit, made once instead of per builder.
        net_slots: if opts.isolate {
            crate::sandbox::net_slots(opts.jobs.max(1)).map(std::sync::Arc::new)
        } else {
            None
        },
        // Where the pipe cannot be made, builders still get `$BRR_JOBS`.
        jobserver: crate::jobserver::Jobserver::new(&store.tmp_dir(), opts.jobs).ok().map(std::sync::Arc::new),
        remote_exec: opts.remote_exec.filter(|_| opts.isolate).cloned(),
        ..Conditions::normal(opts.sandbox_dir)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pool_threads(
            opts.jobs.max(1),
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            opts.remotes.is_some(),
        ))
        .thread_name(|i| format!("brr-build-{i}"))
        .build()
        .map_err(|e| ExecError::Io { path: "thread pool".into(), source: std::io::Error::other(e) })?;

    let commits = Mutex::new(Commits::default());
    let commit_wake = Condvar::new();
    let in_flight = AtomicUsize::new(0);
    let ctx = Ctx {
        ws,
        inputs,
        store,
        mask,
        opts,
        cond: &cond,
        reporter,
        dependents: &dependents,
        state: &state,
        commits: &commits,
        commit_wake: &commit_wake,
        in_flight: &in_flight,
    };
    let ctx = &ctx;
    // A sandbox is handed on only where every process of the build that
    // used it is known to be gone: in a PID namespace. Without namespaces a
    // `setsid` daemon could outlive its build and write into the next one's.
    // `--no-sandbox` asks for no protection and keeps the speed.
    let _reuse = (!opts.isolate || crate::sandbox::isolation().namespaces()).then(crate::stage::Reuse::begin);
    pool.scope(|scope| {
        let roots: Vec<usize> = {
            let st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (0..n).filter(|&i| mask[i] && st.outcomes[i].is_none() && st.waiting[i] == 0).collect()
        };
        for i in roots {
            spawn_target(scope, i, ctx);
        }
        // On this thread, which the targets' tasks leave to the committer.
        committer(scope, ctx);
    });
    let st = state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    store.record_builds(&st.history)?;
    Ok(st.outcomes.into_iter().flatten().collect())
}

/// Threads for a build with `jobs` builders: the committer, a thread per
/// builder, and spare threads that stage the next sandboxes and store
/// finished outputs while the builders run. Spare threads pay only where
/// the builders leave CPUs idle (fewer builders than CPUs) or while remote
/// caches are waited on; where the builders fill the CPUs, as with the
/// default `-j`, they only competed with them (unsandboxed cold 550-action
/// build on 2 CPUs, `-j 2`: 0.71 s with 3 threads, 0.77 s with 5).
fn pool_threads(jobs: usize, cpus: usize, remotes: bool) -> usize {
    let spare = if remotes { jobs } else { jobs.min(cpus.saturating_sub(jobs)) };
    1 + jobs + spare
}

/// Runs target `i` on the pool, counted in `in_flight` until its task ends.
fn spawn_target<'s>(scope: &rayon::Scope<'s>, i: usize, ctx: &'s Ctx<'s>) {
    ctx.in_flight.fetch_add(1, Ordering::SeqCst);
    scope.spawn(move |s| {
        run_one(s, i, ctx);
        if ctx.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so the committer cannot miss it.
            let _q = ctx.commits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            ctx.commit_wake.notify_all();
        }
    });
}

/// Runs target `i`; once it is finished (for a build: committed), spawns
/// the dependents it made ready.
fn run_one<'s>(scope: &rayon::Scope<'s>, i: usize, ctx: &'s Ctx<'s>) {
    match ctx.target(i) {
        Step::Finished(outcome) => finish(scope, i, outcome, ctx),
        Step::Commit(built) => commit(built, ctx),
    }
}

/// Reports and records the outcome of target `i`, then spawns the
/// dependents it made ready.
fn finish<'s>(scope: &rayon::Scope<'s>, i: usize, outcome: Outcome, ctx: &'s Ctx<'s>) {
    ctx.reporter.finished(&outcome);
    let ready: Vec<usize> = {
        let mut st = ctx.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(row) = history_row(&outcome) {
            st.history.push(row);
        }
        st.outcomes[i] = Some(outcome);
        let mut ready = Vec::new();
        for &d in &ctx.dependents[i] {
            if ctx.mask[d] {
                st.waiting[d] -= 1;
                if st.waiting[d] == 0 {
                    ready.push(d);
                }
            }
        }
        ready
    };
    for d in ready {
        spawn_target(scope, d, ctx);
    }
}

/// What running a target came to.
enum Step {
    Finished(Outcome),
    Commit(ToCommit),
}

struct Ctx<'a> {
    ws: &'a Workspace,
    inputs: &'a Inputs,
    store: &'a Store,
    mask: &'a [bool],
    opts: &'a BuildOptions<'a>,
    cond: &'a Conditions,
    reporter: &'a dyn Reporter,
    dependents: &'a [Vec<usize>],
    state: &'a Mutex<State>,
    commits: &'a Mutex<Commits>,
    commit_wake: &'a Condvar,
    /// Targets spawned whose task has not ended.
    in_flight: &'a AtomicUsize,
}

impl Ctx<'_> {
    /// Decides and runs one target whose dependencies have all finished.
    fn target(&self, i: usize) -> Step {
        let pkg = &self.ws.packages[i];
        let start = Instant::now();
        let done = |key, artifact, status| Outcome {
            name: pkg.name.clone(),
            remote: false,
            key,
            artifact,
            status,
            duration: start.elapsed(),
        };
        let mut deps = BTreeMap::new();
        {
            let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for &d in &pkg.deps {
                let dep = st.outcomes[d]
                    .as_ref()
                    .and_then(|o| o.artifact.filter(|_| matches!(o.status, Status::Built | Status::Cached)));
                let Some(a) = dep else {
                    let dependency = self.ws.packages[d].name.clone();
                    return Step::Finished(done(None, None, Status::Skipped { dependency }));
                };
                deps.insert(self.ws.packages[d].name.clone(), a);
            }
        }
        let action = make_action(self.ws, self.inputs, i, deps);
        let key = action.key_hash;
        let result = (|| -> Result<Step, ExecError> {
            if let Some(a) = cached_artifact(self.store, key, &action)? {
                return Ok(Step::Finished(done(Some(key), Some(a), Status::Cached)));
            }
            if let Some(remotes) = self.opts.remotes
                && remotes.fetch(self.store, key).is_some()
                && let Some(a) = cached_artifact(self.store, key, &action)?
            {
                return Ok(Step::Finished(Outcome { remote: true, ..done(Some(key), Some(a), Status::Cached) }));
            }
            let started = || self.reporter.started(&pkg.name);
            let held = self.inputs.take_held(i);
            Ok(match execute_uncommitted(self.store, &action, held, self.opts.isolate, self.cond, &started)? {
                Ok(built) => Step::Commit(ToCommit { i, key, started: start, done: built }),
                Err((f, took)) => Step::Finished(Outcome {
                    duration: took.unwrap_or_else(|| start.elapsed()),
                    ..done(Some(key), None, Status::Failed(f))
                }),
            })
        })();
        result.unwrap_or_else(|e| {
            let cause = if matches!(e, ExecError::Store(StoreError::Corrupt { .. })) {
                FailureCause::DamagedStore
            } else {
                FailureCause::Environment
            };
            Step::Finished(failed(&pkg.name, key, start, error_chain(&e), cause))
        })
    }
}

/// The outcome of a target that could not be built at all: brr failed to
/// run or store it (the builder's own failures are not made here).
fn failed(name: &str, key: BuildKey, started: Instant, reason: String, cause: FailureCause) -> Outcome {
    Outcome {
        name: name.to_owned(),
        remote: false,
        key: Some(key),
        artifact: None,
        status: Status::Failed(Failure { reason, log: None, log_tail: String::new(), cause }),
        duration: started.elapsed(),
    }
}

/// The build-history row of an outcome (none for a target never keyed).
fn history_row(o: &Outcome) -> Option<BuildRow> {
    let log = match &o.status {
        Status::Failed(f) => f.log,
        _ => None,
    };
    Some(BuildRow {
        target: o.name.clone(),
        key: o.key?,
        artifact: o.artifact,
        status: o.status.as_str().to_owned(),
        log,
        started_at: unix_now(),
        duration_ms: u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::pool_threads;

    #[test]
    fn spare_threads_only_where_builders_leave_cpus_idle_or_remotes_are_waited_on() {
        // The committer and one thread per builder, always.
        assert_eq!(pool_threads(2, 2, false), 3);
        assert_eq!(pool_threads(4, 2, false), 5);
        // Idle CPUs: up to one spare thread per builder.
        assert_eq!(pool_threads(2, 8, false), 5);
        assert_eq!(pool_threads(2, 3, false), 4);
        // Remote caches: one spare per builder whatever the CPUs.
        assert_eq!(pool_threads(2, 2, true), 5);
    }
}
