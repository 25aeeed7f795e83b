//! Reproducibility verification.
//!
//! `verify` rebuilds each target several times without the cache (its
//! dependencies come from the normal build) and compares the outputs of
//! every round with the first, file by file. Round 0 runs under the normal
//! build conditions; later rounds vary what a reproducible build must not
//! depend on ([`conditions`]): the sandbox path and file system, the order
//! inputs are staged in, the order of environment variables, the umask, the
//! hostname, the number of visible CPUs, and the wall-clock time (a round
//! starts in a later second than the previous one ended). Results are recorded in the store.

pub mod compare;
pub mod conditions;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brr_exec::action::{Conditions, run_builder};
use brr_exec::scheduler::make_action;
use brr_graph::{Inputs, Workspace};
use brr_hash::{ArtifactHash, BuildKey, TreeHash};
use brr_store::{Store, StoreError, Verification};
use compare::Difference;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Exec(#[from] brr_exec::ExecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dependency `{dependency}` of `{target}` has no artifact: build it first")]
    MissingDependency { target: String, dependency: String },
    #[error("cannot run diffoscope")]
    Diffoscope(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Rebuilds per target (at least 2).
    pub rounds: u32,
    /// Namespaces and Landlock, as for builds.
    pub isolate: bool,
}

/// One rebuild of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 1-based; round 1 runs under the normal conditions.
    pub round: u32,
    /// What this round varied against round 0.
    pub varied: Vec<String>,
    /// Its output tree, when the builder succeeded.
    pub outputs: Option<TreeHash>,
    /// Why it failed, otherwise.
    pub failure: Option<String>,
}

/// One difference of one round against round 0.
#[derive(Debug, Clone, Serialize)]
pub struct RoundDifference {
    /// The (1-based) round that differed from round 1.
    pub round: u32,
    #[serde(flatten)]
    pub difference: Difference,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    pub key: BuildKey,
    pub reproducible: bool,
    pub rounds: Vec<Round>,
    pub differences: Vec<RoundDifference>,
}

/// Receives progress, implemented by the CLI.
pub trait Progress: Sync {
    fn round_started(&self, target: &str, round: u32, rounds: u32);
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sleeps until the wall clock has left second `s`.
fn wait_past(s: u64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if now.as_secs() != s {
            return;
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos()))));
    }
}

/// Verifies `targets` (indices into the workspace), whose dependencies have
/// the artifacts in `artifacts` (by package index).
pub fn verify(
    ws: &Workspace,
    inputs: &Inputs,
    store: &Store,
    targets: &[usize],
    artifacts: &BTreeMap<usize, ArtifactHash>,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Vec<TargetReport>, VerifyError> {
    let rounds = opts.rounds.max(2);
    let conds: Vec<Conditions> = (0..rounds).map(|r| conditions::for_round(store, r)).collect();
    // Targets run side by side (each waits out whole seconds between its
    // rounds); rounds of one target run one after the other.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(targets.len().clamp(1, 16)).build();
    let run = || {
        use rayon::prelude::*;
        targets.par_iter().map(|&i| verify_one(ws, inputs, store, i, artifacts, &conds, opts, progress)).collect()
    };
    let result: Result<Vec<TargetReport>, VerifyError> = match &pool {
        Ok(p) => p.install(run),
        Err(_) => run(),
    };
    for dir in conds.iter().filter_map(|c| c.sandbox_dir.as_ref()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir(store.tmp_dir().join("verify"));
    result
}

#[expect(clippy::too_many_arguments, reason = "one call site, all context")]
fn verify_one(
    ws: &Workspace,
    inputs: &Inputs,
    store: &Store,
    i: usize,
    artifacts: &BTreeMap<usize, ArtifactHash>,
    conds: &[Conditions],
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<TargetReport, VerifyError> {
    let pkg = &ws.packages[i];
    let mut deps = BTreeMap::new();
    for &d in &pkg.deps {
        let a = artifacts.get(&d).ok_or_else(|| VerifyError::MissingDependency {
            target: pkg.name.clone(),
            dependency: ws.packages[d].name.clone(),
        })?;
        deps.insert(ws.packages[d].name.clone(), *a);
    }
    let action = make_action(ws, inputs, i, deps);
    let total = u32::try_from(conds.len()).unwrap_or(u32::MAX);
    let mut rounds = Vec::new();
    // Each round starts in a later second than the previous one ended, so
    // anything a builder reads off the clock differs between rounds.
    let mut last_end = None;
    for (r, cond) in (0..).zip(conds) {
        if let Some(s) = last_end {
            wait_past(s);
        }
        progress.round_started(&pkg.name, r + 1, total);
        let varied = conditions::describe(cond, &conds[0]);
        let round = match run_builder(store, &action, opts.isolate, cond)? {
            Ok(ran) => Round { round: r + 1, varied, outputs: Some(ran.outputs), failure: None },
            Err(f) => Round { round: r + 1, varied, outputs: None, failure: Some(f.reason) },
        };
        rounds.push(round);
        last_end = Some(now_secs());
    }
    let mut differences = Vec::new();
    if let Some(reference) = rounds[0].outputs {
        for round in &rounds[1..] {
            if let Some(t) = round.outputs.filter(|t| *t != reference) {
                for d in compare::compare(store, reference, t)? {
                    differences.push(RoundDifference { round: round.round, difference: d });
                }
            }
        }
    }
    let reproducible = differences.is_empty() && rounds.iter().all(|r| r.outputs.is_some());
    let differing: BTreeSet<String> = differences.iter().map(|d| d.difference.path.clone()).collect();
    store.record_verification(&Verification {
        target: pkg.name.clone(),
        key: action.key_hash,
        rounds: total,
        reproducible,
        outputs: rounds.iter().filter_map(|r| r.outputs).collect(),
        differing: differing.into_iter().collect(),
        verified_at: i64::try_from(now_secs()).unwrap_or(i64::MAX),
    })?;
    Ok(TargetReport { name: pkg.name.clone(), key: action.key_hash, reproducible, rounds, differences })
}

/// Runs diffoscope on two output trees, if it is installed; its text report.
pub fn diffoscope(store: &Store, a: TreeHash, b: TreeHash) -> Result<Option<String>, VerifyError> {
    let found = brr_graph::which("diffoscope", &std::env::var_os("PATH").unwrap_or_default())
        .map_err(|e| VerifyError::Exec(e.into()))?;
    let Some(program) = found else {
        return Ok(None);
    };
    let dir = tempfile::tempdir_in(store.tmp_dir()).map_err(VerifyError::Diffoscope)?;
    let (pa, pb): (PathBuf, PathBuf) = (dir.path().join("first-round"), dir.path().join("other-round"));
    store.materialize(a, &pa, false)?;
    store.materialize(b, &pb, false)?;
    let out = std::process::Command::new(program)
        .arg("--no-progress")
        .arg(&pa)
        .arg(&pb)
        .current_dir(dir.path())
        .output()
        .map_err(VerifyError::Diffoscope)?;
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}
