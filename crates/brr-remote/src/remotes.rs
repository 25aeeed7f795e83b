//! Using remote caches during a build: on a local miss, fetch a signed entry
//! and the objects the store lacks; after a build, push the objects the
//! remote lacks, then the signed entry.
//!
//! Nothing here can fail a build. A remote that errors or times out is
//! reported once and not asked again in this run; an entry that is unsigned,
//! signed by an untrusted key, or whose objects do not match their names is
//! ignored with a one-line note, and the target builds locally.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, ObjectKind};
use brr_store::{ActionRecord, Put, Store, StoreError};
use rayon::prelude::*;

use crate::entry::{EntryBody, EntryObject, SignedEntry};
use crate::keys::{SigningKey, TrustedKeys};
use crate::{Backend, BlobId, RemoteError};

/// One configured remote.
pub struct Remote {
    pub backend: Box<dyn Backend>,
    pub read_only: bool,
    /// Set after the first failure: not asked again in this run.
    disabled: AtomicBool,
}

impl Remote {
    pub fn new(backend: Box<dyn Backend>, read_only: bool) -> Self {
        Self { backend, read_only, disabled: AtomicBool::new(false) }
    }
}

/// What happened, for the summary and `brr cache status`.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub pushed: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
}

/// A key whose remote entry names another artifact than the local build:
/// two machines built different bytes from the same inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: BuildKey,
    pub remote: String,
    pub local: ArtifactHash,
    pub theirs: ArtifactHash,
    pub signer: String,
}

/// The remotes of one run, with the keys to trust and to sign with.
pub struct Remotes {
    list: Vec<Remote>,
    trusted: TrustedKeys,
    signing: Option<SigningKey>,
    /// `BRR_CACHE_READ_ONLY`: never push, whatever the remotes say.
    read_only: bool,
    pub stats: Stats,
    notes: Mutex<Vec<String>>,
    conflicts: Mutex<Vec<Conflict>>,
    note_sink: Box<dyn Fn(&str) + Send + Sync>,
}

