//! Why a target is cached or must build: every input of its key, and what
//! changed against the key recorded at its previous build; [`plan`], the
//! dry run, sums it up as cached or to build.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use brr_graph::{Inputs, Workspace};
use brr_hash::{ActionKey, ArtifactHash, BuildKey, Digest, EntryKind, Object, ToolClosure, Tree, TreeHash};
use brr_store::{ActionRecord, BuildRow, Store};

use crate::error::ExecError;
use crate::scheduler::{cached_artifact, make_action};

/// How a file of a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    Added,
    Removed,
    Changed,
}

impl fmt::Display for FileChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        })
    }
}

/// One difference between two build keys, worded for users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    FileAdded(String),
    FileRemoved(String),
    FileChanged(String),
    /// The previous source tree is not in this store (e.g. it was pruned).
    SourcesUnknown,
    Env {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    ToolAdded(String),
    ToolRemoved(String),
    ToolChanged(String),
    /// A file of a tool's closure (its binary, a library, a program a
    /// compiler driver runs) changed, appeared or went.
    ToolFile {
        tool: String,
        path: String,
        how: FileChange,
    },
    HostInput {
        path: String,
        how: FileChange,
    },
    /// Whether, and which, host CPU is in the key (`-march=native`).
    Cpu {
        old: Option<String>,
        new: Option<String>,
    },
    DepAdded(String),
    DepRemoved(String),
    DepChanged(String),
    /// A dependency must be rebuilt first, so its artifact is not known yet.
    DepPending(String),
    /// A declaration field: `builder`, `outputs`, `package folder`, `system`.
    Declaration(&'static str),
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::FileAdded(_) | Self::FileRemoved(_) | Self::FileChanged(_) | Self::SourcesUnknown => "file",
            Self::Env { .. } => "env",
            Self::ToolAdded(_) | Self::ToolRemoved(_) | Self::ToolChanged(_) | Self::ToolFile { .. } => "tool",
            Self::HostInput { .. } => "host input",
            Self::Cpu { .. } => "cpu",
            Self::DepAdded(_) | Self::DepRemoved(_) | Self::DepChanged(_) | Self::DepPending(_) => "dependency",
            Self::Declaration(_) => "declaration",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.as_ref().map_or_else(|| "(unset)".to_owned(), |v| format!("`{v}`"));
        match self {
            Self::FileAdded(p) => write!(f, "`{p}` added"),
            Self::FileRemoved(p) => write!(f, "`{p}` removed"),
            Self::FileChanged(p) => write!(f, "`{p}` changed"),
            Self::SourcesUnknown => write!(f, "input files changed (the previous ones are no longer in the store)"),
            Self::Env { name, old, new } => write!(f, "env `{name}`: {} → {}", show(old), show(new)),
            Self::ToolAdded(t) => write!(f, "tool `{t}` added"),
            Self::ToolRemoved(t) => write!(f, "tool `{t}` removed"),
            Self::ToolChanged(t) => write!(f, "tool `{t}` changed"),
            Self::ToolFile { tool, path, how } => write!(f, "tool `{tool}`: `{path}` {how}"),
            Self::HostInput { path, how } => write!(f, "host input `{path}` {how}"),
            Self::Cpu { old: None, new: Some(cpu) } => write!(f, "the key now includes this machine's CPU: {cpu}"),
            Self::Cpu { old: Some(_), new: None } => write!(f, "the key no longer includes the CPU"),
            Self::Cpu { old, new } => write!(f, "the CPU changed: {} → {}", show(old), show(new)),
            Self::DepAdded(d) => write!(f, "dependency `{d}` added"),
            Self::DepRemoved(d) => write!(f, "dependency `{d}` removed"),
            Self::DepChanged(d) => write!(f, "dependency `{d}` artifact changed"),
            Self::DepPending(d) => write!(f, "dependency `{d}` will be rebuilt"),
            Self::Declaration(field) => write!(f, "declaration changed: {field}"),
        }
    }
}

