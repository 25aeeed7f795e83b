//! Archives: a release's or a build's closure as one file
//! ([`Store::export`]), and back ([`Store::import`]).
//!
//! # Format (`brr-archive`, version 1)
//!
//! All integers little-endian.
//!
//! | part | bytes |
//! |---|---|
//! | header | the magic `brr-arc\n` (8), version `u32` (1), the root's kind `u8`, the root's digest (32) |
//! | object, repeated | tag `1` (`u8`), kind `u8`, digest (32), length `u64`, the object's bytes |
//! | trailer | tag `0` (`u8`), the number of objects `u64`, BLAKE3 (32) of every byte before it |
//!
//! A kind is its index in [`ObjectKind::ALL`] (blob 0, tree 1, action 2,
//! artifact 3, config 4, release 5, ledger 6). Objects come in dependency
//! order: every object after everything it references (blobs, trees
//! children-first, the artifact, then for a release its config and the
//! release), so a reader can check references as it goes, and a writer
//! never holds more than one object in memory.
//!
//! # Import is all or nothing
//!
//! A first pass reads the whole file and checks everything without writing:
//! the header, each object's bytes against its digest, that it decodes as
//! its kind, that what it references came earlier (or is in the store), the
//! trailer's count and hash, and that nothing follows it. Only then a second
//! pass places the objects through the store's put path (which hashes them
//! again) in batches of bounded size, checks the trailer again, and records
//! every batch in one commit. A corrupt or truncated file records nothing;
//! bytes placed before a failure are orphans the next sweep removes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use brr_hash::{Artifact, Digest, EntryKind, ObjectKind, Release, Tree};

use crate::error::IoContext;
use crate::objects::{Put, references, satisfies};
use crate::{Store, StoreError};

const MAGIC: &[u8; 8] = b"brr-arc\n";
/// The format version this brr writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;
const TAG_OBJECT: u8 = 1;
const TAG_END: u8 = 0;
/// Bytes gathered before one placed batch on import.
const BATCH_BYTES: usize = 32 << 20;

/// What reading an archive calls with each object: its kind, digest and
/// bytes (checked against the digest); an `Err` is why the archive is invalid.
type OnObject<'a> = dyn FnMut(ObjectKind, Digest, &[u8]) -> Result<(), String> + 'a;

/// What an export wrote or an import read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The release or artifact the archive holds, with everything it references.
    pub root: Digest,
    pub root_kind: ObjectKind,
    /// Objects in the archive, and their total size.
    pub objects: u64,
    pub bytes: u64,
    /// On import: objects the store did not have before.
    pub new_objects: u64,
}

fn kind_code(kind: ObjectKind) -> u8 {
    ObjectKind::ALL.iter().position(|k| *k == kind).and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

/// A writer that hashes what it writes.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
}

