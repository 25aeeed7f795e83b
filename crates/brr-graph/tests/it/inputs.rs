//! Input hashing: the stat cache spares unchanged files, sees changed ones,
//! and distrusts racily recent timestamps.

use std::time::{Duration, SystemTime};

use brr_graph::{Inputs, Workspace};
use brr_store::{Clock, Store};

use crate::{lib, write_all};

fn setup() -> (tempfile::TempDir, Workspace, Store) {
    let dir = tempfile::tempdir().unwrap();
    write_all(
        dir.path(),
        &[("brr.ron", "Workspace(packages: [\"p/*\"])"), ("p/a/brr.ron", &lib("a", &[])), ("p/a/a.c", "int a;")],
    );
    // Old timestamps, so the racy-timestamp rule does not force re-reads.
    age(&dir.path().join("p/a/a.c"));
    let ws = Workspace::load(dir.path()).unwrap();
    let store = Store::open(&dir.path().join(".brr")).unwrap();
    (dir, ws, store)
}

/// A clock past the racy margin of every change made so far: entries it
/// records are trusted as if the margin had elapsed (no sleeping it out).
fn settled() -> Clock {
    Clock::ahead(Duration::from_nanos(brr_store::RACY_MARGIN_NS.unsigned_abs()) + Duration::from_secs(1))
}

/// A clock well behind the system's: entries it records are racy for any
/// change of this test, however slowly a loaded machine runs it.
fn racy() -> Clock {
    Clock::behind(Duration::from_secs(60))
}

fn age(p: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
}

#[test]
fn stat_cache_spares_unchanged_files_and_distrusts_recent_changes() {
    let (dir, ws, store) = setup();
    let store = store.with_clock(racy());
    let mask = vec![true];
    let first = Inputs::hash(&ws, &store, &mask).unwrap();
    assert!(first.rehashed >= 1);
    // The file's ctime is seconds old at most: an entry recorded this close
    // to a change cannot be trusted (racy timestamps), so it is read again.
    assert_eq!(Inputs::hash(&ws, &store, &mask).unwrap().rehashed, 1);
    // Recorded once the change is older than the margin: trusted from then on.
    let store = store.with_clock(settled());
    assert_eq!(Inputs::hash(&ws, &store, &mask).unwrap().rehashed, 1, "re-recorded once the change is old");
    let again = Inputs::hash(&ws, &store, &mask).unwrap();
    assert_eq!(again.rehashed, 0, "nothing re-read when nothing changed");
    assert_eq!(again.sources[0], first.sources[0]);

    // Same size, new bytes, mtime put back: the ctime still moves, so the
    // change is seen.
    let f = dir.path().join("p/a/a.c");
    std::fs::write(&f, "int b;").unwrap();
    age(&f);
    let changed = Inputs::hash(&ws, &store, &mask).unwrap();
    assert_eq!(changed.rehashed, 1);
    assert_ne!(changed.sources[0], first.sources[0]);
}

#[test]
fn touch_keeps_the_source_tree() {
    let (dir, ws, store) = setup();
    let mask = vec![true];
    let before = Inputs::hash(&ws, &store, &mask).unwrap().sources[0];
    let f = std::fs::File::options().write(true).open(dir.path().join("p/a/a.c")).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(5)).unwrap();
    assert_eq!(Inputs::hash(&ws, &store, &mask).unwrap().sources[0], before);
}

/// Files read while hashing are held for the build that stages them, once,
/// and only where they were read: a stat-cache hit holds nothing.
#[test]
fn files_read_while_hashing_are_held_for_one_build() {
    let (dir, ws, store) = setup();
    let store = store.with_clock(racy());
    let mask = vec![true];
    assert_eq!(Inputs::hash(&ws, &store, &mask).unwrap().take_held(0), vec![None], "held without a build");
    let first = Inputs::hash_holding(&ws, &store, &mask).unwrap();
    assert_eq!(first.take_held(0), vec![Some(brr_hash::HashedBytes::new(b"int a;".to_vec()))]);
    assert_eq!(first.take_held(0), vec![None], "taken twice");
    // Once the stat cache can be trusted, the file is not read at all.
    let store = store.with_clock(settled());
    let _ = Inputs::hash(&ws, &store, &mask).unwrap();
    let warm = Inputs::hash_holding(&ws, &store, &mask).unwrap();
    assert_eq!(warm.rehashed, 0);
    assert_eq!(warm.take_held(0), vec![None]);
    drop(dir);
}

/// A build's hashing leaves the stat-cache table to `record_stats` (run
/// while the first builds start); `hash` writes it at once.
#[test]
fn stat_cache_entries_of_a_build_are_written_when_recorded() {
    let (_dir, ws, store) = setup();
    let mask = vec![true];
    let file = ws.packages[0].inputs.values().next().unwrap().clone();
    let in_table = || store.stat_cache_lookup(&[file.as_path()]).unwrap()[0];
    let inputs = Inputs::hash_holding(&ws, &store, &mask).unwrap();
    assert!(in_table().is_none(), "written before record_stats");
    inputs.record_stats(&store).unwrap();
    let entry = in_table().expect("record_stats wrote no entry");
    assert_eq!(entry.digest.0, inputs.leaves(0)[0].hash);
    inputs.record_stats(&store).unwrap();

    let (_dir, ws, store) = setup();
    let file = ws.packages[0].inputs.values().next().unwrap().clone();
    let _ = Inputs::hash(&ws, &store, &mask).unwrap();
    assert!(store.stat_cache_lookup(&[file.as_path()]).unwrap()[0].is_some(), "hash did not write the table");
}
