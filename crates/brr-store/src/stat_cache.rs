//! The stat cache: a file's stat fields -> its blob digest, so unchanged
//! workspace files need not be re-hashed (as git's index does).
//!
//! The racy-git rule: a file modified within the timestamp granularity of
//! the moment it was hashed can change again without its mtime changing. An
//! entry is therefore trusted only when the file's mtime and ctime are older
//! than the moment the entry was recorded, minus [`RACY_MARGIN_NS`].
//!
//! That moment is read off a [`Clock`]: the system's, or for tests of the
//! rule one set ahead of it (an entry is then recorded as of a later time,
//! so the test need not wait out the margin) or behind it.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use brr_hash::{BlobHash, Digest};
use rusqlite::{OptionalExtension, params};

use crate::db::{from_sql_u64, to_sql_u64};
use crate::{Store, StoreError};

/// Entries whose file changed less than this before they were recorded are
/// not trusted (covers coarse filesystem timestamps).
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;

/// Above this many paths, `stat_cache_get` scans the table once instead of
/// querying path by path.
const FULL_SCAN_ABOVE: usize = 256;

/// Where "now" comes from when an entry is recorded: the system clock,
/// moved by a fixed offset. Production code uses [`Clock::SYSTEM`] (the
/// offset is 0, so reading it costs one addition over the system clock);
/// tests of the racy rule move it instead of sleeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ns: i64,
}

impl Clock {
    /// The system clock.
    pub const SYSTEM: Self = Self { offset_ns: 0 };

    /// A clock `offset` ahead of the system's: what it records is trusted as
    /// if that much time had passed.
    pub fn ahead(offset: std::time::Duration) -> Self {
        Self { offset_ns: i64::try_from(offset.as_nanos()).unwrap_or(i64::MAX) }
    }

    /// A clock `offset` behind the system's: what it records is racy for
    /// changes made up to `offset` plus the margin before the reading.
    pub fn behind(offset: std::time::Duration) -> Self {
        Self { offset_ns: i64::try_from(offset.as_nanos()).map_or(i64::MIN, |ns| -ns) }
    }

    /// The current time as Unix nanoseconds, for [`StatEntry::recorded_ns`].
    pub fn now_ns(self) -> i64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_nanos()).unwrap_or(i64::MAX).saturating_add(self.offset_ns)
    }
}

/// What a file looked like when it hashed to `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub ctime_ns: i64,
    pub digest: BlobHash,
    /// When the stat was taken (Unix nanoseconds), before hashing.
    pub recorded_ns: i64,
}

/// The stat fields that change when a file is written (or a folder's
/// entries change), without the rest of `Metadata`: what the stat cache and
/// the saved workspace load compare (a workspace has hundreds of thousands
/// of them in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub ctime_ns: i64,
    /// Any execute bit set.
    pub executable: bool,
}

impl FileStat {
    /// The racy-timestamp rule: whether the file had last changed (mtime
    /// and ctime) longer than [`RACY_MARGIN_NS`] before `recorded_ns`, so a
    /// later change cannot hide behind the same timestamps.
    pub fn settled_before(&self, recorded_ns: i64) -> bool {
        let settled = recorded_ns.saturating_sub(RACY_MARGIN_NS);
        self.mtime_ns < settled && self.ctime_ns < settled
    }
}

impl From<&std::fs::Metadata> for FileStat {
    fn from(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ino: meta.ino(),
            ctime_ns: ctime_ns(meta),
            executable: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0,
        }
    }
}

impl From<&rustix::fs::Stat> for FileStat {
    fn from(st: &rustix::fs::Stat) -> Self {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Self {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: ns(st.st_mtime, i64::try_from(st.st_mtime_nsec).unwrap_or(0)),
            ino: st.st_ino,
            ctime_ns: ns(st.st_ctime, i64::try_from(st.st_ctime_nsec).unwrap_or(0)),
            executable: st.st_mode & 0o111 != 0,
        }
    }
}

impl StatEntry {
    /// An entry for a file seen as `stat` at `recorded_ns`.
    pub fn from_stat(stat: FileStat, digest: BlobHash, recorded_ns: i64) -> Self {
        Self { size: stat.size, mtime_ns: stat.mtime_ns, ino: stat.ino, ctime_ns: stat.ctime_ns, digest, recorded_ns }
    }

