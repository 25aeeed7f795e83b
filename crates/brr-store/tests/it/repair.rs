//! Damaged action-cache and history values are found; `repair` drops damaged
//! rows and what depends on them, leaving a store that verifies and refills.

use brr_hash::fs::snapshot;
use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, ServiceManifest, TreeHash};
use brr_store::{ActionRecord, BuildRow, Store};

use crate::support::{TestResult, big, clobber, clobber_packed, new_store, write_file};

/// A build as the scheduler records one: a source folder (one file big
/// enough for `cas/`, one packed), its tree, an artifact over it, the
/// action-cache entry and a history row.
struct Built {
    _dir: tempfile::TempDir,
    store: Store,
    src: std::path::PathBuf,
    tree: TreeHash,
    artifact: ArtifactHash,
    key: BuildKey,
}

fn built() -> Result<Built, Box<dyn std::error::Error>> {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    write_file(&src, "big", &big(b"large"), 0o644)?;
    write_file(&src, "d/small", b"small", 0o644)?;
    let tree = store.put_snapshot(&snapshot(&src, &["big".to_owned(), "d".to_owned()])?)?;
    let artifact = ArtifactHash(store.put_object(&Artifact { outputs: tree, manifest: ServiceManifest::default() })?);
    let key = BuildKey(Digest::of(b"key"));
    let log = store.put_bytes(brr_hash::ObjectKind::Blob, b"log")?;
    store.record_action(&ActionRecord {
        key,
        artifact,
        log: Some(log),
        duration_ms: 1,
        created_at: 1,
        outputs: None,
    })?;
    store.record_build(&BuildRow {
        target: "t".into(),
        key,
        artifact: Some(artifact),
        status: "built".into(),
        log: Some(log),
        started_at: 1,
        duration_ms: 1,
    })?;
    assert!(store.verify()?.is_ok());
    Ok(Built { _dir: dir, store, src, tree, artifact, key })
}

fn raw_db(store: &Store) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open(store.db_path())
}

fn has_problem(store: &Store, parts: &[&str]) -> Result<bool, Box<dyn std::error::Error>> {
    let report = store.verify()?;
    Ok(report.problems.iter().any(|p| parts.iter().all(|part| p.contains(part))))
}

#[test]
fn damaged_action_cache_outputs_are_reported() -> TestResult {
    let b = built()?;
    let db = raw_db(&b.store)?;
    // Garbage bytes: a hash of nothing stored.
    let garbage = [0x5a_u8; 32];
    db.execute("UPDATE action_cache SET outputs = ?1", [&garbage[..]])?;
    let report = b.store.verify()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("action cache entry") && report.problems[0].contains(&hex(&garbage)));
    // Not a hash at all (32 characters of text pass the column's CHECK).
    db.execute("UPDATE action_cache SET outputs = 'abcdefghijklmnopqrstuvwxyz012345'", [])?;
    assert!(has_problem(&b.store, &["action cache entry", "`outputs`", "text of 32 bytes"])?);
    // A stored tree, but not the artifact's.
    let other = b.store.put_object(&brr_hash::Tree::default())?;
    db.execute("UPDATE action_cache SET outputs = ?1", [other.as_bytes()])?;
    assert!(has_problem(&b.store, &["action cache entry", "is not its artifact's", &b.tree.0.to_hex()])?);
    Ok(())
}

#[test]
fn damaged_history_values_are_reported() -> TestResult {
    let b = built()?;
    let db = raw_db(&b.store)?;
    db.execute("UPDATE builds SET started_at = 'yesterday'", [])?;
    assert!(has_problem(&b.store, &["build #1 of `t`", "`started_at`"])?);
    db.execute("UPDATE builds SET started_at = 1, log = ?1", [[7u8; 32]])?;
    assert!(has_problem(&b.store, &["build #1 of `t`", &hex(&[7u8; 32])])?);
    Ok(())
}

/// Flips one byte of the action-cache entry's `outputs` value in the
/// database file itself (found as the output tree's hash following the
/// artifact's within the row), as a bad disk sector would.
#[test]
fn a_flipped_byte_of_outputs_in_the_database_file_is_reported() -> TestResult {
    let b = built()?;
    let (root, tree, artifact) = (b.store.root().to_path_buf(), b.tree, b.artifact);
    let db_path = b.store.db_path().to_path_buf();
    // Closing the last connection checkpoints the log into the file.
    drop(b.store);
    let mut file = std::fs::read(&db_path)?;
    let at = find_after(&file, artifact.0.as_bytes(), tree.0.as_bytes(), 128).ok_or("outputs value not found")?;
    file[at + 5] ^= 0x01;
    std::fs::write(&db_path, &file)?;
    let store = Store::open(&root)?;
    let report = store.verify()?;
    assert!(
        report.problems.iter().any(|p| p.contains("action cache entry") && p.contains("names tree")),
        "{:?}",
        report.problems
    );
    Ok(())
}

