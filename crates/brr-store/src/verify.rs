//! Whole-store integrity check. [`Store::verify`] reads everything and
//! changes nothing; [`Store::repair`] (in `repair.rs`) acts on the same scan.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use brr_hash::{Digest, ObjectKind};
use rayon::prelude::*;
use rusqlite::Transaction;
use rusqlite::types::{Value, ValueRef};

use crate::action_cache::BuildRow;
use crate::db::{KindCol, TxError, from_sql_u64};
use crate::error::IoContext;
use crate::objects::{references, satisfies};
use crate::{Store, StoreError};

/// What [`Store::verify`] found. The store is sound when `problems` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects recorded in the database.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files in `cas/` without a row: left by interrupted puts; harmless.
    pub orphans: u64,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A table whose rows name objects (or, for the stat cache, only hold values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    ActionCache,
    Builds,
    Verifications,
    StatCache,
    Roots,
}

impl Table {
    /// The statement deleting one row, bound to its identity.
    pub(crate) fn delete_sql(self) -> &'static str {
        match self {
            Table::ActionCache => "DELETE FROM action_cache WHERE key = ?1",
            Table::Builds => "DELETE FROM builds WHERE id = ?1",
            Table::Verifications => "DELETE FROM verifications WHERE id = ?1",
            Table::StatCache => "DELETE FROM stat_cache WHERE path = ?1",
            Table::Roots => "DELETE FROM roots WHERE name = ?1",
        }
    }
}

/// One row of a table that is not `objects`: what it names, and what is
/// wrong with its own values.
pub(crate) struct RowCheck {
    pub(crate) table: Table,
    /// Its primary key, as stored (possibly damaged itself).
    pub(crate) id: Value,
    /// How problems name it.
    owner: String,
    pub(crate) refs: Vec<(Digest, ObjectKind)>,
    /// A value that does not decode, or contradicts another.
    pub(crate) problem: Option<String>,
}

/// Everything one pass over the store found, for a report or a repair.
pub(crate) struct Scan {
    pub(crate) report: VerifyReport,
    pub(crate) objects: HashMap<Digest, (ObjectKind, u64)>,
    /// Recorded objects whose bytes are missing, unreadable, corrupt, of the
    /// wrong size, or not a valid object of their kind.
    pub(crate) bad: HashSet<Digest>,
    /// (object, what it references, the kind that must have), for objects
    /// whose bytes are good.
    pub(crate) refs: Vec<(Digest, Digest, ObjectKind)>,
    pub(crate) rows: Vec<RowCheck>,
    /// Files in `cas/` whose bytes do not hash to their name, with the inode
    /// that was hashed.
    pub(crate) corrupt_files: Vec<(PathBuf, u64)>,
    /// `object_data` rows without an `objects` row.
    pub(crate) stray_data: Vec<Digest>,
}

/// What checking one object's bytes found.
#[derive(Default)]
struct ObjectCheck {
    problems: Vec<String>,
    /// The bytes cannot serve the object.
    bad: bool,
    refs: Vec<(Digest, ObjectKind)>,
    /// Set when a CAS file is corrupt: its inode.
    corrupt_ino: Option<u64>,
}

impl ObjectCheck {
    fn bad(problem: String) -> Self {
        Self { problems: vec![problem], bad: true, ..Self::default() }
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(s, ": {c}");
        cause = c.source();
    }
    s
}

/// What a damaged value holds instead, for messages.
fn describe(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(_) => "a real number".into(),
        ValueRef::Text(t) => format!("text of {} bytes", t.len()),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// Column `i` (named `col`) as a hash: `None` only when NULL and `nullable`.
fn hash_col(r: &rusqlite::Row<'_>, i: usize, col: &str, nullable: bool) -> Result<Option<Digest>, String> {
    let v = r.get_ref(i).map_err(|e| e.to_string())?;
    match v {
        ValueRef::Null if nullable => Ok(None),
        ValueRef::Blob(b) => Digest::try_from(b).map(Some).map_err(|_| bad_value(col, "a 32-byte hash", v)),
        _ => Err(bad_value(col, "a 32-byte hash", v)),
    }
}

fn int_col(r: &rusqlite::Row<'_>, i: usize, col: &str) -> Result<i64, String> {
    match r.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Integer(n) => Ok(n),
        v => Err(bad_value(col, "an integer", v)),
    }
}

fn text_col(r: &rusqlite::Row<'_>, i: usize, col: &str) -> Result<String, String> {
    match r.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map(str::to_owned).map_err(|_| format!("column `{col}` is not UTF-8"))
        }
        v => Err(bad_value(col, "text", v)),
    }
}

