//! Object files: where they live, how they are written (temp file, rename,
//! then one `syncfs` for a whole batch before any row names them) and read
//! back (verified by hash).
//!
//! Nothing here touches the database; `objects.rs` records what this module
//! has put in place.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use brr_hash::Digest;
use rusqlite::OptionalExtension;

use crate::db::from_sql_u64;
use crate::error::IoContext;
use crate::{Store, StoreError, TEMP_PREFIX};

/// Read and write buffer for copying files.
const COPY_BUF: usize = 256 * 1024;

/// Makes temp file names unique within a process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What this process has put into `cas/`, so a batch that records files
/// placed earlier (the sources of a build are placed before it runs and
/// recorded after it) neither re-reads them nor re-checks their folders.
pub(crate) struct PlacedFiles {
    objects: Mutex<HashSet<Digest>>,
    /// Shard folders known to exist (they are never removed).
    shards: [AtomicBool; 256],
}

impl Default for PlacedFiles {
    fn default() -> Self {
        Self { objects: Mutex::default(), shards: std::array::from_fn(|_| AtomicBool::new(false)) }
    }
}

impl PlacedFiles {
    pub(crate) fn contains(&self, d: Digest) -> bool {
        self.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&d)
    }

    fn insert(&self, d: Digest) {
        self.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(d);
    }

    /// Forgets that `d` was placed: its file was found damaged since.
    pub(crate) fn forget(&self, d: Digest) {
        self.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&d);
    }
}

