//! The ledger table: versions, the hash chain, append-only triggers, tamper evidence.

use brr_hash::{LedgerAction, Release, ReleaseStatus};
use brr_store::{NewEntry, Store};

use crate::support::{TestResult, config, new_store, put_build};

fn entry(store: &Store, env: &str, service: &str, status: ReleaseStatus) -> NewEntry {
    // A new build each time, so entries differ in what they release.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let build = put_build(store, &[("bin/web", &format!("#!/bin/sh\necho {n}\n"))], None);
    let config = config(&[("A", "1")], &[]);
    store.put_object(&config).expect("config");
    let release = Release { build, config: config.hash() };
    store.put_object(&release).expect("release");
    NewEntry {
        env: env.into(),
        service: service.into(),
        release: release.hash(),
        build,
        config: config.hash(),
        action: LedgerAction::Release,
        status,
        actor: "t".into(),
        time_ms: 1,
        note: None,
        source: None,
        log: None,
    }
}

#[test]
fn versions_count_per_service_and_chain_per_environment() -> TestResult {
    let (_dir, store) = new_store();
    let a1 = store.ledger_append(&entry(&store, "staging", "api", ReleaseStatus::Succeeded))?;
    let b1 = store.ledger_append(&entry(&store, "staging", "billing", ReleaseStatus::Succeeded))?;
    let a2 = store.ledger_append(&entry(&store, "staging", "api", ReleaseStatus::Failed))?;
    let p1 = store.ledger_append(&entry(&store, "production", "api", ReleaseStatus::Succeeded))?;
    assert_eq!((a1.entry.version, b1.entry.version, a2.entry.version, p1.entry.version), (1, 1, 2, 1));
    assert_eq!(a1.entry.previous, None);
    assert_eq!(b1.entry.previous, Some(a1.hash));
    assert_eq!(a2.entry.previous, Some(b1.hash));
    assert_eq!(p1.entry.previous, None, "each environment has its own chain");
    // The failed v2 is the newest entry, but v1 stays current.
    assert_eq!(store.ledger_current("staging", "api")?.map(|r| r.entry.version), Some(1));
    assert_eq!(store.ledger_latest("staging", "api")?.map(|r| r.entry.version), Some(2));
    let report = store.ledger_verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.entries, report.envs.len()), (4, 2));
    Ok(())
}

#[test]
fn a_ledger_entry_needs_its_release_object() {
    let (_dir, store) = new_store();
    let mut e = entry(&store, "staging", "api", ReleaseStatus::Succeeded);
    e.release = brr_hash::ReleaseHash(brr_hash::Digest::of(b"not stored"));
    assert!(store.ledger_append(&e).is_err());
    assert_eq!(store.ledger_verify().expect("verify").entries, 0);
}

#[test]
fn sql_cannot_update_or_delete_an_entry() -> TestResult {
    let (_dir, store) = new_store();
    store.ledger_append(&entry(&store, "staging", "api", ReleaseStatus::Succeeded))?;
    let conn = rusqlite_conn(&store)?;
    let update = conn.execute("UPDATE ledger SET status = 'failed'", []);
    let message = update.expect_err("UPDATE must fail").to_string();
    assert!(message.contains("append-only"), "{message}");
    let delete = conn.execute("DELETE FROM ledger", []);
    assert!(delete.expect_err("DELETE must fail").to_string().contains("append-only"));
    assert_eq!(store.ledger_history("staging", None, 10)?[0].entry.status, ReleaseStatus::Succeeded);
    Ok(())
}

fn rusqlite_conn(store: &Store) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open(store.db_path())
}

/// Tampering with the triggers dropped: each kind of edit is caught at the
/// edited row, which `ledger_verify` names.
#[test]
fn verify_names_the_first_tampered_row() -> TestResult {
    type Tamper = (&'static str, &'static str, &'static str);
    let cases: [Tamper; 4] = [
        ("edit a field", "UPDATE ledger SET actor = 'mallory' WHERE id = 2", "was edited"),
        ("remove an entry", "DELETE FROM ledger WHERE id = 2", "previous entry"),
        ("edit a field and its hash", "UPDATE ledger SET version = 9, hash = zeroblob(32) WHERE id = 2", "was edited"),
        (
            "swap the release",
            "UPDATE ledger SET build = (SELECT build FROM ledger WHERE id = 1) WHERE id = 2",
            "differs",
        ),
    ];
    for (what, sql, reason) in cases {
        let (_dir, store) = new_store();
        for _ in 0..3 {
            store.ledger_append(&entry(&store, "staging", "api", ReleaseStatus::Succeeded))?;
        }
        // Different builds per entry, so swapping one is visible.
        assert!(store.ledger_verify()?.is_ok());
        let conn = rusqlite_conn(&store)?;
        conn.execute_batch(&format!(
            "DROP TRIGGER ledger_append_only_update; DROP TRIGGER ledger_append_only_delete; {sql};"
        ))?;
        let report = store.ledger_verify()?;
        assert_eq!(report.broken.len(), 1, "{what}: {report:?}");
        let broken = &report.broken[0];
        let expected_id = if what == "remove an entry" { 3 } else { 2 };
        assert_eq!(broken.id, expected_id, "{what}: {broken:?}");
        assert!(broken.reason.contains(reason), "{what}: {}", broken.reason);
    }
    Ok(())
}

/// Threads appending at once get consecutive versions and one unforked chain.
#[test]
fn concurrent_appends_get_consecutive_versions() -> TestResult {
    let (_dir, store) = new_store();
    let entries: Vec<NewEntry> = (0..8).map(|_| entry(&store, "staging", "api", ReleaseStatus::Succeeded)).collect();
    let mut versions: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = entries.iter().map(|e| s.spawn(|| store.ledger_append(e))).collect();
        handles.into_iter().map(|h| h.join().expect("thread").expect("append").entry.version).collect()
    });
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
    assert!(store.ledger_verify()?.is_ok());
    Ok(())
}
