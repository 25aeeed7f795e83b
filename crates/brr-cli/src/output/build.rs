//! `build`, `plan`, `why` and `graph --format json`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr build --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Build")]
pub struct BuildDoc {
    /// Every selected target with its dependencies, in dependency order.
    pub targets: Vec<BuildTarget>,
    /// What the remote caches did; `null` when none is configured.
    pub remote_cache: Option<RemoteCacheStats>,
    /// What the remote executor did; `null` when none is configured or it
    /// could not be reached.
    pub remote_exec: Option<RemoteExecStats>,
}

/// Remote execution during one run.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RemoteExecStats {
    /// Builds sent to the executor.
    pub sent: u64,
    /// Builds that ran there (whatever their exit code).
    pub ran: u64,
    /// Builds that ran here instead (the executor refused or lost them).
    pub fell_back: u64,
    /// Blobs the executor lacked, uploaded, and their bytes.
    pub blobs_up: u64,
    pub bytes_up: u64,
    /// Output and log bytes fetched.
    pub bytes_down: u64,
    /// Where the time of an average remote build went, in milliseconds
    /// (`null` when none ran there).
    pub per_action: Option<RemoteExecPhases>,
}

/// The mean time per remote build of each phase, in milliseconds. Client
/// phases are timed by brr; `queued_ms` and the worker's phases come from
/// the result's `ExecutedActionMetadata` (each span read off one clock).
#[derive(Debug, Serialize, JsonSchema)]
#[expect(clippy::struct_field_names, reason = "the JSON names carry their unit")]
pub struct RemoteExecPhases {
    /// Client: the input root read and hashed, the messages built.
    pub prepare_ms: f64,
    /// Client: `FindMissingBlobs` and the uploads.
    pub upload_ms: f64,
    /// Client: `Execute`, from the call until the operation is done.
    pub execute_ms: f64,
    /// Server: queued until a worker was given the build.
    pub queued_ms: f64,
    /// Worker: inputs fetched and written.
    pub input_fetch_ms: f64,
    /// Worker: the builder's run.
    pub execution_ms: f64,
    /// Worker: outputs uploaded.
    pub output_upload_ms: f64,
    /// Server-timed lease (given to a worker until reported done) less the
    /// worker's three phases: the lease hand-over, tool check and report.
    pub worker_other_ms: f64,
    /// `execute_ms` less the server's queued and lease time: getting the
    /// result from the server to the client's stream.
    pub notify_ms: f64,
    /// Client: outputs and logs fetched and written.
    pub download_ms: f64,
}

impl From<&brr_exec::remote_exec::Stats> for RemoteExecStats {
    fn from(s: &brr_exec::remote_exec::Stats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let ran = s.ran.load(Relaxed);
        #[expect(clippy::cast_precision_loss, reason = "a mean in milliseconds")]
        let ms = |us: u64| us as f64 / 1000.0 / ran as f64;
        let per_action = (ran > 0).then(|| {
            let lease = s.lease_us.load(Relaxed);
            let worker =
                s.input_fetch_us.load(Relaxed) + s.execution_us.load(Relaxed) + s.output_upload_us.load(Relaxed);
            let server = s.queued_us.load(Relaxed) + lease;
            RemoteExecPhases {
                prepare_ms: ms(s.prepare_us.load(Relaxed)),
                upload_ms: ms(s.upload_us.load(Relaxed)),
                execute_ms: ms(s.execute_us.load(Relaxed)),
                queued_ms: ms(s.queued_us.load(Relaxed)),
                input_fetch_ms: ms(s.input_fetch_us.load(Relaxed)),
                execution_ms: ms(s.execution_us.load(Relaxed)),
                output_upload_ms: ms(s.output_upload_us.load(Relaxed)),
                worker_other_ms: ms(lease.saturating_sub(worker)),
                notify_ms: ms(s.execute_us.load(Relaxed).saturating_sub(server)),
                download_ms: ms(s.download_us.load(Relaxed)),
            }
        });
        Self {
            sent: s.sent.load(Relaxed),
            ran,
            fell_back: s.fell_back.load(Relaxed),
            blobs_up: s.blobs_up.load(Relaxed),
            bytes_up: s.bytes_up.load(Relaxed),
            bytes_down: s.bytes_down.load(Relaxed),
            per_action,
        }
    }
}

