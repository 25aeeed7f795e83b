//! Store verification: a good store passes; corruption and dangling rows are reported.

use brr_hash::fs::snapshot;
use brr_hash::{Digest, ObjectKind};
use brr_store::Store;

use crate::support::{TestResult, big, clobber, clobber_packed, new_store, write_file};

/// A store holding a snapshot of two files big enough to get files in
/// `cas/` (its trees are small and kept in the database); returns the root tree.
fn populated() -> Result<(tempfile::TempDir, Store, Digest), Box<dyn std::error::Error>> {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    write_file(&src, "a", &big(b"alpha"), 0o644)?;
    write_file(&src, "d/b", &big(b"beta"), 0o755)?;
    let tree = store.put_snapshot(&snapshot(&src, &["a".to_owned(), "d".to_owned()])?)?;
    Ok((dir, store, tree.0))
}

/// A raw connection to the store's database, to break it on purpose.
fn raw_db(store: &Store) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open(store.db_path())
}

#[test]
fn good_store_passes() -> TestResult {
    let (_dir, store, _) = populated()?;
    let report = store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    // Two blobs and two trees.
    assert_eq!((report.objects, report.orphans), (4, 0));
    assert!(report.bytes >= 9);
    Ok(())
}

#[test]
fn corrupt_file_is_reported() -> TestResult {
    let (_dir, store, _) = populated()?;
    let d = Digest::of(&big(b"alpha"));
    clobber(&store.object_path(d), b"alphb")?;
    let report = store.verify()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&d.to_hex()) && report.problems[0].contains("corrupt"));
    Ok(())
}

#[test]
fn corrupt_tree_is_reported() -> TestResult {
    let (_dir, store, tree) = populated()?;
    assert_eq!(clobber_packed(&store, tree, b"brr/tree/1\nnonsense")?, 1);
    let report = store.verify()?;
    assert!(
        report.problems.iter().any(|p| p.contains(&tree.to_hex()) && p.contains("corrupt")),
        "{:?}",
        report.problems
    );
    Ok(())
}

#[test]
fn row_without_file_is_reported() -> TestResult {
    let (_dir, store, tree) = populated()?;
    let d = Digest::of(&big(b"beta"));
    std::fs::remove_file(store.object_path(d))?;
    // A small object whose pack location is gone, too.
    raw_db(&store)?.execute("UPDATE objects SET pack = NULL, pack_offset = NULL WHERE hash = ?1", [tree.as_bytes()])?;
    let report = store.verify()?;
    for gone in [d, tree] {
        assert!(
            report.problems.iter().any(|p| p.contains(&gone.to_hex()) && p.contains("missing")),
            "{:?}",
            report.problems
        );
    }
    Ok(())
}

#[test]
fn wrong_kind_and_dangling_rows_are_reported() -> TestResult {
    let (_dir, store, _) = populated()?;
    let fake_tree = store.put_bytes(ObjectKind::Blob, b"not a tree at all")?;
    let absent = Digest::of(b"absent");
    let conn = raw_db(&store)?;
    conn.execute("UPDATE objects SET kind = 'tree' WHERE hash = ?1", [fake_tree.as_bytes()])?;
    conn.execute(
        "INSERT INTO action_cache (key, artifact, log, duration_ms, created_at) VALUES (?1, ?2, NULL, 0, 0)",
        [Digest::of(b"key").as_bytes(), absent.as_bytes()],
    )?;
    drop(conn);
    let report = store.verify()?;
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.contains(&fake_tree.to_hex()) && p.contains("not a valid tree")));
    assert!(report.problems.iter().any(|p| p.contains("action cache") && p.contains(&absent.to_hex())));
    Ok(())
}

#[test]
fn orphans_are_counted_not_flagged() -> TestResult {
    let (_dir, store, _) = populated()?;
    // What a put killed between its rename and its commit leaves behind.
    let bytes = &big(b"orphan");
    let path = store.object_path(Digest::of(bytes));
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    std::fs::write(&path, bytes)?;
    let report = store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.orphans, 1);
    // The next put of the same object adopts the file.
    store.put_bytes(ObjectKind::Blob, bytes)?;
    assert_eq!(store.verify()?.orphans, 0);
    Ok(())
}

#[test]
fn verify_changes_nothing() -> TestResult {
    let (_dir, store, _) = populated()?;
    let d = Digest::of(&big(b"alpha"));
    clobber(&store.object_path(d), b"broken")?;
    let first = store.verify()?;
    assert_eq!(store.verify()?, first);
    assert_eq!(std::fs::read(store.object_path(d))?, b"broken");
    Ok(())
}
