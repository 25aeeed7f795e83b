//! `release`, `promote`, `rollback`, `up`, `releases`, `diff` and `ledger verify`.

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr release|promote|rollback|up --json`: one entry per service.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Release")]
pub struct ReleaseDoc {
    pub releases: Vec<ReleaseEntry>,
}

/// A release made (or, for a no-op promotion, found already current).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleaseEntry {
    pub service: String,
    pub env: String,
    /// The ledger version appended; for a no-op, the current one.
    pub version: u64,
    pub release: Hash,
    /// The build hash (artifact).
    pub build: Hash,
    pub config: Hash,
    pub action: Action,
    pub status: EntryStatus,
    /// True when nothing was appended: the target already runs this release.
    pub noop: bool,
    /// The release phase's stored output (`brr log --release`).
    pub log: Option<Hash>,
    /// The materialized, read-only release folder.
    pub dir: String,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Release,
    Promote,
    Rollback,
}

impl From<brr_hash::LedgerAction> for Action {
    fn from(a: brr_hash::LedgerAction) -> Self {
        match a {
            brr_hash::LedgerAction::Release => Self::Release,
            brr_hash::LedgerAction::Promote => Self::Promote,
            brr_hash::LedgerAction::Rollback => Self::Rollback,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    Succeeded,
    Failed,
}

impl From<brr_hash::ReleaseStatus> for EntryStatus {
    fn from(s: brr_hash::ReleaseStatus) -> Self {
        match s {
            brr_hash::ReleaseStatus::Succeeded => Self::Succeeded,
            brr_hash::ReleaseStatus::Failed => Self::Failed,
        }
    }
}

/// `brr releases --env ENV [SERVICE] --json`: the ledger, newest first.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Releases")]
pub struct ReleasesDoc {
    pub releases: Vec<LedgerEntry>,
}

/// One ledger entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LedgerEntry {
    pub service: String,
    pub env: String,
    pub version: u64,
    pub release: Hash,
    pub build: Hash,
    pub config: Hash,
    pub action: Action,
    pub status: EntryStatus,
    /// Whether this entry is the service's current release in `env`.
    pub current: bool,
    pub actor: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub note: Option<String>,
    /// Promotions: the environment the build came from.
    pub source_env: Option<String>,
    /// Promotions: its version there.
    pub source_version: Option<u64>,
    /// This entry's link in the environment's hash chain.
    pub hash: Hash,
}

/// `brr diff A B --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Diff")]
pub struct DiffDoc {
    pub a: DiffSide,
    pub b: DiffSide,
    /// Files of the build that differ, sorted by path.
    pub files: Vec<FileChange>,
    /// Config vars that differ.
    pub vars: Vec<VarChange>,
    /// Secret names only: their values are never stored.
    pub secrets_added: Vec<String>,
    pub secrets_removed: Vec<String>,
    /// Process types that differ in their command (or exist on one side).
    pub processes: Vec<CommandChange>,
    /// Settings of process types on both sides that differ.
    pub process_settings: Vec<SettingChange>,
    /// The release command, when it differs.
    pub release_command: Option<CommandChange>,
}

/// One side of a diff.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffSide {
    /// `env@vN`, or the release hash.
    pub label: String,
    pub release: Hash,
    pub build: Hash,
    pub config: Hash,
    pub service: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileChange {
    /// Relative to the release folder.
    pub path: String,
    pub change: FileChangeKind,
    /// Bytes on side A; `null` when absent there.
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VarChange {
    pub name: String,
    /// `null` when absent on side A.
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandChange {
    /// The process type, or `release` for the release command.
    pub name: String,
    pub old: Option<Vec<String>>,
    pub new: Option<Vec<String>>,
}

/// A process type's `restart`, `grace_s` or `ready` that differs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingChange {
    pub process: String,
    /// `restart`, `grace_s` or `ready`.
    pub setting: String,
    /// `null`: left to the default on that side.
    pub old: Option<String>,
    pub new: Option<String>,
}

/// `brr ledger verify --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "LedgerVerify")]
pub struct LedgerVerifyDoc {
    pub ok: bool,
    /// Entries read.
    pub entries: u64,
    /// Environments with entries.
    pub envs: Vec<String>,
    /// The first broken link of each broken environment.
    pub broken: Vec<BrokenLink>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BrokenLink {
    pub env: String,
    pub service: String,
    pub version: u64,
    /// The row's id in the `ledger` table.
    pub row: i64,
    pub reason: String,
}
