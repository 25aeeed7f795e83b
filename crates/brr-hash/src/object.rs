//! Content-addressed objects and their canonical encoding.
//!
//! Every object other than a blob is stored as `TAG || postcard(body)`, and its
//! identity is BLAKE3 over exactly those bytes. The tag names the object kind
//! and the format version (`brr/tree/1\n`), so two kinds can never collide and a
//! format change is a new tag. Postcard is a documented, stable format whose
//! strings and sequences are length-prefixed (varint); maps are `BTreeMap`s so
//! they encode in sorted order. `Digest`s encode as their raw 32 bytes. Field
//! order below *is* the encoding: reordering a field changes every hash, and the
//! golden tests fail when that happens (`tests/it/golden.rs` pins a hash per
//! kind; `tests/it/every_field.rs` checks that each field enters its hash and
//! fails when a field is added without being covered).
//!
//! | object | tag | hashed fields, in order |
//! |---|---|---|
//! | blob | — | the file's bytes, nothing else (so `b3sum` agrees) |
//! | [`Tree`] | `brr/tree/1` | entries sorted by name: name, kind, child hash, size |
//! | [`ActionKey`] | `brr/action/2` | system, builder argv, env (sorted), outputs (sorted), tools (name → closure: absolute path → file digest, both sorted), host inputs (absolute path → file digest, sorted), host CPU (optional text), package dir, source-set tree, dependency artifacts (name → hash, sorted) |
//! | [`ToolClosure`] (its [`ToolDigest`]) | `brr/tool-closure/1` | absolute path → file digest, sorted |
//! | [`Artifact`] | `brr/artifact/2` | outputs tree, manifest: process types (sorted by name: argv, restart policy, grace seconds, readiness probe; each setting optional), release argv |
//!
//! A fetch's key is an [`ActionKey`] too: system `fetch`, builder
//! `["fetch", pinned tree hash]`, the empty source tree, nothing else
//! (`brr_graph::fetch_key`).
//!
//! `brr/artifact/1` (process types with an argv only) is still decoded, as
//! an artifact whose settings are all the defaults; see [`Artifact::decode`].
//! `brr/action/1` (a tool was the digest of its binary alone, no host inputs
//! or CPU) is still decoded, each tool as a closure of one file with an
//! empty path ([`ToolClosure::V1_BINARY`]); see [`ActionKey::decode`].
//!
//! The release stage's objects (config, release, ledger entry) are listed in
//! [`crate::release`]'s docs.
//!
//! A tree entry's `size` is the byte length for files and symlink targets and
//! the sum of file sizes below a directory. A symlink's child hash is the
//! BLAKE3 of its target path. No mtimes, owners or mode bits other than
//! "executable" enter any hash.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ArtifactHash, BuildKey, Digest, ToolDigest, TreeHash};

/// The kinds of objects a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// Raw file bytes (also build logs).
    Blob,
    Tree,
    Action,
    Artifact,
    /// A service's config in one environment.
    Config,
    /// A build hash and a config hash.
    Release,
    /// An entry of an environment's ledger.
    Ledger,
}

impl ObjectKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 7] =
        [Self::Blob, Self::Tree, Self::Action, Self::Artifact, Self::Config, Self::Release, Self::Ledger];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blob => "blob",
            Self::Tree => "tree",
            Self::Action => "action",
            Self::Artifact => "artifact",
            Self::Config => "config",
            Self::Release => "release",
            Self::Ledger => "ledger",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Why bytes could not be decoded as an object.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("object does not start with the `{expected}` tag")]
    Tag { expected: &'static str },
    #[error("malformed {kind} object")]
    Body {
        kind: &'static str,
        #[source]
        source: postcard::Error,
    },
}

/// An object with a canonical encoding (see the module docs).
pub trait Object: Serialize + DeserializeOwned {
    const KIND: ObjectKind;
    /// Domain tag and format version, ending in a newline.
    const TAG: &'static str;

