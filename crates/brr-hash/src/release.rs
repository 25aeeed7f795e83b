//! The objects of the release stage: a service's config in one environment,
//! a release (build + config), and the entries of an environment's ledger.
//!
//! | object | tag | hashed fields, in order |
//! |---|---|---|
//! | [`Config`] | `brr/config/1` | vars (sorted: name → value), secret names (sorted) |
//! | [`Release`] | `brr/release/1` | build hash (artifact), config hash |
//! | [`LedgerEntry`] | `brr/ledger/1` | previous entry of the environment (or none), env, service, version, release hash, action, status, actor, time (Unix ms), note (or none), source (env, version; promotions only) |
//!
//! A config holds secret *names* only: a secret's value never enters a hash,
//! so the same release hash stands for the same build and vars on every
//! machine, whatever the secrets are there. The environment's name is not
//! part of a config either: two environments that say exactly the same run
//! the same release.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::object::{Object, ObjectKind};
use crate::{ArtifactHash, ConfigHash, EntryHash, ReleaseHash};

/// A service's config in one environment. Its hash is the [`ConfigHash`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub vars: BTreeMap<String, String>,
    /// Names of the secrets the service gets from the releasing or running
    /// process's environment; never their values.
    pub secrets: BTreeSet<String>,
}

impl Object for Config {
    const KIND: ObjectKind = ObjectKind::Config;
    const TAG: &'static str = "brr/config/1\n";
}

impl Config {
    pub fn hash(&self) -> ConfigHash {
        ConfigHash(self.digest())
    }
}

/// A build combined with a config: what runs. Its hash is the [`ReleaseHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub build: ArtifactHash,
    pub config: ConfigHash,
}

impl Object for Release {
    const KIND: ObjectKind = ObjectKind::Release;
    const TAG: &'static str = "brr/release/1\n";
}

impl Release {
    pub fn hash(&self) -> ReleaseHash {
        ReleaseHash(self.digest())
    }
}

/// How an entry came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerAction {
    Release,
    Promote,
    Rollback,
}

impl LedgerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Release, Self::Promote, Self::Rollback].into_iter().find(|a| a.as_str() == s)
    }
}

/// Whether the release phase succeeded. Only a succeeded entry can become
/// its service's current release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Succeeded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Succeeded, Self::Failed].into_iter().find(|a| a.as_str() == s)
    }
}

/// Where a promoted release came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionSource {
    pub env: String,
    pub version: u64,
}

/// One entry of an environment's ledger. Each entry names the hash of the
/// environment's previous entry, so editing, removing or reordering any
/// entry breaks the chain at that point. Its hash is the [`EntryHash`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The environment's previous entry (any service); `None` for its first.
    pub previous: Option<EntryHash>,
    pub env: String,
    pub service: String,
    /// `vN`, counted per environment and service from 1, without gaps.
    pub version: u64,
    pub release: ReleaseHash,
    pub action: LedgerAction,
    pub status: ReleaseStatus,
    pub actor: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    pub note: Option<String>,
    /// Promotions only: the source environment's entry.
    pub source: Option<PromotionSource>,
}

impl Object for LedgerEntry {
    const KIND: ObjectKind = ObjectKind::Ledger;
    const TAG: &'static str = "brr/ledger/1\n";
}

impl LedgerEntry {
    pub fn hash(&self) -> EntryHash {
        EntryHash(self.digest())
    }
}
