//! Using remote caches during a build: on a local miss, fetch a signed entry
//! and the objects the store lacks; after a build, push the objects the
//! remote lacks, then the signed entry.
//!
//! Nothing here can fail a build, and no remote can hold a build up for
//! long ([`Limits`]):
//!
//! - every request is bounded by the backend's per-request timeout, and by
//!   what is left of the run's **budget**: the total time this run may
//!   spend waiting on remotes. When it is used up, every remote is switched
//!   off for the rest of the run, with one warning;
//! - a transient failure (not reached, timed out, 5xx) is retried with
//!   exponential backoff, within the budget;
//! - a **circuit breaker** switches a remote off after
//!   [`Limits::breaker`] failed operations in a row, with one warning
//!   saying how long was lost waiting on it. A single refused upload only
//!   fails that target's push.
//!
//! Pushing heals: an entry already on the remote for the same artifact is
//! checked (its signature, and that every object it names is there); what
//! the remote lacks is uploaded again, and an entry that does not verify is
//! replaced. When the remote's valid entry names another artifact (a
//! conflict: the build is not reproducible) the first writer's entry is
//! kept unless [`ConflictPolicy::Replace`], and the conflict is recorded in
//! the local store ([`Store::record_cache_conflict`]).
//!
//! An entry that is unsigned, signed by an untrusted key, or whose objects
//! do not match their names is ignored with a one-line note, and the target
//! builds locally.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest, ObjectKind};
use brr_store::{ActionRecord, Put, Store, StoreError};
use rayon::prelude::*;

mod push;

use crate::breaker::Breaker;
use crate::entry::{EntryError, EntryObject, SignedEntry};
use crate::keys::{SigningKey, TrustedKeys};
use crate::{Backend, BlobId, RemoteError};

/// How long remotes may hold a run up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total time a run may spend waiting on remotes (all of them, all
    /// requests, retries and backoff included).
    pub budget: Duration,
    /// Retries of a transient failure (so `1 + retries` attempts).
    pub retries: u32,
    /// The first backoff; each retry waits twice as long as the one before.
    pub backoff: Duration,
    /// Failed operations in a row after which a remote is switched off.
    pub breaker: u32,
}

impl Default for Limits {
    /// 60 s of budget, 2 retries from 100 ms, off after 3 failures in a row.
    fn default() -> Self {
        Self { budget: Duration::from_secs(60), retries: 2, backoff: Duration::from_millis(100), breaker: 3 }
    }
}

/// What a push does when the remote's trusted entry names another artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Keep the first writer's entry (the default): runners keep agreeing
    /// on one artifact, and the conflict is recorded and reported.
    #[default]
    KeepFirst,
    /// Replace it with this runner's entry (last writer wins).
    Replace,
}

/// One configured remote.
pub struct Remote {
    pub backend: Box<dyn Backend>,
    pub read_only: bool,
    /// Failed operations in a row; switched off (by it or the budget):
    /// not asked again in this run.
    breaker: Breaker,
    /// Time spent in requests that failed, for the breaker's warning (ns).
    lost_nanos: AtomicU64,
    /// Blobs this run uploaded or claimed, or knows the remote holds.
    present: Mutex<HashSet<[u8; 32]>>,
}

impl Remote {
    pub fn new(backend: Box<dyn Backend>, read_only: bool) -> Self {
        Self {
            backend,
            read_only,
            breaker: Breaker::default(),
            lost_nanos: AtomicU64::new(0),
            present: Mutex::new(HashSet::new()),
        }
    }

    /// Whether it was switched off in this run.
    pub fn is_off(&self) -> bool {
        self.breaker.is_off()
    }
}

/// What happened, for the summary, `build --json` and `brr cache status`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Targets fetched from a remote.
    pub hits: AtomicU64,
    /// Targets no remote had (at least one remote answered).
    pub misses: AtomicU64,
    /// Lookups not made because every remote was off.
    pub skipped: AtomicU64,
    /// Entries written.
    pub pushed: AtomicU64,
    /// Pushes that repaired a remote entry: re-uploaded missing objects or
    /// replaced an entry that did not verify.
    pub healed: AtomicU64,
    /// Conflicts seen (another artifact for the same key).
    pub conflicts: AtomicU64,
    /// Operations that failed (after retries).
    pub errors: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
    /// Time spent waiting on remotes, backoff included (ns).
    pub wait_nanos: AtomicU64,
}

impl Stats {
    pub fn wait(&self) -> Duration {
        Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed))
    }
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

/// What a push did on one remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The entry was written (no entry was there).
    Written,
    /// The remote's entry was repaired: missing objects uploaded again, or
    /// an entry that did not verify replaced.
    Healed,
    /// A valid entry for this artifact was there, with every object.
    Present,
    /// Another artifact's entry is there; `replaced` per the policy.
    Conflict { replaced: bool },
    /// The push failed (or the remote was off).
    Failed(String),
}

