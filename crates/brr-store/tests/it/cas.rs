//! Putting and getting objects: round trips, idempotence, kinds, references.

use std::os::unix::fs::PermissionsExt;

use brr_hash::{Artifact, Digest, EntryKind, Object, ObjectKind, ServiceManifest, Tree, TreeEntry, TreeHash};
use brr_store::{Store, StoreError};

use crate::support::{TestResult, big, clobber, clobber_packed, new_store};

fn tree_of(name: &str, blob: Digest, size: u64) -> Tree {
    Tree { entries: vec![TreeEntry { name: name.into(), kind: EntryKind::File, hash: blob, size }] }
}

#[test]
fn bytes_round_trip_and_file_is_read_only() -> TestResult {
    let (_dir, store) = new_store()?;
    // Small objects live in the database: no file.
    let small = store.put_bytes(ObjectKind::Blob, b"hello")?;
    assert_eq!(small, Digest::of(b"hello"));
    assert_eq!(store.get(small)?, b"hello");
    assert!(store.contains(small)?);
    assert!(!store.object_path(small).exists(), "a small object got a file");

    let bytes = big(b"hello");
    let d = store.put_bytes(ObjectKind::Blob, &bytes)?;
    assert_eq!(d, Digest::of(&bytes));
    assert_eq!(store.get(d)?, bytes);
    assert!(store.contains(d)?);
    let path = store.object_path(d);
    let hex = d.to_hex();
    assert!(path.ends_with(format!("cas/{}/{}", &hex[..2], &hex[2..])));
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o444);
    let empty = store.put_bytes(ObjectKind::Blob, b"")?;
    assert_eq!(store.get(empty)?, b"");
    Ok(())
}

#[test]
fn objects_round_trip() -> TestResult {
    let (_dir, store) = new_store()?;
    let blob = store.put_bytes(ObjectKind::Blob, b"x")?;
    let tree = tree_of("x", blob, 1);
    let th = store.put_object(&tree)?;
    assert_eq!(th, tree.digest());
    assert_eq!(store.get_object::<Tree>(th)?, tree);
    let err = store.get_object::<Artifact>(th).expect_err("a tree is not an artifact");
    assert!(matches!(err, StoreError::Invalid { hash, kind: ObjectKind::Artifact, .. } if hash == th), "{err}");
    Ok(())
}

#[test]
fn putting_twice_is_a_no_op() -> TestResult {
    let (_dir, store) = new_store()?;
    let bytes = big(b"same");
    let d = store.put_bytes(ObjectKind::Blob, &bytes)?;
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(store.object_path(d))?);
    assert_eq!(store.put_bytes(ObjectKind::Blob, &bytes)?, d);
    let again = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(store.object_path(d))?);
    assert_eq!(ino, again, "the file was not rewritten");
    assert_eq!(store.verify()?.objects, 1);
    Ok(())
}

#[test]
fn kind_is_recorded() -> TestResult {
    let (_dir, store) = new_store()?;
    let blob = store.put_bytes(ObjectKind::Blob, b"k")?;
    let tree = store.put_object(&tree_of("k", blob, 1))?;
    let art = store.put_object(&Artifact { outputs: TreeHash(tree), manifest: ServiceManifest::default() })?;
    assert_eq!(store.kind_of(blob)?, Some(ObjectKind::Blob));
    assert_eq!(store.kind_of(tree)?, Some(ObjectKind::Tree));
    assert_eq!(store.kind_of(art)?, Some(ObjectKind::Artifact));
    assert_eq!(store.kind_of(Digest::of(b"absent"))?, None);
    Ok(())
}

#[test]
fn tree_bytes_put_as_blob_first_become_a_tree() -> TestResult {
    let (_dir, store) = new_store()?;
    let blob = store.put_bytes(ObjectKind::Blob, b"k")?;
    let bytes = tree_of("k", blob, 1).encode();
    let d = store.put_bytes(ObjectKind::Blob, &bytes)?;
    assert_eq!(store.kind_of(d)?, Some(ObjectKind::Blob));
    store.put_bytes(ObjectKind::Tree, &bytes)?;
    assert_eq!(store.kind_of(d)?, Some(ObjectKind::Tree));
    store.put_bytes(ObjectKind::Blob, &bytes)?;
    assert_eq!(store.kind_of(d)?, Some(ObjectKind::Tree), "a tree also serves as a blob");
    Ok(())
}

