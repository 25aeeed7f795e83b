//! Stat cache: batched get/put, non-UTF-8 paths, the racy-git rule.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use brr_hash::{BlobHash, Digest};
use brr_store::{Clock, RACY_MARGIN_NS, StatEntry};

use crate::support::{TestResult, new_store};

/// A time safely after the file's last change: as if recorded later.
fn settled_after(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let latest =
        (meta.mtime() * 1_000_000_000 + meta.mtime_nsec()).max(meta.ctime() * 1_000_000_000 + meta.ctime_nsec());
    latest + RACY_MARGIN_NS + 1_000_000_000
}

#[test]
fn racy_entries_are_not_trusted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f");
    std::fs::write(&path, b"one")?;
    let meta = std::fs::metadata(&path)?;
    let digest = BlobHash(Digest::of(b"one"));
    // Recorded right after the write: the file may change within the same tick.
    let racy = StatEntry::new(&meta, digest, Clock::SYSTEM.now_ns());
    assert!(!racy.matches(&meta));
    // Recorded well after the last change: trusted.
    let settled = StatEntry::new(&meta, digest, settled_after(&meta));
    assert!(settled.matches(&meta));
    // Any change of content shows in the stat fields.
    std::fs::write(&path, b"two!")?;
    assert!(!settled.matches(&std::fs::metadata(&path)?));
    Ok(())
}

#[test]
fn entries_round_trip_in_batches() -> TestResult {
    let (dir, store) = new_store()?;
    let file = dir.path().join("f");
    std::fs::write(&file, b"x")?;
    let meta = std::fs::metadata(&file)?;
    let odd = PathBuf::from(OsStr::from_bytes(b"src/\xff\xfe.rs"));
    let a = StatEntry::new(&meta, BlobHash(Digest::of(b"x")), 5);
    let b = StatEntry { size: u64::MAX, ino: u64::MAX - 1, ..a };
    store.stat_cache_put(&[(file.clone(), a), (odd.clone(), b)])?;
    let absent = PathBuf::from("absent");
    let got = store.stat_cache_get(&[file.clone(), odd.clone(), absent.clone()])?;
    assert_eq!(got.len(), 2);
    assert_eq!(got.get(&file), Some(&a));
    assert_eq!(got.get(&odd), Some(&b));
    assert!(!got.contains_key(&absent));
    let newer = StatEntry { recorded_ns: 99, ..a };
    store.stat_cache_put(&[(file.clone(), newer)])?;
    assert_eq!(store.stat_cache_get(std::slice::from_ref(&file))?.get(&file), Some(&newer));
    store.stat_cache_remove(std::slice::from_ref(&file))?;
    assert!(store.stat_cache_get(&[file])?.is_empty());
    Ok(())
}

#[test]
fn many_paths_are_looked_up_in_one_scan_with_the_same_answers() -> TestResult {
    let (dir, store) = new_store()?;
    let file = dir.path().join("f");
    std::fs::write(&file, b"x")?;
    let meta = std::fs::metadata(&file)?;
    // More paths than the point-query path handles, half of them cached,
    // plus entries of other paths that must not leak into the answer.
    let paths: Vec<PathBuf> = (0..600).map(|i| PathBuf::from(format!("p/{i}"))).collect();
    let entry = |i: usize| StatEntry::new(&meta, BlobHash(Digest::of(&i.to_le_bytes())), 7);
    let cached: Vec<(PathBuf, StatEntry)> =
        paths.iter().enumerate().step_by(2).map(|(i, p)| (p.clone(), entry(i))).collect();
    store.stat_cache_put(&cached)?;
    store.stat_cache_put(&[(PathBuf::from("other/x"), entry(9999))])?;
    let got = store.stat_cache_get(&paths)?;
    assert_eq!(got.len(), 300);
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(got.get(p), (i % 2 == 0).then(|| entry(i)).as_ref(), "{}", p.display());
    }
    Ok(())
}