fn bad_value(col: &str, expected: &str, found: ValueRef<'_>) -> String {
    format!("column `{col}` holds {} where {expected} belongs", describe(found))
}

impl Store {
    /// Checks the whole store: re-hashes every CAS file and packed object (in
    /// parallel), checks that every row's objects exist with the recorded
    /// kind and size, that tree, action and artifact objects decode and
    /// reference recorded objects, that every value of the action cache,
    /// build history, verifications and stat cache decodes and names
    /// recorded objects (an action-cache entry's output tree must be its
    /// artifact's), and SQLite's own `quick_check`. Orphan files are
    /// counted, not flagged. Never modifies anything.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        Ok(self.db.read(|tx| self.scan(tx))?.report)
    }

    /// One pass over rows, then files, inside `tx`.
    pub(crate) fn scan(&self, tx: &Transaction<'_>) -> Result<Scan, TxError> {
        // Rows first: every row committed by then has its bytes in place,
        // and only a repair removes files, so the walk below sees them all.
        let rows = read_rows(tx)?;
        let files = self.cas_files()?;
        let mut scan = Scan {
            report: VerifyReport {
                objects: rows.objects.len() as u64,
                bytes: rows.objects.values().map(|(_, size)| size).sum(),
                orphans: 0,
                problems: rows.integrity.iter().map(|l| format!("database: {l}")).collect(),
            },
            objects: rows.objects,
            bad: HashSet::new(),
            refs: Vec::new(),
            rows: rows.others,
            corrupt_files: Vec::new(),
            stray_data: Vec::new(),
        };
        scan.report.problems.extend(files.problems);
        let objects = &scan.objects;
        let checked_files: Vec<(Digest, ObjectCheck)> =
            files.found.par_iter().map(|(d, path)| (*d, check_file(*d, path, objects.get(d).copied()))).collect();
        let mut checks: Vec<(Digest, ObjectCheck)> = Vec::new();
        for (d, data) in &rows.inline {
            if let Some(row) = objects.get(d).copied() {
                checks.push((*d, check_small(*d, data, row, "in the database")));
            } else {
                scan.report.problems.push(format!("object `{d}` has bytes in the database but no `objects` row"));
                scan.stray_data.push(*d);
            }
        }
        checks.par_extend(rows.packed.par_iter().map(|(d, id, name, offset)| {
            let row = objects.get(d).copied().unwrap_or((ObjectKind::Blob, 0));
            let check = match self.pack_bytes(*id, name, *offset, row.1) {
                Ok(bytes) => check_small(*d, &bytes, row, &format!("in pack `{name}`")),
                Err(e) => ObjectCheck::bad(format!("object `{d}`: {}", chain(&e))),
            };
            (*d, check)
        }));
        let on_disk: HashSet<Digest> = files.found.iter().map(|(d, _)| *d).collect();
        let inline: HashSet<Digest> = rows.inline.iter().map(|(d, _)| *d).collect();
        let packed: HashSet<Digest> = rows.packed.iter().map(|(d, ..)| *d).collect();
        scan.report.orphans = on_disk.iter().filter(|d| !objects.contains_key(d)).count() as u64;
        for ((d, check), path) in checked_files.into_iter().zip(files.found.iter().map(|(_, p)| p)) {
            if let Some(ino) = check.corrupt_ino {
                scan.corrupt_files.push((path.clone(), ino));
            }
            // A packed or inline copy is what reads use; a file beside it
            // is an orphan of an older layout.
            let serves = objects.contains_key(&d) && !packed.contains(&d) && !inline.contains(&d);
            checks.push((d, ObjectCheck { bad: check.bad && serves, ..check }));
        }
        let mut artifact_outputs: HashMap<Digest, Digest> = HashMap::new();
        for (d, check) in checks {
            scan.report.problems.extend(check.problems);
            if check.bad {
                scan.bad.insert(d);
                continue;
            }
            if let Some((ObjectKind::Artifact, _)) = objects.get(&d) {
                artifact_outputs.extend(check.refs.first().map(|(t, _)| (d, *t)));
            }
            let kind = objects.get(&d).map_or(ObjectKind::Blob, |(k, _)| *k);
            for (r, expected) in check.refs {
                // A release whose build was collected (`LedgerKeep::Releases`)
                // is sound: the ledger keeps release objects, not builds.
                if kind == ObjectKind::Release && expected == ObjectKind::Artifact && !objects.contains_key(&r) {
                    continue;
                }
                if !objects.get(&r).is_some_and(|(k, _)| satisfies(*k, expected)) {
                    scan.report.problems.push(format!(
                        "{} `{d}` references {} `{r}`, which is not recorded as one",
                        kind.as_str(),
                        expected.as_str()
                    ));
                }
                scan.refs.push((d, r, expected));
            }
        }
        let mut missing: Vec<&Digest> =
            objects.keys().filter(|d| !on_disk.contains(d) && !inline.contains(d) && !packed.contains(d)).collect();
        missing.sort();
        for d in missing {
            scan.bad.insert(*d);
            scan.report.problems.push(format!(
                "object `{d}` is recorded but its bytes are missing (neither `{}` nor in a pack or the database)",
                self.object_path(*d).display()
            ));
        }
        check_rows(&mut scan, &artifact_outputs);
        Ok(scan)
    }

    /// Every file under `cas/` whose name is a digest, and problems for
    /// anything else found there.
    fn cas_files(&self) -> Result<CasFiles, StoreError> {
        let mut out = CasFiles::default();
        let cas = self.cas_dir();
        for shard in std::fs::read_dir(&cas).at(&cas)? {
            let shard = shard.at(&cas)?;
            let shard_path = shard.path();
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            let is_shard = shard_name.len() == 2 && shard.file_type().at(&shard_path)?.is_dir();
            if !is_shard {
                out.problems.push(format!("unexpected entry `{}` in the CAS", shard_path.display()));
                continue;
            }
            for file in std::fs::read_dir(&shard_path).at(&shard_path)? {
                let file = file.at(&shard_path)?;
                let path = file.path();
                let name = format!("{shard_name}{}", file.file_name().to_string_lossy());
                match name.parse::<Digest>() {
                    Ok(d) if file.file_type().at(&path)?.is_file() => out.found.push((d, path)),
                    _ => out.problems.push(format!("unexpected entry `{}` in the CAS", path.display())),
                }
            }
        }
        out.found.sort();
        Ok(out)
    }
}

