//! Putting objects into the store and recording them in the `objects` table,
//! which is closed under references (see the crate docs).
//!
//! # One put path, one durability rule
//!
//! Every public put ([`Store::put_bytes`], [`Store::put_object`],
//! [`Store::put_file`], [`Store::put_snapshot`], [`Store::put_many`],
//! [`Store::place_batch`] with [`Store::commit`], [`Store::place_many`])
//! goes through the same two steps: `place_missing` writes the bytes of
//! what has no serving row (small objects appended to this process's pack,
//! larger ones renamed into `cas/`), then `commit_placed` makes all of them
//! durable with **one sync per commit** (an `fdatasync` of the packs
//! written, or one `syncfs` when a file was placed, which covers the packs
//! too) and only then records their rows in one transaction. So: *a row is
//! committed only after its bytes are durable; there is no sync per
//! object.* The puts differ only in how many batches share that one sync
//! and transaction. The one exception is the large files of
//! [`Store::place_many`], which are placed for staging and recorded by the
//! caller's next commit (see there for why that is safe against deletion).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use brr_hash::fs::Snapshot;
use brr_hash::{
    ActionKey, Artifact, Config, Digest, EntryKind, HashedBytes, LedgerEntry, Object, ObjectKind, Release, Tree,
    TreeHash,
};
use rayon::prelude::*;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::action_cache::{ActionRecord, insert_action};
use crate::db::{KindCol, TxError, from_sql_u64, to_sql_u64};
use crate::error::IoContext;
use crate::packs::{Appended, sync_packs};
use crate::{Store, StoreError};

/// Objects up to this size are appended to pack files instead of getting a
/// file each (see `schemas/0005_packs.sql`): about the size below which
/// SQLite's measurements find one shared file faster to read than a file
/// per blob.
pub const PACKED_MAX: usize = 100 * 1024;

/// An object ready to be recorded once its bytes are durable: its file is
/// in place, or its bytes were appended to a pack.
#[derive(Debug)]
pub(crate) struct Placed {
    hash: Digest,
    kind: ObjectKind,
    size: u64,
    /// What it references, and the kind each reference must have.
    refs: Vec<(Digest, ObjectKind)>,
    /// Where a small object's bytes were appended; `None`: a file in `cas/`.
    packed: Option<Appended>,
    /// It has a row whose bytes were found damaged: the row is pointed at
    /// the new bytes.
    replaces: bool,
}

/// An object's row, as the put path finds it.
struct Existing {
    kind: ObjectKind,
    size: u64,
    /// (pack id, pack name, offset) when its bytes are in a pack.
    packed: Option<(i64, String, u64)>,
}

/// What the put path found for one item.
enum Found {
    /// Recorded with a kind that serves (its bytes are still checked).
    Row(Existing),
    /// Not recorded (or only with a kind that does not serve).
    Absent,
    /// An earlier item of the same batch.
    Repeat,
}

/// The bytes of the file at `path` when it has at most [`PACKED_MAX`].
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = std::fs::File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    if len > PACKED_MAX as u64 {
        return Ok(None);
    }
    // One byte more, so that the read which finds the end needs no growth.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(PACKED_MAX) + 1);
    file.take(PACKED_MAX as u64 + 1).read_to_end(&mut bytes).at(path)?;
    Ok((bytes.len() <= PACKED_MAX).then_some(bytes))
}

/// The bytes of the file at `path` when it has at most [`PACKED_MAX`],
/// checked against `expected`: fails if they do not hash to it (the file
/// changed since it was hashed).
pub(crate) fn read_small_checked(path: &Path, expected: Digest) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(bytes) = read_small(path)? else { return Ok(None) };
    let actual = Digest::of(&bytes);
    if actual != expected {
        return Err(StoreError::HashMismatch { path: path.to_path_buf(), expected, actual });
    }
    Ok(Some(bytes))
}

