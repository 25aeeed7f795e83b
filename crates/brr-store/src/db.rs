//! The SQLite side of the store: opening, the append-only migrations in
//! `schemas/`, and transactions: writes on one connection behind a mutex,
//! reads on a pool of connections of their own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use brr_hash::ObjectKind;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use crate::StoreError;

/// The migrations, in order. `PRAGMA user_version` is the number applied.
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../schemas/0001_store.sql"),
    include_str!("../../../schemas/0002_verifications.sql"),
    include_str!("../../../schemas/0003_action_outputs.sql"),
    include_str!("../../../schemas/0004_inline_objects.sql"),
    include_str!("../../../schemas/0005_packs.sql"),
    include_str!("../../../schemas/0006_ledger.sql"),
    include_str!("../../../schemas/0007_roots.sql"),
    include_str!("../../../schemas/0008_runs.sql"),
    include_str!("../../../schemas/0009_cache_conflicts.sql"),
    include_str!("../../../schemas/0010_cache_runs.sql"),
];

/// `PRAGMA application_id` of a brr store: "brr!" in ASCII.
const APPLICATION_ID: i64 = 0x6272_7221;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema version this build of brr writes.
#[expect(clippy::cast_possible_wrap, reason = "a handful of migrations")]
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Either a SQLite error (given the database path when lifted into a
/// [`StoreError`]) or a store error raised inside a transaction.
pub(crate) enum TxError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The connections of one process. Writes go through one connection; reads
/// take one of a pool, so that with write-ahead logging they neither wait
/// for a commit in progress nor for each other (a build's threads look up
/// objects while the committer writes). Other processes have their own and
/// are kept apart by SQLite's file locks.
pub(crate) struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Idle read connections; a read with none idle opens another.
    readers: Mutex<Vec<Connection>>,
}

/// Opens one more connection to the database at `path`, already migrated.
fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A commit's per-build savepoints keep the pages they change in a
    // statement journal; past 64 KiB SQLite spills it to a file in /var/tmp,
    // written page by page. In memory it stays a few hundred KiB.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

impl Db {
    /// Opens (creating if needed) the database at `path`, refusing files that
    /// are not brr stores or are newer than this build, and migrates it.
    pub(crate) fn open(path: &Path, root: &Path) -> Result<Self, StoreError> {
        let sql = |source| StoreError::Db { path: path.to_path_buf(), source };
        let conn = open_connection(path).map_err(sql)?;
        // The first read of the header tells a database from any other file.
        if let Err(e) = conn.pragma_query_value(None, "application_id", |r| r.get::<_, i64>(0)) {
            return Err(if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
                StoreError::NotAStore { path: root.to_path_buf(), reason: "`brr.db` is not a SQLite database".into() }
            } else {
                sql(e)
            });
        }
        // Switching to WAL while another process opens the same new store
        // can answer SQLITE_BUSY at once, without the busy handler: retry.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
                Err(e)
                    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other.map_err(sql)?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotAStore {
                path: root.to_path_buf(),
                reason: format!("the database cannot use write-ahead logging (journal mode `{mode}`)"),
            });
        }
        // NORMAL in WAL mode survives process crashes; a power loss may drop
        // the last commits, never leave rows without their files.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        let db = Self { path: path.to_path_buf(), conn: Mutex::new(conn), readers: Mutex::new(Vec::new()) };
        db.migrate(root)?;
        Ok(db)
    }

    fn migrate(&self, root: &Path) -> Result<(), StoreError> {
        self.write(|tx| {
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let app: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
            let not_a_store = |reason: &str| StoreError::NotAStore { path: root.to_path_buf(), reason: reason.into() };
            if version == 0 {
                let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
                if objects > 0 || (app != 0 && app != APPLICATION_ID) {
                    return Err(not_a_store("`brr.db` holds another program's database").into());
                }
            } else if app != APPLICATION_ID {
                return Err(not_a_store("`brr.db` holds another program's database").into());
            }
            if version > SCHEMA_VERSION {
                return Err(
                    StoreError::TooNew { path: root.to_path_buf(), found: version, known: SCHEMA_VERSION }.into()
                );
            }
            let applied = usize::try_from(version).unwrap_or(0);
            for sql in MIGRATIONS.iter().skip(applied) {
                tx.execute_batch(sql)?;
            }
            if version != SCHEMA_VERSION {
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            Ok(())
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a read transaction on a pooled connection: one consistent
    /// snapshot that sees every commit made before it started, and never
    /// blocks writers.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, TxError>) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => open_connection(&self.path).map_err(|source| StoreError::Db { path: self.path.clone(), source })?,
        };
        let out = Self::attempt(&mut conn, TransactionBehavior::Deferred, f);
        // Back to the pool even after a failed read: the transaction rolled
        // back when it dropped, so the connection is still usable.
        self.readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        out.map_err(|e| self.lift(e))
    }

    /// Runs `f` in a write transaction, committed when `f` succeeds. It takes
    /// the write lock up front (`BEGIN IMMEDIATE`), so it waits for other
    /// writers instead of failing when a read would upgrade to a write.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, TxError>) -> Result<T, StoreError> {
        // A thread that panicked mid-transaction rolled it back when the
        // transaction dropped, so the connection is still usable.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Self::attempt(&mut conn, TransactionBehavior::Immediate, f).map_err(|e| self.lift(e))
    }

    /// As [`Db::write`], but the commit is durable when this returns
    /// (`synchronous = FULL` for this transaction: the log is synced at the
    /// commit), for a caller that deletes files the old rows named.
    pub(crate) fn write_durable<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let sql = |source| StoreError::Db { path: self.path.clone(), source };
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        let out = Self::attempt(&mut conn, TransactionBehavior::Immediate, f).map_err(|e| self.lift(e));
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        out
    }

    fn attempt<T>(
        conn: &mut Connection,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, TxError>,
    ) -> Result<T, TxError> {
        let tx = conn.transaction_with_behavior(behavior)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn lift(&self, e: TxError) -> StoreError {
        match e {
            TxError::Sql(source) => StoreError::Db { path: self.path.clone(), source },
            TxError::Store(e) => e,
        }
    }
}

/// An [`ObjectKind`] stored as its name in a TEXT column.
pub(crate) struct KindCol(pub ObjectKind);

impl FromSql for KindCol {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        ObjectKind::parse(s)
            .map(KindCol)
            .ok_or_else(|| FromSqlError::Other(format!("unknown object kind `{s}`").into()))
    }
}

/// SQLite integers are signed: store a `u64` by its bits.
pub(crate) fn to_sql_u64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

/// Inverse of [`to_sql_u64`].
pub(crate) fn from_sql_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}
