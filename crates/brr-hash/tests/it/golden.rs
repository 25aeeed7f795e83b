//! Golden hashes: one hand-built value per object kind, its BLAKE3 pinned.
//!
//! Each hex below was computed once by running this code (and checked with
//! `b3sum` over the encoded bytes), then written down. These hashes are in
//! stores, action caches, remote caches and release ledgers: if one of these
//! tests fails, the canonical encoding of that kind has changed, and every
//! existing key, tree, build hash and release hash made from it is silently
//! invalid. Such a change needs a new format version in the object's domain
//! tag (`brr/tree/2\n`, …) and a plan for old stores, after which the new hex
//! is pinned here. Never update a hex only to make a test pass.

use std::fmt::Debug;
use std::os::unix::fs::{PermissionsExt, symlink};

use brr_hash::fs::{Leaf, TreeBuilder, hash_file, snapshot};
use brr_hash::{ActionKey, Artifact, Config, Digest, EntryKind, LedgerEntry, Object, ObjectKind, Release, Tree};

use crate::samples;

/// `value` encodes as its tag then a body that decodes back to it, and its
/// hash is `hex`.
#[track_caller]
fn assert_pinned<T: Object + Debug + PartialEq>(value: &T, hex: &str) {
    let bytes = value.encode();
    assert!(bytes.starts_with(T::TAG.as_bytes()), "{:?} does not start with its tag", T::KIND);
    assert_eq!(&T::decode(&bytes).expect("the encoding decodes"), value);
    assert_eq!(value.digest(), Digest::of(&bytes), "an object's hash is BLAKE3 over its encoding");
    assert_eq!(value.digest().to_string(), hex, "the {:?} encoding changed: see this module's docs", T::KIND);
}

#[test]
fn domain_tags_are_pinned() {
    assert_eq!((Tree::KIND, Tree::TAG), (ObjectKind::Tree, "brr/tree/1\n"));
    assert_eq!((ActionKey::KIND, ActionKey::TAG), (ObjectKind::Action, "brr/action/1\n"));
    assert_eq!((Artifact::KIND, Artifact::TAG), (ObjectKind::Artifact, "brr/artifact/1\n"));
    assert_eq!((Config::KIND, Config::TAG), (ObjectKind::Config, "brr/config/1\n"));
    assert_eq!((Release::KIND, Release::TAG), (ObjectKind::Release, "brr/release/1\n"));
    assert_eq!((LedgerEntry::KIND, LedgerEntry::TAG), (ObjectKind::Ledger, "brr/ledger/1\n"));
}

/// The config hash holds vars and secret names, never a secret's value.
#[test]
fn config_hash_is_pinned() {
    assert_pinned(&Config::default(), "317edaa092626c57b2d9e471aedb833d33a81820725d3dba724d7ff249b80661");
    assert_pinned(&samples::config(), "ab4eda04bfcfebd150b59f7edba3bf60027a3b6cf89f2e7db94f9460df16d25a");
}

/// The release hash: a build hash and a config hash.
#[test]
fn release_hash_is_pinned() {
    assert_pinned(&samples::release(), "b8da28b1001ca69b52bc04bbea7edfc8efca73ab59e6eab56ab9f30128686c4f");
}

/// A ledger entry's hash is the next entry's `previous`: the chain's links.
#[test]
fn ledger_entry_hash_is_pinned() {
    assert_pinned(&samples::ledger_entry(), "cd29caa67f59c5417563cbc4b5693956844e65e9689880415b80870dd0627f7c");
    assert_pinned(&samples::first_ledger_entry(), "dd52c759af95cc32445142a9760b0e3ea08528ef0a9d40b77a91abcd741808d1");
}

/// A blob has no tag: its hash is BLAKE3 of the file's bytes, so `b3sum` agrees.
#[test]
fn blob_hash_is_pinned() {
    assert_eq!(
        Digest::of(samples::README).to_string(),
        "8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme.txt");
    fs_err::write(&path, samples::README).unwrap();
    let (hash, size) = hash_file(&path).unwrap();
    assert_eq!(hash.0, Digest::of(samples::README));
    assert_eq!(size, samples::README.len() as u64);
}