/// The first `len` bytes of the file at `path`, which was hashed as
/// `expected` with that length, checked against the hash: fails if they do
/// not hash to it (the file changed since). Two system calls fewer than
/// `read_small_checked`: neither a stat nor a read to find the end (bytes
/// past `len` are not part of what was hashed, so a file that grew fails
/// the check only if its first `len` bytes changed, and a builder staged
/// with them sees exactly the hashed input).
pub fn read_checked(path: &Path, len: u64, expected: Digest) -> Result<HashedBytes, StoreError> {
    let mut file = std::fs::File::open(path).at(path)?;
    let hashed = HashedBytes::new(brr_hash::fs::read_len(&mut file, len).at(path)?);
    if hashed.digest() != expected {
        return Err(StoreError::HashMismatch { path: path.to_path_buf(), expected, actual: hashed.digest() });
    }
    Ok(hashed)
}

/// Whether an object recorded as `actual` can serve as an `expected` one.
/// Any object's bytes are a valid blob; other kinds must match exactly.
pub(crate) fn satisfies(actual: ObjectKind, expected: ObjectKind) -> bool {
    actual == expected || expected == ObjectKind::Blob
}

/// A tree entry name must name one thing inside its folder.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Err("not a file name")
    } else if name.contains('/') || name.contains('\0') {
        Err("contains `/` or a NUL byte")
    } else {
        Ok(())
    }
}

/// Entry names must be valid file names, sorted and unique, so that a tree
/// materializes to exactly its entries and nothing outside its folder.
pub(crate) fn check_tree(hash: Digest, tree: &Tree) -> Result<(), StoreError> {
    let mut prev: Option<&str> = None;
    for e in &tree.entries {
        check_name(&e.name).map_err(|reason| StoreError::InvalidTree { tree: hash, name: e.name.clone(), reason })?;
        if prev.is_some_and(|p| p >= e.name.as_str()) {
            let reason = "entries are not sorted by name, or not unique";
            return Err(StoreError::InvalidTree { tree: hash, name: e.name.clone(), reason });
        }
        prev = Some(&e.name);
    }
    Ok(())
}

/// Decodes `bytes` as a `kind` object and lists what it references, with the
/// kind each must have. Fails when the bytes are not a valid `kind`.
pub(crate) fn references(
    kind: ObjectKind,
    hash: Digest,
    bytes: &[u8],
) -> Result<Vec<(Digest, ObjectKind)>, StoreError> {
    let invalid = |source| StoreError::Invalid { hash, kind, source };
    Ok(match kind {
        ObjectKind::Blob => Vec::new(),
        ObjectKind::Tree => {
            let tree = Tree::decode(bytes).map_err(invalid)?;
            check_tree(hash, &tree)?;
            let child_kind = |k| if k == EntryKind::Dir { ObjectKind::Tree } else { ObjectKind::Blob };
            tree.entries.iter().map(|e| (e.hash, child_kind(e.kind))).collect()
        }
        ObjectKind::Artifact => {
            let artifact = Artifact::decode(bytes).map_err(invalid)?;
            vec![(artifact.outputs.0, ObjectKind::Tree)]
        }
        ObjectKind::Action => {
            let action = ActionKey::decode(bytes).map_err(invalid)?;
            let deps = action.deps.values().map(|a| (a.0, ObjectKind::Artifact));
            std::iter::once((action.sources.0, ObjectKind::Tree)).chain(deps).collect()
        }
        ObjectKind::Config => {
            Config::decode(bytes).map_err(invalid)?;
            Vec::new()
        }
        ObjectKind::Release => {
            let release = Release::decode(bytes).map_err(invalid)?;
            vec![(release.build.0, ObjectKind::Artifact), (release.config.0, ObjectKind::Config)]
        }
        // An entry names the release it records; the previous entry is a
        // row of the ledger table, checked by the ledger's own verify.
        ObjectKind::Ledger => {
            let entry = LedgerEntry::decode(bytes).map_err(invalid)?;
            vec![(entry.release.0, ObjectKind::Release)]
        }
    })
}

