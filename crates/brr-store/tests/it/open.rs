//! Opening stores: creation, migrations on reopen, refusing foreign or newer folders.

use std::sync::Arc;

use brr_hash::ObjectKind;
use brr_store::{SCHEMA_VERSION, Store, StoreError};

use crate::support::{TestResult, new_store};

fn user_version(store: &Store) -> rusqlite::Result<i64> {
    rusqlite::Connection::open(store.db_path())?.pragma_query_value(None, "user_version", |r| r.get(0))
}

#[test]
fn open_creates_the_layout() -> TestResult {
    let (_dir, store) = new_store()?;
    assert!(store.root().join("cas").is_dir());
    assert!(store.tmp_dir().is_dir());
    assert!(store.db_path().is_file());
    assert_eq!(user_version(&store)?, SCHEMA_VERSION);
    Ok(())
}

#[test]
fn reopening_keeps_data_and_migrates_nothing_twice() -> TestResult {
    let (dir, store) = new_store()?;
    let d = store.put_bytes(ObjectKind::Blob, b"kept")?;
    drop(store);
    for _ in 0..3 {
        let store = Store::open(&dir.path().join("store"))?;
        assert!(store.contains(d)?);
        assert_eq!(user_version(&store)?, SCHEMA_VERSION);
        assert!(store.verify()?.is_ok());
    }
    Ok(())
}

#[test]
fn first_opens_may_race() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = Arc::new(dir.path().join("store"));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || Store::open(&root).map(|s| s.put_bytes(ObjectKind::Blob, b"race")))
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "thread panicked")???;
    }
    assert!(Store::open(&root)?.verify()?.is_ok());
    Ok(())
}

#[test]
fn foreign_folders_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy)?;
    std::fs::write(busy.join("notes.txt"), "mine")?;
    let err = Store::open(&busy).err().ok_or("opened a non-empty folder")?;
    assert!(matches!(&err, StoreError::NotAStore { path, .. } if path == &busy), "{err}");
    assert!(err.to_string().contains(&busy.display().to_string()));
    assert!(!busy.join("brr.db").exists(), "nothing written");

    let file = dir.path().join("file");
    std::fs::write(&file, "x")?;
    assert!(matches!(Store::open(&file), Err(StoreError::NotAStore { .. })));

    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage)?;
    std::fs::write(garbage.join("brr.db"), vec![b'x'; 4096])?;
    let err = Store::open(&garbage).err().ok_or("opened a non-database")?;
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");

    let other = dir.path().join("other");
    std::fs::create_dir(&other)?;
    rusqlite::Connection::open(other.join("brr.db"))?.execute_batch("CREATE TABLE t (x)")?;
    let err = Store::open(&other).err().ok_or("opened another program's database")?;
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    Ok(())
}

#[test]
fn newer_stores_are_refused() -> TestResult {
    let (dir, store) = new_store()?;
    rusqlite::Connection::open(store.db_path())?.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
    drop(store);
    let err = Store::open(&dir.path().join("store")).err().ok_or("opened a newer store")?;
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
    assert!(err.to_string().contains("newer brr"));
    Ok(())
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn a_stray_file_beside_the_database_does_not_make_a_store_foreign() -> TestResult {
    let (dir, store) = new_store()?;
    let d = store.put_bytes(ObjectKind::Blob, b"kept")?;
    drop(store);
    let root = dir.path().join("store");
    // What an unsandboxed builder writing into `.brr/` leaves.
    std::fs::write(root.join("escape"), "x")?;
    std::fs::create_dir(root.join("junk"))?;
    let store = Store::open(&root)?;
    assert_eq!(store.get(d)?, b"kept");
    assert!(store.verify()?.is_ok());
    // Without `brr.db`, the same folder is refused, and nothing is written.
    drop(store);
    for name in ["brr.db", "brr.db-wal", "brr.db-shm"] {
        let _ = std::fs::remove_file(root.join(name));
    }
    let err = Store::open(&root).err().ok_or("opened a folder with strays and no database")?;
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    assert!(!root.join("brr.db").exists());
    Ok(())
}

/// A store written before schema 6 keeps its objects, packed and not, when
/// the `objects` table is rebuilt to accept the release stage's kinds.
#[test]
fn schema_6_keeps_older_objects_and_accepts_release_kinds() -> TestResult {
    use brr_hash::{ArtifactHash, Config, Digest, Release};
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let (packed, big) = {
        let store = Store::open(&root)?;
        let big = vec![7_u8; brr_store::PACKED_MAX + 1];
        (store.put_bytes(ObjectKind::Blob, b"small")?, store.put_bytes(ObjectKind::Blob, &big)?)
    };
    // Undo schemas 7 and 6 by hand: the table as schema 5 left it, version 5.
    let conn = rusqlite::Connection::open(root.join("brr.db"))?;
    conn.execute_batch(
        "DROP TABLE roots;
         DROP TABLE ledger;
         CREATE TABLE objects_v5 (
             hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
             kind TEXT NOT NULL CHECK (kind IN ('blob', 'tree', 'action', 'artifact')),
             size INTEGER NOT NULL CHECK (size >= 0),
             pack INTEGER REFERENCES packs (id),
             pack_offset INTEGER CHECK (pack_offset >= 0)) WITHOUT ROWID;
         INSERT INTO objects_v5 SELECT hash, kind, size, pack, pack_offset FROM objects;
         DROP TABLE objects;
         ALTER TABLE objects_v5 RENAME TO objects;
         PRAGMA user_version = 5;",
    )?;
    let refused = conn.execute("INSERT INTO objects (hash, kind, size) VALUES (zeroblob(32), 'config', 0)", []);
    assert!(refused.is_err(), "schema 5 refuses a config row");
    drop(conn);

    let store = Store::open(&root)?;
    assert_eq!(user_version(&store)?, SCHEMA_VERSION);
    assert_eq!(store.get(packed)?, b"small");
    assert_eq!(store.get(big)?.len(), brr_store::PACKED_MAX + 1);
    let config = Config::default();
    let config_hash = store.put_object(&config)?;
    assert_eq!(store.kind_of(config_hash)?, Some(ObjectKind::Config));
    // A release must name an artifact the store holds: refused without one.
    let release = Release { build: ArtifactHash(Digest::of(b"no such artifact")), config: config.hash() };
    assert!(store.put_object(&release).is_err());
    assert!(store.verify()?.is_ok());
    Ok(())
}