#[test]
fn references_must_be_stored_first() -> TestResult {
    let (_dir, store) = new_store()?;
    let missing = Digest::of(b"never stored");
    let err = store.put_object(&tree_of("f", missing, 12)).expect_err("child missing");
    assert!(matches!(err, StoreError::MissingReference { missing: m, .. } if m == missing), "{err}");
    let err = store
        .put_object(&Artifact { outputs: TreeHash(missing), manifest: ServiceManifest::default() })
        .expect_err("outputs missing");
    assert!(matches!(err, StoreError::MissingReference { expected: ObjectKind::Tree, .. }), "{err}");
    // A blob where a folder is declared is not a tree.
    let blob = store.put_bytes(ObjectKind::Blob, b"not a tree")?;
    let dir = Tree { entries: vec![TreeEntry { name: "d".into(), kind: EntryKind::Dir, hash: blob, size: 0 }] };
    assert!(store.put_object(&dir).is_err());
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn malformed_objects_are_refused() -> TestResult {
    let (_dir, store) = new_store()?;
    let err = store.put_bytes(ObjectKind::Tree, b"brr/tree/1\n\xff\xff").expect_err("garbage");
    assert!(matches!(err, StoreError::Invalid { kind: ObjectKind::Tree, .. }), "{err}");
    let blob = store.put_bytes(ObjectKind::Blob, b"b")?;
    for bad in ["..", "a/b", ""] {
        let err = store.put_object(&tree_of(bad, blob, 1)).expect_err("bad name");
        assert!(matches!(err, StoreError::InvalidTree { .. }), "{err}");
    }
    Ok(())
}

#[test]
fn put_file_checks_the_hash_while_copying() -> TestResult {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data)?;
    let wrong = Digest::of(b"other");
    let err = store.put_file(&src, wrong).expect_err("wrong hash");
    assert!(
        matches!(&err, StoreError::HashMismatch { path, expected, .. } if path == &src && *expected == wrong),
        "{err}"
    );
    assert!(!store.contains(wrong)?);
    assert_eq!(std::fs::read_dir(store.tmp_dir())?.count(), 0, "temp file removed");
    let right = Digest::of(&data);
    store.put_file(&src, right)?;
    assert_eq!(store.get(right)?, data);
    assert_eq!(store.kind_of(right)?, Some(ObjectKind::Blob));
    Ok(())
}

#[test]
fn get_reports_missing_and_corrupt_objects() -> TestResult {
    let (_dir, store) = new_store()?;
    let absent = Digest::of(b"absent");
    let err = store.get(absent).expect_err("absent");
    assert!(matches!(err, StoreError::NotFound { hash } if hash == absent), "{err}");
    assert!(err.to_string().contains(&absent.to_hex()));
    let d = store.put_bytes(ObjectKind::Blob, &big(b"good"))?;
    clobber(&store.object_path(d), b"evil")?;
    let err = store.get(d).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { hash, .. } if hash == d), "{err}");
    // The same for a small object's bytes in the database.
    let small = store.put_bytes(ObjectKind::Blob, b"good")?;
    assert_eq!(clobber_packed(&store, small, b"evil")?, 1);
    let err = store.get(small).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { hash, .. } if hash == small), "{err}");
    Ok(())
}