#[test]
fn repair_drops_a_corrupt_object_and_everything_that_depends_on_it() -> TestResult {
    let b = built()?;
    let large = Digest::of(&big(b"large"));
    clobber(&b.store.object_path(large), &big(b"LARGE"))?;
    assert!(!b.store.verify()?.is_ok());
    let r = b.store.repair()?;
    assert_eq!(r.found.problems.len(), 1, "{:?}", r.found.problems);
    // The blob, the root tree holding it, the artifact of that tree.
    assert_eq!((r.objects, r.actions, r.builds, r.files), (3, 1, 1, 1), "{r:?}");
    let after = b.store.verify()?;
    assert!(after.is_ok(), "{:?}", after.problems);
    assert!(!b.store.contains(large)? && !b.store.contains(b.tree.0)? && !b.store.contains(b.artifact.0)?);
    assert!(b.store.contains(Digest::of(b"small"))?, "good objects stay");
    assert_eq!(b.store.lookup_action(b.key)?, None, "the next build misses the cache");
    // Putting the same files again brings back the same objects.
    let tree = b.store.put_snapshot(&snapshot(&b.src, &["big".to_owned(), "d".to_owned()])?)?;
    assert_eq!(tree, b.tree);
    assert_eq!(b.store.get(large)?, big(b"large"));
    assert!(b.store.verify()?.is_ok());
    assert_eq!(b.store.repair()?, brr_store::RepairReport { found: b.store.verify()?, ..Default::default() });
    Ok(())
}

#[test]
fn repair_drops_a_corrupt_packed_object_and_its_dependents() -> TestResult {
    let b = built()?;
    let small = Digest::of(b"small");
    assert_eq!(clobber_packed(&b.store, small, b"SMALL")?, 1);
    let r = b.store.repair()?;
    // The blob, the tree `d`, the root tree, the artifact.
    assert_eq!((r.objects, r.actions, r.builds, r.files), (4, 1, 1, 0), "{r:?}");
    assert!(b.store.verify()?.is_ok());
    assert!(b.store.contains(Digest::of(&big(b"large")))?, "good objects stay");
    Ok(())
}

#[test]
fn repair_drops_only_the_entry_whose_values_are_damaged() -> TestResult {
    let b = built()?;
    raw_db(&b.store)?.execute("UPDATE action_cache SET outputs = ?1", [[0x5a_u8; 32]])?;
    raw_db(&b.store)?.execute("UPDATE stat_cache SET size = 'big'", [])?;
    let r = b.store.repair()?;
    assert_eq!((r.objects, r.actions, r.builds, r.files), (0, 1, 0, 0), "{r:?}");
    assert!(b.store.verify()?.is_ok());
    assert!(b.store.contains(b.artifact.0)? && b.store.last_build("t")?.is_some());
    Ok(())
}

#[test]
fn repair_removes_a_corrupt_orphan_file() -> TestResult {
    let (_dir, store) = new_store()?;
    let bytes = big(b"orphan");
    let path = store.object_path(Digest::of(&bytes));
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    std::fs::write(&path, b"not those bytes")?;
    assert!(!store.verify()?.is_ok());
    assert_eq!(store.repair()?.files, 1);
    assert!(!path.exists());
    assert!(store.verify()?.is_ok());
    Ok(())
}

fn hex(b: &[u8; 32]) -> String {
    Digest::from_bytes(*b).to_hex()
}

/// The offset of `needle` where `before` ends at most `within` bytes ahead.
fn find_after(hay: &[u8], before: &[u8], needle: &[u8], within: usize) -> Option<usize> {
    let starts = |n: &[u8]| -> Vec<usize> {
        (0..=hay.len().saturating_sub(n.len())).filter(|&i| hay[i..].starts_with(n)).collect()
    };
    let befores = starts(before);
    starts(needle).into_iter().find(|&i| befores.iter().any(|&b| b + before.len() <= i && i - b <= within))
}

#[test]
fn putting_an_object_again_replaces_a_corrupt_packed_copy() -> TestResult {
    let b = built()?;
    let small = Digest::of(b"small");
    assert_eq!(clobber_packed(&b.store, small, b"SMALL")?, 1);
    let err = b.store.get(small).expect_err("read a corrupt object");
    assert!(matches!(err, brr_store::StoreError::Corrupt { hash, .. } if hash == small), "{err}");
    // As a build that produces the same bytes does: the whole snapshot again.
    b.store.put_snapshot(&snapshot(&b.src, &["big".to_owned(), "d".to_owned()])?)?;
    assert_eq!(b.store.get(small)?, b"small");
    let report = b.store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    Ok(())
}

#[test]
fn putting_an_object_again_replaces_a_corrupt_cas_copy() -> TestResult {
    let (_dir, store) = new_store()?;
    let bytes = big(b"in memory");
    let d = store.put_bytes(brr_hash::ObjectKind::Blob, &bytes)?;
    // Same size, one byte flipped: found by comparing with the new bytes.
    let mut flipped = bytes.clone();
    flipped[1000] ^= 0x20;
    clobber(&store.object_path(d), &flipped)?;
    store.put_bytes(brr_hash::ObjectKind::Blob, &bytes)?;
    assert_eq!(store.get(d)?, bytes);
    assert!(store.verify()?.is_ok());
    // A file put as a file: a truncated copy is found by its size.
    let src = tempfile::tempdir()?;
    let file_bytes = big(b"on disk");
    write_file(src.path(), "f", &file_bytes, 0o644)?;
    let f = Digest::of(&file_bytes);
    store.put_file(&src.path().join("f"), f)?;
    clobber(&store.object_path(f), &file_bytes[..100])?;
    store.put_file(&src.path().join("f"), f)?;
    assert_eq!(store.get(f)?, file_bytes);
    assert!(store.verify()?.is_ok());
    Ok(())
}