impl RemoteExecStats {
    /// The line `brr build` prints: counts, then the mean phases.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "remote execution: {} ran remotely, {} built here instead; {} blobs ({} bytes) up, {} bytes down",
            self.ran, self.fell_back, self.blobs_up, self.bytes_up, self.bytes_down
        );
        if let Some(p) = &self.per_action {
            use std::fmt::Write as _;
            let _ = write!(
                line,
                "\n  per build (ms): prepare {:.1}, upload {:.1}, execute {:.1} (queued {:.1}, worker: inputs {:.1}, \
                 run {:.1}, outputs {:.1}, other {:.1}; result to client {:.1}), download {:.1}",
                p.prepare_ms,
                p.upload_ms,
                p.execute_ms,
                p.queued_ms,
                p.input_fetch_ms,
                p.execution_ms,
                p.output_upload_ms,
                p.worker_other_ms,
                p.notify_ms,
                p.download_ms
            );
        }
        line
    }
}

/// The remote caches during one run.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RemoteCacheStats {
    /// Targets fetched from a remote.
    pub hits: u64,
    /// Targets no remote had.
    pub misses: u64,
    /// Lookups not made because every remote was switched off.
    pub skipped: u64,
    /// Entries written.
    pub pushed: u64,
    /// Remote entries repaired (missing objects uploaded again, or an entry
    /// that did not verify replaced).
    pub healed: u64,
    /// Keys whose remote entry names another artifact than the one built here.
    pub conflicts: u64,
    /// Remote operations that failed (after retries).
    pub errors: u64,
    pub retries: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    /// Time spent waiting on remotes, backoff included, in milliseconds.
    pub wait_ms: u64,
    /// Remotes switched off during the run (circuit breaker or budget).
    pub switched_off: Vec<String>,
}

impl From<&brr_remote::remotes::Remotes> for RemoteCacheStats {
    fn from(r: &brr_remote::remotes::Remotes) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &r.stats;
        Self {
            hits: s.hits.load(Relaxed),
            misses: s.misses.load(Relaxed),
            skipped: s.skipped.load(Relaxed),
            pushed: s.pushed.load(Relaxed),
            healed: s.healed.load(Relaxed),
            conflicts: s.conflicts.load(Relaxed),
            errors: s.errors.load(Relaxed),
            retries: s.retries.load(Relaxed),
            bytes_down: s.bytes_down.load(Relaxed),
            bytes_up: s.bytes_up.load(Relaxed),
            wait_ms: u64::try_from(s.wait().as_millis()).unwrap_or(u64::MAX),
            switched_off: r.remotes().iter().filter(|x| x.is_off()).map(|x| x.backend.url().to_owned()).collect(),
        }
    }
}

/// One target of a build.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BuildTarget {
    pub name: String,
    /// Its build key; `null` when a dependency failed before it was known.
    pub key: Option<Hash>,
    /// Its artifact (the build hash); `null` unless built or cached.
    pub artifact: Option<Hash>,
    pub status: BuildStatus,
    /// Cached because a remote cache had it.
    pub remote: bool,
    /// Why it failed, or which dependency failed: only for `failed` and
    /// `skipped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failed builder's log (`null` if it did not run): only for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[expect(clippy::option_option, reason = "absent for targets that did not fail, null for no log")]
    pub log: Option<Option<Hash>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Built,
    Cached,
    Failed,
    Skipped,
}

/// `brr plan --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Plan")]
pub struct PlanDoc {
    /// Every selected target with its dependencies, in dependency order.
    pub targets: Vec<PlanTarget>,
}

/// What a build would do with one target.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanTarget {
    pub name: String,
    pub status: PlanStatus,
    /// Its build key; `null` while a dependency must be rebuilt first.
    pub key: Option<Hash>,
    /// The cached artifact; `null` for `build`.
    pub artifact: Option<Hash>,
    /// Why it would build (`cached` when cached).
    pub reason: String,
    /// Set when the key includes this machine's CPU, saying why
    /// (`the key includes this machine's CPU: … because `CFLAGS` has `-march=native``).
    pub cpu_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// The cache has it.
    Cached,
    /// A remote cache has it (`plan` only): the build would fetch it.
    Remote,
    /// It would build.
    Build,
}

/// `brr why TARGET --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Why")]
pub struct WhyDoc {
    pub name: String,
    pub status: PlanStatus,
    /// Its build key; `null` while a dependency must be rebuilt first.
    pub key: Option<Hash>,
    /// Why it would build (`cached` when cached).
    pub reason: String,
    /// The cached build it reuses, when cached.
    pub reuses: Option<WhyReuse>,
    /// Its last recorded build in this store.
    pub previous: Option<WhyPrevious>,
    /// Every input of its key.
    pub inputs: WhyInputs,
    /// What differs from the previous build's key.
    pub changes: Vec<WhyChange>,
}

/// The cached build a target reuses.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyReuse {
    pub artifact: Hash,
    /// When it was built (Unix seconds), if recorded.
    pub built_at: Option<i64>,
    /// Its build log, if recorded.
    pub log: Option<Hash>,
}