/// Reports rows whose values do not decode or name objects not recorded,
/// and action-cache entries whose output tree is not their artifact's.
fn check_rows(scan: &mut Scan, artifact_outputs: &HashMap<Digest, Digest>) {
    let objects = &scan.objects;
    for row in &mut scan.rows {
        if let Some(p) = &row.problem {
            scan.report.problems.push(format!("{}: {p}", row.owner));
            continue;
        }
        let mut dangling = false;
        for (r, expected) in &row.refs {
            if !objects.get(r).is_some_and(|(k, _)| satisfies(*k, *expected)) {
                dangling = true;
                scan.report.problems.push(format!(
                    "{} names {} `{r}`, which is not recorded as one",
                    row.owner,
                    expected.as_str()
                ));
            }
        }
        // An entry's output tree is its artifact's (when both are there).
        if !dangling
            && row.table == Table::ActionCache
            && let [(artifact, _), .., (outputs, ObjectKind::Tree)] = row.refs[..]
            && let Some(expected) = artifact_outputs.get(&artifact)
            && *expected != outputs
        {
            let p = format!("its output tree `{outputs}` is not its artifact's (`{expected}`)");
            scan.report.problems.push(format!("{}: {p}", row.owner));
            row.problem = Some(p);
        }
    }
}

/// The rows, read in one transaction so they are consistent with each other.
struct Rows {
    objects: HashMap<Digest, (ObjectKind, u64)>,
    /// Objects whose bytes are in the database (schema 4).
    inline: Vec<(Digest, Vec<u8>)>,
    /// Objects whose bytes are in a pack: (object, pack id, pack name, offset).
    packed: Vec<(Digest, i64, String, u64)>,
    others: Vec<RowCheck>,
    integrity: Vec<String>,
}

fn read_rows(tx: &Transaction<'_>) -> Result<Rows, TxError> {
    let mut objects = HashMap::new();
    let mut stmt = tx.prepare("SELECT hash, kind, size FROM objects")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let d = Digest::from_bytes(r.get(0)?);
        objects.insert(d, (r.get::<_, KindCol>(1)?.0, from_sql_u64(r.get(2)?)));
    }
    let mut inline = Vec::new();
    let mut stmt = tx.prepare("SELECT hash, data FROM object_data")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let data = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?.to_vec();
        inline.push((Digest::from_bytes(r.get(0)?), data));
    }
    let mut packed = Vec::new();
    let mut stmt =
        tx.prepare("SELECT o.hash, p.id, p.name, o.pack_offset FROM objects o JOIN packs p ON p.id = o.pack")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        packed.push((Digest::from_bytes(r.get(0)?), r.get(1)?, r.get(2)?, from_sql_u64(r.get(3)?)));
    }
    let mut others = action_rows(tx)?;
    others.extend(build_rows(tx)?);
    others.extend(verification_rows(tx)?);
    others.extend(stat_rows(tx)?);
    others.extend(root_rows(tx)?);
    let mut stmt = tx.prepare("PRAGMA quick_check")?;
    let integrity: Vec<String> = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    let integrity = integrity.into_iter().filter(|l| l != "ok").collect();
    Ok(Rows { objects, inline, packed, others, integrity })
}

