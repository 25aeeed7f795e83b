//! The large files `place_many` leaves without rows: adopted (not copied) by the commit that follows, and safe from deletion while their placer has the store open.

use std::os::unix::fs::MetadataExt;

use brr_hash::{Digest, ObjectKind};
use brr_store::{Access, Put, Store, StoreError};

use crate::support::{TestResult, big, write_file};

#[test]
fn large_files_placed_for_a_build_are_recorded_by_its_commit_without_a_copy() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let store = Store::open(&root)?;
    write_file(dir.path(), "src/large", &big(b"large"), 0o644)?;
    write_file(dir.path(), "src/small", b"small", 0o644)?;
    let (large_path, small_path) = (dir.path().join("src/large"), dir.path().join("src/small"));
    let (large, small) = (Digest::of(&big(b"large")), Digest::of(b"small"));
    let inputs = [Put::File { path: &large_path, hash: large }, Put::File { path: &small_path, hash: small }];
    store.place_many(&inputs)?;
    // Small: recorded at once. Large: a file in place, without a row.
    assert!(store.contains(small)?);
    assert!(!store.contains(large)?);
    let ino = std::fs::metadata(store.object_path(large))?.ino();
    assert_eq!(store.verify()?.orphans, 1);
    // Deleting cannot start while the placer has the store open.
    let refused = Store::open_exclusive(&root).err().ok_or("opened exclusive beside a placer")?;
    assert!(matches!(refused, StoreError::InUse { wanted: Access::Exclusive, .. }), "{refused}");

    // The build's batch names the same inputs, and its outputs.
    let mut batch = inputs.to_vec();
    batch.push(Put::Bytes { kind: ObjectKind::Blob, bytes: b"output" });
    let placed = store.place_batch(&batch)?;
    assert!(!store.contains(large)?, "placing a batch recorded something");
    assert!(store.commit(&[(placed, None)])?.into_iter().all(|r| r.is_ok()));
    assert!(store.contains(large)? && store.contains(Digest::of(b"output"))?);
    assert_eq!(std::fs::metadata(store.object_path(large))?.ino(), ino, "the placed file was copied again");
    let report = store.verify()?;
    assert!(report.is_ok() && report.orphans == 0, "{report:?}");
    Ok(())
}

#[test]
fn every_put_records_its_rows_only_with_their_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    write_file(dir.path(), "f", &big(b"file"), 0o644)?;
    let file = Digest::of(&big(b"file"));
    store.put_file(&dir.path().join("f"), file)?;
    let bytes = store.put_bytes(ObjectKind::Blob, b"bytes")?;
    let placed = store.place_many(&[Put::Bytes { kind: ObjectKind::Blob, bytes: b"placed" }])?;
    let batch = store.place_batch(&[Put::Bytes { kind: ObjectKind::Blob, bytes: &big(b"batch") }])?;
    let batched = batch.digests()[0];
    store.commit(&[(batch, None)])?;
    for d in [file, bytes, placed[0], batched] {
        assert!(store.contains(d)?);
        assert_eq!(Digest::of(&store.get(d)?), d);
    }
    // A batch whose reference is missing records nothing of it.
    let tree = brr_hash::Tree {
        entries: vec![brr_hash::TreeEntry {
            name: "x".into(),
            kind: brr_hash::EntryKind::File,
            hash: Digest::of(b"never put"),
            size: 9,
        }],
    };
    let bytes = brr_hash::Object::encode(&tree);
    let failing =
        [Put::Bytes { kind: ObjectKind::Blob, bytes: b"first" }, Put::Bytes { kind: ObjectKind::Tree, bytes: &bytes }];
    assert!(store.put_many(&failing).is_err());
    assert!(!store.contains(Digest::of(b"first"))?);
    assert!(store.verify()?.is_ok());
    Ok(())
}
