//! Roots: named pins of objects that deleting keeps, with everything they
//! reference (see `schemas/0007_roots.sql`).

use brr_hash::Digest;
use rusqlite::{OptionalExtension, params};

use crate::objects::kind_in;
use crate::{Store, StoreError};

/// One root: `name` pins object `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub name: String,
    pub hash: Digest,
    /// Why it is kept, for people.
    pub reason: String,
    /// Unix milliseconds when it was added.
    pub created_ms: i64,
}

/// A root name is one line of text people type and read.
fn check_root_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else if name.trim() != name {
        "it starts or ends with white space"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidRootName { name: name.to_owned(), reason })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Pins object `hash` under `name`, with `reason`: deleting keeps it and
    /// everything it references. Refused unless `hash` has a row (checked in
    /// the transaction that writes the root). A root already named `name`
    /// is moved to `hash`; returns the hash it pinned before, if any.
    pub fn add_root(&self, name: &str, hash: Digest, reason: &str) -> Result<Option<Digest>, StoreError> {
        check_root_name(name)?;
        self.db.write(|tx| {
            if kind_in(tx, hash)?.is_none() {
                return Err(StoreError::RootTarget { hash }.into());
            }
            let before: Option<[u8; 32]> = tx
                .prepare_cached("SELECT hash FROM roots WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            tx.prepare_cached(
                "INSERT INTO roots (name, hash, reason, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET hash = ?2, reason = ?3, created_ms = ?4",
            )?
            .execute(params![name, hash.as_bytes(), reason, now_ms()])?;
            Ok(before.map(Digest::from_bytes))
        })
    }

    /// Removes the root `name`; returns whether there was one. The object
    /// stays until something deletes what no root keeps.
    pub fn remove_root(&self, name: &str) -> Result<bool, StoreError> {
        self.db.write(|tx| Ok(tx.prepare_cached("DELETE FROM roots WHERE name = ?1")?.execute([name])? > 0))
    }

    /// Every root, by name.
    pub fn roots(&self) -> Result<Vec<Root>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT name, hash, reason, created_ms FROM roots ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(Root {
                    name: r.get(0)?,
                    hash: Digest::from_bytes(r.get(1)?),
                    reason: r.get(2)?,
                    created_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
