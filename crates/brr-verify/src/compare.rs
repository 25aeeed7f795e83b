//! Comparing two output trees file by file: what was added, removed or
//! changed, with a short unified diff for text and the first differing byte
//! offset for binaries. Every difference is reported, not only the first.

use std::collections::{BTreeMap, BTreeSet};

use brr_hash::{EntryKind, Tree, TreeEntry, TreeHash};
use brr_store::{Store, StoreError};
use serde::Serialize;

/// Lines of unified diff kept per file.
const DIFF_LINES: usize = 40;
/// Files larger than this get no text diff, only sizes and an offset.
const TEXT_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One differing path between a reference round and another round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Path relative to `$OUT`.
    pub path: String,
    pub change: ChangeKind,
    /// Entry kinds (`file`, `executable`, `symlink`, `dir`) when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<(String, String)>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// A unified diff for text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The first differing byte for binaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference_offset: Option<u64>,
}

fn kind_name(k: EntryKind) -> String {
    format!("{k:?}").to_lowercase()
}

/// Every difference between trees `a` and `b`.
pub fn compare(store: &Store, a: TreeHash, b: TreeHash) -> Result<Vec<Difference>, StoreError> {
    let mut out = Vec::new();
    walk(store, Some(a), Some(b), "", &mut out)?;
    Ok(out)
}

fn entries(store: &Store, t: Option<TreeHash>) -> Result<BTreeMap<String, TreeEntry>, StoreError> {
    let Some(t) = t else { return Ok(BTreeMap::new()) };
    let tree: Tree = store.get_object(t.0)?;
    Ok(tree.entries.into_iter().map(|e| (e.name.clone(), e)).collect())
}

fn walk(
    store: &Store,
    a: Option<TreeHash>,
    b: Option<TreeHash>,
    prefix: &str,
    out: &mut Vec<Difference>,
) -> Result<(), StoreError> {
    let (ea, eb) = (entries(store, a)?, entries(store, b)?);
    let names: BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for name in names {
        let path = format!("{prefix}{name}");
        let (x, y) = (ea.get(name), eb.get(name));
        let dir = |e: Option<&TreeEntry>| e.filter(|e| e.kind == EntryKind::Dir).map(|e| TreeHash(e.hash));
        let (dx, dy) = (dir(x), dir(y));
        if dx.is_some() || dy.is_some() {
            // Folders are walked, so an added or removed folder lists every
            // file in it; a file replaced by a folder is reported as well.
            if x.map(|e| (e.hash, e.kind)) != y.map(|e| (e.hash, e.kind)) {
                walk(store, dx, dy, &format!("{path}/"), out)?;
                if let Some(f) = x.filter(|e| e.kind != EntryKind::Dir) {
                    out.push(one_sided(&path, ChangeKind::Removed, Some(f.size), None));
                }
                if let Some(f) = y.filter(|e| e.kind != EntryKind::Dir) {
                    out.push(one_sided(&path, ChangeKind::Added, None, Some(f.size)));
                }
            }
            continue;
        }
        match (x, y) {
            (Some(x), Some(y)) if x.hash == y.hash && x.kind == y.kind => {}
            (Some(x), Some(y)) => out.push(file_difference(store, &path, x, y)?),
            (None, Some(y)) => out.push(one_sided(&path, ChangeKind::Added, None, Some(y.size))),
            (Some(x), None) => out.push(one_sided(&path, ChangeKind::Removed, Some(x.size), None)),
            (None, None) => {}
        }
    }
    Ok(())
}

fn one_sided(path: &str, change: ChangeKind, before: Option<u64>, after: Option<u64>) -> Difference {
    Difference {
        path: path.to_owned(),
        change,
        kinds: None,
        size_before: before,
        size_after: after,
        diff: None,
        first_difference_offset: None,
    }
}

fn file_difference(store: &Store, path: &str, old: &TreeEntry, new: &TreeEntry) -> Result<Difference, StoreError> {
    let mut diff = one_sided(path, ChangeKind::Changed, Some(old.size), Some(new.size));
    if old.kind != new.kind {
        diff.kinds = Some((kind_name(old.kind), kind_name(new.kind)));
    }
    if old.hash == new.hash {
        return Ok(diff);
    }
    let (before, after) = (store.get(old.hash)?, store.get(new.hash)?);
    let text = |v: &[u8]| (v.len() as u64) <= TEXT_LIMIT && !v.contains(&0) && std::str::from_utf8(v).is_ok();
    if text(&before) && text(&after) {
        diff.diff = Some(unified_diff(&before, &after));
    } else {
        let offset = before.iter().zip(&after).position(|(p, q)| p != q).unwrap_or(before.len().min(after.len()));
        diff.first_difference_offset = Some(offset as u64);
    }
    Ok(diff)
}

fn unified_diff(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let diff = similar::TextDiff::from_lines(a.as_ref(), b.as_ref());
    let text = diff.unified_diff().context_radius(2).header("first round", "other round").to_string();
    let mut lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() > DIFF_LINES;
    lines.truncate(DIFF_LINES);
    let mut s = lines.join("\n");
    if cut {
        s.push_str("\n… (diff truncated)");
    }
    s
}
