//! Documents of the store's lifecycle commands: `gc`, `store stats`.

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// Objects of one kind, and their total size.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KindCount {
    /// `blob`, `tree`, `action`, `artifact`, `config`, `release` or `ledger`.
    pub kind: String,
    pub objects: u64,
    pub bytes: u64,
}

/// `brr gc --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Gc")]
pub struct GcDoc {
    /// Nothing was changed: what would be freed.
    pub dry_run: bool,
    /// Objects kept, and their total size.
    pub kept: u64,
    pub kept_bytes: u64,
    /// Objects deleted (or that would be), and their total size.
    pub freed: u64,
    pub freed_bytes: u64,
    /// The deleted objects by kind.
    pub freed_by_kind: Vec<KindCount>,
    /// Releases kept whole (with their builds), and why they are rooted.
    pub releases_kept: u64,
    /// Pinned objects (`brr pin`).
    pub pins: u64,
    /// Latest builds of the workspace's targets kept.
    pub targets_kept: u64,
    /// Action-cache entries and build-history rows deleted with their objects.
    pub actions_removed: u64,
    pub builds_removed: u64,
    /// Pack bytes before and after compaction (equal in a dry run).
    pub pack_bytes_before: u64,
    pub pack_bytes_after: u64,
    /// Materialized release folders removed (their builds are gone), and their size.
    pub release_dirs_removed: u64,
    pub release_dir_bytes_removed: u64,
}

/// `brr export --json` and `brr import --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Archive")]
pub struct ArchiveDoc {
    /// The archive file.
    pub file: String,
    /// The release or build the archive holds, and which of the two it is.
    pub root: Hash,
    pub kind: String,
    /// Objects in the archive, and their total size.
    pub objects: u64,
    pub bytes: u64,
    /// On import: objects the store did not have (0 on export).
    pub new_objects: u64,
}

/// One pack file of `brr store stats --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PackDoc {
    pub name: String,
    /// Its size on disk, and how much of it live objects use.
    pub file_bytes: u64,
    pub live_bytes: u64,
    /// The fraction (0 to 1) no live object uses: what compaction frees.
    pub dead_fraction: f64,
}

/// One target of `brr store stats --json`: its latest build's closure.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TargetSizeDoc {
    pub target: String,
    pub artifact: Hash,
    pub objects: u64,
    pub bytes: u64,
}

/// `brr store stats --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "StoreStats")]
pub struct StoreStatsDoc {
    /// Every kind, with its objects and bytes (zero included).
    pub kinds: Vec<KindCount>,
    pub objects: u64,
    pub bytes: u64,
    pub packs: Vec<PackDoc>,
    /// Roots (`brr pin` adds them).
    pub roots: u64,
    /// The largest targets, largest first.
    pub largest_targets: Vec<TargetSizeDoc>,
}
