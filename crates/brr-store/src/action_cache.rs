//! The action cache (build key -> artifact) and the build history (one row
//! per target per build or cached use).

use std::collections::HashMap;

use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, ObjectKind, TreeHash};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::db::{TxError, from_sql_u64, to_sql_u64};
use crate::objects::require;
use crate::{Store, StoreError};

/// A cached build: key `key` produced artifact `artifact`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub key: BuildKey,
    pub artifact: ArtifactHash,
    /// The build log, a blob.
    pub log: Option<Digest>,
    pub duration_ms: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// The artifact's output tree. `record_action` fills it in when `None`.
    pub outputs: Option<TreeHash>,
}

/// One build (or cached use, or failure) of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRow {
    pub target: String,
    pub key: BuildKey,
    /// `None` for failed builds.
    pub artifact: Option<ArtifactHash>,
    /// One of [`BuildRow::STATUSES`].
    pub status: String,
    pub log: Option<Digest>,
    /// Unix seconds.
    pub started_at: i64,
    pub duration_ms: u64,
}

impl BuildRow {
    /// The values `status` may take.
    pub const STATUSES: [&'static str; 3] = ["built", "cached", "failed"];
}

fn digest(row: &Row<'_>, i: usize) -> rusqlite::Result<Digest> {
    row.get::<_, [u8; 32]>(i).map(Digest::from_bytes)
}

fn opt_digest(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Digest>> {
    Ok(row.get::<_, Option<[u8; 32]>>(i)?.map(Digest::from_bytes))
}

fn build_row(row: &Row<'_>) -> rusqlite::Result<BuildRow> {
    Ok(BuildRow {
        target: row.get(0)?,
        key: BuildKey(digest(row, 1)?),
        artifact: opt_digest(row, 2)?.map(ArtifactHash),
        status: row.get(3)?,
        log: opt_digest(row, 4)?,
        started_at: row.get(5)?,
        duration_ms: from_sql_u64(row.get(6)?),
    })
}

/// Fails unless the artifact and log a row names are recorded objects.
fn require_outputs(
    tx: &Transaction<'_>,
    key: BuildKey,
    artifact: Option<ArtifactHash>,
    log: Option<Digest>,
) -> Result<(), TxError> {
    // Reported as the action's reference: the row belongs to that key.
    let owner = (ObjectKind::Action, key.0);
    if let Some(a) = artifact {
        require(tx, owner, a.0, ObjectKind::Artifact)?;
    }
    if let Some(l) = log {
        require(tx, owner, l, ObjectKind::Blob)?;
    }
    Ok(())
}

/// Writes the action-cache row of `rec` (with `outputs` as its output tree),
/// once its artifact and log are recorded.
pub(crate) fn insert_action(
    tx: &Transaction<'_>,
    rec: &ActionRecord,
    outputs: Option<TreeHash>,
) -> Result<(), TxError> {
    require_outputs(tx, rec.key, Some(rec.artifact), rec.log)?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO action_cache (key, artifact, log, duration_ms, created_at, outputs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        rec.key.0.as_bytes(),
        rec.artifact.0.as_bytes(),
        rec.log.map(|l| *l.as_bytes()),
        to_sql_u64(rec.duration_ms),
        rec.created_at,
        outputs.map(|t| *t.0.as_bytes()),
    ])?;
    Ok(())
}

const BUILD_COLUMNS: &str = "target, key, artifact, status, log, started_at, duration_ms";

impl Store {
    /// The cached result of build key `key`, if any.
    pub fn lookup_action(&self, key: BuildKey) -> Result<Option<ActionRecord>, StoreError> {
        Ok(self.lookup_actions(&[key])?.pop().flatten())
    }