/// The recorded kind of `d`, inside a transaction.
pub(crate) fn kind_in(tx: &Transaction<'_>, d: Digest) -> rusqlite::Result<Option<ObjectKind>> {
    let mut stmt = tx.prepare_cached("SELECT kind FROM objects WHERE hash = ?1")?;
    Ok(stmt.query_row([d.as_bytes()], |r| r.get::<_, KindCol>(0)).optional()?.map(|k| k.0))
}

/// The row of `d` with where its bytes are, inside a transaction. Pack
/// names are looked up once per pack in `names` (a join per object cost
/// more than the lookup of the row itself).
fn existing_in(
    tx: &Transaction<'_>,
    d: Digest,
    names: &mut HashMap<i64, Option<String>>,
) -> rusqlite::Result<Option<Existing>> {
    let mut stmt = tx.prepare_cached("SELECT kind, size, pack, pack_offset FROM objects WHERE hash = ?1")?;
    let Some((kind, size, pack)) = stmt
        .query_row([d.as_bytes()], |r| {
            let pack = r.get::<_, Option<i64>>(2)?.zip(r.get::<_, Option<i64>>(3)?);
            Ok((r.get::<_, KindCol>(0)?.0, from_sql_u64(r.get(1)?), pack))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let packed = match pack {
        Some((id, offset)) => {
            let name = match names.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let mut stmt = tx.prepare_cached("SELECT name FROM packs WHERE id = ?1")?;
                    e.insert(stmt.query_row([id], |r| r.get(0)).optional()?).clone()
                }
            };
            name.map(|name| (id, name, from_sql_u64(offset)))
        }
        None => None,
    };
    Ok(Some(Existing { kind, size, packed }))
}

/// Fails unless `d` is recorded with a kind that satisfies `expected`.
pub(crate) fn require(
    tx: &Transaction<'_>,
    owner: (ObjectKind, Digest),
    d: Digest,
    expected: ObjectKind,
) -> Result<(), TxError> {
    match kind_in(tx, d)? {
        Some(k) if satisfies(k, expected) => Ok(()),
        _ => Err(StoreError::MissingReference { kind: owner.0, hash: owner.1, missing: d, expected }.into()),
    }
}

