//! `show`, `hash` and `store verify`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr show HASH --json`: the object's kind (`kind`) and its decoded body
/// (`object`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Show")]
pub struct ShowDoc {
    /// The full hash the prefix resolved to.
    pub hash: Hash,
    #[serde(flatten)]
    pub object: ShowObject,
}

/// A stored object, by kind.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "kind", content = "object", rename_all = "lowercase")]
pub enum ShowObject {
    /// Raw bytes (a file, a build log).
    Blob(Blob),
    /// One folder level of a Merkle tree.
    Tree(Tree),
    /// Everything a build depends on; its hash is the build key.
    Action(Action),
    /// What a build produced; its hash is the build hash.
    Artifact(Artifact),
    /// A service's config in one environment: vars and secret names.
    Config(Config),
    /// A build hash with a config hash.
    Release(Release),
    /// One entry of an environment's ledger.
    Ledger(LedgerEntry),
}

/// A config: vars, and the names (never values) of secrets.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Config {
    pub vars: BTreeMap<String, String>,
    pub secrets: BTreeSet<String>,
}

/// A release: what it runs (`build`) with what config.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Release {
    /// The build hash (an artifact).
    pub build: Hash,
    pub config: Hash,
}

/// A ledger entry, as hashed into the environment's chain.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LedgerEntry {
    /// The environment's previous entry; `null` for its first.
    pub previous: Option<Hash>,
    pub env: String,
    pub service: String,
    pub version: u64,
    pub release: Hash,
    /// `release`, `promote` or `rollback`.
    pub action: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub actor: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub note: Option<String>,
    /// Promotions: the source environment.
    pub source_env: Option<String>,
    /// Promotions: the source environment's version.
    pub source_version: Option<u64>,
}

impl From<brr_hash::Config> for Config {
    fn from(c: brr_hash::Config) -> Self {
        Self { vars: c.vars, secrets: c.secrets }
    }
}

impl From<brr_hash::Release> for Release {
    fn from(r: brr_hash::Release) -> Self {
        Self { build: r.build.into(), config: r.config.into() }
    }
}

impl From<brr_hash::LedgerEntry> for LedgerEntry {
    fn from(e: brr_hash::LedgerEntry) -> Self {
        let (source_env, source_version) = e.source.map(|s| (s.env, s.version)).unzip();
        Self {
            previous: e.previous.map(Into::into),
            env: e.env,
            service: e.service,
            version: e.version,
            release: e.release.into(),
            action: e.action.as_str().into(),
            status: e.status.as_str().into(),
            actor: e.actor,
            time_ms: e.time_ms,
            note: e.note,
            source_env,
            source_version,
        }
    }
}

/// A blob's size and, when it is UTF-8, its text.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Blob {
    pub size: usize,
    /// `null` when the bytes are not UTF-8.
    pub text: Option<String>,
}

/// One folder level; entries sorted by name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    /// A blob, or for `dir` a tree.
    pub hash: Hash,
    /// Bytes; for `dir`, the total of what it holds.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Executable,
    Symlink,
    Dir,
}

/// An action key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Action {
    /// Platform, e.g. `x86_64-linux`.
    pub system: String,
    pub builder: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub outputs: BTreeSet<String>,
    /// Tool name → digest of its closure.
    pub tools: BTreeMap<String, Hash>,
    /// Tool name → the files of its closure: absolute host path → digest
    /// (an empty path: a key from before closures, the tool's binary).
    pub tool_files: BTreeMap<String, BTreeMap<String, Hash>>,
    /// Declared host files: absolute path → digest.
    pub host_inputs: BTreeMap<String, Hash>,
    /// The host CPU, when the builder tunes code to it (`-march=native`).
    pub cpu: Option<String>,
    /// Workspace-relative folder of the package.
    pub package_dir: String,
    /// The tree of the input files.
    pub sources: Hash,
    /// Dependency name → its artifact.
    pub deps: BTreeMap<String, Hash>,
}

/// An artifact: outputs and how to run them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Artifact {
    /// The output tree.
    pub outputs: Hash,
    pub manifest: Manifest,
}

/// The runnable half of an artifact; empty for libraries.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Manifest {
    /// Process type → its command and supervision settings.
    pub processes: BTreeMap<String, Process>,
    /// The release command, if any.
    pub release: Option<Vec<String>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Process {
    pub command: Vec<String>,
    /// `never`, `on-failure` or `always`; absent: the run stage's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<&'static str>,
    /// Seconds from SIGTERM to SIGKILL; absent: the run stage's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u32>,
    /// The readiness probe; absent: TCP for `web`, none for other types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
}

