//! Pack files: the bytes of small objects (up to [`crate::PACKED_MAX`]),
//! appended to `packs/<name>`.
//!
//! Each process appends to a pack of its own (a new one per process, and
//! after [`PACK_ROLL_OVER`] bytes), so writers never share a file; threads
//! reserve disjoint ranges and write them concurrently. A pack is registered
//! in `packs` before any object in it is, and an object's row (naming its
//! pack and offset) is committed only after [`sync_packs`] made the pack
//! durable past its end. A process killed mid-write leaves bytes no row
//! names; they are harmless and only cost space.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use brr_hash::Digest;
use rusqlite::params;

use crate::error::IoContext;
use crate::{Store, StoreError};

/// A process starts a new pack once its current one holds this many bytes.
pub(crate) const PACK_ROLL_OVER: u64 = 1 << 30;

/// The packs of one open store: the one this process appends to, and those
/// opened for reading.
#[derive(Default)]
pub(crate) struct Packs {
    writer: Mutex<Option<Arc<PackWriter>>>,
    readers: Mutex<HashMap<i64, Arc<File>>>,
}

/// The pack this process appends to.
#[derive(Debug)]
pub(crate) struct PackWriter {
    pub(crate) id: i64,
    path: PathBuf,
    file: File,
    /// End of the last reserved range.
    end: AtomicU64,
    /// How far the file is known to be durable.
    synced: Mutex<u64>,
}

/// Where an object's bytes were appended (durable once synced to `end`).
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) pack: Arc<PackWriter>,
    pub(crate) offset: u64,
    pub(crate) end: u64,
}

impl PackWriter {
    /// Makes the file durable at least up to `end` (a range whose write has
    /// returned); skipped when an earlier sync already got that far.
    fn sync_to(&self, end: u64) -> Result<(), StoreError> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced < end {
            self.file.sync_data().at(&self.path)?;
            *synced = end;
        }
        Ok(())
    }
}

impl Store {
    /// `<root>/packs`.
    pub(crate) fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    /// Appends each of `objects` to this process's pack, in one gathering
    /// write (`pwritev`): no copy of a build's objects into one buffer first.
    pub(crate) fn pack_append_all(&self, objects: &[&[u8]]) -> Result<Vec<Appended>, StoreError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let pack = self.pack_writer()?;
        let total: u64 = objects.iter().map(|b| b.len() as u64).sum();
        let start = pack.end.fetch_add(total, Ordering::Relaxed);
        let mut out = Vec::with_capacity(objects.len());
        let mut offset = start;
        for bytes in objects {
            out.push(Appended { pack: Arc::clone(&pack), offset, end: offset + bytes.len() as u64 });
            offset += bytes.len() as u64;
        }
        write_all_vectored_at(&pack.file, objects, start).at(&pack.path)?;
        Ok(out)
    }

    /// This process's current pack, created and registered when there is
    /// none yet or the current one is full.
    fn pack_writer(&self) -> Result<Arc<PackWriter>, StoreError> {
        let mut writer = self.packs.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = writer.as_ref().filter(|w| w.end.load(Ordering::Relaxed) < PACK_ROLL_OVER) {
            return Ok(Arc::clone(w));
        }
        let (name, path, file) = self.create_pack_file()?;
        // The name must survive a power loss before any row points into it.
        self.sync_packs_dir()?;
        let id = self.db.write(|tx| {
            tx.execute("INSERT INTO packs (name) VALUES (?1)", params![name])?;
            Ok(tx.last_insert_rowid())
        })?;
        let w = Arc::new(PackWriter { id, path, file, end: AtomicU64::new(0), synced: Mutex::new(0) });
        *writer = Some(Arc::clone(&w));
        Ok(w)
    }

    /// Creates a new, empty pack file with a name no other pack has (not
    /// yet durable nor registered).
    pub(crate) fn create_pack_file(&self) -> Result<(String, PathBuf, File), StoreError> {
        let dir = self.packs_dir();
        std::fs::create_dir_all(&dir).at(&dir)?;
        loop {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let name = format!("{nanos:x}-{}.pack", std::process::id());
            let path = dir.join(&name);
            match File::options().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((name, path, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(&path),
            }
        }
    }

    /// Makes the names in `packs/` durable.
    pub(crate) fn sync_packs_dir(&self) -> Result<(), StoreError> {
        let dir = self.packs_dir();
        File::open(&dir).and_then(|d| d.sync_all()).at(&dir)
    }

    /// Stops appending to this process's current pack, so that a sweep may
    /// rewrite it, unless a placed batch not yet recorded still has bytes
    /// in it (it holds the writer): then returns that pack's id, which the
    /// sweep must leave alone.
    pub(crate) fn retire_writer(&self) -> Option<i64> {
        let mut writer = self.packs.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Every range is reserved through a clone taken under this lock.
        match writer.as_ref() {
            Some(w) if Arc::strong_count(w) > 1 => Some(w.id),
            _ => {
                *writer = None;
                None
            }
        }
    }

    /// Runs `f` while no pack of this store can be between its creation
    /// and its registration (both happen under the writer's lock).
    pub(crate) fn with_writer_held<T>(&self, f: impl FnOnce() -> T) -> T {
        let _writer = self.packs.writer.lock().unwrap_or_else(PoisonError::into_inner);
        f()
    }

    /// Forgets the open files of packs `ids` (removed: their ids may be
    /// given to new packs).
    pub(crate) fn forget_packs(&self, ids: &[i64]) {
        let mut readers = self.packs.readers.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            readers.remove(id);
        }
    }

    /// The `size` bytes at `offset` of pack `id` (named `name`), checked
    /// against `d`.
    pub(crate) fn pack_read(
        &self,
        d: Digest,
        id: i64,
        name: &str,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let bytes = self.pack_bytes(id, name, offset, size)?;
        let actual = Digest::of(&bytes);
        if actual != d {
            return Err(StoreError::Corrupt { hash: d, path: self.packs_dir().join(name), actual });
        }
        Ok(bytes)
    }

    /// The `size` bytes at `offset` of pack `id` (named `name`), unchecked.
    pub(crate) fn pack_bytes(&self, id: i64, name: &str, offset: u64, size: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.packs_dir().join(name);
        let file = {
            let mut readers = self.packs.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = readers.get(&id) {
                Arc::clone(f)
            } else {
                let f = Arc::new(File::open(&path).at(&path)?);
                readers.insert(id, Arc::clone(&f));
                f
            }
        };
        let mut bytes = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut bytes, offset).at(&path)?;
        Ok(bytes)
    }
}

