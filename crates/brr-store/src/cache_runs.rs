//! What the remote caches did for each build, for `brr cache stats`.

use rusqlite::params;

use crate::{Store, StoreError};

/// One build that asked a remote cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRun {
    /// Unix seconds.
    pub at: i64,
    pub hits: u64,
    pub misses: u64,
    pub pushed: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    pub wait_ms: u64,
    /// Each target looked up: hit or not, and for a miss, how long its
    /// builder ran (ms; 0 for hits).
    pub targets: Vec<CacheRunTarget>,
}

/// A target looked up in a remote cache during one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRunTarget {
    pub name: String,
    pub hit: bool,
    pub build_ms: u64,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Records one build's remote-cache statistics.
    pub fn record_cache_run(&self, run: &CacheRun) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO cache_runs (at, hits, misses, pushed, bytes_down, bytes_up, wait_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                run.at,
                int(run.hits),
                int(run.misses),
                int(run.pushed),
                int(run.bytes_down),
                int(run.bytes_up),
                int(run.wait_ms)
            ])?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO cache_run_targets (run, target, hit, build_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in &run.targets {
                insert.execute(params![id, t.name, t.hit, int(t.build_ms)])?;
            }
            Ok(())
        })
    }

    /// The latest `limit` runs, newest first.
    pub fn cache_runs(&self, limit: usize) -> Result<Vec<CacheRun>, StoreError> {
        self.db.read(|tx| {
            let mut runs = tx.prepare(
                "SELECT id, at, hits, misses, pushed, bytes_down, bytes_up, wait_ms FROM cache_runs
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let mut targets =
                tx.prepare("SELECT target, hit, build_ms FROM cache_run_targets WHERE run = ?1 ORDER BY target")?;
            let rows = runs
                .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        CacheRun {
                            at: r.get(1)?,
                            hits: uint(r.get(2)?),
                            misses: uint(r.get(3)?),
                            pushed: uint(r.get(4)?),
                            bytes_down: uint(r.get(5)?),
                            bytes_up: uint(r.get(6)?),
                            wait_ms: uint(r.get(7)?),
                            targets: Vec::new(),
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, mut run) in rows {
                run.targets = targets
                    .query_map([id], |r| {
                        Ok(CacheRunTarget { name: r.get(0)?, hit: r.get(1)?, build_ms: uint(r.get(2)?) })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(run);
            }
            Ok(out)
        })
    }
}
