//! `brr diff A B`: two releases side by side: the build's files, the
//! config (secrets by name only), the process types and the release command.
//!
//! A side is a release hash or unique prefix, `ENV` (the current release of
//! a service there) or `ENV@vN` (that ledger entry). Files are compared by
//! walking both output trees at once: a subtree with the same hash on both
//! sides is skipped whole, so a diff costs what changed, not what exists.

use std::collections::{BTreeMap, BTreeSet};

use brr_hash::{
    Artifact, ArtifactHash, Config, ConfigHash, Digest, EntryKind, ObjectKind, Probe, Release, ReleaseHash, Tree,
    TreeEntry,
};
use brr_store::{LedgerRow, Store, StoreError};

use crate::ReleaseError;

/// One side of a diff, resolved.
#[derive(Debug, Clone)]
pub struct Side {
    /// What the user wrote, resolved: `staging@v3`, or the hash.
    pub label: String,
    pub release: ReleaseHash,
    pub build: ArtifactHash,
    pub config: ConfigHash,
    /// The service, when the side came from the ledger.
    pub service: Option<String>,
}

/// Why a side could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("`{spec}`: {source}")]
    Hash {
        spec: String,
        #[source]
        source: StoreError,
    },
    #[error("`{spec}` is a {kind}, not a release")]
    NotARelease { spec: String, kind: &'static str },
    #[error("`{spec}`: `{env}` has releases of several services ({}); name one with `--service`", services.join(", "))]
    WhichService { spec: String, env: String, services: Vec<String> },
    #[error("`{spec}`: no environment `{env}` has releases{}", service.as_ref().map(|s| format!(" of `{s}`")).unwrap_or_default())]
    UnknownEnv { spec: String, env: String, service: Option<String> },
    #[error("`{spec}`: `{env}` has no current release of `{service}` (every entry failed)")]
    NoCurrent { spec: String, env: String, service: String },
    #[error("`{spec}`: `{env}` has no v{version} of `{service}`")]
    NoVersion { spec: String, env: String, service: String, version: u64 },
    #[error("`{spec}` is not a release hash, `ENV` or `ENV@vN`")]
    Malformed { spec: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SpecError {
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// Resolves `spec` (see the module docs); `service` picks the service of an
/// environment with several.
pub fn resolve(store: &Store, spec: &str, service: Option<&str>) -> Result<Side, SpecError> {
    let (env, version) = match spec.split_once('@') {
        Some((env, v)) => {
            let version = v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| SpecError::Malformed { spec: spec.to_owned() })?;
            (env, Some(version))
        }
        None => (spec, None),
    };
    let envs = store.ledger_envs()?;
    if !envs.iter().any(|e| e == env) {
        if version.is_none() && spec.len() >= 8 && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return resolve_hash(store, spec);
        }
        return Err(SpecError::UnknownEnv {
            spec: spec.to_owned(),
            env: env.to_owned(),
            service: service.map(str::to_owned),
        });
    }
    let service = if let Some(s) = service {
        s.to_owned()
    } else {
        let services = store.ledger_services(env)?;
        match services.as_slice() {
            [only] => only.clone(),
            _ => return Err(SpecError::WhichService { spec: spec.to_owned(), env: env.to_owned(), services }),
        }
    };
    let row = match version {
        Some(v) => store.ledger_entry(env, &service, v)?.ok_or_else(|| SpecError::NoVersion {
            spec: spec.to_owned(),
            env: env.to_owned(),
            service: service.clone(),
            version: v,
        })?,
        None => store.ledger_current(env, &service)?.ok_or_else(|| {
            if store.ledger_latest(env, &service).ok().flatten().is_some() {
                SpecError::NoCurrent { spec: spec.to_owned(), env: env.to_owned(), service: service.clone() }
            } else {
                SpecError::UnknownEnv { spec: spec.to_owned(), env: env.to_owned(), service: Some(service.clone()) }
            }
        })?,
    };
    Ok(side_of_row(&row))
}

/// The side a ledger row stands for, labelled `env@vN`.
pub fn side_of_row(row: &LedgerRow) -> Side {
    Side {
        label: format!("{}@v{}", row.entry.env, row.entry.version),
        release: row.entry.release,
        build: row.build,
        config: row.config,
        service: Some(row.entry.service.clone()),
    }
}

fn resolve_hash(store: &Store, spec: &str) -> Result<Side, SpecError> {
    let d = store.resolve_prefix(spec).map_err(|source| SpecError::Hash { spec: spec.to_owned(), source })?;
    match store.kind_of(d)? {
        Some(ObjectKind::Release) => {}
        other => {
            return Err(SpecError::NotARelease {
                spec: spec.to_owned(),
                kind: other.map_or("blob", ObjectKind::as_str),
            });
        }
    }
    let r: Release = store.get_object(d)?;
    let service = store.ledger_last_of_release(ReleaseHash(d))?.map(|row| row.entry.service);
    Ok(Side { label: d.to_string(), release: ReleaseHash(d), build: r.build, config: r.config, service })
}

/// How a file changed between the two builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One file (or symlink, or empty folder) that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Relative to the release folder.
    pub path: String,
    pub change: Change,
    /// Size on side A (`None`: absent there).
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
    /// Kinds, when they differ (a file that became a symlink, …).
    pub old_kind: Option<EntryKind>,
    pub new_kind: Option<EntryKind>,
}