/// Makes every appended range durable (one sync per pack involved).
pub(crate) fn sync_packs<'a>(appended: impl IntoIterator<Item = &'a Appended>) -> Result<(), StoreError> {
    let mut ends: Vec<(&Arc<PackWriter>, u64)> = Vec::new();
    for a in appended {
        match ends.iter_mut().find(|(p, _)| p.id == a.pack.id) {
            Some((_, end)) => *end = (*end).max(a.end),
            None => ends.push((&a.pack, a.end)),
        }
    }
    ends.into_iter().try_for_each(|(pack, end)| pack.sync_to(end))
}

/// Linux takes at most this many buffers in one `pwritev`.
const IOV_MAX: usize = libc::UIO_MAXIOV.unsigned_abs() as usize;

/// Writes `parts`, one after the other, at `offset`: `pwritev` calls of up
/// to [`IOV_MAX`] buffers each, resumed after a short write.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut offset: u64) -> std::io::Result<()> {
    use std::io::IoSlice;
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = IOV_MAX.min(rest.len());
        match rustix::io::pwritev(file, &rest[..n], offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                offset += written as u64;
                IoSlice::advance_slices(&mut rest, written);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_all_vectored_at;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_gathering_write_of_more_buffers_than_one_call_takes_writes_them_all_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::options().read(true).write(true).create_new(true).open(dir.path().join("p")).unwrap();
        // More than IOV_MAX buffers, empty ones among them, at an offset.
        let parts: Vec<Vec<u8>> = (0..2500u32).map(|i| vec![(i % 251) as u8; (i % 7) as usize]).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        write_all_vectored_at(&file, &refs, 10).unwrap();
        let expected: Vec<u8> = parts.concat();
        let mut got = vec![0; expected.len()];
        file.read_exact_at(&mut got, 10).unwrap();
        assert_eq!(got, expected);
        assert_eq!(file.metadata().unwrap().len(), 10 + expected.len() as u64);
    }
}
