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

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::os::unix::fs::{PermissionsExt, symlink};

use brr_hash::fs::{Leaf, TreeBuilder, hash_file, snapshot};
use brr_hash::{
    ARTIFACT_V1_TAG, ActionKey, Artifact, Config, Digest, EntryKind, LedgerEntry, Object, ObjectKind, Probe,
    ProcessSpec, Release, Restart, ServiceManifest, Tree,
};

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
    assert_eq!((ActionKey::KIND, ActionKey::TAG), (ObjectKind::Action, "brr/action/2\n"));
    assert_eq!((Artifact::KIND, Artifact::TAG), (ObjectKind::Artifact, "brr/artifact/2\n"));
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

/// The release hash: a build hash and a config hash. The sample's build
/// is the sample artifact, so this hex (and the ledger entries' below)
/// changed with `brr/artifact/2` although their own encoding did not: with
/// the `brr/artifact/1` sample's hash as build, they gave the earlier hexes
/// (`b8da28b1…`, `cd29caa6…`, `dd52c759…`).
#[test]
fn release_hash_is_pinned() {
    assert_pinned(&samples::release(), "447519a657cc6385869e7c5ec7e4be613bd4b523ab009d135ecd41e4b1940c6a");
}

/// A ledger entry's hash is the next entry's `previous`: the chain's links.
#[test]
fn ledger_entry_hash_is_pinned() {
    assert_pinned(&samples::ledger_entry(), "ec12b4b800f93714affa94ee7bb3e163f4460e6826b1dd7bbc33843b87dc0381");
    assert_pinned(&samples::first_ledger_entry(), "2dde79c2d7f143cbfbaef57b63f25ca2efdc7f02bb4c0b7c85b301239cb3a409");
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
    assert_pinned(&samples::action_key(), "a83e7c2ace0c620e1bc3ce6b7339790851eb1033af114238acd0cc4d9ea67c84");
}

/// What `why` shows per tool: one digest over its closure.
#[test]
fn tool_closure_digest_is_pinned() {
    assert_eq!(
        samples::cc_closure().digest().to_string(),
        "a67b8c651c6f7eddb0586280e7b88da8ae9bb512ddb6440dca500c09b9b1ccdd"
    );
}

/// The artifact hash is the build hash every release hash contains.
#[test]
fn artifact_hash_is_pinned() {
    assert_pinned(&samples::artifact(), "051fe7d527eee860f6f882cf0d287a1cd57228ac69cfb819147c2371e79d1910");
    assert_pinned(&samples::library_artifact(), "cbaae1dd1934bcb26fee86758141c1df282ed06a393daed935ed7bdc2b58ca52");
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

    let mut artifact = b"brr/artifact/2\n".to_vec();
    artifact.extend(samples::bin_tree().hash().0.as_bytes()); // outputs tree
    artifact.push(0); // no process types
    artifact.push(0); // no release command
    assert_eq!(samples::library_artifact().encode(), artifact);
}

/// A process type's encoding in `brr/artifact/2`: argv, then each setting
/// as an option (`0` for the default, `1` then the value when declared).
#[test]
fn a_process_type_encoding_is_spelled_out() {
    let outputs = samples::bin_tree().hash();
    let spec =
        |ready| ProcessSpec { command: vec!["a".into()], restart: Some(Restart::Never), grace_s: Some(300), ready };
    let manifest = |p| ServiceManifest { processes: BTreeMap::from([("web".into(), p)]), release: None };
    let mut expected = b"brr/artifact/2\n".to_vec();
    expected.extend(outputs.0.as_bytes());
    expected.extend([1, 3]); // one process type, its name's length
    expected.extend(b"web");
    expected.extend([1, 1, b'a']); // argv: one argument of one byte
    expected.extend([1, 0]); // restart: declared, `never` (never 0, on-failure 1, always 2)
    expected.extend([1, 0xac, 0x02]); // grace_s: declared, 300 as a varint
    let mut http = expected.clone();
    http.extend([1, 2, 1, b'/']); // ready: declared, http (none 0, tcp 1, http 2, command 3), path "/"
    http.push(0); // no release command
    let artifact = Artifact { outputs, manifest: manifest(spec(Some(Probe::Http { path: "/".into() }))) };
    assert_eq!(artifact.encode(), http);
    expected.push(0); // ready: the default
    expected.push(0); // no release command
    let artifact = Artifact { outputs, manifest: manifest(spec(None)) };
    assert_eq!(artifact.encode(), expected);
}

/// Objects stored before process types had settings (`brr/artifact/1`)
/// still decode, with every setting the default, so old stores verify and
/// their releases run; they are never written any more.
#[test]
fn version_1_artifacts_still_decode() {
    let outputs = samples::bin_tree().hash();
    let mut v1 = ARTIFACT_V1_TAG.as_bytes().to_vec();
    v1.extend(outputs.0.as_bytes());
    v1.extend([1, 3]);
    v1.extend(b"web");
    v1.extend([2, 3]);
    v1.extend(b"bin");
    v1.extend([1, b'x']); // argv ["bin", "x"], and nothing else
    v1.extend([1, 1, 1, b'm']); // release command ["m"]
    let decoded = Artifact::decode(&v1).expect("a version 1 artifact decodes");
    let web = ProcessSpec::command(vec!["bin".into(), "x".into()]);
    let manifest =
        ServiceManifest { processes: BTreeMap::from([("web".into(), web)]), release: Some(vec!["m".into()]) };
    assert_eq!(decoded, Artifact { outputs, manifest });
    assert!(decoded.encode().starts_with(b"brr/artifact/2\n"), "it is re-encoded in the current version");
    assert!(Artifact::decode(b"brr/artifact/3\n").is_err());
    assert!(Artifact::decode(&v1[..v1.len() - 1]).is_err(), "a cut version 1 body is malformed");
}