#[test]
fn small_objects_kept_as_files_by_an_older_brr_still_read_and_verify() -> TestResult {
    let (dir, store) = new_store()?;
    // What a store of schema 3 holds: a small object as a file with its row.
    let bytes = b"written before objects moved into the database";
    let d = Digest::of(bytes);
    let path = store.object_path(d);
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    std::fs::write(&path, bytes)?;
    rusqlite::Connection::open(store.db_path())?.execute(
        "INSERT INTO objects (hash, kind, size) VALUES (?1, 'blob', ?2)",
        rusqlite::params![d.as_bytes(), i64::try_from(bytes.len())?],
    )?;
    assert_eq!(store.get(d)?, bytes);
    let report = store.verify()?;
    assert!(report.is_ok() && report.objects == 1 && report.orphans == 0, "{report:?}");
    // A tree naming it materializes it from its file.
    let tree = store.put_object(&tree_of("old", d, bytes.len() as u64))?;
    let dest = dir.path().join("out");
    store.materialize(TreeHash(tree), &dest, false)?;
    assert_eq!(std::fs::read(dest.join("old"))?, bytes);
    // Putting the same bytes again is a no-op: the row is there.
    assert_eq!(store.put_bytes(ObjectKind::Blob, bytes)?, d);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn small_objects_kept_in_the_database_by_an_older_brr_still_read_and_verify() -> TestResult {
    let (_dir, store) = new_store()?;
    // What a store of schema 4 holds: a small object's bytes in its row.
    let bytes = b"written when small objects lived in the database";
    let d = Digest::of(bytes);
    let conn = rusqlite::Connection::open(store.db_path())?;
    conn.execute(
        "INSERT INTO objects (hash, kind, size) VALUES (?1, 'blob', ?2)",
        rusqlite::params![d.as_bytes(), i64::try_from(bytes.len())?],
    )?;
    conn.execute("INSERT INTO object_data (hash, data) VALUES (?1, ?2)", rusqlite::params![d.as_bytes(), bytes])?;
    assert_eq!(store.get(d)?, bytes);
    assert!(store.verify()?.is_ok());
    conn.execute("UPDATE object_data SET data = ?2 WHERE hash = ?1", rusqlite::params![d.as_bytes(), b"evil"])?;
    let report = store.verify()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&d.to_hex()) && report.problems[0].contains("corrupt"));
    Ok(())
}

#[test]
fn small_objects_are_packed_and_a_lost_pack_is_reported() -> TestResult {
    let (_dir, store) = new_store()?;
    let root = store.root().to_path_buf();
    let small = store.put_bytes(ObjectKind::Blob, b"a small object")?;
    assert!(!store.object_path(small).exists(), "a small object got a file of its own");
    let packs: Vec<_> = std::fs::read_dir(root.join("packs"))?.collect::<Result<_, _>>()?;
    assert_eq!(packs.len(), 1);
    assert_eq!(store.get(small)?, b"a small object");
    // A second process on the same store appends to a pack of its own.
    let other = Store::open(&root)?;
    let second = other.put_bytes(ObjectKind::Blob, b"another small object")?;
    assert_eq!(std::fs::read_dir(root.join("packs"))?.count(), 2);
    assert_eq!(store.get(second)?, b"another small object");
    assert!(store.verify()?.is_ok());

    std::fs::remove_file(packs[0].path())?;
    let fresh = Store::open(&root)?;
    let err = fresh.get(small).expect_err("its pack is gone");
    assert!(err.to_string().contains(&packs[0].file_name().to_string_lossy().into_owned()), "{err}");
    let report = fresh.verify()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&small.to_hex()), "{:?}", report.problems);
    Ok(())
}

#[test]
fn read_checked_gives_the_hashed_bytes_or_says_the_file_changed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("input.txt");
    std::fs::write(&path, b"hashed bytes")?;
    let hash = Digest::of(b"hashed bytes");
    assert_eq!(brr_store::read_checked(&path, 12, hash)?.bytes(), b"hashed bytes");
    // Grown past what was hashed: the hashed prefix is still what the key means.
    std::fs::write(&path, b"hashed bytes and more")?;
    assert_eq!(brr_store::read_checked(&path, 12, hash)?.bytes(), b"hashed bytes");
    // Shrunk, or changed within: named as a changed file.
    for now in [&b"hashed"[..], b"HASHED bytes"] {
        std::fs::write(&path, now)?;
        let err = brr_store::read_checked(&path, 12, hash).expect_err("changed file");
        assert!(
            matches!(&err, StoreError::HashMismatch { path: p, expected, .. } if p == &path && *expected == hash),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn hashed_blobs_are_stored_under_their_own_digest() -> TestResult {
    let (_dir, store) = new_store()?;
    let hashed = brr_hash::HashedBytes::new(b"already hashed".to_vec());
    let digests = store.put_many(&[brr_store::Put::HashedBlob(&hashed)])?;
    assert_eq!(digests, vec![Digest::of(b"already hashed")]);
    assert_eq!(store.get(digests[0])?, b"already hashed");
    assert_eq!(store.kind_of(digests[0])?, Some(ObjectKind::Blob));
    Ok(())
}
