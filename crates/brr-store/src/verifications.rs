//! Reproducibility verifications recorded by `brr verify`.

use brr_hash::{BuildKey, Digest, ObjectKind, TreeHash};
use rusqlite::{Row, params};

use crate::objects::{kind_in, require};
use crate::{Store, StoreError};

/// One verification of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub target: String,
    pub key: BuildKey,
    /// How many times the target was rebuilt.
    pub rounds: u32,
    pub reproducible: bool,
    /// The output tree of each successful round, in round order.
    pub outputs: Vec<TreeHash>,
    /// Paths (relative to `$OUT`) that differed between rounds.
    pub differing: Vec<String>,
    /// Unix seconds.
    pub verified_at: i64,
}

fn verification(row: &Row<'_>) -> rusqlite::Result<Verification> {
    let outputs: String = row.get(4)?;
    let differing: String = row.get(5)?;
    Ok(Verification {
        target: row.get(0)?,
        key: BuildKey(Digest::from_bytes(row.get::<_, [u8; 32]>(1)?)),
        rounds: row.get(2)?,
        reproducible: row.get(3)?,
        outputs: outputs.lines().filter_map(|l| l.parse().ok()).collect(),
        differing: differing.lines().map(str::to_owned).collect(),
        verified_at: row.get(6)?,
    })
}

const COLUMNS: &str = "target, key, rounds, reproducible, outputs, differing, verified_at";

impl Store {
    /// Appends a verification result. Its key must be recorded as an
    /// action and each output as a tree (checked in the transaction that
    /// writes the row, so `verify` finds every row's references).
    pub fn record_verification(&self, v: &Verification) -> Result<(), StoreError> {
        let outputs: Vec<String> = v.outputs.iter().map(ToString::to_string).collect();
        self.db.write(|tx| {
            let owner = (ObjectKind::Action, v.key.0);
            if kind_in(tx, v.key.0)? != Some(ObjectKind::Action) {
                return Err(StoreError::NotFound { hash: v.key.0 }.into());
            }
            for t in &v.outputs {
                require(tx, owner, t.0, ObjectKind::Tree)?;
            }
            let sql = format!("INSERT INTO verifications ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            tx.prepare_cached(&sql)?.execute(params![
                v.target,
                v.key.0.as_bytes(),
                v.rounds,
                v.reproducible,
                outputs.join("\n"),
                v.differing.join("\n"),
                v.verified_at,
            ])?;
            Ok(())
        })
    }

    /// The latest verification of every target ever verified, by target name.
    pub fn latest_verifications(&self) -> Result<Vec<Verification>, StoreError> {
        self.db.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM verifications WHERE id IN
                 (SELECT max(id) FROM verifications GROUP BY target) ORDER BY target"
            );
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map([], verification)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