    /// The cached result of each key, in order, in one read transaction.
    pub fn lookup_actions(&self, keys: &[BuildKey]) -> Result<Vec<Option<ActionRecord>>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT artifact, log, duration_ms, created_at, outputs FROM action_cache WHERE key = ?1",
            )?;
            let mut out = Vec::with_capacity(keys.len());
            for &key in keys {
                let rec = stmt
                    .query_row([key.0.as_bytes()], |r| {
                        Ok(ActionRecord {
                            key,
                            artifact: ArtifactHash(digest(r, 0)?),
                            log: opt_digest(r, 1)?,
                            duration_ms: from_sql_u64(r.get(2)?),
                            created_at: r.get(3)?,
                            outputs: opt_digest(r, 4)?.map(TreeHash),
                        })
                    })
                    .optional()?;
                out.push(rec);
            }
            Ok(out)
        })
    }

    /// Caches `rec`, replacing an earlier result for the same key (the
    /// latest build wins). The artifact (and log) must already be in the
    /// store; since rows are closed under references, so is everything the
    /// artifact needs to be materialized.
    pub fn record_action(&self, rec: &ActionRecord) -> Result<(), StoreError> {
        // Filled in from the artifact when the caller did not say; a missing
        // artifact is reported by `require_outputs` below.
        let outputs = match rec.outputs {
            Some(t) => Some(t),
            None if self.kind_of(rec.artifact.0)? == Some(ObjectKind::Artifact) => {
                Some(self.get_object::<Artifact>(rec.artifact.0)?.outputs)
            }
            None => None,
        };
        self.db.write(|tx| insert_action(tx, rec, outputs))
    }

    /// Appends `row` to the build history. Its artifact and log, when set,
    /// must already be in the store.
    pub fn record_build(&self, row: &BuildRow) -> Result<(), StoreError> {
        self.record_builds(std::slice::from_ref(row))
    }

    /// Appends `rows` to the build history in one transaction, leaving out a
    /// `cached` row whose target's last row already has that key: a no-op
    /// build adds nothing, so the history only grows when something changes.
    pub fn record_builds(&self, rows: &[BuildRow]) -> Result<(), StoreError> {
        if let Some(bad) = rows.iter().find(|r| !BuildRow::STATUSES.contains(&r.status.as_str())) {
            return Err(StoreError::InvalidStatus { status: bad.status.clone() });
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            let mut last: HashMap<String, [u8; 32]> = HashMap::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT target, key FROM builds WHERE id IN (SELECT max(id) FROM builds GROUP BY target)",
                )?;
                let found = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, [u8; 32]>(1)?)))?;
                for f in found {
                    let (t, k) = f?;
                    last.insert(t, k);
                }
            }
            let sql = format!("INSERT INTO builds ({BUILD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            let mut stmt = tx.prepare_cached(&sql)?;
            for row in rows {
                if row.status == "cached" && last.get(&row.target) == Some(row.key.0.as_bytes()) {
                    continue;
                }
                require_outputs(tx, row.key, row.artifact, row.log)?;
                stmt.execute(params![
                    row.target,
                    row.key.0.as_bytes(),
                    row.artifact.map(|a| *a.0.as_bytes()),
                    row.status,
                    row.log.map(|l| *l.as_bytes()),
                    row.started_at,
                    to_sql_u64(row.duration_ms),
                ])?;
                last.insert(row.target.clone(), *row.key.0.as_bytes());
            }
            Ok(())
        })
    }

    /// The most recently recorded build of `target`.
    pub fn last_build(&self, target: &str) -> Result<Option<BuildRow>, StoreError> {
        Ok(self.builds_of(target, 1)?.into_iter().next())
    }

    /// Every recorded build that produced an artifact, most recently
    /// started first (what `brr gc --max-size` keeps while it fits).
    pub fn builds_recent(&self) -> Result<Vec<BuildRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!(
                "SELECT {BUILD_COLUMNS} FROM builds WHERE artifact IS NOT NULL ORDER BY started_at DESC, id DESC"
            );
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map([], build_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The build keys recorded as producing `artifact`, in the build
    /// history (latest use first) or the action cache: what tells which
    /// dependency artifacts it was built from (`ActionKey::deps`).
    pub fn keys_of_artifact(&self, artifact: ArtifactHash) -> Result<Vec<BuildKey>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT key FROM (
                     SELECT key, max(id) AS last FROM builds WHERE artifact = ?1 GROUP BY key
                     UNION ALL SELECT key, NULL FROM action_cache WHERE artifact = ?1
                 ) ORDER BY last IS NULL, last DESC, key",
            )?;
            let rows = stmt.query_map([artifact.0.as_bytes()], |r| digest(r, 0))?;
            let mut keys: Vec<BuildKey> = Vec::new();
            for d in rows {
                let key = BuildKey(d?);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
    }

    /// The last `limit` builds of `target`, newest first.
    pub fn builds_of(&self, target: &str, limit: usize) -> Result<Vec<BuildRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.read(|tx| {
            let sql = format!("SELECT {BUILD_COLUMNS} FROM builds WHERE target = ?1 ORDER BY id DESC LIMIT ?2");
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![target, limit], build_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