/// Something to put: a file on disk or bytes in memory.
#[derive(Debug, Clone, Copy)]
pub enum Put<'a> {
    /// A file copied in as a blob; it must hash to `hash`.
    File { path: &'a Path, hash: Digest },
    /// Bytes of a given kind; the digest is BLAKE3 of the bytes.
    Bytes { kind: ObjectKind, bytes: &'a [u8] },
    /// A blob already hashed (by construction of [`HashedBytes`]): its
    /// digest is taken as is.
    HashedBlob(&'a HashedBytes),
}

enum Source<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl Store {
    /// Whether object `d` is recorded (its file is then in place).
    pub fn contains(&self, d: Digest) -> Result<bool, StoreError> {
        Ok(self.kind_of(d)?.is_some())
    }

    /// Whether object `d` is recorded and its stored bytes still hash to
    /// `d` (reads and hashes them): a fetch uses it so that a damaged copy
    /// is fetched again, and the put then replaces it.
    pub fn holds_intact(&self, d: Digest) -> Result<bool, StoreError> {
        match self.get(d) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. } | StoreError::Corrupt { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The recorded kind of object `d`, `None` if it is not in the store.
    pub fn kind_of(&self, d: Digest) -> Result<Option<ObjectKind>, StoreError> {
        self.db.read(|tx| Ok(kind_in(tx, d)?))
    }

    /// Stores `bytes` as a `kind` object; its digest is BLAKE3 of `bytes`.
    /// Bytes of a tree, artifact or action are decoded first, and everything
    /// they reference must already be in the store. A no-op when present.
    pub fn put_bytes(&self, kind: ObjectKind, bytes: &[u8]) -> Result<Digest, StoreError> {
        Ok(self.put_many(&[Put::Bytes { kind, bytes }])?[0])
    }

    /// Stores an object by its canonical encoding.
    pub fn put_object<O: Object>(&self, o: &O) -> Result<Digest, StoreError> {
        self.put_bytes(O::KIND, &o.encode())
    }

    /// Copies the file at `path` into the store as a blob, re-hashing while
    /// copying: fails if it does not hash to `expected` (it changed since it
    /// was hashed). A no-op when `expected` is present.
    pub fn put_file(&self, path: &Path, expected: Digest) -> Result<(), StoreError> {
        self.put_many(&[Put::File { path, hash: expected }]).map(|_| ())
    }

    /// Stores every file, symlink target and tree of `snap`; returns the root tree.
    pub fn put_snapshot(&self, snap: &Snapshot) -> Result<TreeHash, StoreError> {
        self.put_many(&snapshot_puts(snap))?;
        Ok(snap.tree.root)
    }

    /// Stores a batch: the missing objects are written (files in parallel,
    /// small ones appended to a pack), made durable with one sync, then
    /// recorded in one transaction, in order, so an item may reference
    /// earlier items of the same batch. Returns each item's digest. Nothing
    /// is recorded if any item fails.
    pub fn put_many(&self, items: &[Put<'_>]) -> Result<Vec<Digest>, StoreError> {
        let (digests, rows) = self.place_missing(items)?;
        self.commit_placed(&[(&rows, None)])?.pop().unwrap_or(Ok(()))?;
        Ok(digests)
    }

    /// Writes the missing objects of `items` (files and pack bytes), not
    /// yet durable nor recorded: [`Store::commit`] does both, for many
    /// batches at once. Until then they are bytes no row names.
    pub fn place_batch(&self, items: &[Put<'_>]) -> Result<PlacedBatch, StoreError> {
        let (digests, rows) = self.place_missing(items)?;
        Ok(PlacedBatch { digests, rows })
    }

    /// Makes the bytes of all `batches` durable (one sync), then records
    /// them in one transaction, each batch in order and followed by its
    /// action-cache entry if it has one (`outputs` recorded as given). A
    /// batch that fails (a reference that is not recorded) is left out
    /// alone: its slot of the result holds the error. `Err`: nothing was
    /// recorded.
    pub fn commit(
        &self,
        batches: &[(PlacedBatch, Option<ActionRecord>)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let parts: Vec<(&[Placed], Option<&ActionRecord>)> =
            batches.iter().map(|(b, rec)| (b.rows.as_slice(), rec.as_ref())).collect();
        self.commit_placed(&parts)
    }

    /// Makes the objects of `items` readable at once, as cheaply as
    /// possible, for a build about to stage them. Small ones are recorded
    /// (through the same path as every put: pack synced, then rows), so they
    /// must not reference anything not recorded yet. Large ones (files)
    /// are put in place in `cas/` but **not recorded**: the caller records
    /// them in its next batch ([`Store::place_batch`] of the same items,
    /// then [`Store::commit`]), whose one `syncfs` and transaction cover them
    /// with the build's outputs; that put finds each file in place and
    /// adopts it without copying. Until then they are orphans, which
    /// `verify` accepts, and which nothing deletes: deleting needs the
    /// store exclusive, and this `Store` holds it shared (see
    /// [`Store::open_exclusive`]). If the process dies first, they stay
    /// orphans until the next [`ExclusiveStore::compact`](crate::ExclusiveStore::compact)
    /// or a later put adopts them.
    pub fn place_many(&self, items: &[Put<'_>]) -> Result<Vec<Digest>, StoreError> {
        let (digests, rows) = self.place_missing(items)?;
        let small: Vec<Placed> = rows.into_iter().filter(|r| r.packed.is_some()).collect();
        self.commit_placed(&[(&small, None)])?.pop().unwrap_or(Ok(()))?;
        Ok(digests)
    }

    /// The one path by which rows of objects are written, for every put:
    /// the bytes of all `batches` are made durable with one sync (see
    /// [`Store::make_durable`]), then everything is recorded in one write
    /// transaction, each batch in a savepoint, in order, followed by its
    /// action-cache entry. A batch that fails (a reference not recorded)
    /// is rolled back alone and its slot holds the error; `Err`: nothing
    /// was recorded.
    fn commit_placed(
        &self,
        batches: &[(&[Placed], Option<&ActionRecord>)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if batches.iter().all(|(rows, rec)| rows.is_empty() && rec.is_none()) {
            return Ok(batches.iter().map(|_| Ok(())).collect());
        }
        self.make_durable(batches.iter().flat_map(|(rows, _)| rows.iter()))?;
        self.db.write(|tx| {
            let mut results = Vec::with_capacity(batches.len());
            for (rows, rec) in batches {
                // Prepared once per connection, not parsed per batch.
                tx.prepare_cached("SAVEPOINT batch")?.execute([])?;
                match record_rows(tx, rows, *rec) {
                    Ok(()) => {
                        tx.prepare_cached("RELEASE batch")?.execute([])?;
                        results.push(Ok(()));
                    }
                    Err(TxError::Store(e)) => {
                        tx.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
                        results.push(Err(e));
                    }
                    Err(sql) => return Err(sql),
                }
            }
            Ok(results)
        })
    }

    /// Makes the bytes of `rows` durable: one `syncfs` when files were
    /// written (it covers the packs too), else a sync of the packs.
    fn make_durable<'a>(&self, rows: impl IntoIterator<Item = &'a Placed> + Clone) -> Result<(), StoreError> {
        if rows.clone().into_iter().any(|r| r.packed.is_none()) {
            self.sync_fs()
        } else {
            sync_packs(rows.into_iter().filter_map(|r| r.packed.as_ref()))
        }
    }

    fn place_missing(&self, items: &[Put<'_>]) -> Result<(Vec<Digest>, Vec<Placed>), StoreError> {
        if items.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let todo: Vec<(Digest, ObjectKind, Source<'_>)> = items
            .iter()
            .map(|p| match *p {
                Put::File { path, hash } => (hash, ObjectKind::Blob, Source::File(path)),
                Put::Bytes { kind, bytes } => (Digest::of(bytes), kind, Source::Bytes(bytes)),
                Put::HashedBlob(hashed) => (hashed.digest(), ObjectKind::Blob, Source::Bytes(hashed.bytes())),
            })
            .collect();
        let digests: Vec<Digest> = todo.iter().map(|(d, _, _)| *d).collect();
        let mut seen = HashSet::new();
        let mut names = HashMap::new();
        let found: Vec<Found> = self.db.read(|tx| {
            todo.iter()
                .map(|(d, kind, _)| {
                    if !seen.insert(*d) {
                        return Ok(Found::Repeat);
                    }
                    Ok(match existing_in(tx, *d, &mut names)? {
                        Some(row) if satisfies(row.kind, *kind) => Found::Row(row),
                        _ => Found::Absent,
                    })
                })
                .collect()
        })?;
        // A recorded object is written again only when its bytes are found
        // damaged: a copy that does not serve is replaced, not kept.
        let placed: Vec<PlacedOrPending<'_>> = todo
            .par_iter()
            .with_min_len(16)
            .zip(found)
            .filter_map(|((hash, kind, source), found)| match found {
                Found::Repeat => None,
                Found::Absent => Some(self.place(*hash, *kind, source, false)),
                Found::Row(row) if self.intact(*hash, &row, source) => None,
                Found::Row(_) => Some(self.place(*hash, *kind, source, true)),
            })
            .collect::<Result<_, _>>()?;
        // The small objects' bytes go to the pack in one write.
        let small: Vec<&[u8]> = placed.iter().filter_map(|(_, bytes)| bytes.as_deref()).collect();
        let mut appended = self.pack_append_all(&small)?.into_iter();
        let rows = placed
            .into_iter()
            .map(|(mut row, bytes)| {
                if bytes.is_some() {
                    row.packed = appended.next();
                }
                row
            })
            .collect();
        Ok((digests, rows))
    }

    /// Puts one object's file in place (durable only after `sync_fs`), or
    /// returns a small object's bytes, to be appended to a pack (durable
    /// after `sync_packs`). `hash` is what the bytes hash to (computed by
    /// [`Store::place_missing`] or carried by a [`HashedBytes`], never a
    /// caller's claim) or, for a file, what it must hash to.
    /// `replaces`: `hash` has a row whose bytes are damaged; a small object
    /// that an older brr kept as a file in `cas/` is then written there again.
    fn place<'a>(
        &self,
        hash: Digest,
        kind: ObjectKind,
        source: &Source<'a>,
        replaces: bool,
    ) -> Result<PlacedOrPending<'a>, StoreError> {
        if replaces {
            // Whatever this process wrote there, the file must be checked.
            self.placed.forget(hash);
        }
        let as_file = replaces && self.object_path(hash).exists();
        match source {
            Source::File(path) if as_file => {
                let (size, _) = self.place_file(path, hash)?;
                Ok((Placed { hash, kind, size, refs: Vec::new(), packed: None, replaces }, None))
            }
            Source::File(path) => {
                if let Some(bytes) = read_small_checked(path, hash)? {
                    let row = Placed { hash, kind, size: bytes.len() as u64, refs: Vec::new(), packed: None, replaces };
                    return Ok((row, Some(Cow::Owned(bytes))));
                }
                let (size, _) = self.place_file(path, hash)?;
                Ok((Placed { hash, kind, size, refs: Vec::new(), packed: None, replaces }, None))
            }
            Source::Bytes(bytes) => {
                // A wrong reference shows up as a missing reference.
                let refs = references(kind, hash, bytes)?;
                let size = bytes.len() as u64;
                let row = Placed { hash, kind, size, refs, packed: None, replaces };
                if bytes.len() <= PACKED_MAX && !as_file {
                    return Ok((row, Some(Cow::Borrowed(*bytes))));
                }
                self.place_bytes(hash, bytes)?;
                Ok((row, None))
            }
        }
    }

    /// Whether the stored copy of recorded object `d` can serve, checked as
    /// cheaply as the put allows. Bytes in memory (most puts: sources held,
    /// outputs, trees, keys, logs, fetched objects) are compared with the
    /// stored copy: one `pread` from a pack and a `memcmp`, no hashing (they
    /// hash to `d`, so equal bytes are good ones). A file put as a file that
    /// is small and packed is hashed where it is stored; one put as a file that
    /// is large, in `cas/`, is only checked to be there with the recorded
    /// size (re-hashing it on every put would cost as much as the
    /// put saved); same-size damage there is caught by the reads that hash
    /// it and by `brr store verify`, and `--repair` lets the next put write
    /// it again.
    fn intact(&self, d: Digest, row: &Existing, source: &Source<'_>) -> bool {
        match (source, &row.packed) {
            (Source::Bytes(bytes), _) if bytes.len() as u64 != row.size => false,
            (Source::Bytes(bytes), Some((id, name, offset))) => {
                self.pack_bytes(*id, name, *offset, row.size).is_ok_and(|stored| stored == *bytes)
            }
            (Source::Bytes(bytes), None) => match std::fs::read(self.object_path(d)) {
                Ok(stored) => stored == *bytes,
                // Kept in the database by schema 4, or gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    matches!(self.small_bytes(d), Ok(Some(stored)) if stored == *bytes)
                }
                Err(_) => false,
            },
            // Small and packed: hashing the stored copy costs what reading
            // the file to compare would, and does not depend on the file
            // being unchanged since it was hashed.
            (Source::File(_), Some((id, name, offset))) => {
                self.pack_bytes(*id, name, *offset, row.size).is_ok_and(|stored| Digest::of(&stored) == d)
            }
            (Source::File(_), None) => {
                let path = self.object_path(d);
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == row.size)
            }
        }
    }

    /// Object `d` decoded as an `O`.
    pub fn get_object<O: Object>(&self, d: Digest) -> Result<O, StoreError> {
        let bytes = self.get(d)?;
        O::decode(&bytes).map_err(|source| StoreError::Invalid { hash: d, kind: O::KIND, source })
    }
}

/// A placed object, with the bytes still to append to a pack when it is small.
type PlacedOrPending<'a> = (Placed, Option<Cow<'a, [u8]>>);

/// Objects of one batch whose bytes are written (see [`Store::place_batch`]).
#[derive(Debug)]
pub struct PlacedBatch {
    digests: Vec<Digest>,
    rows: Vec<Placed>,
}

impl PlacedBatch {
    /// The digest of each item put, in order.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }
}

/// Records `objects` in order, then the action `then`, inside `tx`. A
/// reference to an object recorded earlier in the same batch is not looked
/// up again.
fn record_rows(tx: &Transaction<'_>, objects: &[Placed], then: Option<&ActionRecord>) -> Result<(), TxError> {
    let mut recorded: HashMap<Digest, ObjectKind> = HashMap::with_capacity(objects.len());
    for o in objects {
        for &(r, expected) in &o.refs {
            if !recorded.get(&r).is_some_and(|&k| satisfies(k, expected)) {
                require(tx, (o.kind, o.hash), r, expected)?;
            }
        }
        let (pack, offset) = o.packed.as_ref().map(|at| (at.pack.id, to_sql_u64(at.offset))).unzip();
        let values = params![o.hash.as_bytes(), o.kind.as_str(), to_sql_u64(o.size), pack, offset];
        let inserted = if o.replaces {
            // The new bytes are durable: the row names them instead of the
            // damaged ones (it may have gone meanwhile: then it is new).
            tx.prepare_cached(
                "INSERT INTO objects (hash, kind, size, pack, pack_offset) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (hash) DO UPDATE SET size = ?3, pack = ?4, pack_offset = ?5",
            )?
            .execute(values)?;
            tx.prepare_cached("DELETE FROM object_data WHERE hash = ?1")?.execute([o.hash.as_bytes()])?;
            0
        } else {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO objects (hash, kind, size, pack, pack_offset) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(values)?
        };
        let mut kind = o.kind;
        if inserted == 0 {
            // Already there (its bytes too): a blob put again as a tree,
            // artifact or action takes the more specific kind.
            let existing = kind_in(tx, o.hash)?.unwrap_or(o.kind);
            if satisfies(existing, o.kind) {
                kind = existing;
            } else {
                let mut stmt = tx.prepare_cached("UPDATE objects SET kind = ?2 WHERE hash = ?1")?;
                stmt.execute(params![o.hash.as_bytes(), o.kind.as_str()])?;
            }
        }
        recorded.insert(o.hash, kind);
    }
    if let Some(rec) = then {
        insert_action(tx, rec, rec.outputs)?;
    }
    Ok(())
}

/// The puts of a snapshot: blobs first, then trees children-first (the order
/// `TreeBuilder` emits them in), so each row's references come before it.
/// Files whose bytes the snapshot holds are put from memory.
pub fn snapshot_puts(snap: &Snapshot) -> Vec<Put<'_>> {
    let mut puts: Vec<Put<'_>> = snap
        .files
        .iter()
        .map(|f| match &f.bytes {
            Some(bytes) => Put::HashedBlob(bytes),
            None => Put::File { path: &f.path, hash: f.leaf.hash },
        })
        .collect();
    puts.extend(snap.link_targets.iter().map(|(_, b)| Put::Bytes { kind: ObjectKind::Blob, bytes: b }));
    puts.extend(snap.tree.trees.iter().map(|(_, b)| Put::Bytes { kind: ObjectKind::Tree, bytes: b }));
    puts
}
