//! Deleting objects and compacting packs, on an [`ExclusiveStore`] only.
//!
//! The exclusive lock (see `lock.rs`) is what makes deleting safe: no other
//! process reads a pack at a recorded offset, appends to a pack, or holds a
//! placed file it has not recorded yet. So files without a row (orphans),
//! pack files without a `packs` row, and temp files are all garbage here.
//!
//! [`ExclusiveStore::collect`] keeps every object reachable from the roots,
//! from the ledger (append-only: everything an entry names stays) and from
//! what the caller keeps, and deletes every other object's row. The live
//! set is closed under references, so a deleted object is referenced only
//! by deleted ones, and the rows stay closed under references; action-cache
//! entries, history rows and verifications that name a deleted object go in
//! the same transaction. [`ExclusiveStore::compact`] deletes no object.
//! Both then compact the packs.
//!
//! # Crash safety
//!
//! The order is: (1) copy the live objects of every pack that holds dead
//! bytes (deleted objects, ranges left by killed writers, damaged copies a
//! put replaced) into new pack files, checking each object's hash on the
//! way; (2) `fdatasync` them and sync `packs/`; (3) in one transaction,
//! committed with `synchronous = FULL` so it survives a power loss, register
//! the new packs, point the moved rows at them, delete the dead rows and the
//! rows of packs no object uses any more; (4) only then unlink the old packs,
//! the files of deleted objects, orphans and temp files. A `kill -9` (or a
//! power loss) before (3) commits leaves the old rows naming the old, intact
//! packs, and new pack files no row names; after it, rows name the new,
//! durable packs, and old files no row names. Either way every row's bytes
//! are there, and the next sweep removes the leftovers. [`SweepStep`] names
//! these points; the tests kill a sweep at each of them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use brr_hash::{Digest, ObjectKind};
use rusqlite::{Transaction, params};

use crate::db::{KindCol, TxError, from_sql_u64, to_sql_u64};
use crate::error::IoContext;
use crate::objects::references;
use crate::packs::PACK_ROLL_OVER;
use crate::verify::{RowCheck, action_rows, build_rows, verification_rows};
use crate::{ExclusiveStore, Store, StoreError, TEMP_PREFIX};

/// Bytes gathered before one write to a new pack.
const WRITE_CHUNK: usize = 8 << 20;

/// The points a sweep passes, in order (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStep {
    /// The live set and the packs to rewrite are known; nothing written.
    Planned,
    /// The new packs are written and durable; no row names them yet.
    PacksWritten,
    /// Every row change is made, in the transaction not yet committed.
    RowsChanged,
    /// The transaction is committed (durably); nothing unlinked yet.
    Committed,
    /// The packs no row names any more are unlinked.
    PacksRemoved,
    /// Orphans and temp files are removed too.
    Done,
}

/// What [`ExclusiveStore::collect`] or [`ExclusiveStore::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects kept, and their total size.
    pub kept: u64,
    pub kept_bytes: u64,
    /// Objects deleted, and their total size.
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// The deleted objects by kind (sorted by kind name): kind, count, bytes.
    pub deleted_by_kind: Vec<(ObjectKind, u64, u64)>,
    /// Action-cache entries, history rows and verifications deleted with
    /// the objects they named.
    pub actions: u64,
    pub builds: u64,
    pub verifications: u64,
    /// Pack files and their total size, before and after.
    pub packs_before: u64,
    pub pack_bytes_before: u64,
    pub packs_after: u64,
    pub pack_bytes_after: u64,
    /// Live objects copied into new packs, and their total size.
    pub moved: u64,
    pub moved_bytes: u64,
    /// Files removed from `cas/` (of deleted objects, and orphans).
    pub files: u64,
    /// Temp files of interrupted writes removed from `tmp/`.
    pub temp_files: u64,
}

/// Where a recorded object's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In pack `id` at `offset`.
    Pack(i64, u64),
    /// In `object_data` (schema 4).
    Inline,
    /// A file in `cas/`.
    File,
}

struct ObjectRow {
    kind: ObjectKind,
    size: u64,
    place: Place,
}

/// The rows a sweep starts from, read in one transaction.
struct State {
    objects: HashMap<Digest, ObjectRow>,
    /// Pack id → file name.
    packs: HashMap<i64, String>,
    /// Roots.
    pinned: Vec<Digest>,
    /// What the ledger names: its entries, their configs and logs.
    ledger_small: Vec<Digest>,
    /// The ledger's releases, and their builds.
    ledger_releases: Vec<Digest>,
    ledger_builds: Vec<Digest>,
}

