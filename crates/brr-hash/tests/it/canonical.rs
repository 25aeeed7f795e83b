//! What the encoding promises beyond its fields: maps in sorted order whatever
//! the insertion order, length-prefixed fields, and nothing but content.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{PermissionsExt, symlink};

use brr_hash::fs::{Leaf, TreeBuilder, snapshot};
use brr_hash::{ActionKey, Artifact, Digest, EntryKind, Object, ProcessSpec, ServiceManifest, TreeHash};

use crate::samples;

/// The pairs of `map` inserted into a new map in reverse order.
fn reversed<K: Ord + Clone, V: Clone>(map: &BTreeMap<K, V>) -> BTreeMap<K, V> {
    let mut out = BTreeMap::new();
    for (k, v) in map.iter().rev() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Env, outputs, tools and deps encode sorted: the same content given in
/// another order is the same key, byte for byte.
#[test]
fn action_key_maps_hash_the_same_in_any_insertion_order() {
    let base = samples::action_key();
    let mut outputs = BTreeSet::new();
    for o in base.outputs.iter().rev() {
        outputs.insert(o.clone());
    }
    let shuffled = ActionKey {
        env: reversed(&base.env),
        outputs,
        tools: reversed(&base.tools),
        deps: reversed(&base.deps),
        ..base.clone()
    };
    assert_eq!(shuffled.encode(), base.encode());
    assert_eq!(shuffled.key(), base.key());
    // The order of the builder's arguments is not a map's: it counts.
    let mut swapped = base.clone();
    swapped.builder.swap(0, 1);
    assert_ne!(swapped.key(), base.key());
}

/// Process types encode sorted by name.
#[test]
fn manifest_processes_hash_the_same_in_any_insertion_order() {
    let base = samples::artifact();
    let shuffled = Artifact {
        manifest: ServiceManifest { processes: reversed(&base.manifest.processes), ..base.manifest.clone() },
        ..base.clone()
    };
    assert_eq!(shuffled.encode(), base.encode());
    assert_eq!(shuffled.hash(), base.hash());
}

/// A tree's entries are sorted by name whatever order the files come in.
#[test]
fn trees_hash_the_same_in_any_insertion_order() {
    let leaf = |kind, bytes: &[u8]| Leaf { kind, hash: Digest::of(bytes), size: bytes.len() as u64 };
    let files = [
        ("b/z", leaf(EntryKind::File, b"z")),
        ("a", leaf(EntryKind::Executable, b"a")),
        ("b/c/d", leaf(EntryKind::Symlink, b"../a")),
        ("B", leaf(EntryKind::File, b"upper")),
        ("b/y", leaf(EntryKind::File, b"y")),
    ];
    let build = |order: &mut dyn Iterator<Item = &(&str, Leaf)>| {
        let mut builder = TreeBuilder::new();
        for (path, leaf) in order {
            builder.insert(path, leaf.clone()).unwrap();
        }
        builder.finish().root
    };
    let forward = build(&mut files.iter());
    assert_eq!(build(&mut files.iter().rev()), forward);
    assert_eq!(build(&mut [2, 4, 0, 3, 1].iter().map(|&i| &files[i])), forward);
}

/// Fields are length-prefixed: moving bytes from one field or element to
/// the next is a different object, never the same encoding.
#[test]
fn moving_bytes_across_a_boundary_changes_the_hash() {
    let base = samples::action_key();
    let key = |edit: &dyn Fn(&mut ActionKey)| {
        let mut k = base.clone();
        edit(&mut k);
        k.key()
    };
    let split = key(&|k| k.builder = vec!["ab".into(), "c".into()]);
    assert_ne!(split, key(&|k| k.builder = vec!["a".into(), "bc".into()]));
    assert_ne!(split, key(&|k| k.builder = vec!["abc".into()]));
    assert_ne!(split, key(&|k| k.builder = vec!["ab".into(), "c".into(), String::new()]));
    let env = |name: &str, value: &str| key(&|k| k.env = BTreeMap::from([(name.to_owned(), value.to_owned())]));
    assert_ne!(env("AB", "C"), env("A", "BC"));
    let system_and_dir = |system: &str, dir: &str| {
        key(&|k| {
            k.system = system.to_owned();
            k.package_dir = dir.to_owned();
        })
    };
    assert_ne!(system_and_dir("x86_64-linux", "app"), system_and_dir("x86_64-linuxa", "pp"));
    let process = |name: &str, arg: &str| {
        let processes = BTreeMap::from([(name.to_owned(), ProcessSpec::command(vec![arg.to_owned()]))]);
        Artifact { outputs: TreeHash(Digest::of(b"t")), manifest: ServiceManifest { processes, release: None } }.hash()
    };
    assert_ne!(process("web", "x"), process("we", "bx"));
}

/// Only the executable bit survives of a file's mode; mtimes do not enter.
#[test]
fn only_the_executable_bit_of_the_mode_enters_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs_err::write(&file, "x").unwrap();
    symlink("f", dir.path().join("l")).unwrap();
    let names = ["f", "l"].map(str::to_owned);
    let root_with_mode = |mode| {
        fs_err::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        snapshot(dir.path(), &names).unwrap().tree.root
    };
    let plain = root_with_mode(0o644);
    assert_eq!(root_with_mode(0o600), plain);
    assert_eq!(root_with_mode(0o444), plain);
    let exec = root_with_mode(0o755);
    assert_ne!(exec, plain);
    assert_eq!(root_with_mode(0o700), exec);
    assert_eq!(root_with_mode(0o711), exec);
    // Rewriting the same bytes (a new mtime) gives the same tree.
    fs_err::write(&file, "x").unwrap();
    assert_eq!(root_with_mode(0o644), plain);
}