/// A temp file in `tmp/`, removed on drop unless renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    /// Creates a new, empty, read-only (0444) temp file. The open handle can
    /// still write: the mode only applies to later opens.
    fn create(tmp_dir: &Path, mode: u32) -> Result<Self, StoreError> {
        let pid = std::process::id();
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = tmp_dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
            match OpenOptions::new().write(true).create_new(true).mode(mode).open(&path) {
                Ok(file) => return Ok(Self { path, file }),
                // Left by an earlier process with the same pid: try the next name.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(&path),
            }
        }
    }

    /// Renames the file to `dest`, replacing any file there (which, being
    /// named by the same content, holds the same bytes). Not yet durable:
    /// the caller runs [`Store::sync_fs`] before recording it.
    fn persist(mut self, dest: &Path) -> Result<(), StoreError> {
        std::fs::rename(&self.path, dest).at(dest)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Store {
    /// Makes every file written so far durable, with their names: one
    /// `syncfs` of the store's file system instead of an fsync per file and
    /// folder, which is what makes a build of many small objects cheap.
    pub(crate) fn sync_fs(&self) -> Result<(), StoreError> {
        let cas = self.cas_dir();
        let dir = File::open(&cas).at(&cas)?;
        rustix::fs::syncfs(&dir).map_err(std::io::Error::from).at(&cas)
    }
}

/// BLAKE3 of a file's bytes, and its length.
pub(crate) fn hash_path(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok((hasher.finalize().into(), hasher.count()))
}

impl Store {
    /// `<root>/cas/<first 2 hex>/<other 62 hex>`. The file may not exist.
    pub fn object_path(&self, d: Digest) -> PathBuf {
        let hex = d.to_hex();
        let (shard, rest) = hex.split_at(2);
        self.cas_dir().join(shard).join(rest)
    }

    /// Whether the object's file is already in place with the right bytes
    /// (an orphan of an interrupted put, or another writer's).
    fn file_in_place(&self, d: Digest) -> Result<bool, StoreError> {
        let path = self.object_path(d);
        if self.placed.contains(d) {
            // Hashed when this process wrote it; only a deletion undoes that.
            return Ok(path.exists());
        }
        match hash_path(&path) {
            Ok((actual, _)) => Ok(actual == d),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    /// The shard folder of `d`, created if needed (made durable by the
    /// batch's `syncfs`).
    fn shard_dir(&self, d: Digest) -> Result<PathBuf, StoreError> {
        let path = self.object_path(d);
        let dir = path.parent().map_or_else(|| self.cas_dir(), Path::to_path_buf);
        let known = &self.placed.shards[usize::from(d.as_bytes()[0])];
        if !known.load(Ordering::Relaxed) {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(&dir),
            }
            known.store(true, Ordering::Relaxed);
        }
        Ok(dir)
    }

    /// Puts `bytes` (which hash to `d`) in place as `d`'s file, unless a
    /// good file is already there. Returns the folder that must be synced
    /// before a row names the object (also when the file was there: the
    /// process that renamed it may have died before syncing).
    pub(crate) fn place_bytes(&self, d: Digest, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        if self.file_in_place(d)? {
            return self.shard_dir(d);
        }
        let dir = self.shard_dir(d)?;
        let mut tmp = TempFile::create(&self.tmp_dir(), 0o444)?;
        tmp.file.write_all(bytes).at(&tmp.path)?;
        tmp.persist(&self.object_path(d))?;
        self.placed.insert(d);
        Ok(dir)
    }

    /// Copies the file at `path` into place as `expected`'s file, hashing
    /// while copying; fails (leaving nothing behind) if the bytes do not hash
    /// to `expected`. Returns the size and, as [`Store::place_bytes`], the
    /// folder to sync.
    pub(crate) fn place_file(&self, path: &Path, expected: Digest) -> Result<(u64, PathBuf), StoreError> {
        if self.file_in_place(expected)? {
            let dest = self.object_path(expected);
            let size = std::fs::metadata(&dest).at(&dest)?.len();
            return Ok((size, self.shard_dir(expected)?));
        }
        let dir = self.shard_dir(expected)?;
        let mut tmp = TempFile::create(&self.tmp_dir(), 0o444)?;
        let (actual, size) = copy_hashing(path, &mut tmp.file, &tmp.path, None)?;
        if actual != expected {
            return Err(StoreError::HashMismatch { path: path.to_path_buf(), expected, actual });
        }
        tmp.persist(&self.object_path(expected))?;
        self.placed.insert(expected);
        Ok((size, dir))
    }

    /// Copies object `d` to a new file `dest` with exactly `mode`, checking
    /// its hash on the way. Used where a hard link would share the CAS
    /// file's mode, or there is no CAS file (a small object).
    pub fn copy_out(&self, d: Digest, dest: &Path, mode: u32) -> Result<(), StoreError> {
        let small = self.small_bytes(d)?;
        let mut out =
            OpenOptions::new().write(true).create_new(true).mode(mode).open(dest).map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => StoreError::DestinationExists { path: dest.to_path_buf() },
                _ => StoreError::Io { path: dest.to_path_buf(), source: e },
            })?;
        if let Some(bytes) = small {
            out.write_all(&bytes).at(dest)?;
        } else {
            let src = self.object_path(d);
            let (actual, _) = copy_hashing(&src, &mut out, dest, Some(d))?;
            if actual != d {
                return Err(StoreError::Corrupt { hash: d, path: src, actual });
            }
        }
        // Exactly `mode`, whatever the umask.
        out.set_permissions(Permissions::from_mode(mode)).at(dest)
    }

    /// The bytes of `d` when it is a small object (in a pack, or in the
    /// database where schema 4 put it), checked.
    pub(crate) fn small_bytes(&self, d: Digest) -> Result<Option<Vec<u8>>, StoreError> {
        enum Found {
            Packed(i64, String, u64, u64),
            Row(Vec<u8>),
        }
        let found = self.db.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, p.name, o.pack_offset, o.size FROM objects o JOIN packs p ON p.id = o.pack
                 WHERE o.hash = ?1",
            )?;
            let packed = stmt
                .query_row([d.as_bytes()], |r| {
                    Ok(Found::Packed(r.get(0)?, r.get(1)?, from_sql_u64(r.get(2)?), from_sql_u64(r.get(3)?)))
                })
                .optional()?;
            if packed.is_some() {
                return Ok(packed);
            }
            let mut stmt = tx.prepare_cached("SELECT data FROM object_data WHERE hash = ?1")?;
            Ok(stmt.query_row([d.as_bytes()], |r| r.get(0)).optional()?.map(Found::Row))
        })?;
        match found {
            None => Ok(None),
            Some(Found::Packed(id, name, offset, size)) => self.pack_read(d, id, &name, offset, size).map(Some),
            Some(Found::Row(b)) if Digest::of(&b) != d => {
                Err(StoreError::Corrupt { hash: d, path: self.db_path().to_path_buf(), actual: Digest::of(&b) })
            }
            Some(Found::Row(b)) => Ok(Some(b)),
        }
    }

    /// The bytes of object `d`, checked against `d`.
    pub fn get(&self, d: Digest) -> Result<Vec<u8>, StoreError> {
        if let Some(bytes) = self.small_bytes(d)? {
            return Ok(bytes);
        }
        let path = self.object_path(d);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(StoreError::NotFound { hash: d }),
            Err(e) => return Err(e).at(&path),
        };
        let actual = Digest::of(&bytes);
        if actual != d {
            return Err(StoreError::Corrupt { hash: d, path, actual });
        }
        Ok(bytes)
    }
}

/// Copies `src` into `out` while hashing it; returns the hash and length. A
/// missing `src` is [`StoreError::NotFound`] when it is the object `object`.
fn copy_hashing(
    src: &Path,
    out: &mut File,
    out_path: &Path,
    object: Option<Digest>,
) -> Result<(Digest, u64), StoreError> {
    let mut input = File::open(src).map_err(|e| match (e.kind(), object) {
        (ErrorKind::NotFound, Some(hash)) => StoreError::NotFound { hash },
        _ => StoreError::Io { path: src.to_path_buf(), source: e },
    })?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).at(src),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        out.write_all(chunk).at(out_path)?;
    }
    Ok((hasher.finalize().into(), hasher.count()))
}