/// What the ledger keeps when deleting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedgerKeep {
    /// Everything an entry names: release, build, config, log.
    #[default]
    Whole,
    /// The entries' release and config objects and logs, which are small,
    /// but not the builds of releases nothing else keeps: those releases
    /// stay verifiable (`ledger verify` reads the release object) but can
    /// no longer be run or rolled back to until the build comes back (a
    /// rebuild or `brr import`). [`Store::verify`] accepts a release whose
    /// build is not recorded.
    Releases,
}

/// What a collection keeps besides the roots (see
/// [`ExclusiveStore::collect_retained`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention<'a> {
    /// Kept with everything they reference.
    pub keep: &'a [Digest],
    /// What the ledger keeps.
    pub ledger: LedgerKeep,
    /// Groups of objects kept, each with everything it references, in this
    /// order (most wanted first) while the live objects' total size stays
    /// within `max_bytes`; from the first group that does not fit on, none
    /// is kept. All are kept when `max_bytes` is `None`.
    pub optional: &'a [Vec<Digest>],
    pub max_bytes: Option<u64>,
    /// Rewrite a pack only when at least 1/N of its bytes are dead (as git
    /// repacks: rewriting a large pack to drop a few percent costs more
    /// than the space is worth); `None` (the default): any dead byte.
    pub rewrite_when_dead: Option<u64>,
}

fn read_state(tx: &Transaction<'_>) -> Result<State, TxError> {
    let mut objects = HashMap::new();
    let mut stmt = tx.prepare(
        "SELECT o.hash, o.kind, o.size, o.pack, o.pack_offset, d.hash IS NOT NULL
         FROM objects o LEFT JOIN object_data d ON d.hash = o.hash",
    )?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let place = match (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?, r.get::<_, bool>(5)?) {
            (Some(id), Some(offset), _) => Place::Pack(id, from_sql_u64(offset)),
            (_, _, true) => Place::Inline,
            _ => Place::File,
        };
        let row = ObjectRow { kind: r.get::<_, KindCol>(1)?.0, size: from_sql_u64(r.get(2)?), place };
        objects.insert(Digest::from_bytes(r.get(0)?), row);
    }
    let mut packs = HashMap::new();
    let mut stmt = tx.prepare("SELECT id, name FROM packs")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        packs.insert(r.get(0)?, r.get(1)?);
    }
    let column = |sql: &str| -> Result<Vec<Digest>, TxError> {
        let mut stmt = tx.prepare(sql)?;
        let mut q = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            out.push(Digest::from_bytes(r.get(0)?));
        }
        Ok(out)
    };
    Ok(State {
        objects,
        packs,
        pinned: column("SELECT hash FROM roots")?,
        ledger_small: column(
            "SELECT hash FROM ledger UNION SELECT config FROM ledger
             UNION SELECT log FROM ledger WHERE log IS NOT NULL",
        )?,
        ledger_releases: column("SELECT DISTINCT release FROM ledger")?,
        ledger_builds: column("SELECT DISTINCT build FROM ledger")?,
    })
}

/// A pack being written by a sweep.
struct NewPack {
    name: String,
    path: PathBuf,
    file: File,
    len: u64,
    buf: Vec<u8>,
}

impl NewPack {
    fn flush(&mut self) -> Result<(), StoreError> {
        let start = self.len - self.buf.len() as u64;
        self.file.write_all_at(&self.buf, start).at(&self.path)?;
        self.buf.clear();
        Ok(())
    }
}

impl ExclusiveStore {
    /// Deletes every object not reachable from the roots, the ledger or
    /// `keep` (digests not in the store are ignored), with the action-cache
    /// entries, history rows and verifications that name one, then compacts
    /// the packs and removes orphans and temp files (see the module docs).
    /// Fails, deleting nothing, when a live object cannot be read intact:
    /// run [`Store::repair`] first. Other processes cannot have the store
    /// open; other threads of this one may put meanwhile (their commits
    /// wait for the sweep's transaction), except a large object the sweep
    /// deletes: its file may be unlinked after that thread placed it and
    /// before it commits, leaving a row without bytes. Do not put, during a
    /// sweep, what the sweep deletes.
    pub fn collect(&self, keep: &[Digest]) -> Result<SweepReport, StoreError> {
        self.sweep(Some(&Retention { keep, ..Retention::default() }), &mut |_| {})
    }

