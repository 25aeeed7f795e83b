//! Tests of brr-verify: the file-by-file comparison of two output trees,
//! and rebuilds of real targets under the varied conditions.
#![expect(clippy::unwrap_used, reason = "a failing test panics, helpers included")]

mod compare;
mod rebuild;

use brr_hash::{EntryKind, ObjectKind, Tree, TreeEntry, TreeHash};
use brr_store::Store;

/// One entry of a tree being written: a file's bytes, or a folder.
enum Node<'a> {
    File(&'a [u8]),
    Exec(&'a [u8]),
    Dir(Vec<(&'a str, Node<'a>)>),
}

/// Stores `nodes` (names in any order) as a tree; its hash.
fn tree(store: &Store, nodes: Vec<(&str, Node<'_>)>) -> TreeHash {
    let mut entries: Vec<TreeEntry> = nodes
        .into_iter()
        .map(|(name, node)| {
            let (kind, hash, size) = match node {
                Node::File(b) => (EntryKind::File, store.put_bytes(ObjectKind::Blob, b).unwrap(), b.len() as u64),
                Node::Exec(b) => (EntryKind::Executable, store.put_bytes(ObjectKind::Blob, b).unwrap(), b.len() as u64),
                Node::Dir(children) => (EntryKind::Dir, tree(store, children).0, 0),
            };
            TreeEntry { name: name.to_owned(), kind, hash, size }
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    TreeHash(store.put_object(&Tree { entries }).unwrap())
}

/// A store in a fresh temporary folder.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}