/// A var that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A process type (or the release command, named `release`) that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandChange {
    pub name: String,
    pub old: Option<Vec<String>>,
    pub new: Option<Vec<String>>,
}

/// A setting of a process type present on both sides that differs
/// (`restart`, `grace_s`, `ready`); `None`: left to the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub process: String,
    pub setting: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Everything that differs between two releases.
#[derive(Debug, Clone)]
pub struct ReleaseDiff {
    pub a: Side,
    pub b: Side,
    pub files: Vec<FileChange>,
    pub vars: Vec<VarChange>,
    pub secrets_added: Vec<String>,
    pub secrets_removed: Vec<String>,
    pub processes: Vec<CommandChange>,
    pub process_settings: Vec<SettingChange>,
    pub release_command: Option<CommandChange>,
}

impl ReleaseDiff {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.vars.is_empty()
            && self.secrets_added.is_empty()
            && self.secrets_removed.is_empty()
            && self.processes.is_empty()
            && self.process_settings.is_empty()
            && self.release_command.is_none()
    }
}

/// Compares two resolved releases.
pub fn diff(store: &Store, a: Side, b: Side) -> Result<ReleaseDiff, ReleaseError> {
    let (art_a, art_b): (Artifact, Artifact) = (store.get_object(a.build.0)?, store.get_object(b.build.0)?);
    let (cfg_a, cfg_b): (Config, Config) = (store.get_object(a.config.0)?, store.get_object(b.config.0)?);
    let mut files = Vec::new();
    if art_a.outputs != art_b.outputs {
        diff_trees(store, Some(art_a.outputs.0), Some(art_b.outputs.0), "", &mut files)?;
    }
    let vars = diff_maps(&cfg_a.vars, &cfg_b.vars)
        .into_iter()
        .map(|(name, old, new)| VarChange { name, old: old.cloned(), new: new.cloned() })
        .collect();
    let secrets_added = cfg_b.secrets.difference(&cfg_a.secrets).cloned().collect();
    let secrets_removed = cfg_a.secrets.difference(&cfg_b.secrets).cloned().collect();
    let commands = |a: &Artifact| -> BTreeMap<String, Vec<String>> {
        a.manifest.processes.iter().map(|(n, p)| (n.clone(), p.command.clone())).collect()
    };
    let processes = diff_maps(&commands(&art_a), &commands(&art_b))
        .into_iter()
        .map(|(name, old, new)| CommandChange { name, old: old.cloned(), new: new.cloned() })
        .collect();
    let process_settings = settings_changes(&art_a, &art_b);
    let release_command = (art_a.manifest.release != art_b.manifest.release).then(|| CommandChange {
        name: "release".into(),
        old: art_a.manifest.release.clone(),
        new: art_b.manifest.release.clone(),
    });
    Ok(ReleaseDiff { a, b, files, vars, secrets_added, secrets_removed, processes, process_settings, release_command })
}

