//! The stat-cache entries of a workspace's input files, saved in the order
//! the next build asks for them, so a build that hashes the same file list
//! reads one file instead of scanning the stat cache's table. The table
//! stays the record (every fresh entry is written there too); this copy is
//! only a faster way to the same hints, each still checked against the
//! file's current stat fields and the racy-timestamp rule before use.
//!
//! The copy is keyed by the exact list of paths (a BLAKE3 digest of it): a
//! different selection of targets, or any change to the list, misses it and
//! falls back to the table. It is a `cache_file`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use brr_hash::{BlobHash, Digest};
use brr_store::StatEntry;
use serde::{Deserialize, Serialize};

/// Bump when the layout below changes.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    /// Digest of the path list the entries belong to, in order.
    paths: [u8; 32],
    entries: Vec<Option<Entry>>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: i64,
    ino: u64,
    ctime_ns: i64,
    digest: [u8; 32],
    recorded_ns: i64,
}

fn paths_digest(paths: &[&Path]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in paths {
        let bytes = p.as_os_str().as_bytes();
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    *h.finalize().as_bytes()
}

/// The saved entries for exactly `paths`, in their order.
pub(crate) fn load(cache_dir: &Path, root: &Path, paths: &[&Path]) -> Option<Vec<Option<StatEntry>>> {
    let saved: Saved = crate::cache_file::read(&crate::cache_file::path_for(cache_dir, "stats", root))?;
    if saved.format != FORMAT || saved.entries.len() != paths.len() || saved.paths != paths_digest(paths) {
        return None;
    }
    Some(
        saved
            .entries
            .into_iter()
            .map(|e| {
                e.map(|e| StatEntry {
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                    ino: e.ino,
                    ctime_ns: e.ctime_ns,
                    digest: BlobHash(Digest::from_bytes(e.digest)),
                    recorded_ns: e.recorded_ns,
                })
            })
            .collect(),
    )
}

/// Saves `entries` (one per path of `paths`); failures are ignored.
pub(crate) fn save(cache_dir: &Path, root: &Path, paths: &[&Path], entries: &[Option<StatEntry>]) {
    let saved = Saved {
        format: FORMAT,
        paths: paths_digest(paths),
        entries: entries
            .iter()
            .map(|e| {
                e.map(|e| Entry {
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                    ino: e.ino,
                    ctime_ns: e.ctime_ns,
                    digest: *e.digest.0.as_bytes(),
                    recorded_ns: e.recorded_ns,
                })
            })
            .collect(),
    };
    crate::cache_file::write(&crate::cache_file::path_for(cache_dir, "stats", root), &saved);
}
