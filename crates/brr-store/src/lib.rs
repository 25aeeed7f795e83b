//! The local store of brr: content-addressed objects on disk, indexed by one
//! SQLite database.
//!
//! A store folder holds:
//!
//! | path | what |
//! |---|---|
//! | `cas/<2 hex>/<62 hex>` | bytes of objects over [`PACKED_MAX`], read-only files named by their BLAKE3 digest |
//! | `packs/<name>` | bytes of objects up to [`PACKED_MAX`], appended to one file per writing process |
//! | `tmp/` | temp files being written, and scratch space (sandboxes) on the same filesystem |
//! | `brr.db` | SQLite (WAL): `objects` (with where a packed object's bytes are), the action cache, build history, the stat cache, verifications, the ledger, roots |
//! | `lock` | the store-wide lock: every open [`Store`] holds it shared, a deleting [`ExclusiveStore`] exclusive |
//! | `cache/` | derived data callers may keep between runs (a saved workspace load); deleting it loses nothing |
//! | `artifacts/` | optional, for callers |
//!
//! Main types: [`Store`] (open one per process and share it: it is `Send +
//! Sync`), [`ActionRecord`] and [`BuildRow`] for the action cache and build
//! history, [`StatEntry`] for the stat cache, [`VerifyReport`] from
//! [`Store::verify`] and [`RepairReport`] from [`Store::repair`];
//! [`Store::closure`] reads every object an artifact references; [`Root`]s
//! ([`Store::add_root`]) pin what deleting must keep; an [`ExclusiveStore`]
//! ([`Store::open_exclusive`]) deletes what no root reaches
//! ([`ExclusiveStore::collect`]) and compacts packs
//! ([`ExclusiveStore::compact`]), reporting a [`SweepReport`]. Errors are
//! one enum, [`StoreError`].
//!
//! # Why there is a store-wide lock
//!
//! Deleting bytes is safe only when nobody can still need them: a build
//! places files and pack bytes before the commit that records them, later
//! puts adopt orphan files, and readers keep packs open and read at
//! recorded offsets. SQLite's lock covers rows, not those files. So every
//! `Store` holds `<root>/lock` shared (`flock`) for its whole life, and
//! only a store holding it exclusive may delete anything (the type
//! [`ExclusiveStore`] is the proof). The kernel drops the lock of a killed
//! process. [`Store::open`] waits while a sweep runs;
//! [`Store::open_exclusive`] fails at once with [`StoreError::InUse`] while
//! anyone has the store open. See `lock.rs` and `sweep.rs`.
//!
//! # Why the write order is what it is
//!
//! A row never points at an object that is not fully on disk. Every put
//! takes one path (see `objects.rs`): place the bytes, make them durable
//! with one sync per commit (never one per object), then record the rows in
//! one transaction. A small object
//! (up to [`PACKED_MAX`]; most objects of a monorepo: sources, trees, keys,
//! artifacts, logs) is appended to this process's pack file, the pack is
//! synced (`fdatasync`) past its end, and only then is its row committed.
//! Packs avoid what the two earlier layouts cost: one file per object, or,
//! with the bytes in SQLite, writing every byte twice (log, then checkpoint).
//! Every larger object is written to a temp file in `tmp/`, renamed into
//! `cas/` (a rename is atomic: readers see no file or the whole file), the
//! file system is synced (`syncfs`, once per batch) so data and names
//! survive a power loss, and only then is its row committed. A process
//! killed at any moment therefore leaves at worst a temp file, pack bytes no
//! row names, or a file without a row (an orphan, which [`Store::verify`]
//! counts but does not flag, and which the next put of the same object
//! adopts, or the next sweep removes), never a row without its bytes. A
//! sweep keeps the same rule when it deletes: new packs are synced before
//! the (durable) transaction that points rows at them, and old files are
//! unlinked only after it. Small objects that schema 4 kept in the database
//! (`object_data`) are still read, and moved to a pack by a sweep.
//!
//! Rows are also closed under references: a tree's row is committed only when
//! all its entries have rows, an artifact's only when its outputs tree has
//! one, and an action-cache entry only when its artifact (and log) has one. So
//! an action-cache hit can always be materialized.
//!
//! Several processes may share a store: objects are immutable and named by
//! content, so two writers of one object write identical bytes and the second
//! rename is harmless; SQLite serializes the rows, and writers wait on its
//! busy timeout instead of failing.

mod action_cache;
mod archive;
mod cache_conflicts;
mod cache_runs;
mod cas;
mod closure;
mod db;
mod error;
mod ledger;
mod lock;
mod materialize;
mod objects;
mod packs;
mod prefix;
mod repair;
mod roots;
mod runs;
mod stat_cache;
mod stats;
mod sweep;
mod verifications;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use action_cache::{ActionRecord, BuildRow};
pub use archive::{ARCHIVE_VERSION, ArchiveSummary};
pub use cache_conflicts::CacheConflict;
pub use cache_runs::{CacheRun, CacheRunTarget};
pub use db::SCHEMA_VERSION;
pub use error::StoreError;
pub use ledger::{BrokenLink, LedgerReport, LedgerRow, NewEntry};
pub use lock::{Access, Wait};
pub use materialize::{publish_dir, remove_tree};
pub use objects::{PACKED_MAX, PlacedBatch, Put, read_checked, snapshot_puts};
pub use prefix::MIN_PREFIX_LEN;
pub use repair::RepairReport;
pub use roots::Root;
pub use runs::{RunEvent, RunProcess, RunRow};
pub use stat_cache::{Clock, FileStat, RACY_MARGIN_NS, StatEntry};
pub use stats::{PackStats, StoreStats};
pub use sweep::{LedgerKeep, Retention, SweepReport, SweepStep};
pub use verifications::Verification;
pub use verify::VerifyReport;

