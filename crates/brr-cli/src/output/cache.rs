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
}

/// One remote cache and the workspace's keys there.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheRemote {
    pub url: String,
    pub read_only: bool,
    pub reachable: bool,
    /// Why it is unreachable.
    pub error: Option<String>,
    /// Keys with a trusted entry there.
    pub hits: u64,
    /// Keys without an entry.
    pub misses: u64,
    /// Entries refused: untrusted signer or bad signature.
    pub refused: u64,
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