/// A target's last recorded build.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyPrevious {
    pub key: Hash,
    /// `built`, `cached` or `failed`.
    pub status: String,
    /// When it started (Unix seconds).
    pub at: i64,
    /// `null` for a failed build.
    pub artifact: Option<Hash>,
}

/// Every input of a build key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyInputs {
    pub files: Vec<WhyFile>,
    pub env: BTreeMap<String, String>,
    pub tools: Vec<WhyTool>,
    /// Declared host files (`host_inputs`): absolute path → digest.
    pub host_inputs: BTreeMap<String, Hash>,
    /// The host CPU in the key, and why (`-march=native`).
    pub cpu: Option<WhyCpu>,
    /// Dependency name → its artifact (the previous one for `pending_deps`).
    pub deps: BTreeMap<String, Hash>,
    /// Dependencies that must be rebuilt before the key is known.
    pub pending_deps: Vec<String>,
    pub builder: Vec<String>,
    pub outputs: BTreeSet<String>,
    /// Workspace-relative folder of the package.
    pub package_dir: String,
    /// Platform, e.g. `x86_64-linux`.
    pub system: String,
    /// The tree of the input files.
    pub sources: Hash,
    /// Where each env variable, tool and limit was declared: the package's
    /// `brr.ron` or the workspace defaults in the root `brr.ron`.
    pub origins: WhyOrigins,
}

/// Where a package's settings were declared.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyOrigins {
    pub env: BTreeMap<String, WhyOrigin>,
    pub tools: BTreeMap<String, WhyOrigin>,
    /// Limits the package or the defaults set (not part of the key).
    pub limits: BTreeMap<String, WhyOrigin>,
}

/// Where one setting was declared.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyOrigin {
    pub from: OriginKind,
    /// Workspace-relative.
    pub file: String,
    pub line: usize,
    /// The package's own value replaces a workspace default of the same name.
    pub overrides_default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// The package's own `brr.ron`.
    Package,
    /// `defaults` in the workspace's root `brr.ron`.
    WorkspaceDefaults,
}

impl From<&brr_graph::Origin> for WhyOrigin {
    fn from(o: &brr_graph::Origin) -> Self {
        Self {
            from: if o.defaults { OriginKind::WorkspaceDefaults } else { OriginKind::Package },
            file: o.file.display().to_string(),
            line: o.line,
            overrides_default: o.overrides,
        }
    }
}

/// An input file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyFile {
    /// Relative to the package folder.
    pub path: String,
    pub digest: Hash,
    pub size: u64,
}

/// A tool, as found on `PATH`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyTool {
    pub name: String,
    /// The digest of its closure.
    pub digest: Hash,
    pub path: String,
    /// Its closure: its binary, loader, shared libraries and, for a
    /// compiler driver, the programs it runs, with their closures.
    pub closure: Vec<WhyToolFile>,
}

/// A file of a tool's closure.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyToolFile {
    /// Absolute host path, links resolved.
    pub path: String,
    pub digest: Hash,
}

/// The host CPU in a key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyCpu {
    /// Its model and feature flags, as in the key.
    pub identity: String,
    /// Why, e.g. ``CFLAGS` has `-march=native``.
    pub because: String,
}

/// One difference from the previous build's key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhyChange {
    pub kind: ChangeKind,
    /// One line, as `brr why` prints it.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    File,
    Env,
    Tool,
    #[serde(rename = "host input")]
    HostInput,
    Cpu,
    Dependency,
    Declaration,
}

impl From<&brr_exec::explain::Change> for ChangeKind {
    fn from(change: &brr_exec::explain::Change) -> Self {
        use brr_exec::explain::Change as C;
        match change {
            C::FileAdded(_) | C::FileRemoved(_) | C::FileChanged(_) | C::SourcesUnknown => Self::File,
            C::Env { .. } => Self::Env,
            C::ToolAdded(_) | C::ToolRemoved(_) | C::ToolChanged(_) | C::ToolFile { .. } => Self::Tool,
            C::HostInput { .. } => Self::HostInput,
            C::Cpu { .. } => Self::Cpu,
            C::DepAdded(_) | C::DepRemoved(_) | C::DepChanged(_) | C::DepPending(_) => Self::Dependency,
            C::Declaration(_) => Self::Declaration,
        }
    }
}

/// `brr graph --format json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Graph")]
pub struct GraphDoc {
    /// Every package of the workspace.
    pub targets: Vec<GraphNode>,
}

/// A package and its edges.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GraphNode {
    pub name: String,
    pub kind: PackageKind,
    /// Workspace-relative folder.
    pub dir: String,
    /// Names of the packages it depends on.
    pub deps: Vec<String>,
    /// How many input files it has.
    pub inputs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Library,
    Service,
    /// A `Fetch(...)`: downloaded, its output pinned by hash.
    Fetch,
}