/// The state of a remote entry ([`Remotes::inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    Missing,
    /// Signed by a trusted key and every object is on the remote.
    Valid {
        artifact: ArtifactHash,
        signer: String,
    },
    /// Signed by a key not trusted here (maybe valid for others).
    Untrusted {
        signer: String,
    },
    /// Present but unusable, and why.
    Broken {
        reason: String,
    },
}

/// The remotes of one run, with the keys to trust and to sign with.
pub struct Remotes {
    list: Vec<Remote>,
    trusted: TrustedKeys,
    /// `trusted` plus this runner's own public key: what push accepts as valid.
    trusted_for_push: TrustedKeys,
    signing: Option<SigningKey>,
    /// `BRR_CACHE_READ_ONLY`: never push, whatever the remotes say.
    read_only: bool,
    limits: Limits,
    on_conflict: ConflictPolicy,
    pub stats: Stats,
    notes: Mutex<Vec<String>>,
    conflicts: Mutex<Vec<Conflict>>,
    /// The budget ran out (said once).
    exhausted: AtomicBool,
    note_sink: Box<dyn Fn(&str) + Send + Sync>,
}

/// The error for an operation skipped because its remote is off.
fn off(r: &Remote) -> RemoteError {
    RemoteError::Unavailable { remote: r.backend.url().to_owned(), message: "switched off for this run".to_owned() }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
        let mut own: Vec<_> = trusted.iter().cloned().collect();
        own.extend(signing.as_ref().map(SigningKey::public));
        Self {
            list: remotes,
            trusted_for_push: TrustedKeys::new(own),
            trusted,
            signing,
            read_only,
            limits: Limits::default(),
            on_conflict: ConflictPolicy::default(),
            stats: Stats::default(),
            notes: Mutex::new(Vec::new()),
            conflicts: Mutex::new(Vec::new()),
            exhausted: AtomicBool::new(false),
            note_sink: note,
        }
    }

    /// Sets the limits (default [`Limits::default`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the conflict policy (default [`ConflictPolicy::KeepFirst`]).
    #[must_use]
    pub fn with_conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.on_conflict = policy;
        self
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

    fn live(&self) -> impl Iterator<Item = &Remote> {
        self.list.iter().filter(|r| !r.is_off())
    }

    /// What is left of the budget.
    fn remaining(&self) -> Duration {
        self.limits.budget.saturating_sub(self.stats.wait())
    }

    /// Switches every remote off, once, saying how long was spent.
    fn budget_used_up(&self) {
        for r in &self.list {
            r.breaker.switch_off();
        }
        if !self.exhausted.swap(true, Ordering::Relaxed) {
            self.note(format!(
                "warning: remote cache unavailable: the run's remote budget of {:.1}s is used up ({:.1}s spent \
                 waiting on remotes); building locally without them",
                self.limits.budget.as_secs_f64(),
                self.stats.wait().as_secs_f64()
            ));
        }
    }

    /// Counts a failed operation on `r`; switches it off (one warning with
    /// the time lost) after [`Limits::breaker`] in a row.
    fn failed(&self, r: &Remote, e: &RemoteError) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = r.breaker.failed(self.limits.breaker) {
            self.note(format!(
                "warning: remote cache unavailable: {e}; switched off for the rest of this run after {n} failures \
                 in a row ({:.1}s lost waiting on it)",
                Duration::from_nanos(r.lost_nanos.load(Ordering::Relaxed)).as_secs_f64()
            ));
        }
    }

    /// Runs `op` on `r` within the budget, retrying transient failures
    /// with backoff; a final failure counts towards the breaker.
    fn call<T>(&self, r: &Remote, op: impl Fn(&dyn Backend) -> Result<T, RemoteError>) -> Result<T, RemoteError> {
        let mut attempt = 0u32;
        loop {
            if r.is_off() {
                return Err(off(r));
            }
            let left = self.remaining();
            if left.is_zero() {
                self.budget_used_up();
                return Err(off(r));
            }
            r.backend.cap_requests(left);
            let started = Instant::now();
            let result = op(&*r.backend);
            let took = started.elapsed();
            self.stats.wait_nanos.fetch_add(nanos(took), Ordering::Relaxed);
            let e = match result {
                Ok(v) => {
                    r.breaker.succeeded();
                    return Ok(v);
                }
                Err(e) => e,
            };
            r.lost_nanos.fetch_add(nanos(took), Ordering::Relaxed);
            let backoff = self.limits.backoff.saturating_mul(1 << attempt.min(16));
            if e.is_transient() && attempt < self.limits.retries && self.remaining() > backoff {
                // Backoff before a retry: waiting is the point, not synchronisation.
                std::thread::sleep(backoff);
                self.stats.wait_nanos.fetch_add(nanos(backoff), Ordering::Relaxed);
                r.lost_nanos.fetch_add(nanos(backoff), Ordering::Relaxed);
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                continue;
            }
            if self.remaining().is_zero() {
                self.budget_used_up();
            } else {
                self.failed(r, &e);
            }
            return Err(e);
        }
    }

    /// Whether `entry` verifies against `keys`, as an [`EntryState`]
    /// (objects not checked).
    fn judge(
        entry: Result<SignedEntry, EntryError>,
        keys: &TrustedKeys,
        key: BuildKey,
    ) -> Result<SignedEntry, EntryState> {
        let entry = entry.map_err(|e| EntryState::Broken { reason: e.to_string() })?;
        match entry.verify(keys) {
            Ok(()) if entry.body.key != key => Err(EntryState::Broken { reason: "it is for another key".to_owned() }),
            Ok(()) => Ok(entry),
            Err(EntryError::UntrustedSigner { name }) => Err(EntryState::Untrusted { signer: name }),
            Err(e) => Err(EntryState::Broken { reason: e.to_string() }),
        }
    }

    /// The blobs `entry` needs, the log included.
    fn needs(entry: &SignedEntry) -> Vec<BlobId> {
        let mut ids: Vec<BlobId> = entry.body.objects.iter().map(|o| o.id).collect();
        ids.extend(entry.body.log);
        ids
    }

    /// The state of `key`'s entry on `r`: missing, valid (trusted, every
    /// object there), untrusted, or broken and why.
    pub fn inspect(&self, r: &Remote, key: BuildKey) -> Result<EntryState, RemoteError> {
        let Some(raw) = self.call(r, |b| b.get_entry(key))? else { return Ok(EntryState::Missing) };
        let entry = match Self::judge(SignedEntry::decode(&raw), &self.trusted, key) {
            Ok(e) => e,
            Err(state) => return Ok(state),
        };
        let missing = self.call(r, |b| b.missing_blobs(&Self::needs(&entry)))?;
        if missing.is_empty() {
            Ok(EntryState::Valid { artifact: entry.body.artifact, signer: entry.body.signer })
        } else {
            Ok(EntryState::Broken {
                reason: format!("the remote lacks {} of its {} objects", missing.len(), Self::needs(&entry).len()),
            })
        }
    }

    /// Looks `key` up in the remotes; on a trusted, intact entry, stores its
    /// objects and records the action locally. Returns the artifact.
    pub fn fetch(&self, store: &Store, key: BuildKey) -> Option<ArtifactHash> {
        let mut asked = false;
        for r in self.live() {
            let Ok(found) = self.call(r, |b| b.get_entry(key)) else { continue };
            asked = true;
            let Some(raw) = found else { continue };
            if let Ok(Some(a)) = self.accept(store, r, key, &raw) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Some(a);
            }
        }
        let counter = if asked { &self.stats.misses } else { &self.stats.skipped };
        counter.fetch_add(1, Ordering::Relaxed);
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
        let entry = match Self::judge(SignedEntry::decode(raw), &self.trusted, key) {
            Ok(e) => e,
            Err(EntryState::Untrusted { signer }) => {
                // One note per signer and remote, not one per target.
                self.note(format!(
                    "note: ignoring entries from `{url}` signed by `{signer}`, a key that is not trusted here"
                ));
                return Ok(None);
            }
            Err(EntryState::Broken { reason }) => {
                self.note(format!("note: ignoring the entry for {} from `{url}`: {reason}", key.short()));
                return Ok(None);
            }
            Err(EntryState::Missing | EntryState::Valid { .. }) => return Ok(None),
        };
        let body = &entry.body;
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
        let fetched: Result<Vec<Option<Fetched>>, RemoteError> = need
            .par_iter()
            .map(|o| match self.call(r, |b| b.get_blob(&o.id))? {
                Some(bytes) if o.id.matches(&bytes) => Ok(Some((*o, bytes))),
                Some(_) => Err(RemoteError::Corrupt { remote: url.to_owned(), blob: o.id.blake3.to_string() }),
                None => Ok(None),
            })
            .collect();
        let fetched: Vec<(EntryObject, Vec<u8>)> = match fetched {
            Ok(v) => v.into_iter().flatten().collect(),
            Err(e @ RemoteError::Corrupt { .. }) => {
                self.note(format!("note: ignoring the entry for {} from `{url}`: {e}", key.short()));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
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
}

/// An object and its bytes, as fetched.
type Fetched = (EntryObject, Vec<u8>);

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
