//! `ps`.

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr ps --json`: the processes of running, lost and recent runs.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Ps")]
pub struct PsDoc {
    pub processes: Vec<ProcessEntry>,
}

/// One process instance.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessEntry {
    /// The run it belongs to.
    pub run: i64,
    /// `running`, `lost` (its supervisor was killed), or how it ended:
    /// `stopped`, `forced`, `failed`.
    pub run_state: String,
    /// What runs: the release hash, and nothing else.
    pub release: Hash,
    /// The process type.
    pub process: String,
    /// 1, 2, … within its type.
    pub instance: u32,
    /// While it runs.
    pub pid: Option<u32>,
    /// `starting`, `running`, `ready`, `backoff`, `failed`, `stopping`,
    /// `stopped`, `exited`, or `lost`.
    pub state: String,
    pub restarts: u32,
    /// `exited with 1`, `killed by SIGTERM`, …
    pub last_exit: Option<String>,
    /// Its `PORT`.
    pub port: Option<u16>,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
}
