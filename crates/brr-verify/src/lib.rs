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
//!
//! When a round's outputs differ, verify looks for the cause: it re-runs the
//! build once under round 1's conditions (a difference then is the clock or
//! randomness), and otherwise once per condition that round varied, with
//! that condition alone changed ([`conditions::Condition`]). That is at
//! most one build per condition, and only for targets that differ.

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
use conditions::Condition;
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
    #[error("cannot write the diffoscope report `{}`", path.display())]
    DiffoscopeReport {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// A condition found to change a target's outputs.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    pub condition: Condition,
    /// E.g. "differs when the hostname changes".
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    pub key: BuildKey,
    pub reproducible: bool,
    pub rounds: Vec<Round>,
    pub differences: Vec<RoundDifference>,
    /// What changes the outputs, when they differ (see the crate docs).
    pub causes: Vec<Cause>,
}

/// Receives progress, implemented by the CLI.
pub trait Progress: Sync {
    fn round_started(&self, target: &str, round: u32, rounds: u32);
    /// A re-run that checks whether `condition` alone changes the outputs.
    fn checking_cause(&self, _target: &str, _condition: Condition) {}
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
    let causes = match rounds[0].outputs {
        Some(reference) if !differences.is_empty() => {
            let differing: Vec<&Conditions> = rounds
                .iter()
                .zip(conds)
                .filter(|(r, _)| r.outputs.is_some_and(|t| t != reference))
                .map(|(_, c)| c)
                .collect();
            let check = Check { store, action: &action, opts, progress, target: &pkg.name };
            find_causes(&check, reference, &conds[0], &differing, last_end)?
        }
        _ => Vec::new(),
    };
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
    Ok(TargetReport { name: pkg.name.clone(), key: action.key_hash, reproducible, rounds, differences, causes })
}

/// What a cause check re-runs.
struct Check<'a> {
    store: &'a Store,
    action: &'a brr_exec::action::Action<'a>,
    opts: &'a VerifyOptions,
    progress: &'a dyn Progress,
    target: &'a str,
}

impl Check<'_> {
    /// Whether a build under `cond` makes other outputs than `reference`
    /// (a failed build counts as other).
    fn differs(&self, cond: &Conditions, condition: Condition, reference: TreeHash) -> Result<bool, VerifyError> {
        self.progress.checking_cause(self.target, condition);
        Ok(run_builder(self.store, self.action, self.opts.isolate, cond)?.map_or(true, |ran| ran.outputs != reference))
    }
}

/// The conditions that change the outputs: `EveryRun` if round 1's own
/// conditions do (later, so at another time), else each condition a
/// `differing` round varied that does alone, else `Combination`.
fn find_causes(
    check: &Check<'_>,
    reference: TreeHash,
    normal: &Conditions,
    differing: &[&Conditions],
    last_end: Option<u64>,
) -> Result<Vec<Cause>, VerifyError> {
    let fixed_path = check.opts.isolate && brr_exec::sandbox::isolation().fixed_path();
    let cause = |condition: Condition| Cause { condition, message: condition.message(fixed_path).to_owned() };
    if let Some(s) = last_end {
        wait_past(s);
    }
    if check.differs(normal, Condition::EveryRun, reference)? {
        return Ok(vec![cause(Condition::EveryRun)]);
    }
    let mut tried = BTreeSet::new();
    let mut found = Vec::new();
    for varied in differing {
        for condition in Condition::VARIED {
            if !condition.varied(varied, normal) || !tried.insert(condition) {
                continue;
            }
            if check.differs(&condition.alone(varied, normal), condition, reference)? {
                found.push(cause(condition));
            }
        }
    }
    if found.is_empty() {
        found.push(cause(Condition::Combination));
    }
    Ok(found)
}

/// A diffoscope report, written to a file in the store.
#[derive(Debug, Clone)]
pub struct DiffoscopeReport {
    /// `<store>/verify/<target>-<key prefix>-r<round>.diffoscope.txt`.
    pub path: PathBuf,
    /// How many lines it has.
    pub lines: usize,
    /// Its first lines, for the terminal.
    pub head: Vec<String>,
}

/// Lines of a diffoscope report shown on the terminal.
const DIFFOSCOPE_HEAD: usize = 12;

/// Runs diffoscope on round 1's outputs (`a`) and round `round`'s (`b`) of
/// `target`, if it is installed, writing its text report to a file in the
/// store: a report of a large binary runs to tens of thousands of lines.
pub fn diffoscope(
    store: &Store,
    target: &str,
    key: BuildKey,
    round: u32,
    a: TreeHash,
    b: TreeHash,
) -> Result<Option<DiffoscopeReport>, VerifyError> {
    use std::io::BufRead;
    let found = brr_graph::which("diffoscope", &std::env::var_os("PATH").unwrap_or_default())
        .map_err(|e| VerifyError::Exec(e.into()))?;
    let Some(program) = found else {
        return Ok(None);
    };
    let dir = tempfile::tempdir_in(store.tmp_dir()).map_err(VerifyError::Diffoscope)?;
    let (pa, pb): (PathBuf, PathBuf) = (dir.path().join("first-round"), dir.path().join("other-round"));
    store.materialize(a, &pa, false)?;
    store.materialize(b, &pb, false)?;
    let reports = store.root().join("verify");
    let path = reports.join(format!("{target}-{}-r{round}.diffoscope.txt", &key.to_string()[..12]));
    let written = |source| VerifyError::DiffoscopeReport { path: path.clone(), source };
    std::fs::create_dir_all(&reports).map_err(written)?;
    let status = std::process::Command::new(program)
        .arg("--no-progress")
        .arg("--text")
        .arg(&path)
        // Relative: the report names the rounds, not a folder removed after.
        .arg("first-round")
        .arg("other-round")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(VerifyError::Diffoscope)?;
    // 0: no difference, 1: differences; anything else is its own failure.
    if !matches!(status.code(), Some(0 | 1)) {
        return Err(VerifyError::Diffoscope(std::io::Error::other(format!("diffoscope ended with {status}"))));
    }
    let read = std::io::BufReader::new(std::fs::File::open(&path).map_err(written)?);
    let mut head = Vec::new();
    let mut lines = 0;
    for line in read.lines() {
        let line = line.map_err(written)?;
        if head.len() < DIFFOSCOPE_HEAD {
            head.push(line);
        }
        lines += 1;
    }
    Ok(Some(DiffoscopeReport { path, lines, head }))
}