impl Store {
    /// Writes the closure of `root` (a release or an artifact) to `path` as
    /// an archive (see the module docs), through a temp file renamed at the
    /// end, so `path` never holds half an archive.
    pub fn export(&self, root: Digest, path: &Path) -> Result<ArchiveSummary, StoreError> {
        let root_kind = self.kind_of(root)?.ok_or(StoreError::NotFound { hash: root })?;
        let order = self.export_order(root, root_kind)?;
        let temp = temp_beside(path);
        let written = (|| {
            let file = File::create(&temp).at(&temp)?;
            let mut w = Hashing { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() };
            let mut summary = ArchiveSummary { root, root_kind, objects: 0, bytes: 0, new_objects: 0 };
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&ARCHIVE_VERSION.to_le_bytes());
            header.push(kind_code(root_kind));
            header.extend_from_slice(root.as_bytes());
            w.put(&header).at(&temp)?;
            for (kind, d) in &order {
                let bytes = self.get(*d)?;
                let mut head = vec![TAG_OBJECT, kind_code(*kind)];
                head.extend_from_slice(d.as_bytes());
                head.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                w.put(&head).at(&temp)?;
                w.put(&bytes).at(&temp)?;
                summary.objects += 1;
                summary.bytes += bytes.len() as u64;
            }
            let mut end = vec![TAG_END];
            end.extend_from_slice(&summary.objects.to_le_bytes());
            w.put(&end).at(&temp)?;
            let hash = w.hasher.finalize();
            w.inner.write_all(hash.as_bytes()).at(&temp)?;
            let file = w.inner.into_inner().map_err(std::io::IntoInnerError::into_error).at(&temp)?;
            file.sync_all().at(&temp)?;
            std::fs::rename(&temp, path).at(path)?;
            Ok(summary)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// The closure of `root` in dependency order, as digests.
    pub(crate) fn export_order(&self, root: Digest, kind: ObjectKind) -> Result<Vec<(ObjectKind, Digest)>, StoreError> {
        let (artifact, tail) = match kind {
            ObjectKind::Artifact => (root, Vec::new()),
            ObjectKind::Release => {
                let r: Release = self.get_object(root)?;
                (r.build.0, vec![(ObjectKind::Config, r.config.0), (ObjectKind::Release, root)])
            }
            other => return Err(StoreError::WrongKind { hash: root, expected: ObjectKind::Release, actual: other }),
        };
        let art: Artifact = self.get_object(artifact)?;
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.tree_order(art.outputs.0, &mut seen, &mut order)?;
        order.push((ObjectKind::Artifact, artifact));
        order.extend(tail);
        Ok(order)
    }

    /// Appends the blobs and trees below `tree` children-first, then `tree`.
    fn tree_order(
        &self,
        tree: Digest,
        seen: &mut std::collections::HashSet<Digest>,
        order: &mut Vec<(ObjectKind, Digest)>,
    ) -> Result<(), StoreError> {
        let t: Tree = self.get_object(tree)?;
        for e in &t.entries {
            if !seen.insert(e.hash) {
                continue;
            }
            if e.kind == EntryKind::Dir {
                self.tree_order(e.hash, seen, order)?;
            } else {
                order.push((ObjectKind::Blob, e.hash));
            }
        }
        order.push((ObjectKind::Tree, tree));
        Ok(())
    }

    /// Reads the archive at `path` into the store, all or nothing (see the
    /// module docs): a corrupt, truncated or otherwise invalid file is
    /// refused with [`StoreError::BadArchive`] and records nothing.
    pub fn import(&self, path: &Path) -> Result<ArchiveSummary, StoreError> {
        // Pass 1: check everything, write nothing.
        let mut kinds: HashMap<Digest, ObjectKind> = HashMap::new();
        let mut summary = Self::read_archive(path, &mut |kind, d, bytes| {
            for (r, expected) in references(kind, d, bytes).map_err(|e| e.to_string())? {
                let known = match kinds.get(&r) {
                    Some(k) => Some(*k),
                    None => self.kind_of(r).map_err(|e| e.to_string())?,
                };
                let fits = known.is_some_and(|k| satisfies(k, expected));
                if !fits {
                    return Err(format!(
                        "{} `{d}` references {} `{r}`, which neither comes before it nor is in the store",
                        kind.as_str(),
                        expected.as_str()
                    ));
                }
            }
            kinds.insert(d, kind);
            Ok(())
        })?;
        if kinds.get(&summary.root) != Some(&summary.root_kind) {
            return Err(bad(path, 0, &format!("its root `{}` is not among its objects", summary.root)));
        }
        for d in kinds.keys() {
            if !self.contains(*d)? {
                summary.new_objects += 1;
            }
        }
        // Pass 2: place in batches, commit once at the end.
        let mut placed = Vec::new();
        let mut chunk: Vec<(ObjectKind, Vec<u8>)> = Vec::new();
        let mut chunk_bytes = 0;
        let mut failure: Option<StoreError> = None;
        let mut flush = |chunk: &mut Vec<(ObjectKind, Vec<u8>)>, failure: &mut Option<StoreError>| {
            if chunk.is_empty() || failure.is_some() {
                return;
            }
            let puts: Vec<Put<'_>> = chunk.iter().map(|(kind, bytes)| Put::Bytes { kind: *kind, bytes }).collect();
            match self.place_batch(&puts) {
                Ok(b) => placed.push((b, None)),
                Err(e) => *failure = Some(e),
            }
            chunk.clear();
        };
        Self::read_archive(path, &mut |kind, _, bytes| {
            chunk_bytes += bytes.len();
            chunk.push((kind, bytes.to_vec()));
            if chunk_bytes >= BATCH_BYTES {
                flush(&mut chunk, &mut failure);
                chunk_bytes = 0;
            }
            Ok(())
        })?;
        flush(&mut chunk, &mut failure);
        if let Some(e) = failure {
            return Err(e);
        }
        for r in self.commit(&placed)? {
            r?;
        }
        Ok(summary)
    }

    /// Reads and checks the archive at `path`, calling `each` with every
    /// object whose bytes match its digest, in order; a failure of `each`
    /// makes the archive invalid at that object.
    fn read_archive(path: &Path, each: &mut OnObject<'_>) -> Result<ArchiveSummary, StoreError> {
        let file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut r = Reader { inner: BufReader::with_capacity(1 << 20, file), hasher: blake3::Hasher::new(), offset: 0 };
        let io = |r: &Reader<BufReader<File>>, e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                bad(path, r.offset, "the file ends early: it is truncated")
            } else {
                StoreError::Io { path: path.to_path_buf(), source: e }
            }
        };
        let mut magic = [0u8; 8];
        r.read(&mut magic).map_err(|e| io(&r, e))?;
        if &magic != MAGIC {
            return Err(bad(path, 0, "it does not start with the magic `brr-arc`"));
        }
        let version = u32::from_le_bytes(r.array().map_err(|e| io(&r, e))?);
        if version != ARCHIVE_VERSION {
            return Err(bad(path, 8, &format!("its version is {version}, this brr reads {ARCHIVE_VERSION}")));
        }
        let root_kind = r.kind(path)?;
        let root = Digest::from_bytes(r.array().map_err(|e| io(&r, e))?);
        let mut summary = ArchiveSummary { root, root_kind, objects: 0, bytes: 0, new_objects: 0 };
        loop {
            let at = r.offset;
            let [tag] = r.array().map_err(|e| io(&r, e))?;
            match tag {
                TAG_OBJECT => {
                    let kind = r.kind(path)?;
                    let d = Digest::from_bytes(r.array().map_err(|e| io(&r, e))?);
                    let size = u64::from_le_bytes(r.array().map_err(|e| io(&r, e))?);
                    if size > len.saturating_sub(r.offset) {
                        return Err(bad(
                            path,
                            at,
                            &format!("object `{d}` claims {size} bytes, more than the file has left: it is truncated"),
                        ));
                    }
                    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
                    r.read(&mut bytes).map_err(|e| io(&r, e))?;
                    let actual = Digest::of(&bytes);
                    if actual != d {
                        return Err(bad(path, at, &format!("object `{d}` hashes to `{actual}`: the file is corrupt")));
                    }
                    each(kind, d, &bytes).map_err(|reason| bad(path, at, &reason))?;
                    summary.objects += 1;
                    summary.bytes += size;
                }
                TAG_END => {
                    let count = u64::from_le_bytes(r.array().map_err(|e| io(&r, e))?);
                    let expected = r.hasher.finalize();
                    let mut hash = [0u8; 32];
                    r.inner.read_exact(&mut hash).map_err(|e| io(&r, e))?;
                    if count != summary.objects {
                        return Err(bad(
                            path,
                            at,
                            &format!("its trailer counts {count} objects, it holds {}", summary.objects),
                        ));
                    }
                    if hash != *expected.as_bytes() {
                        return Err(bad(
                            path,
                            at,
                            "its trailer's BLAKE3 does not match its contents: the file is corrupt",
                        ));
                    }
                    let mut rest = [0u8; 1];
                    if r.inner.read(&mut rest).at(path)? != 0 {
                        return Err(bad(path, at + 41, "bytes follow its trailer"));
                    }
                    return Ok(summary);
                }
                other => return Err(bad(path, at, &format!("unknown record tag {other}: the file is corrupt"))),
            }
        }
    }
}

fn bad(path: &Path, offset: u64, reason: &str) -> StoreError {
    StoreError::BadArchive { path: path.to_path_buf(), offset, reason: reason.to_owned() }
}

/// `FILE.part-<pid>` beside `path`.
fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".part-{}", std::process::id()));
    path.with_file_name(name)
}

/// A reader that hashes what it reads and counts its offset.
struct Reader<R> {
    inner: R,
    hasher: blake3::Hasher,
    offset: u64,
}

impl<R: Read> Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.hasher.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut a = [0u8; N];
        self.read(&mut a)?;
        Ok(a)
    }

    fn kind(&mut self, path: &Path) -> Result<ObjectKind, StoreError> {
        let at = self.offset;
        let [code] = self.array().map_err(|e| bad(path, at, &format!("the file ends early: {e}")))?;
        ObjectKind::ALL
            .get(usize::from(code))
            .copied()
            .ok_or_else(|| bad(path, at, &format!("unknown object kind {code}: the file is corrupt")))
    }
}