/// A readiness probe.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "probe", rename_all = "lowercase")]
pub enum Ready {
    /// Ready once started.
    None,
    /// Its `PORT` accepts a TCP connection.
    Tcp,
    /// `GET path` on its `PORT` answers 2xx.
    Http { path: String },
    /// The command exits 0.
    Command { command: Vec<String> },
}

impl From<brr_hash::ProcessSpec> for Process {
    fn from(p: brr_hash::ProcessSpec) -> Self {
        Self {
            command: p.command,
            restart: p.restart.map(brr_hash::Restart::as_str),
            grace_s: p.grace_s,
            ready: p.ready.map(|r| match r {
                brr_hash::Probe::None => Ready::None,
                brr_hash::Probe::Tcp => Ready::Tcp,
                brr_hash::Probe::Http { path } => Ready::Http { path },
                brr_hash::Probe::Command(command) => Ready::Command { command },
            }),
        }
    }
}

impl From<brr_hash::Tree> for Tree {
    fn from(t: brr_hash::Tree) -> Self {
        use brr_hash::EntryKind as K;
        let entries = t
            .entries
            .into_iter()
            .map(|e| TreeEntry {
                name: e.name,
                kind: match e.kind {
                    K::File => EntryKind::File,
                    K::Executable => EntryKind::Executable,
                    K::Symlink => EntryKind::Symlink,
                    K::Dir => EntryKind::Dir,
                },
                hash: e.hash.into(),
                size: e.size,
            })
            .collect();
        Self { entries }
    }
}

impl From<brr_hash::ActionKey> for Action {
    fn from(k: brr_hash::ActionKey) -> Self {
        Self {
            system: k.system,
            builder: k.builder,
            env: k.env,
            outputs: k.outputs,
            tools: k.tools.iter().map(|(n, c)| (n.clone(), c.digest().into())).collect(),
            tool_files: k
                .tools
                .into_iter()
                .map(|(n, c)| (n, c.files.into_iter().map(|(p, d)| (p, d.into())).collect()))
                .collect(),
            host_inputs: k.host_inputs.into_iter().map(|(p, d)| (p, d.into())).collect(),
            cpu: k.cpu,
            package_dir: k.package_dir,
            sources: k.sources.into(),
            deps: k.deps.into_iter().map(|(n, a)| (n, a.into())).collect(),
        }
    }
}

impl From<brr_hash::Artifact> for Artifact {
    fn from(a: brr_hash::Artifact) -> Self {
        let processes = a.manifest.processes.into_iter().map(|(n, p)| (n, p.into())).collect();
        Self { outputs: a.outputs.into(), manifest: Manifest { processes, release: a.manifest.release } }
    }
}

/// `brr hash PATH… --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Hash")]
pub struct HashDoc {
    /// In the order given.
    pub paths: Vec<HashedPath>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HashedPath {
    /// As given.
    pub path: String,
    pub kind: HashKind,
    pub hash: Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    /// A file (or symlink): its bytes.
    Blob,
    /// A folder: its Merkle tree.
    Tree,
}

/// `brr store verify [--repair] --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "StoreVerify")]
pub struct StoreVerifyDoc {
    /// No problem left.
    pub ok: bool,
    /// Objects recorded.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// Files in `cas/` without a row (left by interrupted writes; harmless).
    pub orphans: u64,
    /// One line per problem (after `--repair`: what it could not fix).
    pub problems: Vec<String>,
    /// With `--repair` only: what was found and removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Repaired>,
}

/// What `--repair` found and removed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Repaired {
    /// The problems found before repairing.
    pub found: Vec<String>,
    pub objects: u64,
    pub action_cache: u64,
    /// Build-history rows.
    pub builds: u64,
    pub verifications: u64,
    pub stat_cache: u64,
    /// Roots whose object was dropped.
    pub roots: u64,
    /// Corrupt files removed from `cas/`.
    pub files: u64,
}

/// `brr store compact --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "StoreCompact")]
pub struct StoreCompactDoc {
    /// Registered pack files before, and their total size.
    pub packs_before: u64,
    pub pack_bytes_before: u64,
    /// Registered pack files after, and their total size.
    pub packs_after: u64,
    pub pack_bytes_after: u64,
    /// Objects copied out of packs holding dead bytes, and their size.
    pub moved: u64,
    pub moved_bytes: u64,
    /// Files in `cas/` without a row removed.
    pub orphans_removed: u64,
    /// Temp files of interrupted writes removed.
    pub temp_files_removed: u64,
}