    /// Deletes every object that neither the roots nor `retention` keep,
    /// as [`ExclusiveStore::collect`] does (which is this with
    /// [`LedgerKeep::Whole`] and no optional groups), calling `on_step` as
    /// each [`SweepStep`] is reached.
    pub fn collect_retained(
        &self,
        retention: &Retention<'_>,
        on_step: &mut dyn FnMut(SweepStep),
    ) -> Result<SweepReport, StoreError> {
        self.sweep(Some(retention), on_step)
    }

    /// [`ExclusiveStore::collect`], calling `on_step` as each
    /// [`SweepStep`] is reached (for progress, and for tests that stop a
    /// sweep at each of them).
    pub fn collect_with(&self, keep: &[Digest], on_step: &mut dyn FnMut(SweepStep)) -> Result<SweepReport, StoreError> {
        self.sweep(Some(&Retention { keep, ..Retention::default() }), on_step)
    }

    /// Deletes no object: rewrites every pack holding bytes no row names
    /// into new packs, and removes pack files no row names, `cas/` files
    /// without a row (orphans) and temp files.
    pub fn compact(&self) -> Result<SweepReport, StoreError> {
        self.sweep(None, &mut |_| {})
    }

    fn sweep(
        &self,
        keep: Option<&Retention<'_>>,
        on_step: &mut dyn FnMut(SweepStep),
    ) -> Result<SweepReport, StoreError> {
        let store: &Store = self;
        let mut report = SweepReport::default();
        // One write transaction from the first read to the commit: other
        // threads of this process wait to record anything (other processes
        // cannot have the store open at all).
        let (removed_packs, recorded, dead) =
            store.db.write_durable(|tx| store.sweep_in(tx, keep, &mut report, on_step).map_err(TxError::from))?;
        on_step(SweepStep::Committed);
        let ids: Vec<i64> = removed_packs.iter().map(|(id, _)| *id).collect();
        store.forget_packs(&ids);
        for (_, name) in &removed_packs {
            remove(&store.packs_dir().join(name))?;
        }
        on_step(SweepStep::PacksRemoved);

        // (4): what no row names any more. Pack files are listed and
        // removed while this store's writer cannot be creating one.
        let registered = store.with_writer_held(|| {
            let registered: HashSet<String> = store.db.read(|tx| {
                let mut stmt = tx.prepare("SELECT name FROM packs")?;
                Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<HashSet<String>, _>>()?)
            })?;
            store.remove_unregistered_packs(&registered)?;
            Ok::<_, StoreError>(registered)
        })?;
        report.files = store.remove_unrecorded_files(&recorded, &dead)?;
        report.temp_files = store.remove_temp_files()?;
        for name in &registered {
            let path = store.packs_dir().join(name);
            report.packs_after += 1;
            report.pack_bytes_after += std::fs::metadata(&path).map_or(0, |m| m.len());
        }
        on_step(SweepStep::Done);
        Ok(report)
    }
}

/// What a sweep's transaction hands to the steps after its commit: the
/// packs it unregistered, the objects still recorded, those deleted.
type Swept = (Vec<(i64, String)>, HashSet<Digest>, HashSet<Digest>);

