//! Many writers at once: threads sharing one `Store`, and two `Store`s on one folder.

use std::sync::Arc;

use brr_hash::fs::snapshot;
use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, ObjectKind, ServiceManifest, Tree, TreeHash};
use brr_store::{ActionRecord, BuildRow, Store, StoreError};

use crate::support::{TestResult, new_store, write_file};

const THREADS: usize = 4;
const PER_THREAD: usize = 40;

/// Some objects every writer puts, and some only writer `who` puts.
fn work(store: &Store, who: usize) -> Result<(), StoreError> {
    for i in 0..PER_THREAD {
        store.put_bytes(ObjectKind::Blob, format!("shared {i}").as_bytes())?;
        store.put_bytes(ObjectKind::Blob, format!("own {who} {i}").repeat(i * 50).as_bytes())?;
    }
    let outputs = TreeHash(store.put_object(&Tree::default())?);
    let artifact = ArtifactHash(store.put_object(&Artifact { outputs, manifest: ServiceManifest::default() })?);
    let key = BuildKey(Digest::of(format!("key {who}").as_bytes()));
    store.record_action(&ActionRecord { key, artifact, log: None, duration_ms: 1, created_at: 0, outputs: None })?;
    store.record_build(&BuildRow {
        target: "//t".into(),
        key,
        artifact: Some(artifact),
        status: "built".into(),
        log: None,
        started_at: 0,
        duration_ms: 1,
    })?;
    Ok(())
}

fn run_all(stores: &[Arc<Store>]) -> TestResult {
    let handles: Vec<_> = (0..THREADS)
        .map(|who| {
            let store = Arc::clone(&stores[who % stores.len()]);
            std::thread::spawn(move || work(&store, who))
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "writer panicked")??;
    }
    Ok(())
}

/// Blobs: shared ones once, own ones per thread (the empty own one is
/// shared by all); plus the empty tree and the artifact.
fn expected_objects() -> u64 {
    (PER_THREAD + THREADS * (PER_THREAD - 1) + 1 + 2) as u64
}

#[test]
fn threads_share_one_store() -> TestResult {
    let (_dir, store) = new_store()?;
    let store = Arc::new(store);
    run_all(&[Arc::clone(&store)])?;
    let report = store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.objects, expected_objects());
    assert_eq!(store.builds_of("//t", 100)?.len(), THREADS);
    Ok(())
}

#[test]
fn two_stores_on_one_folder() -> TestResult {
    let (dir, first) = new_store()?;
    let second = Store::open(&dir.path().join("store"))?;
    run_all(&[Arc::new(first), Arc::new(second)])?;
    let store = Store::open(&dir.path().join("store"))?;
    let report = store.verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.objects, expected_objects());
    for who in 0..THREADS {
        assert!(store.lookup_action(BuildKey(Digest::of(format!("key {who}").as_bytes())))?.is_some());
    }
    Ok(())
}

#[test]
fn concurrent_snapshots_of_one_folder() -> TestResult {
    let (dir, first) = new_store()?;
    let src = dir.path().join("src");
    for i in 0..30 {
        write_file(&src, &format!("d{}/f{i}", i % 4), format!("file {i}").as_bytes(), 0o644)?;
    }
    let names: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
    let snap = Arc::new(snapshot(&src, &names)?);
    let stores = [Arc::new(first), Arc::new(Store::open(&dir.path().join("store"))?)];
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (store, snap) = (Arc::clone(&stores[i % 2]), Arc::clone(&snap));
            std::thread::spawn(move || store.put_snapshot(&snap))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().map_err(|_| "writer panicked")??, snap.tree.root);
    }
    let report = stores[0].verify()?;
    assert!(report.is_ok(), "{:?}", report.problems);
    // 30 files, 4 folder trees and the root tree.
    assert_eq!(report.objects, 35);
    Ok(())
}