    fn encode(&self) -> Vec<u8> {
        let mut out = Self::TAG.as_bytes().to_vec();
        // Serializing plain data into a Vec cannot fail.
        postcard::to_io(self, &mut out).expect("postcard encoding into a Vec");
        out
    }

    fn digest(&self) -> Digest {
        Digest::of(&self.encode())
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body =
            bytes.strip_prefix(Self::TAG.as_bytes()).ok_or(DecodeError::Tag { expected: Self::TAG.trim_end() })?;
        postcard::from_bytes(body).map_err(|source| DecodeError::Body { kind: Self::KIND.as_str(), source })
    }
}

/// What a tree entry is. Only "executable" survives of the mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Executable,
    Symlink,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    pub hash: Digest,
    pub size: u64,
}

/// One directory level of a Merkle tree; entries sorted by name, unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

impl Object for Tree {
    const KIND: ObjectKind = ObjectKind::Tree;
    const TAG: &'static str = "brr/tree/1\n";
}

impl Tree {
    pub fn hash(&self) -> TreeHash {
        TreeHash(self.digest())
    }

    /// Sum of the sizes of all entries (see the module docs for `size`).
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Everything a build depends on. Its hash is the [`BuildKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionKey {
    /// Platform the builder runs on, e.g. `x86_64-linux`.
    pub system: String,
    pub builder: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub outputs: BTreeSet<String>,
    /// Per declared tool: every host file it runs with (its binary, loader,
    /// shared libraries, a compiler driver's programs).
    pub tools: BTreeMap<String, ToolClosure>,
    /// Declared host files outside the workspace (`host_inputs`): absolute
    /// path → file digest.
    pub host_inputs: BTreeMap<String, Digest>,
    /// The host CPU's model and feature flags, when the builder asks for code
    /// tuned to it (`-march=native`): another CPU makes another program.
    pub cpu: Option<String>,
    /// Workspace-relative folder of the package (the builder's working directory).
    pub package_dir: String,
    /// Tree of the selected input files at their workspace-relative paths.
    pub sources: TreeHash,
    /// Artifact hash of each dependency: early cutoff keys on these, not on keys.
    pub deps: BTreeMap<String, ArtifactHash>,
}

impl Object for ActionKey {
    const KIND: ObjectKind = ObjectKind::Action;
    const TAG: &'static str = "brr/action/2\n";

    /// Also reads `brr/action/1` keys (see the module docs), so the keys of
    /// builds made before tool closures still show in `why` and verify.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(body) = bytes.strip_prefix(ACTION_V1_TAG.as_bytes()) else {
            let body =
                bytes.strip_prefix(Self::TAG.as_bytes()).ok_or(DecodeError::Tag { expected: Self::TAG.trim_end() })?;
            return postcard::from_bytes(body)
                .map_err(|source| DecodeError::Body { kind: Self::KIND.as_str(), source });
        };
        let v1: v1::ActionKey =
            postcard::from_bytes(body).map_err(|source| DecodeError::Body { kind: Self::KIND.as_str(), source })?;
        Ok(v1.into())
    }
}

/// The tag of action keys made before tool closures.
pub const ACTION_V1_TAG: &str = "brr/action/1\n";

/// The host files a declared tool runs with, each at its absolute host path
/// (symlinks resolved) with the digest of its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolClosure {
    pub files: BTreeMap<String, Digest>,
}

impl ToolClosure {
    /// The one path of a closure read from a `brr/action/1` key: the
    /// digest of the tool's binary, where it was is not known.
    pub const V1_BINARY: &'static str = "";

    /// One digest for the whole closure: what `why` shows per tool.
    pub fn digest(&self) -> ToolDigest {
        let mut bytes = b"brr/tool-closure/1\n".to_vec();
        postcard::to_io(self, &mut bytes).expect("postcard encoding into a Vec");
        ToolDigest(Digest::of(&bytes))
    }
}

impl ActionKey {
    pub fn key(&self) -> BuildKey {
        BuildKey(self.digest())
    }
}

/// A process type of a service: what `brr run` will start, and how it is
/// supervised. A setting left `None` was not declared: the run stage's
/// default applies (see `brr-run`'s docs), so an artifact says exactly
/// what its declaration said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub command: Vec<String>,
    /// When it is started again after it exits.
    pub restart: Option<Restart>,
    /// Seconds from SIGTERM to SIGKILL when it is stopped.
    pub grace_s: Option<u32>,
    /// When it is ready for traffic (`None`: `web` when its `PORT`
    /// accepts a connection, other types once started).
    pub ready: Option<Probe>,
}

impl ProcessSpec {
    /// A process type with only a command: every setting the default.
    pub fn command(command: Vec<String>) -> Self {
        Self { command, ..Self::default() }
    }
}

/// When a process that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Restart {
    Never,
    /// When it exits non-zero or by a signal.
    OnFailure,
    Always,
}

impl Restart {
    /// As declared: `never`, `on-failure`, `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::OnFailure => "on-failure",
            Self::Always => "always",
        }
    }
}

