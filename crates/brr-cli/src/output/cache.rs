//! `cache status`, `cache push` and `cache pull`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr cache status --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CacheStatus")]
pub struct CacheStatusDoc {
    /// This runner pushes (a signing key is set, and a remote is writable).
    pub pushes: bool,
    pub remotes: Vec<CacheRemote>,
    /// Conflicts this runner's pushes saw and recorded in its store (with
    /// the target when its key is one of the selected targets' now).
    pub recorded_conflicts: Vec<RecordedConflict>,
}

/// A conflict recorded in the store by a push.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordedConflict {
    /// The target whose current key it is, if any.
    pub target: Option<String>,
    pub key: Hash,
    /// The remote, credentials hidden.
    pub remote: String,
    /// The artifact built here.
    pub local: Hash,
    /// The artifact the remote's entry names (kept there unless the policy
    /// is `replace`).
    pub theirs: Hash,
    pub signer: String,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
}

impl RecordedConflict {
    /// A conflict this runner recorded, and the target whose key it is.
    pub fn new(c: brr_store::CacheConflict, target: Option<String>) -> Self {
        Self {
            target,
            key: c.key.into(),
            remote: c.remote,
            local: c.local.into(),
            theirs: c.theirs.into(),
            signer: c.signer,
            first_seen: c.first_seen,
            last_seen: c.last_seen,
        }
    }
}

/// A remote entry that is there but cannot be used.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheBroken {
    pub target: String,
    pub key: Hash,
    /// Why: a bad signature, a malformed entry, missing objects…
    pub reason: String,
}

/// One remote cache and the workspace's keys there.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheRemote {
    pub url: String,
    pub read_only: bool,
    pub reachable: bool,
    /// Why it is unreachable.
    pub error: Option<String>,
    /// Keys with an entry there that is valid: signed by a trusted key,
    /// every object present.
    pub hits: u64,
    /// Keys without an entry.
    pub misses: u64,
    /// The targets without an entry.
    pub missing: Vec<String>,
    /// Entries signed by a key not trusted here.
    pub refused: u64,
    /// Entries present but broken, and why (a push heals them).
    pub broken: Vec<CacheBroken>,
    /// Keys whose remote artifact differs from the local one.
    pub conflicts: Vec<CacheConflict>,
}

/// Two machines built different bytes from one key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheConflict {
    pub target: String,
    pub key: Hash,
    /// The artifact built here.
    pub local: Hash,
    /// The artifact in the remote's entry.
    pub remote: Hash,
    /// Who signed that entry.
    pub signer: String,
}

/// `brr cache push --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CachePush")]
pub struct CachePushDoc {
    /// The targets pushed (those built here).
    pub targets: Vec<String>,
    /// Targets not built here, so not pushed.
    pub skipped: Vec<String>,
    /// Targets whose push failed on some remote, with why.
    pub failed: BTreeMap<String, String>,
    /// Targets a remote holds another artifact for.
    pub conflicts: Vec<String>,
    /// Remote entries repaired.
    pub healed: u64,
    /// Entries written, over every remote.
    pub entries_pushed: u64,
    pub bytes_up: u64,
}

/// `brr cache pull --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CachePull")]
pub struct CachePullDoc {
    /// Target → what happened to it.
    pub targets: BTreeMap<String, PullStatus>,
    pub bytes_down: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullStatus {
    /// Already in the local store.
    Cached,
    /// Fetched from a remote.
    Pulled,
    /// No remote had it (or its key is not known yet).
    Missing,
}

impl PullStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cached => "cached",
            Self::Pulled => "pulled",
            Self::Missing => "missing",
        }
    }
}

/// `brr cache stats --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CacheStats")]
pub struct CacheStatsDoc {
    /// Builds counted (the latest that asked a remote cache).
    pub runs: usize,
    pub hits: u64,
    pub misses: u64,
    /// Hits over lookups, 0 to 1; `null` without lookups.
    pub hit_rate: Option<f64>,
    pub bytes_down: u64,
    pub bytes_up: u64,
    /// Time spent waiting on remotes, in milliseconds.
    pub wait_ms: u64,
    /// Builder time the hits saved, estimated from the same targets' builds
    /// here (mean duration of their misses); `null` when no hit's target was
    /// ever built here.
    pub saved_ms: Option<u64>,
    /// Per target, by name.
    pub targets: BTreeMap<String, CacheStatsTarget>,
}

/// One target over the counted builds.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheStatsTarget {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    /// Mean builder time of its misses here, in milliseconds.
    pub build_ms: Option<u64>,
    /// `hits` × `build_ms`.
    pub saved_ms: Option<u64>,
}