/// Everything `why` knows about one target.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub name: String,
    /// The key as far as known: dependencies that must be rebuilt first
    /// stand in with their previous artifacts (see `pending`).
    pub key: ActionKey,
    /// `None` while a dependency must be rebuilt first.
    pub key_hash: Option<BuildKey>,
    /// Dependencies whose artifact is not known yet.
    pub pending: Vec<String>,
    /// The cached artifact and the build that produced it, on a hit.
    pub cached: Option<(ArtifactHash, Option<ActionRecord>)>,
    /// The target's last recorded build, if any.
    pub previous: Option<BuildRow>,
    /// What differs from the previous build's key.
    pub changes: Vec<Change>,
}

impl Explanation {
    /// One line for `plan`.
    pub fn reason(&self) -> String {
        if self.cached.is_some() {
            return "cached".into();
        }
        let Some(prev) = &self.previous else { return "never built".into() };
        match self.changes.as_slice() {
            [] if prev.status == "failed" => "its previous build failed".into(),
            [] => "not in the cache".into(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        }
    }
}

/// Explains every target selected by `mask`, in dependency order.
pub fn explain(ws: &Workspace, inputs: &Inputs, store: &Store, mask: &[bool]) -> Result<Vec<Explanation>, ExecError> {
    let mut artifacts: Vec<Option<ArtifactHash>> = vec![None; ws.packages.len()];
    let mut out = Vec::new();
    for (i, pkg) in ws.packages.iter().enumerate().filter(|(i, _)| mask[*i]) {
        let previous = store.last_build(&pkg.name)?;
        let prev_key: Option<ActionKey> = match &previous {
            Some(row) if store.contains(row.key.0)? => Some(store.get_object(row.key.0)?),
            _ => None,
        };
        let mut deps = BTreeMap::new();
        let mut pending = Vec::new();
        for &d in &pkg.deps {
            let name = ws.packages[d].name.clone();
            if let Some(a) = artifacts[d] {
                deps.insert(name, a);
            } else {
                // Stand in with the previous artifact so the rest of the key
                // can still be compared.
                if let Some(a) = prev_key.as_ref().and_then(|k| k.deps.get(&name)) {
                    deps.insert(name.clone(), *a);
                }
                pending.push(name);
            }
        }
        let action = make_action(ws, inputs, i, deps);
        let mut cached = None;
        let mut key_hash = None;
        if pending.is_empty() {
            key_hash = Some(action.key_hash);
            if let Some(a) = cached_artifact(store, action.key_hash, &action)? {
                artifacts[i] = Some(a);
                cached = Some((a, store.lookup_action(action.key_hash)?));
            }
        }
        let mut changes: Vec<Change> = Vec::new();
        if let Some(old) = &prev_key {
            let built = brr_graph::source_tree(pkg, inputs.leaves(i))?;
            let new_trees: HashMap<TreeHash, &[u8]> = built.trees.iter().map(|(h, b)| (*h, b.as_slice())).collect();
            let load = |h: TreeHash| -> Option<Tree> {
                match new_trees.get(&h) {
                    Some(b) => Tree::decode(b).ok(),
                    None => store.get_object(h.0).ok(),
                }
            };
            let mut diff = diff_keys(old, &action.key, &load);
            diff.retain(|c| !matches!(c, Change::DepChanged(d) if pending.contains(d)));
            changes.extend(diff);
        }
        // Its own changes say more than "a dependency changed": they go first.
        changes.extend(pending.iter().cloned().map(Change::DepPending));
        out.push(Explanation {
            name: pkg.name.clone(),
            key: action.key.clone(),
            key_hash,
            pending,
            cached,
            previous,
            changes,
        });
    }
    Ok(out)
}

/// The differences between two keys, files first.
pub fn diff_keys(old: &ActionKey, new: &ActionKey, load: &dyn Fn(TreeHash) -> Option<Tree>) -> Vec<Change> {
    let mut out = Vec::new();
    if old.sources != new.sources {
        let before = out.len();
        if !diff_trees(old.sources, new.sources, "", load, &mut out) {
            out.truncate(before);
            out.push(Change::SourcesUnknown);
        }
    }
    let names: BTreeSet<&String> = old.env.keys().chain(new.env.keys()).collect();
    for n in names {
        let (o, w) = (old.env.get(n), new.env.get(n));
        if o != w {
            out.push(Change::Env { name: n.clone(), old: o.cloned(), new: w.cloned() });
        }
    }
    let tools: BTreeSet<&String> = old.tools.keys().chain(new.tools.keys()).collect();
    for n in tools {
        match (old.tools.get(n), new.tools.get(n)) {
            (None, Some(_)) => out.push(Change::ToolAdded(n.clone())),
            (Some(_), None) => out.push(Change::ToolRemoved(n.clone())),
            (Some(a), Some(b)) if a != b => {
                // A key from before closures knew no paths: the tool changed.
                let v1 = a.files.contains_key(ToolClosure::V1_BINARY) || b.files.contains_key(ToolClosure::V1_BINARY);
                let files = if v1 { Vec::new() } else { file_diff(&a.files, &b.files) };
                if files.is_empty() {
                    out.push(Change::ToolChanged(n.clone()));
                }
                out.extend(files.into_iter().map(|(path, how)| Change::ToolFile { tool: n.clone(), path, how }));
            }
            _ => {}
        }
    }
    out.extend(
        file_diff(&old.host_inputs, &new.host_inputs).into_iter().map(|(path, how)| Change::HostInput { path, how }),
    );
    if old.cpu != new.cpu {
        out.push(Change::Cpu { old: old.cpu.clone(), new: new.cpu.clone() });
    }
    map_diff(&old.deps, &new.deps, &mut out, Change::DepAdded, Change::DepRemoved, Change::DepChanged);
    if old.builder != new.builder {
        out.push(Change::Declaration("builder"));
    }
    if old.outputs != new.outputs {
        out.push(Change::Declaration("outputs"));
    }
    if old.package_dir != new.package_dir {
        out.push(Change::Declaration("package folder"));
    }
    if old.system != new.system {
        out.push(Change::Declaration("system"));
    }
    out
}

/// The paths of two path → digest maps that differ, sorted.
fn file_diff(old: &BTreeMap<String, Digest>, new: &BTreeMap<String, Digest>) -> Vec<(String, FileChange)> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| match (old.get(n), new.get(n)) {
            (None, Some(_)) => Some((n.clone(), FileChange::Added)),
            (Some(_), None) => Some((n.clone(), FileChange::Removed)),
            (Some(a), Some(b)) if a != b => Some((n.clone(), FileChange::Changed)),
            _ => None,
        })
        .collect()
}