/// How the supervisor tells a started process is ready for traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Probe {
    /// Ready once started.
    None,
    /// Ready once `127.0.0.1:PORT` accepts a TCP connection.
    Tcp,
    /// Ready once `GET path` on `127.0.0.1:PORT` answers 2xx.
    Http { path: String },
    /// Ready once this command (argv), run in the release folder with the
    /// process's environment, exits 0.
    Command(Vec<String>),
}

/// The runnable half of an artifact. Empty for libraries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceManifest {
    pub processes: BTreeMap<String, ProcessSpec>,
    pub release: Option<Vec<String>>,
}

/// What a build produced: its outputs and how to run them. Its hash is the
/// [`ArtifactHash`] (the build hash). Changing a process command changes this
/// hash without changing the [`BuildKey`], so the builder does not re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub outputs: TreeHash,
    pub manifest: ServiceManifest,
}

impl Object for Artifact {
    const KIND: ObjectKind = ObjectKind::Artifact;
    const TAG: &'static str = "brr/artifact/2\n";

    /// Also reads `brr/artifact/1` objects (process types had a command
    /// only), so stores made before the settings were added still verify
    /// and their releases still run, with every setting the default. Such
    /// an object keeps the name it was stored under: re-encoding it gives
    /// a `brr/artifact/2` object with another hash.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Some(body) = bytes.strip_prefix(ARTIFACT_V1_TAG.as_bytes()) else {
            let body =
                bytes.strip_prefix(Self::TAG.as_bytes()).ok_or(DecodeError::Tag { expected: Self::TAG.trim_end() })?;
            return postcard::from_bytes(body)
                .map_err(|source| DecodeError::Body { kind: Self::KIND.as_str(), source });
        };
        let v1: v1::Artifact =
            postcard::from_bytes(body).map_err(|source| DecodeError::Body { kind: Self::KIND.as_str(), source })?;
        Ok(v1.into())
    }
}

/// The tag of artifacts made before process types had settings.
pub const ARTIFACT_V1_TAG: &str = "brr/artifact/1\n";

/// The `brr/artifact/1` and `brr/action/1` layouts, read by
/// [`Artifact::decode`] and [`ActionKey::decode`] only.
mod v1 {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;

    use crate::{ArtifactHash, ToolDigest, TreeHash};

    #[derive(Deserialize)]
    pub(super) struct ActionKey {
        system: String,
        builder: Vec<String>,
        env: BTreeMap<String, String>,
        outputs: BTreeSet<String>,
        tools: BTreeMap<String, ToolDigest>,
        package_dir: String,
        sources: TreeHash,
        deps: BTreeMap<String, ArtifactHash>,
    }