impl Store {
    /// Steps (1) to (3) of a sweep (see the module docs), inside `tx`.
    fn sweep_in(
        &self,
        tx: &Transaction<'_>,
        keep: Option<&Retention<'_>>,
        report: &mut SweepReport,
        on_step: &mut dyn FnMut(SweepStep),
    ) -> Result<Swept, StoreError> {
        let store = self;
        let state = read_state(tx).map_err(|e| store.db.lift(e))?;
        let live = match keep {
            None => state.objects.keys().copied().collect(),
            Some(retention) => store.live_set(&state, retention)?,
        };
        let dead: HashSet<Digest> = state.objects.keys().filter(|d| !live.contains(d)).copied().collect();
        count(&state, &live, report);

        // Which packs to rewrite: those with bytes no live row names. The
        // pack this process appends to is left alone while a batch placed
        // in it is not recorded yet.
        let writer = store.retire_writer();
        let mut pack_len: HashMap<i64, u64> = HashMap::new();
        for (id, name) in &state.packs {
            let path = store.packs_dir().join(name);
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e).at(&path),
            };
            pack_len.insert(*id, len);
            report.packs_before += 1;
            report.pack_bytes_before += len;
        }
        let mut live_bytes: HashMap<i64, u64> = HashMap::new();
        for (d, row) in &state.objects {
            if let (Place::Pack(id, _), true) = (row.place, live.contains(d)) {
                *live_bytes.entry(id).or_default() += row.size;
            }
        }
        // `Retention::rewrite_when_dead`; `compact` rewrites every pack
        // with dead bytes.
        let threshold = keep.and_then(|k| k.rewrite_when_dead);
        let worth_rewriting =
            |len: u64, live: u64| len > live && threshold.is_none_or(|n| (len - live).saturating_mul(n) >= len);
        let rewrite: HashSet<i64> = live_bytes
            .iter()
            .filter(|&(id, bytes)| {
                Some(*id) != writer && pack_len.get(id).is_some_and(|len| worth_rewriting(*len, *bytes))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut moving: Vec<(Digest, &ObjectRow)> = state
            .objects
            .iter()
            .filter(|(d, row)| {
                live.contains(*d)
                    && match row.place {
                        Place::Pack(id, _) => rewrite.contains(&id),
                        Place::Inline => true,
                        Place::File => false,
                    }
            })
            .map(|(d, row)| (*d, row))
            .collect();
        // In pack order, so the old packs are read front to back.
        moving.sort_by_key(|(d, row)| match row.place {
            Place::Pack(id, offset) => (0, id, offset, *d),
            _ => (1, 0, 0, *d),
        });

        // (1) and (2): the new packs, durable before any row names them.
        on_step(SweepStep::Planned);
        let (new_packs, moved) = store.copy_to_new_packs(&moving, &state.packs, report)?;
        on_step(SweepStep::PacksWritten);

        // (3): every row change, in the transaction the caller commits.
        let unused = (|| -> Result<_, TxError> {
            let mut ids = Vec::with_capacity(new_packs.len());
            for p in &new_packs {
                tx.prepare_cached("INSERT INTO packs (name) VALUES (?1)")?.execute([&p.name])?;
                ids.push(tx.last_insert_rowid());
            }
            for (d, idx, offset) in &moved {
                tx.prepare_cached("UPDATE objects SET pack = ?2, pack_offset = ?3 WHERE hash = ?1")?
                    .execute(params![d.as_bytes(), ids[*idx], to_sql_u64(*offset)])?;
                tx.prepare_cached("DELETE FROM object_data WHERE hash = ?1")?.execute([d.as_bytes()])?;
            }
            delete_naming(tx, &dead, report)?;
            for d in &dead {
                tx.prepare_cached("DELETE FROM objects WHERE hash = ?1")?.execute([d.as_bytes()])?;
                tx.prepare_cached("DELETE FROM object_data WHERE hash = ?1")?.execute([d.as_bytes()])?;
            }
            // Packs no object uses any more (rewritten, emptied, or left by
            // a killed writer), except the one this process appends to.
            let mut stmt = tx.prepare(
                "SELECT id, name FROM packs WHERE id NOT IN (SELECT pack FROM objects WHERE pack IS NOT NULL)",
            )?;
            let unused: Vec<(i64, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|(id, _)| Some(*id) != writer)
                .collect();
            for (id, _) in &unused {
                tx.prepare_cached("DELETE FROM packs WHERE id = ?1")?.execute([id])?;
            }
            Ok(unused)
        })()
        .map_err(|e| store.db.lift(e))?;
        let recorded: HashSet<Digest> = state.objects.keys().filter(|d| !dead.contains(d)).copied().collect();
        on_step(SweepStep::RowsChanged);
        Ok((unused, recorded, dead))
    }

    /// Copies the `moving` objects (checked on the way) into new pack
    /// files, made durable with their names; returns them and where each
    /// object went (its new pack's index, its offset there).
    #[expect(clippy::type_complexity, reason = "used once, by sweep_in")]
    fn copy_to_new_packs(
        &self,
        moving: &[(Digest, &ObjectRow)],
        packs: &HashMap<i64, String>,
        report: &mut SweepReport,
    ) -> Result<(Vec<NewPack>, Vec<(Digest, usize, u64)>), StoreError> {
        let mut new_packs: Vec<NewPack> = Vec::new();
        let mut moved: Vec<(Digest, usize, u64)> = Vec::with_capacity(moving.len());
        let copied = self.copy_into(moving, packs, report, &mut new_packs, &mut moved);
        if let Err(e) = copied {
            // Nothing names them: a failed sweep leaves nothing behind.
            for p in &new_packs {
                let _ = std::fs::remove_file(&p.path);
            }
            return Err(e);
        }
        Ok((new_packs, moved))
    }

    fn copy_into(
        &self,
        moving: &[(Digest, &ObjectRow)],
        packs: &HashMap<i64, String>,
        report: &mut SweepReport,
        new_packs: &mut Vec<NewPack>,
        moved: &mut Vec<(Digest, usize, u64)>,
    ) -> Result<(), StoreError> {
        for (d, row) in moving {
            let bytes = match row.place {
                Place::Pack(id, offset) => {
                    let name = packs.get(&id).map_or("", String::as_str);
                    self.pack_read(*d, id, name, offset, row.size)?
                }
                _ => self.small_bytes(*d)?.ok_or(StoreError::NotFound { hash: *d })?,
            };
            if new_packs.last().is_none_or(|p| p.len + bytes.len() as u64 > PACK_ROLL_OVER) {
                if let Some(p) = new_packs.last_mut() {
                    p.flush()?;
                }
                let (name, path, file) = self.create_pack_file()?;
                new_packs.push(NewPack { name, path, file, len: 0, buf: Vec::with_capacity(WRITE_CHUNK) });
            }
            let idx = new_packs.len() - 1;
            let pack = &mut new_packs[idx];
            moved.push((*d, idx, pack.len));
            pack.len += bytes.len() as u64;
            pack.buf.extend_from_slice(&bytes);
            if pack.buf.len() >= WRITE_CHUNK {
                pack.flush()?;
            }
            report.moved += 1;
            report.moved_bytes += bytes.len() as u64;
        }
        for p in new_packs.iter_mut() {
            p.flush()?;
            p.file.sync_data().at(&p.path)?;
        }
        if !new_packs.is_empty() {
            self.sync_packs_dir()?;
        }
        Ok(())
    }
}

