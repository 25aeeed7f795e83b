//! `verify` and `verify --report`.

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr verify --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Verify")]
pub struct VerifyDoc {
    pub targets: Vec<VerifyTarget>,
}

/// The rebuilds of one target and how their outputs differ.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyTarget {
    pub name: String,
    pub key: Hash,
    /// Every round succeeded with the same outputs.
    pub reproducible: bool,
    pub rounds: Vec<VerifyRound>,
    /// Every differing path of every round against round 1.
    pub differences: Vec<VerifyDifference>,
    /// What changes the outputs, found by re-running the build with one
    /// varied condition at a time; empty when reproducible.
    pub causes: Vec<VerifyCause>,
}

/// A condition that changes a target's outputs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyCause {
    /// `build_path`, `staging_order`, `env_order`, `umask`, `hostname`,
    /// `cpus`; `every_run` when even a re-run under round 1's conditions
    /// differs (the clock, randomness); `combination` when only several
    /// conditions together do.
    pub condition: String,
    /// E.g. "differs when the hostname changes".
    pub message: String,
}

/// One rebuild of one target.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyRound {
    /// 1-based; round 1 runs under the normal conditions.
    pub round: u32,
    /// What this round varied.
    pub varied: Vec<String>,
    /// Its output tree, when the builder succeeded.
    pub outputs: Option<Hash>,
    /// Why it failed, otherwise.
    pub failure: Option<String>,
}

/// One path that differs between round 1 and another round.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyDifference {
    /// The round that differed from round 1.
    pub round: u32,
    /// Relative to `$OUT`.
    pub path: String,
    pub change: DifferenceKind,
    /// Entry kinds (`file`, `executable`, `symlink`, `dir`) before and after,
    /// when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<(String, String)>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// A unified diff, for text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The first differing byte, for binaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference_offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceKind {
    Added,
    Removed,
    Changed,
}

impl From<&brr_verify::TargetReport> for VerifyTarget {
    fn from(r: &brr_verify::TargetReport) -> Self {
        Self {
            name: r.name.clone(),
            key: r.key.into(),
            reproducible: r.reproducible,
            rounds: r
                .rounds
                .iter()
                .map(|round| VerifyRound {
                    round: round.round,
                    varied: round.varied.clone(),
                    outputs: round.outputs.map(Hash::from),
                    failure: round.failure.clone(),
                })
                .collect(),
            differences: r
                .differences
                .iter()
                .map(|d| {
                    let diff = &d.difference;
                    VerifyDifference {
                        round: d.round,
                        path: diff.path.clone(),
                        change: match diff.change {
                            brr_verify::compare::ChangeKind::Added => DifferenceKind::Added,
                            brr_verify::compare::ChangeKind::Removed => DifferenceKind::Removed,
                            brr_verify::compare::ChangeKind::Changed => DifferenceKind::Changed,
                        },
                        kinds: diff.kinds.clone(),
                        size_before: diff.size_before,
                        size_after: diff.size_after,
                        diff: diff.diff.clone(),
                        first_difference_offset: diff.first_difference_offset,
                    }
                })
                .collect(),
            causes: r
                .causes
                .iter()
                .map(|c| VerifyCause {
                    condition: serde_json::to_value(c.condition)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    message: c.message.clone(),
                })
                .collect(),
        }
    }
}

/// `brr verify --report --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "VerifyReport")]
pub struct VerifyReportDoc {
    /// Targets verified in this store.
    pub verified: usize,
    /// Of them, the reproducible ones.
    pub reproducible: usize,
    /// The latest verification of each.
    pub targets: Vec<VerifyReportTarget>,
    /// Keys a remote cache holds another artifact for, as this runner's
    /// pushes recorded them (another machine built other bytes).
    pub cache_conflicts: Vec<super::cache::RecordedConflict>,
}

/// The latest verification of one target.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyReportTarget {
    pub name: String,
    pub key: Hash,
    pub reproducible: bool,
    /// How many times it was rebuilt.
    pub rounds: u32,
    /// Paths (relative to `$OUT`) that differed between rounds.
    pub differing: Vec<String>,
    /// Unix seconds.
    pub verified_at: i64,
}
