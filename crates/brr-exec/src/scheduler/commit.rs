//! The group commit: finished builds are queued and stored together, one
//! sync and one transaction for a group, by a committer that runs on the
//! thread owning the build's scope.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use brr_hash::{BuildKey, Digest};

use super::{Ctx, Outcome, Status, error_chain, failed, finish};
use crate::action::{FailureCause, Uncommitted};

/// Builds nobody waits for are committed in groups of up to this many…
const COMMIT_BATCH: usize = 32;
/// …or at most this long after the first of them finished: every commit
/// costs a sync and rewrites most of the index pages it touches (object
/// hashes are random), which is most of what storing a small build costs.
/// Measured on the 550-action bench: 32 builds or 30 ms took about 4% less
/// time than 8 or 10 ms; larger groups gained nothing more.
const COMMIT_DELAY: Duration = Duration::from_millis(30);

/// Queues a finished build for the [`committer`]. A build some selected
/// target depends on is committed at once (its dependents start only then),
/// unless enough other targets are in flight to keep the builders busy.
pub(super) fn commit(built: ToCommit, ctx: &Ctx<'_>) {
    // Awaited only while the builders could run short of work: with more
    // targets in flight than two per builder, the dependents can wait for
    // the next group commit (at most COMMIT_DELAY), and fewer commits cost
    // fewer syncs and fewer b-tree pages written.
    let awaited = ctx.dependents[built.i].iter().any(|&d| ctx.mask[d])
        && ctx.in_flight.load(Ordering::SeqCst) <= ctx.opts.jobs.max(1) * 2;
    let mut q = ctx.commits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    q.since.get_or_insert_with(Instant::now);
    q.queued.push(built);
    q.awaited |= awaited;
    // The first one starts the committer's clock.
    if q.queued.len() == 1 || q.awaited || q.queued.len() >= COMMIT_BATCH {
        ctx.commit_wake.notify_all();
    }
}

/// Runs for the whole build on the thread that owns the scope: commits all
/// queued builds together (one sync and one transaction) as soon as one of
/// them is awaited, [`COMMIT_BATCH`] are queued, the oldest has waited
/// [`COMMIT_DELAY`], or nothing else is running. A build counts as built,
/// and is reported, once committed. Returns when no target is running and
/// nothing is queued.
pub(super) fn committer<'s>(scope: &rayon::Scope<'s>, ctx: &'s Ctx<'s>) {
    let mut q = ctx.commits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let idle = ctx.in_flight.load(Ordering::SeqCst) == 0;
        let waited = q.since.map_or(Duration::ZERO, |t| t.elapsed());
        if q.queued.is_empty() {
            if idle {
                return;
            }
            q = ctx.commit_wake.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        }
        if !(q.awaited || q.queued.len() >= COMMIT_BATCH || waited >= COMMIT_DELAY || idle) {
            q = ctx
                .commit_wake
                .wait_timeout(q, COMMIT_DELAY.saturating_sub(waited))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            continue;
        }
        let batch = std::mem::take(&mut q.queued);
        q.awaited = false;
        q.since = None;
        drop(q);
        for (i, outcome, log) in ctx.commit_all(batch) {
            if let (Some(remotes), Status::Built, Some(key), Some(artifact)) =
                (ctx.opts.remotes, &outcome.status, outcome.key, outcome.artifact)
            {
                // On the pool: the committer does not wait on the network.
                scope.spawn(move |_| {
                    remotes.push(ctx.store, key, artifact, Some(log));
                });
            }
            finish(scope, i, outcome, ctx);
        }
        q = ctx.commits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// Builds waiting for their commit.
#[derive(Default)]
pub(super) struct Commits {
    queued: Vec<ToCommit>,
    /// When the oldest of them was queued.
    since: Option<Instant>,
    /// Some queued build is a dependency of a selected target.
    awaited: bool,
}

/// A build of target `i` that only lacks its commit.
pub(super) struct ToCommit {
    pub(super) i: usize,
    pub(super) key: BuildKey,
    pub(super) started: Instant,
    pub(super) done: Uncommitted,
}

impl Ctx<'_> {
    /// Commits `batch` (see [`commit`]); the outcome of each target, and
    /// its build's log.
    fn commit_all(&self, batch: Vec<ToCommit>) -> Vec<(usize, Outcome, Digest)> {
        let (meta, batches): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|c| ((c.i, c.key, c.started, c.done.built, c.done.took), (c.done.batch, Some(c.done.record))))
            .unzip();
        let results = self.store.commit(&batches);
        meta.into_iter()
            .enumerate()
            .map(|(n, (i, key, started, built, took))| {
                let name = &self.ws.packages[i].name;
                let result = match &results {
                    Ok(each) => each[n].as_ref().map(|&()| ()).map_err(|e| error_chain(e)),
                    Err(e) => Err(error_chain(e)),
                };
                let outcome = match result {
                    Ok(()) => Outcome {
                        name: name.clone(),
                        remote: false,
                        key: Some(key),
                        artifact: Some(built.artifact),
                        status: Status::Built,
                        duration: took,
                    },
                    Err(reason) => failed(name, key, started, reason, FailureCause::Environment),
                };
                (i, outcome, built.log)
            })
            .collect()
    }
}