/// Deletes the action-cache entries, history rows and verifications that
/// name an object of `dead` (which the caller deletes in the same
/// transaction).
fn delete_naming(tx: &Transaction<'_>, dead: &HashSet<Digest>, report: &mut SweepReport) -> Result<(), TxError> {
    if dead.is_empty() {
        return Ok(());
    }
    let names_dead = |row: &RowCheck| row.refs.iter().any(|(r, _)| dead.contains(r));
    for (rows, count) in [
        (action_rows(tx)?, &mut report.actions),
        (build_rows(tx)?, &mut report.builds),
        (verification_rows(tx)?, &mut report.verifications),
    ] {
        for row in rows.iter().filter(|r| names_dead(r)) {
            *count += tx.prepare_cached(row.table.delete_sql())?.execute([&row.id])? as u64;
        }
    }
    Ok(())
}

impl Store {
    /// What `retention` and the roots keep (see [`Retention`]).
    fn live_set(&self, state: &State, retention: &Retention<'_>) -> Result<HashSet<Digest>, StoreError> {
        let mut live = HashSet::new();
        let starts = state.pinned.iter().chain(retention.keep).chain(&state.ledger_small);
        self.reach(&state.objects, &mut live, starts)?;
        match retention.ledger {
            LedgerKeep::Whole => {
                let named = state.ledger_releases.iter().chain(&state.ledger_builds);
                self.reach(&state.objects, &mut live, named)?;
            }
            // The release objects alone: their configs are kept above, their
            // builds only if something else keeps them.
            LedgerKeep::Releases => {
                live.extend(state.ledger_releases.iter().filter(|d| state.objects.contains_key(d)));
            }
        }
        let size = |d: &Digest| state.objects.get(d).map_or(0, |r| r.size);
        let mut live_bytes: u64 = live.iter().map(size).sum();
        for group in retention.optional {
            let added = self.reach(&state.objects, &mut live, group)?;
            let extra: u64 = added.iter().map(size).sum();
            if retention.max_bytes.is_some_and(|max| live_bytes + extra > max) {
                for d in &added {
                    live.remove(d);
                }
                break;
            }
            live_bytes += extra;
        }
        Ok(live)
    }