impl Remotes {
    /// `note` receives one-line warnings (remote down, entry refused).
    pub fn new(
        remotes: Vec<Remote>,
        trusted: TrustedKeys,
        signing: Option<SigningKey>,
        read_only: bool,
        note: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        Self {
            list: remotes,
            trusted,
            signing,
            read_only,
            stats: Stats::default(),
            notes: Mutex::new(Vec::new()),
            conflicts: Mutex::new(Vec::new()),
            note_sink: note,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether this run pushes (a signing key, not read-only, a writable remote).
    pub fn pushes(&self) -> bool {
        self.signing.is_some() && !self.read_only && self.list.iter().any(|r| !r.read_only)
    }

    pub fn remotes(&self) -> &[Remote] {
        &self.list
    }

    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn note(&self, line: String) {
        let mut notes = self.notes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !notes.contains(&line) {
            (self.note_sink)(&line);
            notes.push(line);
        }
    }

    /// Disables `r` after an error, saying so once.
    fn failed(&self, r: &Remote, e: &RemoteError) {
        if !r.disabled.swap(true, Ordering::Relaxed) {
            self.note(format!("warning: remote cache unavailable, building locally: {e}"));
        }
    }

    fn live(&self) -> impl Iterator<Item = &Remote> {
        self.list.iter().filter(|r| !r.disabled.load(Ordering::Relaxed))
    }

    /// Looks `key` up in the remotes; on a trusted, intact entry, stores its
    /// objects and records the action locally. Returns the artifact.
    pub fn fetch(&self, store: &Store, key: BuildKey) -> Option<ArtifactHash> {
        for r in self.live() {
            let raw = match r.backend.get_entry(key) {
                Ok(Some(raw)) => raw,
                Ok(None) => continue,
                Err(e) => {
                    self.failed(r, &e);
                    continue;
                }
            };
            match self.accept(store, r, key, &raw) {
                Ok(Some(a)) => {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Some(a);
                }
                Ok(None) => {}
                Err(e) => self.failed(r, &e),
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Verifies an entry and brings its objects in. `Ok(None)` when the
    /// entry is refused (with a note).
    fn accept(
        &self,
        store: &Store,
        r: &Remote,
        key: BuildKey,
        raw: &[u8],
    ) -> Result<Option<ArtifactHash>, RemoteError> {
        let url = r.backend.url();
        let entry = match SignedEntry::decode(raw) {
            Ok(e) => e,
            Err(e) => {
                self.note(format!("note: ignoring the entry for {} from `{url}`: {e}", key.short()));
                return Ok(None);
            }
        };
        if let Err(e) = entry.verify(&self.trusted) {
            self.note(format!("note: ignoring the entry for {} from `{url}`: {e}", key.short()));
            return Ok(None);
        }
        let body = &entry.body;
        if body.key != key {
            self.note(format!("note: ignoring the entry for {} from `{url}`: it is for another key", key.short()));
            return Ok(None);
        }
        // Fetch what the store lacks or holds damaged, in parallel, each
        // checked by both names; the put replaces a damaged copy.
        let mut all: Vec<EntryObject> = body.objects.clone();
        if let Some(log) = body.log {
            all.push(EntryObject { kind: ObjectKind::Blob, id: log });
        }
        let mut need = Vec::new();
        for o in all {
            if !store.holds_intact(o.id.blake3).map_err(|e| local(url, &e))? {
                need.push(o);
            }
        }
        let fetched: Vec<(EntryObject, Vec<u8>)> = need
            .par_iter()
            .map(|o| match r.backend.get_blob(&o.id)? {
                Some(bytes) if o.id.matches(&bytes) => Ok(Some((*o, bytes))),
                Some(_) => Err(RemoteError::Corrupt { remote: url.to_owned(), blob: o.id.blake3.to_string() }),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().flatten().collect())
            .or_else(|e| match e {
                RemoteError::Corrupt { .. } => {
                    self.note(format!("note: ignoring the entry for {} from `{url}`: {e}", key.short()));
                    Ok(Vec::new())
                }
                other => Err(other),
            })?;
        if fetched.len() != need.len() {
            self.note(format!(
                "note: ignoring the entry for {} from `{url}`: the remote lacks some of its objects",
                key.short()
            ));
            return Ok(None);
        }
        let bytes: usize = fetched.iter().map(|(_, b)| b.len()).sum();
        self.stats.bytes_down.fetch_add(bytes as u64, Ordering::Relaxed);
        // Blobs first, then trees and the artifact in the entry's order
        // (children before parents): the store checks every reference.
        let mut order: Vec<&(EntryObject, Vec<u8>)> =
            fetched.iter().filter(|(o, _)| o.kind == ObjectKind::Blob).collect();
        order.extend(fetched.iter().filter(|(o, _)| o.kind != ObjectKind::Blob));
        let puts: Vec<Put<'_>> = order.iter().map(|(o, b)| Put::Bytes { kind: o.kind, bytes: b }).collect();
        let recorded = store.put_many(&puts).and_then(|_| {
            let artifact: Artifact = store.get_object(body.artifact.0)?;
            if artifact.outputs != body.outputs {
                return Err(StoreError::NotFound { hash: body.outputs.0 });
            }
            store.record_action(&ActionRecord {
                key,
                artifact: body.artifact,
                log: body.log.map(|l| l.blake3),
                duration_ms: 0,
                created_at: unix_now(),
                outputs: Some(body.outputs),
            })
        });
        if let Err(e) = recorded {
            self.note(format!("note: ignoring the entry for {} from `{url}`: {e}", key.short()));
            return Ok(None);
        }
        Ok(Some(body.artifact))
    }

    /// Pushes a local build: the objects each writable remote lacks, then
    /// the signed entry. Notes a conflict when a remote already holds
    /// another artifact for the same key.
    pub fn push(&self, store: &Store, key: BuildKey, artifact: ArtifactHash, log: Option<Digest>) {
        let Some(signing) = self.signing.as_ref().filter(|_| !self.read_only) else { return };
        let (objects, contents) = match closure(store, artifact, log) {
            Ok(c) => c,
            Err(e) => {
                self.note(format!("warning: cannot push {}: {e}", key.short()));
                return;
            }
        };
        let outputs = match store.get_object::<Artifact>(artifact.0) {
            Ok(a) => a.outputs,
            Err(e) => {
                self.note(format!("warning: cannot push {}: {e}", key.short()));
                return;
            }
        };
        let log_id = log.and_then(|l| objects.iter().find(|o| o.id.blake3 == l).map(|o| o.id));
        let body = EntryBody {
            key,
            artifact,
            outputs,
            log: log_id,
            objects: objects.iter().filter(|o| Some(o.id) != log_id).copied().collect(),
            signer: String::new(),
        };
        let entry = SignedEntry::sign(body, signing).encode();
        for r in self.live().filter(|r| !r.read_only) {
            if let Err(e) = self.push_to(r, key, artifact, &objects, &contents, &entry) {
                self.failed(r, &e);
            }
        }
    }

    fn push_to(
        &self,
        r: &Remote,
        key: BuildKey,
        artifact: ArtifactHash,
        objects: &[EntryObject],
        contents: &[Vec<u8>],
        entry: &[u8],
    ) -> Result<(), RemoteError> {
        let theirs = r.backend.get_entry(key)?.and_then(|raw| SignedEntry::decode(&raw).ok());
        if let Some(theirs) = theirs {
            if theirs.body.artifact == artifact {
                return Ok(());
            }
            let conflict = Conflict {
                key,
                remote: r.backend.url().to_owned(),
                local: artifact,
                theirs: theirs.body.artifact,
                signer: theirs.body.signer.clone(),
            };
            self.note(format!(
                "warning: not reproducible: key {} built to {} here but to {} by `{}` (in `{}`)",
                key.short(),
                artifact.short(),
                conflict.theirs.short(),
                conflict.signer,
                conflict.remote
            ));
            self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conflict);
        }
        let ids: Vec<BlobId> = objects.iter().map(|o| o.id).collect();
        let missing = r.backend.missing_blobs(&ids)?;
        let uploads: Vec<(BlobId, &Vec<u8>)> =
            missing.iter().filter_map(|m| ids.iter().position(|i| i == m).map(|p| (*m, &contents[p]))).collect();
        uploads.par_iter().try_for_each(|(id, bytes)| r.backend.put_blob(id, bytes))?;
        let up: usize = uploads.iter().map(|(_, b)| b.len()).sum::<usize>() + entry.len();
        self.stats.bytes_up.fetch_add(up as u64, Ordering::Relaxed);
        r.backend.put_entry(key, entry)?;
        self.stats.pushed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn local(url: &str, e: &StoreError) -> RemoteError {
    RemoteError::Unavailable { remote: url.to_owned(), message: format!("local store: {e}") }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Everything needed to materialize `artifact` (blobs, trees children-first,
/// then the artifact itself) and the log, with their bytes, named for the
/// remote ([`Store::closure`]).
pub fn closure(
    store: &Store,
    artifact: ArtifactHash,
    log: Option<Digest>,
) -> Result<(Vec<EntryObject>, Vec<Vec<u8>>), StoreError> {
    Ok(store
        .closure(artifact, log)?
        .into_iter()
        .map(|(kind, bytes)| (EntryObject { kind, id: BlobId::of(&bytes) }, bytes))
        .unzip())
}
