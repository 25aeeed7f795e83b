//! Cache conflicts recorded by the remote cache: a remote's trusted entry
//! for a key named another artifact than the one built here.

use brr_hash::{ArtifactHash, BuildKey, Digest};
use rusqlite::{Row, params};

use crate::{Store, StoreError};

/// One conflict, as this runner saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConflict {
    pub key: BuildKey,
    /// The remote's URL with credentials hidden.
    pub remote: String,
    /// The artifact built here.
    pub local: ArtifactHash,
    /// The artifact the remote's entry names.
    pub theirs: ArtifactHash,
    /// Who signed the remote's entry.
    pub signer: String,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
}

fn conflict(row: &Row<'_>) -> rusqlite::Result<CacheConflict> {
    Ok(CacheConflict {
        key: BuildKey(Digest::from_bytes(row.get::<_, [u8; 32]>(0)?)),
        remote: row.get(1)?,
        local: ArtifactHash(Digest::from_bytes(row.get::<_, [u8; 32]>(2)?)),
        theirs: ArtifactHash(Digest::from_bytes(row.get::<_, [u8; 32]>(3)?)),
        signer: row.get(4)?,
        first_seen: row.get(5)?,
        last_seen: row.get(6)?,
    })
}

impl Store {
    /// Records a conflict (or, seen before, when it was last seen).
    pub fn record_cache_conflict(&self, c: &CacheConflict) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO cache_conflicts (key, remote, local, theirs, signer, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key, remote, local, theirs) DO UPDATE SET last_seen = excluded.last_seen",
            )?
            .execute(params![
                c.key.0.as_bytes(),
                c.remote,
                c.local.0.as_bytes(),
                c.theirs.0.as_bytes(),
                c.signer,
                c.first_seen,
                c.last_seen,
            ])?;
            Ok(())
        })
    }

    /// Every recorded conflict, most recently seen first.
    pub fn cache_conflicts(&self) -> Result<Vec<CacheConflict>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT key, remote, local, theirs, signer, first_seen, last_seen FROM cache_conflicts
                 ORDER BY last_seen DESC, key",
            )?;
            let rows = stmt.query_map([], conflict)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