/// The sample tree and the `bin/` tree inside it hold every entry kind, and
/// the root pins `bin/` (and the empty tree) through its folders' hashes.
#[test]
fn tree_hash_is_pinned() {
    let (tree, bin) = (samples::tree(), samples::bin_tree());
    let kinds: Vec<EntryKind> = tree.entries.iter().chain(&bin.entries).map(|e| e.kind).collect();
    assert!(samples::all_entry_kinds().iter().all(|k| kinds.contains(k)), "the samples hold every entry kind");
    assert_pinned(&Tree::default(), "fa61540b00c6882b2149177ecb4dd22c0eb13229eb84bdcc3a72f5f162761e03");
    assert_pinned(&bin, "1d72e37b8f0f97213fa5af2f88f5914c9f839b39609224306bf62825bb7dc39c");
    assert_pinned(&tree, "5d8d71e8a555d68d37adb001fcc07be6b82cfc4ba12b355012a1c5181881f384");
}

/// The tree builder makes the hand-built tree: folder sizes are the sums of
/// the files below them, and an empty folder is an entry.
#[test]
fn tree_builder_builds_the_pinned_tree() {
    let mut builder = TreeBuilder::new();
    let leaf = |kind, bytes: &[u8]| Leaf { kind, hash: Digest::of(bytes), size: bytes.len() as u64 };
    builder.insert("readme.txt", leaf(EntryKind::File, samples::README)).unwrap();
    builder.insert("latest", leaf(EntryKind::Symlink, samples::LINK_TARGET.as_bytes())).unwrap();
    builder.insert("bin/tool", leaf(EntryKind::Executable, samples::TOOL)).unwrap();
    builder.insert_dir("empty");
    let built = builder.finish();
    assert_eq!(built.root, samples::tree().hash());
    assert_eq!(built.trees.len(), 3, "root, bin and empty");
}

/// The same folder on disk snapshots to the hand-built tree.
#[test]
fn snapshot_of_a_folder_gives_the_pinned_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs_err::create_dir_all(root.join("bin")).unwrap();
    fs_err::create_dir_all(root.join("empty")).unwrap();
    fs_err::write(root.join("readme.txt"), samples::README).unwrap();
    fs_err::write(root.join("bin/tool"), samples::TOOL).unwrap();
    fs_err::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(samples::LINK_TARGET, root.join("latest")).unwrap();
    let names = ["bin", "empty", "latest", "readme.txt"].map(str::to_owned);
    assert_eq!(snapshot(root, &names).unwrap().tree.root, samples::tree().hash());
}

#[test]
fn action_key_hash_is_pinned() {
    assert_pinned(&samples::action_key(), "59416cefd0626485ea57cadb44557e6b1926b90e16efeb2288d070a298be79f1");
}

/// The artifact hash is the build hash every release hash contains.
#[test]
fn artifact_hash_is_pinned() {
    assert_pinned(&samples::artifact(), "202f7f77e41a317d83de13b16756e1be2f2b6f8e99f1de602ecc20f41203f3cc");
    assert_pinned(&samples::library_artifact(), "1b77a87eada69ab2ab8c4cb9d76698253f2932197e032a78d45344dfb2b7a042");
}

/// The bytes of two small objects, written out by hand from the module docs
/// of `brr_hash::object`: the tag, then postcard (varint lengths and counts,
/// enum variants as their varint index, digests as 32 raw bytes, `None` as 0).
#[test]
fn small_encodings_are_spelled_out() {
    let tool = Digest::of(samples::TOOL);
    let mut tree = b"brr/tree/1\n".to_vec();
    tree.push(1); // one entry
    tree.extend([4]);
    tree.extend(b"tool"); // name
    tree.push(1); // kind: executable (file 0, executable 1, symlink 2, dir 3)
    tree.extend(tool.as_bytes()); // child hash
    tree.push(20); // size
    assert_eq!(samples::bin_tree().encode(), tree);

    let mut artifact = b"brr/artifact/1\n".to_vec();
    artifact.extend(samples::bin_tree().hash().0.as_bytes()); // outputs tree
    artifact.push(0); // no process types
    artifact.push(0); // no release command
    assert_eq!(samples::library_artifact().encode(), artifact);
}
