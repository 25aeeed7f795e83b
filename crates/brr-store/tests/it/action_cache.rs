//! Action cache and build history: references checked, newest first.

use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, Object, ObjectKind, ServiceManifest, Tree, TreeHash};
use brr_store::{ActionRecord, BuildRow, Put, Store, StoreError};

use crate::support::{TestResult, new_store};

/// An artifact with an empty outputs tree, stored.
fn stored_artifact(store: &Store, seed: &str) -> Result<ArtifactHash, StoreError> {
    let outputs = TreeHash(store.put_object(&Tree::default())?);
    let manifest = ServiceManifest { release: Some(vec![seed.to_owned()]), ..ServiceManifest::default() };
    Ok(ArtifactHash(store.put_object(&Artifact { outputs, manifest })?))
}

fn build(target: &str, key: BuildKey, artifact: Option<ArtifactHash>, status: &str, at: i64) -> BuildRow {
    BuildRow { target: target.into(), key, artifact, status: status.into(), log: None, started_at: at, duration_ms: 10 }
}

#[test]
fn action_cache_round_trip_and_replace() -> TestResult {
    let (_dir, store) = new_store()?;
    let key = BuildKey(Digest::of(b"key"));
    assert_eq!(store.lookup_action(key)?, None);
    let artifact = stored_artifact(&store, "one")?;
    let log = store.put_bytes(ObjectKind::Blob, b"build log\n")?;
    let rec =
        ActionRecord { key, artifact, log: Some(log), duration_ms: u64::MAX, created_at: 1_700_000_000, outputs: None };
    store.record_action(&rec)?;
    // The output tree is filled in from the artifact when not given.
    let outputs = |a: ArtifactHash| store.get_object::<Artifact>(a.0).map(|a| Some(a.outputs));
    assert_eq!(store.lookup_action(key)?, Some(ActionRecord { outputs: outputs(artifact)?, ..rec.clone() }));
    let newer = ActionRecord { artifact: stored_artifact(&store, "two")?, log: None, ..rec };
    store.record_action(&newer)?;
    assert_eq!(store.lookup_action(key)?, Some(ActionRecord { outputs: outputs(newer.artifact)?, ..newer }));
    Ok(())
}

#[test]
fn action_cache_refuses_missing_artifact_or_log() -> TestResult {
    let (_dir, store) = new_store()?;
    let key = BuildKey(Digest::of(b"key"));
    let missing = ArtifactHash(Digest::of(b"not stored"));
    let rec = ActionRecord { key, artifact: missing, log: None, duration_ms: 1, created_at: 0, outputs: None };
    let err = store.record_action(&rec).expect_err("artifact missing");
    assert!(matches!(err, StoreError::MissingReference { missing: m, .. } if m == missing.0), "{err}");
    // A blob with the same bytes is not an artifact.
    let blob = ArtifactHash(store.put_bytes(ObjectKind::Blob, b"blob")?);
    assert!(store.record_action(&ActionRecord { artifact: blob, ..rec.clone() }).is_err());
    let artifact = stored_artifact(&store, "a")?;
    let err = store
        .record_action(&ActionRecord { artifact, log: Some(Digest::of(b"no log")), ..rec })
        .expect_err("log missing");
    assert!(matches!(err, StoreError::MissingReference { expected: ObjectKind::Blob, .. }), "{err}");
    assert_eq!(store.lookup_action(key)?, None);
    Ok(())
}

#[test]
fn build_history_is_per_target_newest_first() -> TestResult {
    let (_dir, store) = new_store()?;
    let artifact = stored_artifact(&store, "a")?;
    let k1 = BuildKey(Digest::of(b"k1"));
    let k2 = BuildKey(Digest::of(b"k2"));
    assert_eq!(store.last_build("//app")?, None);
    store.record_build(&build("//app", k1, Some(artifact), "built", 100))?;
    store.record_build(&build("//lib", k1, Some(artifact), "cached", 150))?;
    store.record_build(&build("//app", k2, None, "failed", 200))?;
    store.record_build(&build("//app", k2, Some(artifact), "built", 200))?;
    let last = store.last_build("//app")?.expect("a build");
    assert_eq!((last.key, last.status.as_str(), last.artifact), (k2, "built", Some(artifact)));
    let two = store.builds_of("//app", 2)?;
    assert_eq!(two.iter().map(|b| b.status.as_str()).collect::<Vec<_>>(), ["built", "failed"]);
    assert_eq!(store.builds_of("//app", 10)?.len(), 3);
    assert_eq!(store.builds_of("//lib", 10)?.len(), 1);
    Ok(())
}

