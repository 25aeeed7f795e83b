//! Materializing trees: hard links, executable copies, symlinks, read-only folders.

use std::os::unix::fs::{MetadataExt, symlink};

use brr_hash::fs::snapshot;
use brr_hash::{Digest, EntryKind, ObjectKind, Tree, TreeEntry, TreeHash};
use brr_store::StoreError;

use crate::support::{TestResult, big, make_writable, mode, new_store, write_file};

const NAMES: [&str; 5] = ["a.txt", "bin", "empty", "link", "sub"];

/// A folder with a file, an executable, a symlink, nested and empty folders.
fn sample(root: &std::path::Path) -> std::io::Result<Vec<String>> {
    // Big enough to get files in `cas/`, so `a.txt` can be a hard link.
    write_file(root, "a.txt", &big(b"hello\n"), 0o644)?;
    write_file(root, "bin/run", &big(b"#!/bin/sh\necho run\n"), 0o755)?;
    write_file(root, "sub/deep/b.txt", b"deep\n", 0o600)?;
    std::fs::create_dir_all(root.join("empty"))?;
    symlink("a.txt", root.join("link"))?;
    Ok(NAMES.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn read_only_materialization_reproduces_the_tree() -> TestResult {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    let names = sample(&src)?;
    let snap = snapshot(&src, &names)?;
    let tree = store.put_snapshot(&snap)?;
    assert_eq!(tree, snap.tree.root);

    let dest = dir.path().join("out");
    store.materialize(tree, &dest, true)?;
    assert_eq!(std::fs::read(dest.join("a.txt"))?, big(b"hello\n"));
    assert_eq!(mode(&dest.join("a.txt"))?, 0o444);
    let cas = store.object_path(Digest::of(&big(b"hello\n")));
    assert_eq!(std::fs::metadata(dest.join("a.txt"))?.ino(), std::fs::metadata(&cas)?.ino(), "hard link");
    assert_eq!(mode(&dest.join("bin/run"))?, 0o555);
    assert_ne!(
        std::fs::metadata(dest.join("bin/run"))?.ino(),
        std::fs::metadata(store.object_path(Digest::of(&big(b"#!/bin/sh\necho run\n"))))?.ino()
    );
    assert_eq!(std::fs::read_link(dest.join("link"))?, std::path::Path::new("a.txt"));
    // A small file comes from the database as a read-only copy.
    assert_eq!(std::fs::read(dest.join("sub/deep/b.txt"))?, b"deep\n");
    assert_eq!(mode(&dest.join("sub/deep/b.txt"))?, 0o444);
    for d in ["", "bin", "empty", "sub", "sub/deep"] {
        assert_eq!(mode(&dest.join(d))?, 0o555, "folder `{d}`");
    }
    // Hashing the result gives the same tree: nothing lost, nothing added.
    let names: Vec<String> = NAMES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(snapshot(&dest, &names)?.tree.root, tree);

    let err = store.materialize(tree, &dest, true).expect_err("exists");
    assert!(matches!(err, StoreError::DestinationExists { .. }), "{err}");
    make_writable(&dest)?;
    Ok(())
}

#[test]
fn a_copying_materialization_shares_no_file_with_the_store() -> TestResult {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    let names = sample(&src)?;
    let tree = store.put_snapshot(&snapshot(&src, &names)?)?;
    let dest = dir.path().join("out");
    store.materialize_copy(tree, &dest, true)?;
    let cas = store.object_path(Digest::of(&big(b"hello\n")));
    assert_ne!(std::fs::metadata(dest.join("a.txt"))?.ino(), std::fs::metadata(&cas)?.ino(), "a hard link");
    assert_eq!(mode(&dest.join("a.txt"))?, 0o444);
    let names: Vec<String> = NAMES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(snapshot(&dest, &names)?.tree.root, tree);
    make_writable(&dest)?;
    Ok(())
}

#[test]
fn writable_materialization_keeps_folders_writable() -> TestResult {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    let names = sample(&src)?;
    let tree = store.put_snapshot(&snapshot(&src, &names)?)?;
    let dest = dir.path().join("out");
    store.materialize(tree, &dest, false)?;
    assert_eq!(mode(&dest.join("bin/run"))?, 0o755);
    assert_ne!(mode(&dest.join("sub"))? & 0o200, 0, "folder writable");
    assert_eq!(mode(&dest.join("a.txt"))?, 0o444, "hard links share the CAS mode");
    std::fs::write(dest.join("sub/new.txt"), b"new")?;
    Ok(())
}

#[test]
fn escaping_symlinks_are_refused_and_dest_removed() -> TestResult {
    let (dir, store) = new_store()?;
    let target = store.put_bytes(ObjectKind::Blob, b"../../etc/passwd")?;
    let file = store.put_bytes(ObjectKind::Blob, b"f")?;
    let tree = Tree {
        entries: vec![
            TreeEntry { name: "a".into(), kind: EntryKind::File, hash: file, size: 1 },
            TreeEntry { name: "evil".into(), kind: EntryKind::Symlink, hash: target, size: 16 },
        ],
    };
    let th = TreeHash(store.put_object(&tree)?);
    let dest = dir.path().join("out");
    let err = store.materialize(th, &dest, true).expect_err("escapes");
    assert!(matches!(err, StoreError::InvalidTree { ref name, .. } if name == "evil"), "{err}");
    assert!(!dest.exists(), "partial output removed");
    Ok(())
}

#[test]
fn unknown_tree_is_not_found() -> TestResult {
    let (dir, store) = new_store()?;
    let absent = TreeHash(Digest::of(b"absent"));
    let err = store.materialize(absent, &dir.path().join("out"), false).expect_err("absent");
    assert!(matches!(err, StoreError::NotFound { hash } if hash == absent.0), "{err}");
    Ok(())
}