use crate::db::Db;
use crate::error::IoContext;

/// Name of the database file inside a store folder.
const DB_FILE: &str = "brr.db";

/// Temp files of object writes start with this; others in `tmp/` are not ours.
const TEMP_PREFIX: &str = "obj-";

/// Temp files of object writes older than this were left by a killed process.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// A store folder, opened. Cheap to share between threads (`Send + Sync`).
pub struct Store {
    root: PathBuf,
    db: Db,
    /// Objects this process put in place, hashed as they were written.
    placed: cas::PlacedFiles,
    packs: packs::Packs,
    /// What stat-cache entries are recorded by.
    clock: Clock,
    /// `<root>/lock`, held for the store's whole life (see `lock.rs`).
    lock: lock::StoreLock,
}

/// A store held exclusively ([`Store::open_exclusive`]): no other process
/// or `Store` has it open, so it may delete bytes. Everything a [`Store`]
/// does, it does too.
pub struct ExclusiveStore(Store);

impl std::ops::Deref for ExclusiveStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.0
    }
}

/// A store opened with [`Access::Exclusive`] ([`Store::open_with`]) is an
/// `ExclusiveStore`; any other is handed back.
impl TryFrom<Store> for ExclusiveStore {
    type Error = Store;

    fn try_from(store: Store) -> Result<Self, Store> {
        if store.access() == Access::Exclusive { Ok(ExclusiveStore(store)) } else { Err(store) }
    }
}

impl Store {
    /// Opens the store at `root`, creating it (folders and database) when
    /// `root` is missing or empty, and applying pending migrations. Refuses a
    /// non-empty folder without `brr.db` (other files beside a `brr.db` are
    /// ignored), a database of another program, and a store written by a
    /// newer brr.
    ///
    /// The store is held shared (see [`Access`]) until the `Store` drops;
    /// while another process holds it exclusive (compacting), this waits.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, Access::Shared, Wait::Block)
    }

    /// Opens the store at `root` as [`Store::open`] does, held exclusive:
    /// fails at once with [`StoreError::InUse`] while any other process (or
    /// another `Store` of this one) has it open, and keeps everyone else out
    /// until the returned store drops.
    pub fn open_exclusive(root: &Path) -> Result<ExclusiveStore, StoreError> {
        Self::open_with(root, Access::Exclusive, Wait::NoWait).map(ExclusiveStore)
    }

    /// Opens the store at `root` held as `access`, waiting or not for
    /// conflicting holders ([`StoreError::InUse`] when not).
    pub fn open_with(root: &Path, access: Access, wait: Wait) -> Result<Store, StoreError> {
        match std::fs::read_dir(root) {
            Ok(entries) => {
                // Decided on one listing: another process may be creating
                // this store right now, and then only its own names appear.
                let names: Vec<std::ffi::OsString> = entries.filter_map(|e| Some(e.ok()?.file_name())).collect();
                let ours = |n: &std::ffi::OsString| {
                    n.to_str().is_some_and(|n| {
                        n == DB_FILE
                            || n.starts_with("brr.db-")
                            || ["cas", "packs", "tmp", "cache", lock::LOCK_FILE].contains(&n)
                    })
                };
                // With `brr.db` there, the database decides (other names are
                // strays, e.g. written by an unsandboxed builder); without it,
                // only the names a store being created makes are accepted.
                let has_db = names.iter().any(|n| n == DB_FILE);
                if !has_db && !names.iter().all(ours) {
                    return Err(StoreError::NotAStore {
                        path: root.to_path_buf(),
                        reason: format!("the folder is not empty and has no `{DB_FILE}`"),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(root).at(root)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(StoreError::NotAStore { path: root.to_path_buf(), reason: "it is not a folder".into() });
            }
            Err(e) => return Err(e).at(root),
        }
        // The lock comes first: nothing of the store is read or written
        // without it. Its file is one of the names a store being created
        // may show.
        let lock = lock::StoreLock::acquire(root, access, wait)?;
        let db = Db::open(&root.join(DB_FILE), root)?;
        let store = Store {
            root: root.to_path_buf(),
            db,
            placed: cas::PlacedFiles::default(),
            packs: packs::Packs::default(),
            clock: Clock::SYSTEM,
            lock,
        };
        for dir in [store.cas_dir(), store.tmp_dir()] {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// How this store is held.
    pub fn access(&self) -> Access {
        self.lock.access()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/tmp`: scratch space on the store's filesystem (renames and
    /// hard links into `cas/` work from here). Created by [`Store::open`].
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `<root>/cache`: derived data that callers may save between runs and
    /// that can be deleted at any time; not created by the store.
    pub fn cache_dir(&self) -> PathBuf {
        Self::cache_dir_of(&self.root)
    }

    /// Whether `root` holds a store's database (opening it creates nothing).
    pub fn exists(root: &Path) -> bool {
        root.join(DB_FILE).is_file()
    }

    /// The [`Store::cache_dir`] of a store at `root`, opened or not.
    pub fn cache_dir_of(root: &Path) -> PathBuf {
        root.join("cache")
    }

    /// `<root>/artifacts`, for callers that keep materialized artifacts; not
    /// created by the store.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// `<root>/brr.db`.
    pub fn db_path(&self) -> &Path {
        self.db.path()
    }

    fn cas_dir(&self) -> PathBuf {
        self.root.join("cas")
    }

    /// Best effort: removes our temp files that no live write can still own.
    /// Anything else in `tmp/` (sandboxes) belongs to other code.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP_AGE));
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