/// Settings of process types on both sides that differ.
fn settings_changes(a: &Artifact, b: &Artifact) -> Vec<SettingChange> {
    let probe = |p: &Probe| match p {
        Probe::None => "none".to_owned(),
        Probe::Tcp => "tcp".to_owned(),
        Probe::Http { path } => format!("http {path}"),
        Probe::Command(argv) => format!("command {}", argv.join(" ")),
    };
    let mut out = Vec::new();
    for (name, x) in &a.manifest.processes {
        let Some(y) = b.manifest.processes.get(name) else { continue };
        let pairs = [
            ("restart", x.restart.map(|r| r.as_str().to_owned()), y.restart.map(|r| r.as_str().to_owned())),
            ("grace_s", x.grace_s.map(|g| g.to_string()), y.grace_s.map(|g| g.to_string())),
            ("ready", x.ready.as_ref().map(probe), y.ready.as_ref().map(probe)),
        ];
        for (setting, old, new) in pairs {
            if old != new {
                out.push(SettingChange { process: name.clone(), setting, old, new });
            }
        }
    }
    out
}

/// Keys whose values differ, with both values.
fn diff_maps<'a, V: PartialEq>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, V>,
) -> Vec<(String, Option<&'a V>, Option<&'a V>)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            (x != y).then(|| (k.clone(), x, y))
        })
        .collect()
}

fn load_tree(store: &Store, d: Option<Digest>) -> Result<Vec<TreeEntry>, StoreError> {
    Ok(match d {
        Some(d) => store.get_object::<Tree>(d)?.entries,
        None => Vec::new(),
    })
}

/// Appends the differences between two folder levels (`None`: absent).
fn diff_trees(
    store: &Store,
    a: Option<Digest>,
    b: Option<Digest>,
    prefix: &str,
    out: &mut Vec<FileChange>,
) -> Result<(), StoreError> {
    let (ea, eb) = (load_tree(store, a)?, load_tree(store, b)?);
    let by_name =
        |es: &[TreeEntry]| -> BTreeMap<String, TreeEntry> { es.iter().map(|e| (e.name.clone(), e.clone())).collect() };
    let (ma, mb) = (by_name(&ea), by_name(&eb));
    let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    for name in names {
        let path = format!("{prefix}{name}");
        let (x, y) = (ma.get(name), mb.get(name));
        if let (Some(x), Some(y)) = (x, y)
            && x.kind == y.kind
            && x.hash == y.hash
        {
            continue;
        }
        let dir_of = |e: Option<&TreeEntry>| e.filter(|e| e.kind == EntryKind::Dir).map(|e| e.hash);
        let (da, db) = (dir_of(x), dir_of(y));
        // A folder on either side: recurse, so its files are listed one by
        // one; an empty folder added or removed is listed as itself.
        if da.is_some() || db.is_some() {
            let before = out.len();
            diff_trees(store, da, db, &format!("{path}/"), out)?;
            let empty_dir_only = out.len() == before;
            if empty_dir_only && (da.is_none() || db.is_none()) && x.is_some() != y.is_some() {
                out.push(file_change(path.clone(), x, y));
            }
            // A file replaced by a folder (or back) is also a change of the
            // path itself.
            let other = if da.is_some() { y } else { x };
            if other.is_some_and(|e| e.kind != EntryKind::Dir) {
                let (x, y) = if da.is_some() { (None, y) } else { (x, None) };
                out.push(file_change(path, x, y));
            }
            continue;
        }
        out.push(file_change(path, x, y));
    }
    Ok(())
}

fn file_change(path: String, x: Option<&TreeEntry>, y: Option<&TreeEntry>) -> FileChange {
    let change = match (x, y) {
        (None, _) => Change::Added,
        (_, None) => Change::Removed,
        _ => Change::Changed,
    };
    let kinds_differ = matches!((x, y), (Some(x), Some(y)) if x.kind != y.kind);
    FileChange {
        path,
        change,
        old_size: x.map(|e| e.size),
        new_size: y.map(|e| e.size),
        old_kind: x.filter(|_| kinds_differ).map(|e| e.kind),
        new_kind: y.filter(|_| kinds_differ).map(|e| e.kind),
    }
}
