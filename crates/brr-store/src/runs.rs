//! Records of runs (`schemas/0008_runs.sql`): what a supervisor runs, by
//! release hash, and the state of each process, readable by `brr ps` from
//! another process while the run goes on.

use brr_hash::{Digest, ReleaseHash};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError};

/// One run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    /// What the user asked to run (an environment or a hash prefix).
    pub asked: String,
    pub supervisor_pid: u32,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// `stopped` (all exited on SIGTERM), `forced` (some needed SIGKILL),
    /// `failed` (a process type hit its start limit); `None` while running.
    pub outcome: Option<String>,
}

/// One process instance of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProcess {
    pub run: i64,
    pub release: ReleaseHash,
    /// The process type (`web`, `worker`).
    pub process: String,
    /// 1, 2, … per process type.
    pub instance: u32,
    pub port: Option<u16>,
    pub pid: Option<u32>,
    /// `starting`, `running`, `ready`, `backoff`, `failed`, `stopping`,
    /// `stopped`, `exited`.
    pub state: String,
    pub restarts: u32,
    /// `exited with 1`, `killed by SIGTERM`, …
    pub last_exit: Option<String>,
    pub started_ms: Option<i64>,
    pub updated_ms: i64,
}

/// One event of a process instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub release: ReleaseHash,
    pub process: String,
    pub instance: u32,
    pub at_ms: i64,
    /// `start`, `exit`, `ready`, `backoff`, `failed`, `stop`.
    pub event: String,
    pub detail: Option<String>,
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        asked: r.get(1)?,
        supervisor_pid: r.get(2)?,
        started_ms: r.get(3)?,
        ended_ms: r.get(4)?,
        outcome: r.get(5)?,
    })
}

fn process_row(r: &Row<'_>) -> rusqlite::Result<RunProcess> {
    Ok(RunProcess {
        run: r.get(0)?,
        release: ReleaseHash(Digest::from_bytes(r.get::<_, [u8; 32]>(1)?)),
        process: r.get(2)?,
        instance: r.get(3)?,
        port: r.get(4)?,
        pid: r.get(5)?,
        state: r.get(6)?,
        restarts: r.get(7)?,
        last_exit: r.get(8)?,
        started_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

const RUN_COLUMNS: &str = "id, asked, supervisor_pid, started_ms, ended_ms, outcome";
const PROCESS_COLUMNS: &str =
    "run, release, process, instance, port, pid, state, restarts, last_exit, started_ms, updated_ms";

impl Store {
    /// Records a new run; returns its id.
    pub fn run_begin(&self, asked: &str, supervisor_pid: u32, started_ms: i64) -> Result<i64, StoreError> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO runs (asked, supervisor_pid, started_ms) VALUES (?1, ?2, ?3)",
                params![asked, supervisor_pid, started_ms],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Records how run `id` ended.
    pub fn run_end(&self, id: i64, ended_ms: i64, outcome: &str) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.execute("UPDATE runs SET ended_ms = ?2, outcome = ?3 WHERE id = ?1", params![id, ended_ms, outcome])?;
            Ok(())
        })
    }

    /// Writes the state of one process instance (inserting it the first
    /// time), and an event when one is given.
    pub fn run_process_update(&self, p: &RunProcess, event: Option<(&str, Option<&str>)>) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let sql = format!(
                "INSERT OR REPLACE INTO run_processes ({PROCESS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            );
            tx.prepare_cached(&sql)?.execute(params![
                p.run,
                p.release.0.as_bytes(),
                p.process,
                p.instance,
                p.port,
                p.pid,
                p.state,
                p.restarts,
                p.last_exit,
                p.started_ms,
                p.updated_ms,
            ])?;
            if let Some((event, detail)) = event {
                tx.prepare_cached(
                    "INSERT INTO run_events (run, release, process, instance, at_ms, event, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![p.run, p.release.0.as_bytes(), p.process, p.instance, p.updated_ms, event, detail])?;
            }
            Ok(())
        })
    }

    /// Run `id`.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
            Ok(tx.prepare_cached(&sql)?.query_row([id], run_row).optional()?)
        })
    }

    /// The newest runs first: every unfinished one, then finished ones up
    /// to `limit` in all.
    pub fn runs_recent(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.read(|tx| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY ended_ms IS NOT NULL, id DESC LIMIT ?1");
            Ok(tx.prepare_cached(&sql)?.query_map([limit], run_row)?.collect::<Result<_, _>>()?)
        })
    }

    /// The process instances of run `id`.
    pub fn run_processes(&self, id: i64) -> Result<Vec<RunProcess>, StoreError> {
        self.db.read(|tx| {
            let sql = format!(
                "SELECT {PROCESS_COLUMNS} FROM run_processes WHERE run = ?1 ORDER BY started_ms, process, instance"
            );
            Ok(tx.prepare_cached(&sql)?.query_map([id], process_row)?.collect::<Result<_, _>>()?)
        })
    }

    /// The events of run `id`, oldest first.
    pub fn run_events(&self, id: i64) -> Result<Vec<RunEvent>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT release, process, instance, at_ms, event, detail FROM run_events WHERE run = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok(RunEvent {
                    release: ReleaseHash(Digest::from_bytes(r.get::<_, [u8; 32]>(0)?)),
                    process: r.get(1)?,
                    instance: r.get(2)?,
                    at_ms: r.get(3)?,
                    event: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Runs not recorded as ended (running, or lost: their supervisor died).
    pub fn runs_unfinished(&self) -> Result<Vec<RunRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE ended_ms IS NULL ORDER BY id");
            Ok(tx.prepare_cached(&sql)?.query_map([], run_row)?.collect::<Result<_, _>>()?)
        })
    }

    /// Ports handed to the processes of run `id`.
    pub fn run_ports(&self, id: i64) -> Result<Vec<u16>, StoreError> {
        self.db.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT DISTINCT port FROM run_processes WHERE run = ?1 AND port IS NOT NULL")?;
            Ok(stmt.query_map([id], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }
}