    /// An entry for a file whose metadata `meta` was read at `recorded_ns`
    /// (take it before hashing, so a write during hashing is caught).
    pub fn new(meta: &std::fs::Metadata, digest: BlobHash, recorded_ns: i64) -> Self {
        Self::from_stat(FileStat::from(meta), digest, recorded_ns)
    }

    /// Whether the file with metadata `meta` can be taken to still hash to
    /// `digest`: same size, mtime, inode and ctime, and both times older than
    /// `recorded_ns` by the racy margin. Otherwise it must be re-hashed.
    pub fn matches(&self, meta: &std::fs::Metadata) -> bool {
        self.matches_stat(&FileStat::from(meta))
    }

    /// [`StatEntry::matches`] on the fields only.
    pub fn matches_stat(&self, stat: &FileStat) -> bool {
        stat.size == self.size
            && stat.mtime_ns == self.mtime_ns
            && stat.ino == self.ino
            && stat.ctime_ns == self.ctime_ns
            && stat.settled_before(self.recorded_ns)
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
}

fn ctime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec())
}

/// Paths are keyed by their raw bytes: they need not be UTF-8.
fn path_key(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

impl Store {
    /// The clock that stat-cache entries are recorded by.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// This store, recording stat-cache entries by `clock` (for tests of
    /// the racy rule; [`Store::open`] uses the system clock).
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The recorded entries of those `paths` that have one, in one read.
    pub fn stat_cache_get(&self, paths: &[PathBuf]) -> Result<HashMap<PathBuf, StatEntry>, StoreError> {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let found = self.stat_cache_lookup(&refs)?;
        Ok(paths.iter().zip(found).filter_map(|(p, e)| Some((p.clone(), e?))).collect())
    }

    /// The cached entry of each path, in the order of `paths` (no hashing of
    /// paths on the caller's side: this is on every build's path).
    pub fn stat_cache_lookup(&self, paths: &[&Path]) -> Result<Vec<Option<StatEntry>>, StoreError> {
        let entry = |r: &rusqlite::Row<'_>, at: usize| -> rusqlite::Result<StatEntry> {
            Ok(StatEntry {
                size: from_sql_u64(r.get(at)?),
                mtime_ns: r.get(at + 1)?,
                ino: from_sql_u64(r.get(at + 2)?),
                ctime_ns: r.get(at + 3)?,
                digest: BlobHash(Digest::from_bytes(r.get(at + 4)?)),
                recorded_ns: r.get(at + 5)?,
            })
        };
        self.db.read(|tx| {
            let mut out = vec![None; paths.len()];
            if paths.len() > FULL_SCAN_ABOVE {
                // One scan beats many point queries for a whole workspace.
                let wanted: HashMap<&[u8], usize> = paths.iter().enumerate().map(|(i, p)| (path_key(p), i)).collect();
                let mut stmt = tx.prepare_cached(
                    "SELECT path, size, mtime_ns, ino, ctime_ns, digest, recorded_ns FROM stat_cache",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let key = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                    if let Some(&i) = wanted.get(key) {
                        out[i] = Some(entry(r, 1)?);
                    }
                }
                return Ok(out);
            }
            let mut stmt = tx.prepare_cached(
                "SELECT size, mtime_ns, ino, ctime_ns, digest, recorded_ns FROM stat_cache WHERE path = ?1",
            )?;
            for (p, slot) in paths.iter().zip(&mut out) {
                *slot = stmt.query_row([path_key(p)], |r| entry(r, 0)).optional()?;
            }
            Ok(out)
        })
    }

    pub fn stat_cache_put(&self, entries: &[(PathBuf, StatEntry)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO stat_cache (path, size, mtime_ns, ino, ctime_ns, digest, recorded_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (p, e) in entries {
                stmt.execute(params![
                    path_key(p),
                    to_sql_u64(e.size),
                    e.mtime_ns,
                    to_sql_u64(e.ino),
                    e.ctime_ns,
                    e.digest.0.as_bytes(),
                    e.recorded_ns,
                ])?;
            }
            Ok(())
        })
    }

    /// Forgets the entries of `paths` (files that were deleted).
    pub fn stat_cache_remove(&self, paths: &[PathBuf]) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM stat_cache WHERE path = ?1")?;
            for p in paths {
                stmt.execute([path_key(p)])?;
            }
            Ok(())
        })
    }
}
