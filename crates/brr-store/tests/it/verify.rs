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

/// A verification of `tree` under a key recorded as an action.
fn verification_of(store: &Store, tree: Digest) -> Result<brr_store::Verification, Box<dyn std::error::Error>> {
    use brr_hash::{ActionKey, BuildKey, Object, TreeHash};
    let action = ActionKey {
        system: "x86_64-linux".into(),
        builder: vec!["true".into()],
        env: std::collections::BTreeMap::new(),
        outputs: std::collections::BTreeSet::new(),
        tools: std::collections::BTreeMap::new(),
        host_inputs: std::collections::BTreeMap::new(),
        cpu: None,
        package_dir: String::new(),
        sources: TreeHash(tree),
        deps: std::collections::BTreeMap::new(),
    };
    let key = BuildKey(store.put_object(&action)?);
    assert_eq!(key.0, Digest::of(&action.encode()));
    Ok(brr_store::Verification {
        target: "//t".into(),
        key,
        rounds: 2,
        reproducible: true,
        outputs: vec![TreeHash(tree), TreeHash(tree)],
        differing: Vec::new(),
        verified_at: 0,
    })
}

#[test]
fn a_verification_must_name_a_recorded_key_and_output_trees() -> TestResult {
    let (_dir, store, tree) = populated()?;
    let good = verification_of(&store, tree)?;
    store.record_verification(&good)?;
    let unknown_key = brr_store::Verification { key: brr_hash::BuildKey(Digest::of(b"no key")), ..good.clone() };
    assert!(store.record_verification(&unknown_key).is_err());
    let blob = Digest::of(&big(b"alpha"));
    let not_a_tree = brr_store::Verification { outputs: vec![brr_hash::TreeHash(blob)], ..good.clone() };
    assert!(store.record_verification(&not_a_tree).is_err());
    assert_eq!(store.latest_verifications()?, [good]);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn dangling_key_and_outputs_of_a_verification_are_reported_and_repaired() -> TestResult {
    let (_dir, store, tree) = populated()?;
    store.record_verification(&verification_of(&store, tree)?)?;
    let (key, output) = (Digest::of(b"gone key"), Digest::of(b"gone tree"));
    raw_db(&store)?.execute(
        "INSERT INTO verifications (target, key, rounds, reproducible, outputs, differing, verified_at)
         VALUES ('//u', ?1, 2, 1, ?2, '', 0)",
        rusqlite::params![key.as_bytes(), format!("{tree}\n{output}")],
    )?;
    let report = store.verify()?;
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(report.problems.iter().all(|p| p.contains("verification #2 of `//u`")), "{:?}", report.problems);
    assert!(report.problems[0].contains(&format!("action `{key}`")), "{:?}", report.problems);
    assert!(report.problems[1].contains(&format!("tree `{output}`")), "{:?}", report.problems);
    let repaired = store.repair()?;
    assert_eq!(repaired.verifications, 1);
    assert!(store.verify()?.is_ok());
    assert_eq!(store.latest_verifications()?.len(), 1);
    Ok(())
}