/// Action-cache entries: refs are the artifact, then the log if any, then
/// the output tree if any.
pub(crate) fn action_rows(tx: &Transaction<'_>) -> rusqlite::Result<Vec<RowCheck>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare("SELECT key, artifact, log, duration_ms, created_at, outputs FROM action_cache")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: Value = r.get(0)?;
        let owner = match hash_col(r, 0, "key", false) {
            Ok(Some(k)) => format!("action cache entry `{k}`"),
            _ => "an action cache entry".to_owned(),
        };
        let decoded = (|| {
            hash_col(r, 0, "key", false)?;
            let artifact = hash_col(r, 1, "artifact", false)?;
            let log = hash_col(r, 2, "log", true)?;
            int_col(r, 3, "duration_ms")?;
            int_col(r, 4, "created_at")?;
            let outputs = hash_col(r, 5, "outputs", true)?;
            let refs = artifact.map(|a| (a, ObjectKind::Artifact)).into_iter();
            let refs = refs.chain(log.map(|l| (l, ObjectKind::Blob))).chain(outputs.map(|t| (t, ObjectKind::Tree)));
            Ok::<_, String>(refs.collect())
        })();
        out.push(row_check(Table::ActionCache, id, owner, decoded));
    }
    Ok(out)
}

pub(crate) fn build_rows(tx: &Transaction<'_>) -> rusqlite::Result<Vec<RowCheck>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare("SELECT id, target, key, artifact, status, log, started_at, duration_ms FROM builds")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: i64 = r.get(0)?;
        let owner = match text_col(r, 1, "target") {
            Ok(t) => format!("build #{id} of `{t}`"),
            Err(_) => format!("build #{id}"),
        };
        let decoded = (|| {
            text_col(r, 1, "target")?;
            hash_col(r, 2, "key", false)?;
            let artifact = hash_col(r, 3, "artifact", true)?;
            let status = text_col(r, 4, "status")?;
            if !BuildRow::STATUSES.contains(&status.as_str()) {
                return Err(format!("column `status` holds `{status}`, not a build status"));
            }
            let log = hash_col(r, 5, "log", true)?;
            int_col(r, 6, "started_at")?;
            int_col(r, 7, "duration_ms")?;
            let refs = artifact.map(|a| (a, ObjectKind::Artifact)).into_iter();
            Ok(refs.chain(log.map(|l| (l, ObjectKind::Blob))).collect())
        })();
        out.push(row_check(Table::Builds, Value::Integer(id), owner, decoded));
    }
    Ok(out)
}

pub(crate) fn verification_rows(tx: &Transaction<'_>) -> rusqlite::Result<Vec<RowCheck>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare("SELECT id, target, key, rounds, reproducible, outputs, differing FROM verifications")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: i64 = r.get(0)?;
        let owner = match text_col(r, 1, "target") {
            Ok(t) => format!("verification #{id} of `{t}`"),
            Err(_) => format!("verification #{id}"),
        };
        let decoded = (|| {
            text_col(r, 1, "target")?;
            let key = hash_col(r, 2, "key", false)?;
            int_col(r, 3, "rounds")?;
            int_col(r, 4, "reproducible")?;
            text_col(r, 6, "differing")?;
            // Recorded only once its key and each output tree had a row.
            let outputs = text_col(r, 5, "outputs")?
                .lines()
                .map(|l| l.parse::<Digest>().map(|d| (d, ObjectKind::Tree)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "column `outputs` holds a line that is not a hash".to_owned())?;
            Ok(key.map(|k| (k, ObjectKind::Action)).into_iter().chain(outputs).collect())
        })();
        out.push(row_check(Table::Verifications, Value::Integer(id), owner, decoded));
    }
    Ok(out)
}