    impl From<ActionKey> for super::ActionKey {
        fn from(k: ActionKey) -> Self {
            let closure = |d: ToolDigest| super::ToolClosure {
                files: BTreeMap::from([(super::ToolClosure::V1_BINARY.to_owned(), d.0)]),
            };
            Self {
                system: k.system,
                builder: k.builder,
                env: k.env,
                outputs: k.outputs,
                tools: k.tools.into_iter().map(|(n, d)| (n, closure(d))).collect(),
                host_inputs: BTreeMap::new(),
                cpu: None,
                package_dir: k.package_dir,
                sources: k.sources,
                deps: k.deps,
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Artifact {
        outputs: TreeHash,
        manifest: ServiceManifest,
    }

    #[derive(Deserialize)]
    struct ServiceManifest {
        processes: BTreeMap<String, ProcessSpec>,
        release: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    struct ProcessSpec {
        command: Vec<String>,
    }

    impl From<Artifact> for super::Artifact {
        fn from(a: Artifact) -> Self {
            let processes =
                a.manifest.processes.into_iter().map(|(n, p)| (n, super::ProcessSpec::command(p.command))).collect();
            Self { outputs: a.outputs, manifest: super::ServiceManifest { processes, release: a.manifest.release } }
        }
    }
}

impl Artifact {
    pub fn hash(&self) -> ArtifactHash {
        ArtifactHash(self.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_key() -> ActionKey {
        ActionKey {
            system: "x86_64-linux".into(),
            builder: vec!["sh".into(), "-c".into(), "echo hi > $OUT/a".into()],
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            outputs: BTreeSet::from(["a".into()]),
            tools: BTreeMap::from([(
                "sh".into(),
                ToolClosure { files: BTreeMap::from([("/bin/sh".into(), Digest::of(b"sh"))]) },
            )]),
            host_inputs: BTreeMap::new(),
            cpu: None,
            package_dir: "libs/a".into(),
            sources: TreeHash(Digest::of(b"tree")),
            deps: BTreeMap::new(),
        }
    }

    /// Golden value: fails when the encoding of an action key changes, which
    /// would silently invalidate every cache. Bump the tag when it must change.
    #[test]
    fn action_key_encoding_is_pinned() {
        assert_eq!(sample_key().key().to_string(), "f624b52a2407cd45d352a8263a5131b7ef90b53f11fd644c7b47492c7dc73b61");
    }

    #[test]
    fn round_trip_and_tag_check() {
        let k = sample_key();
        let bytes = k.encode();
        assert!(bytes.starts_with(b"brr/action/2\n"));
        assert_eq!(ActionKey::decode(&bytes).unwrap(), k);
        assert!(matches!(Tree::decode(&bytes), Err(DecodeError::Tag { .. })));
    }

    /// Keys stored before tool closures still decode, each tool as the one
    /// file it was.
    #[test]
    fn action_v1_still_decodes() {
        let k = sample_key();
        let tools = BTreeMap::from([("sh".to_owned(), ToolDigest(Digest::of(b"sh")))]);
        let mut bytes = ACTION_V1_TAG.as_bytes().to_vec();
        let v1 = (&k.system, &k.builder, &k.env, &k.outputs, &tools, &k.package_dir, k.sources, &k.deps);
        postcard::to_io(&v1, &mut bytes).unwrap();
        let old = ActionKey::decode(&bytes).unwrap();
        assert_eq!(old.tools["sh"].files[ToolClosure::V1_BINARY], Digest::of(b"sh"));
        assert_eq!((old.builder, old.host_inputs.len(), old.cpu), (k.builder, 0, None));
    }

    #[test]
    fn process_change_changes_artifact_not_key() {
        let a = Artifact { outputs: TreeHash(Digest::of(b"t")), manifest: ServiceManifest::default() };
        let mut b = a.clone();
        b.manifest.processes.insert("web".into(), ProcessSpec::command(vec!["bin/web".into()]));
        assert_ne!(a.hash(), b.hash());
    }
}