    /// Adds to `live` every recorded object reachable from `starts` (those
    /// not recorded are skipped), following what each object references;
    /// returns those it added.
    fn reach<'a>(
        &self,
        objects: &HashMap<Digest, ObjectRow>,
        live: &mut HashSet<Digest>,
        starts: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<Vec<Digest>, StoreError> {
        let mut added = Vec::new();
        let mut todo: Vec<Digest> = Vec::new();
        for d in starts {
            if objects.contains_key(d) && live.insert(*d) {
                todo.push(*d);
                added.push(*d);
            }
        }
        while let Some(d) = todo.pop() {
            let Some(row) = objects.get(&d) else { continue };
            if matches!(row.kind, ObjectKind::Blob | ObjectKind::Config) {
                continue;
            }
            let bytes = self.get(d)?;
            for (r, _) in references(row.kind, d, &bytes)? {
                if objects.contains_key(&r) && live.insert(r) {
                    todo.push(r);
                    added.push(r);
                }
            }
        }
        Ok(added)
    }

    /// What [`ExclusiveStore::collect_retained`] would delete and keep
    /// (the object counts of a [`SweepReport`]), changing nothing. On a
    /// store others use, a guess: they may add objects and roots meanwhile.
    pub fn plan_collect(&self, retention: &Retention<'_>) -> Result<SweepReport, StoreError> {
        let state = self.db.read(read_state)?;
        let live = self.live_set(&state, retention)?;
        let mut report = SweepReport::default();
        count(&state, &live, &mut report);
        Ok(report)
    }

    /// Removes the files in `packs/` that no `packs` row names: new packs
    /// of an interrupted sweep, old ones of a sweep killed after its commit,
    /// packs of writers killed before registering them. Called with the
    /// writer's lock held, so that none of this store's is being created.
    fn remove_unregistered_packs(&self, registered: &HashSet<String>) -> Result<u64, StoreError> {
        let dir = self.packs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).at(&dir),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.at(&dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if Path::new(&name).extension().is_some_and(|e| e == "pack") && !registered.contains(&name) {
                remove(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the files in `cas/` of objects not in `recorded`: those of
    /// `dead` objects, and orphans, except those this process placed and
    /// has yet to record.
    fn remove_unrecorded_files(&self, recorded: &HashSet<Digest>, dead: &HashSet<Digest>) -> Result<u64, StoreError> {
        let cas = self.cas_dir();
        let mut removed = 0;
        for shard in std::fs::read_dir(&cas).at(&cas)? {
            let shard = shard.at(&cas)?;
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            if shard_name.len() != 2 || !shard.file_type().at(&shard.path())?.is_dir() {
                continue;
            }
            let shard_path = shard.path();
            for file in std::fs::read_dir(&shard_path).at(&shard_path)? {
                let file = file.at(&shard_path)?;
                let name = format!("{shard_name}{}", file.file_name().to_string_lossy());
                let Ok(d) = name.parse::<Digest>() else { continue };
                let garbage = !recorded.contains(&d) && (dead.contains(&d) || !self.placed.contains(d));
                if garbage && file.file_type().at(&file.path())?.is_file() {
                    self.placed.forget(d);
                    remove(&file.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes every temp file of an object write in `tmp/` but this
    /// process's: with the store held exclusive, none belongs to a live write.
    fn remove_temp_files(&self) -> Result<u64, StoreError> {
        let tmp = self.tmp_dir();
        let own = format!("{TEMP_PREFIX}{}-", std::process::id());
        let mut removed = 0;
        for entry in std::fs::read_dir(&tmp).at(&tmp)? {
            let entry = entry.at(&tmp)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) && !name.starts_with(&own) {
                remove(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Counts kept and deleted objects, in all and by kind, into `report`.
fn count(state: &State, live: &HashSet<Digest>, report: &mut SweepReport) {
    let mut by_kind: std::collections::BTreeMap<&'static str, (ObjectKind, u64, u64)> =
        std::collections::BTreeMap::new();
    for (d, row) in &state.objects {
        let (n, bytes) = if live.contains(d) {
            (&mut report.kept, &mut report.kept_bytes)
        } else {
            let k = by_kind.entry(row.kind.as_str()).or_insert((row.kind, 0, 0));
            k.1 += 1;
            k.2 += row.size;
            (&mut report.deleted, &mut report.deleted_bytes)
        };
        *n += 1;
        *bytes += row.size;
    }
    report.deleted_by_kind = by_kind.into_values().collect();
}

/// Removes the file at `path`; one already gone is fine.
fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}
