//! The ledger: per environment, an append-only hash chain of releases,
//! promotions and rollbacks (see `schemas/0006_ledger.sql`).
//!
//! Appending is one write transaction that reads the environment's last
//! entry and the service's last version, then inserts the next entry. SQLite
//! lets one writer in at a time, so two processes releasing into the same
//! environment get consecutive versions and a chain without forks, and a
//! process killed at any moment has appended its entry whole or not at all.

use brr_hash::{
    ArtifactHash, BlobHash, ConfigHash, Digest, EntryHash, LedgerAction, LedgerEntry, ObjectKind, PromotionSource,
    ReleaseHash, ReleaseStatus,
};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::db::{TxError, from_sql_u64, to_sql_u64};
use crate::{Store, StoreError};

/// What a caller appends; the store fills in `previous` and `version`.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub env: String,
    pub service: String,
    pub release: ReleaseHash,
    pub build: ArtifactHash,
    pub config: ConfigHash,
    pub action: LedgerAction,
    pub status: ReleaseStatus,
    pub actor: String,
    pub time_ms: i64,
    pub note: Option<String>,
    pub source: Option<PromotionSource>,
    /// The release phase's output, a blob already in the store.
    pub log: Option<BlobHash>,
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// Append order across the whole store.
    pub id: i64,
    pub hash: EntryHash,
    pub entry: LedgerEntry,
    pub build: ArtifactHash,
    pub config: ConfigHash,
    pub log: Option<BlobHash>,
}

/// Where `ledger verify` found an environment's chain broken: the first bad
/// row, and why. Rows after it are not trusted, so they are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub env: String,
    pub id: i64,
    pub service: String,
    pub version: u64,
    pub reason: String,
}

/// What `ledger verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Rows read, across all environments.
    pub entries: u64,
    /// Environments with at least one row, sorted.
    pub envs: Vec<String>,
    /// The first broken link of each broken environment.
    pub broken: Vec<BrokenLink>,
}

impl LedgerReport {
    pub fn is_ok(&self) -> bool {
        self.broken.is_empty()
    }
}

const COLUMNS: &str = "id, hash, previous, env, service, version, release, action, status, actor, time_ms, note,
     source_env, source_version, build, config, log";

fn digest(row: &Row<'_>, i: usize) -> rusqlite::Result<Digest> {
    Ok(Digest::from_bytes(row.get::<_, [u8; 32]>(i)?))
}

fn text_enum<T>(row: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let s: String = row.get(i)?;
    parse(&s).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(i, format!("unknown value `{s}`"), rusqlite::types::Type::Text)
    })
}

fn ledger_row(row: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    let source_env: Option<String> = row.get(12)?;
    let source_version: Option<i64> = row.get(13)?;
    let source = source_env.zip(source_version).map(|(env, v)| PromotionSource { env, version: from_sql_u64(v) });
    let entry = LedgerEntry {
        previous: row.get::<_, Option<[u8; 32]>>(2)?.map(|b| EntryHash(Digest::from_bytes(b))),
        env: row.get(3)?,
        service: row.get(4)?,
        version: from_sql_u64(row.get(5)?),
        release: ReleaseHash(digest(row, 6)?),
        action: text_enum(row, 7, LedgerAction::parse)?,
        status: text_enum(row, 8, ReleaseStatus::parse)?,
        actor: row.get(9)?,
        time_ms: row.get(10)?,
        note: row.get(11)?,
        source,
    };
    Ok(LedgerRow {
        id: row.get(0)?,
        hash: EntryHash(digest(row, 1)?),
        entry,
        build: ArtifactHash(digest(row, 14)?),
        config: ConfigHash(digest(row, 15)?),
        log: row.get::<_, Option<[u8; 32]>>(16)?.map(|b| BlobHash(Digest::from_bytes(b))),
    })
}

fn last_of_env(tx: &Transaction<'_>, env: &str) -> rusqlite::Result<Option<EntryHash>> {
    let mut stmt = tx.prepare_cached("SELECT hash FROM ledger WHERE env = ?1 ORDER BY id DESC LIMIT 1")?;
    let hash = stmt.query_row([env], |r| r.get::<_, [u8; 32]>(0)).optional()?;
    Ok(hash.map(|b| EntryHash(Digest::from_bytes(b))))
}