/// Roots: each names one object, of any kind.
fn root_rows(tx: &Transaction<'_>) -> rusqlite::Result<Vec<RowCheck>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare("SELECT name, hash, reason, created_ms FROM roots")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: Value = r.get(0)?;
        let owner = match text_col(r, 0, "name") {
            Ok(name) => format!("root `{name}`"),
            Err(_) => "a root".to_owned(),
        };
        let decoded = (|| {
            text_col(r, 0, "name")?;
            let hash = hash_col(r, 1, "hash", false)?;
            text_col(r, 2, "reason")?;
            int_col(r, 3, "created_ms")?;
            Ok::<_, String>(hash.map(|h| (h, ObjectKind::Blob)).into_iter().collect())
        })();
        out.push(row_check(Table::Roots, id, owner, decoded));
    }
    Ok(out)
}

/// Stat-cache rows name no objects (a digest there need not be stored);
/// only their values are checked.
fn stat_rows(tx: &Transaction<'_>) -> rusqlite::Result<Vec<RowCheck>> {
    let mut out = Vec::new();
    let mut stmt = tx.prepare("SELECT path, size, mtime_ns, ino, ctime_ns, digest, recorded_ns FROM stat_cache")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let decoded = (|| {
            if !matches!(r.get_ref(0).map_err(|e| e.to_string())?, ValueRef::Blob(_)) {
                return Err(bad_value("path", "a blob", r.get_ref(0).map_err(|e| e.to_string())?));
            }
            for (i, col) in [(1, "size"), (2, "mtime_ns"), (3, "ino"), (4, "ctime_ns"), (6, "recorded_ns")] {
                int_col(r, i, col)?;
            }
            hash_col(r, 5, "digest", false)?;
            Ok::<_, String>(())
        })();
        // Only damaged rows are kept: a large workspace has many.
        if let Err(p) = decoded {
            out.push(RowCheck {
                table: Table::StatCache,
                id: r.get(0)?,
                owner: "a stat cache entry".into(),
                refs: Vec::new(),
                problem: Some(p),
            });
        }
    }
    Ok(out)
}

fn row_check(table: Table, id: Value, owner: String, decoded: Result<Vec<(Digest, ObjectKind)>, String>) -> RowCheck {
    match decoded {
        Ok(refs) => RowCheck { table, id, owner, refs, problem: None },
        Err(p) => RowCheck { table, id, owner, refs: Vec::new(), problem: Some(p) },
    }
}

#[derive(Default)]
struct CasFiles {
    found: Vec<(Digest, PathBuf)>,
    problems: Vec<String>,
}

/// Re-hashes one CAS file; for a recorded tree, action or artifact, also
/// decodes it and lists its references.
fn check_file(d: Digest, path: &Path, row: Option<(ObjectKind, u64)>) -> ObjectCheck {
    let kind = row.map_or(ObjectKind::Blob, |(k, _)| k);
    let read = std::fs::File::open(path).and_then(|mut f| {
        let ino = f.metadata()?.ino();
        if kind == ObjectKind::Blob {
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(&mut f)?;
            Ok((hasher.finalize().into(), hasher.count(), None, ino))
        } else {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes)?;
            Ok((Digest::of(&bytes), bytes.len() as u64, Some(bytes), ino))
        }
    });
    let (actual, len, bytes, ino): (Digest, u64, Option<Vec<u8>>, u64) = match read {
        Ok(r) => r,
        Err(e) => return ObjectCheck::bad(format!("object `{d}`: cannot read `{}`: {e}", path.display())),
    };
    if actual != d {
        return ObjectCheck {
            corrupt_ino: Some(ino),
            ..ObjectCheck::bad(format!("object `{d}` is corrupt: `{}` hashes to `{actual}`", path.display()))
        };
    }
    let mut check = ObjectCheck::default();
    if let Some((_, size)) = row
        && size != len
    {
        return ObjectCheck::bad(format!("object `{d}` is recorded with {size} bytes but has {len}"));
    }
    if let Some(bytes) = bytes {
        match references(kind, d, &bytes) {
            Ok(refs) => check.refs = refs,
            Err(e) => return ObjectCheck::bad(chain(&e)),
        }
    }
    check
}

/// Checks the bytes of a small object (in a pack or the database), as
/// [`check_file`] does a file's.
fn check_small(d: Digest, data: &[u8], (kind, size): (ObjectKind, u64), place: &str) -> ObjectCheck {
    let actual = Digest::of(data);
    if actual != d {
        return ObjectCheck::bad(format!("object `{d}` is corrupt: its bytes {place} hash to `{actual}`"));
    }
    if size != data.len() as u64 {
        return ObjectCheck::bad(format!("object `{d}` is recorded with {size} bytes but has {}", data.len()));
    }
    let mut check = ObjectCheck::default();
    if kind != ObjectKind::Blob {
        match references(kind, d, data) {
            Ok(refs) => check.refs = refs,
            Err(e) => return ObjectCheck::bad(chain(&e)),
        }
    }
    check
}