#[test]
fn build_rows_are_validated() -> TestResult {
    let (_dir, store) = new_store()?;
    let key = BuildKey(Digest::of(b"k"));
    let err = store.record_build(&build("//app", key, None, "exploded", 1)).expect_err("status");
    assert!(matches!(err, StoreError::InvalidStatus { .. }), "{err}");
    let missing = ArtifactHash(Digest::of(b"missing"));
    assert!(store.record_build(&build("//app", key, Some(missing), "built", 1)).is_err());
    assert_eq!(store.builds_of("//app", 10)?, Vec::new());
    Ok(())
}

#[test]
fn a_build_is_recorded_with_its_objects_or_not_at_all() -> TestResult {
    let (_dir, store) = new_store()?;
    let outputs = Tree::default().encode();
    let outputs_hash = TreeHash(Digest::of(&outputs));
    let artifact = Artifact { outputs: outputs_hash, manifest: ServiceManifest::default() }.encode();
    let log = b"log of the build\n";
    let rec = ActionRecord {
        key: BuildKey(Digest::of(b"key")),
        artifact: ArtifactHash(Digest::of(&artifact)),
        log: Some(Digest::of(log)),
        duration_ms: 3,
        created_at: 1_700_000_000,
        outputs: Some(outputs_hash),
    };
    // The log is missing from the batch: neither the entry nor any object of
    // the batch is recorded.
    let without_log = [
        Put::Bytes { kind: ObjectKind::Tree, bytes: &outputs },
        Put::Bytes { kind: ObjectKind::Artifact, bytes: &artifact },
    ];
    let batch = store.place_batch(&without_log)?;
    let mut results = store.commit(&[(batch, Some(rec.clone()))])?;
    let err = results.pop().ok_or("no result")?.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference { missing, .. } if missing == Digest::of(log)), "{err}");
    assert_eq!(store.lookup_action(rec.key)?, None);
    assert!(!store.contains(rec.artifact.0)?, "the artifact was recorded without its action");

    let with_log = [Put::Bytes { kind: ObjectKind::Blob, bytes: log }, without_log[0], without_log[1]];
    let batch = store.place_batch(&with_log)?;
    assert_eq!(batch.digests(), [Digest::of(log), outputs_hash.0, rec.artifact.0]);
    // Committed with a failing batch, which is left out alone.
    let failing = store.place_batch(&without_log[1..])?;
    let other = ActionRecord { key: BuildKey(Digest::of(b"other key")), ..rec.clone() };
    let results = store.commit(&[(failing, Some(other.clone())), (batch, Some(rec.clone()))])?;
    assert!(results[0].is_err() && results[1].is_ok(), "{results:?}");
    assert_eq!(store.lookup_action(rec.key)?, Some(rec));
    assert_eq!(store.lookup_action(other.key)?, None);
    Ok(())
}

#[test]
fn keys_of_an_artifact_latest_build_first_then_the_action_cache() -> TestResult {
    let (_dir, store) = new_store()?;
    let (artifact, other) = (stored_artifact(&store, "a")?, stored_artifact(&store, "b")?);
    let [k1, k2, k3, k4] = [b"k1", b"k2", b"k3", b"k4"].map(|k| BuildKey(Digest::of(k)));
    assert_eq!(store.keys_of_artifact(artifact)?, []);
    store.record_build(&build("//app", k1, Some(artifact), "built", 100))?;
    store.record_build(&build("//app", k2, Some(artifact), "built", 200))?;
    store.record_build(&build("//app", k3, Some(other), "built", 300))?;
    store.record_build(&build("//app", k1, Some(artifact), "cached", 400))?;
    let rec = ActionRecord { key: k4, artifact, log: None, duration_ms: 1, created_at: 0, outputs: None };
    store.record_action(&rec)?;
    store.record_action(&ActionRecord { key: k2, ..rec })?;
    // k1 was used last; k2 is in both tables but listed once; k3 made another.
    assert_eq!(store.keys_of_artifact(artifact)?, [k1, k2, k4]);
    assert_eq!(store.keys_of_artifact(other)?, [k3]);
    Ok(())
}