fn map_diff<V: PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    out: &mut Vec<Change>,
    added: fn(String) -> Change,
    removed: fn(String) -> Change,
    changed: fn(String) -> Change,
) {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for n in names {
        match (old.get(n), new.get(n)) {
            (None, Some(_)) => out.push(added(n.clone())),
            (Some(_), None) => out.push(removed(n.clone())),
            (Some(a), Some(b)) if a != b => out.push(changed(n.clone())),
            _ => {}
        }
    }
}

/// Compares two source trees; false when one of them cannot be loaded.
fn diff_trees(
    old: TreeHash,
    new: TreeHash,
    prefix: &str,
    load: &dyn Fn(TreeHash) -> Option<Tree>,
    out: &mut Vec<Change>,
) -> bool {
    let (Some(a), Some(b)) = (load(old), load(new)) else { return false };
    let a: BTreeMap<&str, _> = a.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let b: BTreeMap<&str, _> = b.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let names: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    for n in names {
        let path = format!("{prefix}{n}");
        match (a.get(n), b.get(n)) {
            (Some(x), Some(y)) if x.kind == EntryKind::Dir && y.kind == EntryKind::Dir => {
                if x.hash != y.hash && !diff_trees(TreeHash(x.hash), TreeHash(y.hash), &format!("{path}/"), load, out) {
                    return false;
                }
            }
            (Some(x), Some(y)) => {
                if x.hash != y.hash || x.kind != y.kind {
                    out.push(Change::FileChanged(path));
                }
            }
            (None, Some(_)) => out.push(Change::FileAdded(path)),
            (Some(_), None) => out.push(Change::FileRemoved(path)),
            (None, None) => {}
        }
    }
    true
}