fn last_version(tx: &Transaction<'_>, env: &str, service: &str) -> rusqlite::Result<u64> {
    let mut stmt = tx.prepare_cached("SELECT max(version) FROM ledger WHERE env = ?1 AND service = ?2")?;
    Ok(stmt.query_row([env, service], |r| r.get::<_, Option<i64>>(0))?.map_or(0, from_sql_u64))
}

impl Store {
    /// Appends the next entry of `new.env` for `new.service`: version one
    /// past the service's last, chained to the environment's last entry.
    /// The release object (and so its build and config) and the log must be
    /// in the store.
    pub fn ledger_append(&self, new: &NewEntry) -> Result<LedgerRow, StoreError> {
        let owner = (ObjectKind::Ledger, new.release.0);
        self.db.write(|tx| {
            crate::objects::require(tx, owner, new.release.0, ObjectKind::Release)?;
            if let Some(log) = new.log {
                crate::objects::require(tx, owner, log.0, ObjectKind::Blob)?;
            }
            let entry = LedgerEntry {
                previous: last_of_env(tx, &new.env)?,
                env: new.env.clone(),
                service: new.service.clone(),
                version: last_version(tx, &new.env, &new.service)? + 1,
                release: new.release,
                action: new.action,
                status: new.status,
                actor: new.actor.clone(),
                time_ms: new.time_ms,
                note: new.note.clone(),
                source: new.source.clone(),
            };
            let hash = entry.hash();
            let sql = format!(
                "INSERT INTO ledger ({COLUMNS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            );
            tx.prepare_cached(&sql)?.execute(params![
                hash.0.as_bytes(),
                entry.previous.map(|p| *p.0.as_bytes()),
                entry.env,
                entry.service,
                to_sql_u64(entry.version),
                entry.release.0.as_bytes(),
                entry.action.as_str(),
                entry.status.as_str(),
                entry.actor,
                entry.time_ms,
                entry.note,
                entry.source.as_ref().map(|s| s.env.clone()),
                entry.source.as_ref().map(|s| to_sql_u64(s.version)),
                new.build.0.as_bytes(),
                new.config.0.as_bytes(),
                new.log.map(|l| *l.0.as_bytes()),
            ])?;
            let id = tx.last_insert_rowid();
            Ok(LedgerRow { id, hash, entry, build: new.build, config: new.config, log: new.log })
        })
    }

    /// The entries of `env` (only `service`'s when given), newest first; at
    /// most `limit`.
    pub fn ledger_history(&self, env: &str, service: Option<&str>, limit: usize) -> Result<Vec<LedgerRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db.read(|tx| {
            let rows: rusqlite::Result<Vec<LedgerRow>> = if let Some(service) = service {
                let sql = format!(
                    "SELECT {COLUMNS} FROM ledger WHERE env = ?1 AND service = ?2 ORDER BY version DESC LIMIT ?3"
                );
                tx.prepare_cached(&sql)?.query_map(params![env, service, limit], ledger_row)?.collect()
            } else {
                let sql = format!("SELECT {COLUMNS} FROM ledger WHERE env = ?1 ORDER BY id DESC LIMIT ?2");
                tx.prepare_cached(&sql)?.query_map(params![env, limit], ledger_row)?.collect()
            };
            rows.map_err(TxError::Sql)
        })
    }

