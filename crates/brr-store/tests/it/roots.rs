//! Roots: pins of recorded objects, listed, moved and removed; verify reports a dangling one and repair drops it.

use brr_hash::{Digest, ObjectKind};
use brr_store::StoreError;

use crate::support::{TestResult, new_store};

#[test]
fn a_root_pins_a_recorded_object_and_is_listed_moved_and_removed() -> TestResult {
    let (_dir, store) = new_store()?;
    let a = store.put_bytes(ObjectKind::Blob, b"a")?;
    let b = store.put_bytes(ObjectKind::Blob, b"b")?;
    assert_eq!(store.add_root("release/prod", a, "production v1")?, None);
    assert_eq!(store.add_root("ci", b, "pinned by ci")?, None);
    let roots = store.roots()?;
    let names: Vec<(&str, Digest, &str)> = roots.iter().map(|r| (r.name.as_str(), r.hash, r.reason.as_str())).collect();
    assert_eq!(names, [("ci", b, "pinned by ci"), ("release/prod", a, "production v1")]);
    assert!(roots.iter().all(|r| r.created_ms > 0));
    // The same name again moves it.
    assert_eq!(store.add_root("release/prod", b, "production v2")?, Some(a));
    assert_eq!(store.roots()?.iter().filter(|r| r.hash == b).count(), 2);
    assert!(store.remove_root("ci")?);
    assert!(!store.remove_root("ci")?);
    assert_eq!(store.roots()?.len(), 1);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn a_root_must_name_a_recorded_object_and_a_usable_name() -> TestResult {
    let (_dir, store) = new_store()?;
    let absent = Digest::of(b"never put");
    let err = store.add_root("x", absent, "").err().ok_or("pinned an unrecorded object")?;
    assert!(matches!(err, StoreError::RootTarget { hash } if hash == absent), "{err}");
    let d = store.put_bytes(ObjectKind::Blob, b"x")?;
    for bad in ["", " x", "a\nb"] {
        let err = store.add_root(bad, d, "").err().ok_or("accepted a bad name")?;
        assert!(matches!(err, StoreError::InvalidRootName { .. }), "{err}");
    }
    assert!(store.roots()?.is_empty());
    Ok(())
}

#[test]
fn verify_reports_a_dangling_root_and_repair_drops_it() -> TestResult {
    let (_dir, store) = new_store()?;
    let kept = store.put_bytes(ObjectKind::Blob, b"kept")?;
    store.add_root("kept", kept, "")?;
    let gone = Digest::of(b"gone");
    // Only damage writes such a row: the API refuses it.
    rusqlite::Connection::open(store.db_path())?.execute(
        "INSERT INTO roots (name, hash, reason, created_ms) VALUES ('dangling', ?1, '', 0)",
        [gone.as_bytes()],
    )?;
    let report = store.verify()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("root `dangling`") && report.problems[0].contains(&gone.to_string()));
    let repaired = store.repair()?;
    assert_eq!(repaired.roots, 1);
    assert!(store.verify()?.is_ok());
    let names: Vec<String> = store.roots()?.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["kept"]);
    Ok(())
}