/// The key's digest, for display of an explanation whose key is complete.
pub fn key_of(e: &Explanation) -> BuildKey {
    e.key_hash.unwrap_or_else(|| BuildKey(e.key.digest()))
}

/// What `plan` expects for a target.
#[derive(Debug, Clone)]
pub enum Planned {
    Cached {
        key: BuildKey,
        artifact: ArtifactHash,
    },
    /// Would build; the key is known when all dependencies are cached.
    Build {
        key: Option<BuildKey>,
        reason: String,
    },
}

/// Dry run: for each selected target, cached or to build and why.
pub fn plan(ws: &Workspace, inputs: &Inputs, store: &Store, mask: &[bool]) -> Result<Vec<(usize, Planned)>, ExecError> {
    let explained = explain(ws, inputs, store, mask)?;
    let selected = (0..ws.packages.len()).filter(|i| mask[*i]);
    Ok(selected
        .zip(explained)
        .map(|(i, e)| {
            let planned = match (&e.cached, e.key_hash) {
                (Some((artifact, _)), Some(key)) => Planned::Cached { key, artifact: *artifact },
                _ => Planned::Build { key: e.key_hash, reason: e.reason() },
            };
            (i, planned)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use brr_hash::Digest;

    use super::*;

    fn key(cc1: &[u8], tools_v1: bool) -> ActionKey {
        let files = if tools_v1 {
            BTreeMap::from([(ToolClosure::V1_BINARY.to_owned(), Digest::of(b"gcc"))])
        } else {
            BTreeMap::from([
                ("/usr/bin/gcc".to_owned(), Digest::of(b"gcc")),
                ("/usr/lib/gcc/cc1".to_owned(), Digest::of(cc1)),
            ])
        };
        ActionKey {
            system: "x86_64-linux".into(),
            builder: vec!["cc".into()],
            env: BTreeMap::new(),
            outputs: BTreeSet::new(),
            tools: BTreeMap::from([("cc".into(), ToolClosure { files })]),
            host_inputs: BTreeMap::from([("/usr/include/a.h".into(), Digest::of(cc1))]),
            cpu: None,
            package_dir: "p".into(),
            sources: TreeHash(Digest::of(b"t")),
            deps: BTreeMap::new(),
        }
    }

    #[test]
    fn the_changed_file_of_a_closure_is_named() {
        let changes = diff_keys(&key(b"cc1 12.1", false), &key(b"cc1 12.2", false), &|_| None);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["tool `cc`: `/usr/lib/gcc/cc1` changed", "host input `/usr/include/a.h` changed"]);
        // Against a key from before closures, only the tool can be named.
        let changes = diff_keys(&key(b"cc1 12.1", true), &key(b"cc1 12.1", false), &|_| None);
        assert_eq!(changes, [Change::ToolChanged("cc".into())]);
        let mut with_cpu = key(b"cc1 12.1", false);
        with_cpu.cpu = Some("model name: X; flags: avx2".into());
        let changes = diff_keys(&key(b"cc1 12.1", false), &with_cpu, &|_| None);
        assert_eq!(changes[0].to_string(), "the key now includes this machine's CPU: model name: X; flags: avx2");
    }
}