    /// The current release of `service` in `env`: its newest succeeded entry.
    pub fn ledger_current(&self, env: &str, service: &str) -> Result<Option<LedgerRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM ledger WHERE env = ?1 AND service = ?2 AND status = 'succeeded'
                 ORDER BY version DESC LIMIT 1"
            );
            Ok(tx.prepare_cached(&sql)?.query_row(params![env, service], ledger_row).optional()?)
        })
    }

    /// The newest entry of `service` in `env`, succeeded or not.
    pub fn ledger_latest(&self, env: &str, service: &str) -> Result<Option<LedgerRow>, StoreError> {
        Ok(self.ledger_history(env, Some(service), 1)?.pop())
    }

    /// Entry `version` of `service` in `env`.
    pub fn ledger_entry(&self, env: &str, service: &str, version: u64) -> Result<Option<LedgerRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM ledger WHERE env = ?1 AND service = ?2 AND version = ?3");
            Ok(tx.prepare_cached(&sql)?.query_row(params![env, service, to_sql_u64(version)], ledger_row).optional()?)
        })
    }

    /// The newest entry that recorded `release` (in any environment).
    pub fn ledger_last_of_release(&self, release: ReleaseHash) -> Result<Option<LedgerRow>, StoreError> {
        self.db.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM ledger WHERE release = ?1 ORDER BY id DESC LIMIT 1");
            Ok(tx.prepare_cached(&sql)?.query_row([release.0.as_bytes()], ledger_row).optional()?)
        })
    }

    /// Services with at least one entry in `env`, sorted.
    pub fn ledger_services(&self, env: &str) -> Result<Vec<String>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT DISTINCT service FROM ledger WHERE env = ?1 ORDER BY service")?;
            Ok(stmt.query_map([env], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    /// Environments with at least one entry, sorted.
    pub fn ledger_envs(&self) -> Result<Vec<String>, StoreError> {
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT DISTINCT env FROM ledger ORDER BY env")?;
            Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    /// Walks every environment's chain in append order: each row's hash must
    /// be the hash of its fields, name the environment's previous row, keep
    /// the service's versions gapless, and name a release object that says
    /// the row's build and config. Reports each environment's first broken
    /// link.
    pub fn ledger_verify(&self) -> Result<LedgerReport, StoreError> {
        let rows: Vec<rusqlite::Result<LedgerRow>> = self.db.read(|tx| {
            let sql = format!("SELECT {COLUMNS} FROM ledger ORDER BY id");
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map([], ledger_row)?.collect();
            Ok(rows)
        })?;
        let mut report = LedgerReport::default();
        // Per environment: the last good hash, and each service's last version.
        let mut chains: std::collections::BTreeMap<String, Chain> = std::collections::BTreeMap::new();
        for row in rows {
            report.entries += 1;
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    return Err(StoreError::CorruptRow {
                        path: self.db_path().to_path_buf(),
                        table: "ledger",
                        reason: e.to_string(),
                    });
                }
            };
            let chain = chains.entry(row.entry.env.clone()).or_default();
            if chain.broken {
                continue;
            }
            if let Some(reason) = self.check_link(chain, &row)? {
                chain.broken = true;
                report.broken.push(BrokenLink {
                    env: row.entry.env.clone(),
                    id: row.id,
                    service: row.entry.service.clone(),
                    version: row.entry.version,
                    reason,
                });
                continue;
            }
            chain.last = Some(row.hash);
            chain.versions.insert(row.entry.service.clone(), row.entry.version);
        }
        report.envs = chains.into_keys().collect();
        Ok(report)
    }

    /// Why `row` does not continue `chain`, if it does not.
    fn check_link(&self, chain: &Chain, row: &LedgerRow) -> Result<Option<String>, StoreError> {
        let e = &row.entry;
        if e.hash() != row.hash {
            return Ok(Some(format!(
                "its fields hash to `{}`, but the row says `{}`: the entry was edited",
                e.hash(),
                row.hash
            )));
        }
        if e.previous != chain.last {
            let show = |h: Option<EntryHash>| h.map_or_else(|| "none".to_owned(), |h| format!("`{h}`"));
            return Ok(Some(format!(
                "it follows {}, but the environment's previous entry is {}: an entry was removed, reordered or inserted",
                show(e.previous),
                show(chain.last)
            )));
        }
        let expected = chain.versions.get(&e.service).copied().unwrap_or(0) + 1;
        if e.version != expected {
            return Ok(Some(format!("its version is v{}, expected v{expected}", e.version)));
        }
        match self.get_object::<brr_hash::Release>(e.release.0) {
            Ok(r) if r.build == row.build && r.config == row.config => {}
            Ok(_) => return Ok(Some(format!("its build or config differs from release `{}`", e.release))),
            Err(StoreError::NotFound { .. }) => {
                return Ok(Some(format!("its release `{}` is not in the store", e.release)));
            }
            Err(err) => return Err(err),
        }
        Ok(None)
    }
}

#[derive(Default)]
struct Chain {
    last: Option<EntryHash>,
    versions: std::collections::HashMap<String, u64>,
    broken: bool,
}
