//! Pushing a local build: upload what the remote lacks, then the signed
//! entry; heal an entry that lost objects or does not verify; keep the first
//! writer's entry on a conflict (unless the policy says replace) and record
//! the conflict in the store.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use brr_hash::{Artifact, ArtifactHash, BuildKey, Digest};
use brr_store::{CacheConflict, Store};
use rayon::prelude::*;

use super::{Conflict, ConflictPolicy, EntryState, PushOutcome, Remote, Remotes, closure, off, unix_now};
use crate::entry::{EntryBody, EntryObject, SignedEntry};
use crate::{BlobId, RemoteError};

impl Remotes {
    /// Pushes a local build to every writable remote: the objects each
    /// lacks, then the signed entry; heals a broken entry; keeps (or, per
    /// the policy, replaces) another artifact's entry and records the
    /// conflict. Returns what happened per remote (URL, outcome); empty
    /// when this run does not push.
    pub fn push(
        &self,
        store: &Store,
        key: BuildKey,
        artifact: ArtifactHash,
        log: Option<Digest>,
    ) -> Vec<(String, PushOutcome)> {
        let Some(signing) = self.signing.as_ref().filter(|_| !self.read_only) else { return Vec::new() };
        let writable = || self.list.iter().filter(|r| !r.read_only);
        let fail_all =
            |why: String| writable().map(|r| (r.backend.url().to_owned(), PushOutcome::Failed(why.clone()))).collect();
        let (objects, contents) = match closure(store, artifact, log) {
            Ok(c) => c,
            Err(e) => {
                self.note(format!("warning: cannot push {}: {e}", key.short()));
                return fail_all(e.to_string());
            }
        };
        let outputs = match store.get_object::<Artifact>(artifact.0) {
            Ok(a) => a.outputs,
            Err(e) => {
                self.note(format!("warning: cannot push {}: {e}", key.short()));
                return fail_all(e.to_string());
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
        let local = Local { store, key, artifact, objects: &objects, contents: &contents, entry: &entry };
        writable()
            .map(|r| {
                let outcome = if r.is_off() {
                    PushOutcome::Failed(off(r).to_string())
                } else {
                    self.push_to(r, &local).unwrap_or_else(|e| {
                        self.note(format!("warning: could not push {}: {e}", key.short()));
                        PushOutcome::Failed(e.to_string())
                    })
                };
                (r.backend.url().to_owned(), outcome)
            })
            .collect()
    }

    fn push_to(&self, r: &Remote, l: &Local<'_>) -> Result<PushOutcome, RemoteError> {
        let raw = self.call(r, |b| b.get_entry(l.key))?;
        let decoded = raw.as_deref().map(SignedEntry::decode);
        let their_artifact = decoded.as_ref().and_then(|d| d.as_ref().ok()).map(|e| e.body.artifact);
        let theirs = decoded.map(|d| Self::judge(d, &self.trusted_for_push, l.key));
        let outcome = match theirs {
            // No entry (`judge` refuses only as broken or untrusted).
            None | Some(Err(EntryState::Missing | EntryState::Valid { .. })) => {
                self.upload_missing(r, l.objects, l.contents)?;
                PushOutcome::Written
            }
            // Present but broken: replace it.
            Some(Err(EntryState::Broken { .. })) => {
                self.upload_missing(r, l.objects, l.contents)?;
                PushOutcome::Healed
            }
            Some(Ok(theirs)) if theirs.body.artifact == l.artifact => {
                // The same artifact: make sure everything it names is there.
                let needed = Self::needs(&theirs);
                let missing = self.call(r, |b| b.missing_blobs(&needed))?;
                if missing.is_empty() {
                    return Ok(PushOutcome::Present);
                }
                let ours: HashSet<[u8; 32]> = l.objects.iter().map(|o| o.id.sha256).collect();
                self.upload_missing(r, l.objects, l.contents)?;
                if missing.iter().all(|m| ours.contains(&m.sha256)) {
                    // Their entry is whole again (its log may differ from ours).
                    self.stats.healed.fetch_add(1, Ordering::Relaxed);
                    return Ok(PushOutcome::Healed);
                }
                PushOutcome::Healed
            }
            Some(Ok(theirs)) => {
                // A valid entry for another artifact: whole, or broken?
                let missing = self.call(r, |b| b.missing_blobs(&Self::needs(&theirs)))?;
                if missing.is_empty() {
                    return self.conflict(r, l, &theirs.body.artifact, &theirs.body.signer);
                }
                self.upload_missing(r, l.objects, l.contents)?;
                PushOutcome::Healed
            }
            Some(Err(EntryState::Untrusted { signer })) => {
                // Another trust domain's entry; we cannot check it, so it is
                // treated as valid: the same artifact needs nothing from us,
                // another one is a conflict.
                match their_artifact {
                    Some(a) if a == l.artifact => return Ok(PushOutcome::Present),
                    Some(a) => return self.conflict(r, l, &a, &signer),
                    None => {
                        self.upload_missing(r, l.objects, l.contents)?;
                        PushOutcome::Healed
                    }
                }
            }
        };
        self.call(r, |b| b.put_entry(l.key, l.entry))?;
        self.stats.bytes_up.fetch_add(l.entry.len() as u64, Ordering::Relaxed);
        self.stats.pushed.fetch_add(1, Ordering::Relaxed);
        if outcome == PushOutcome::Healed {
            self.stats.healed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    /// Records and reports a conflict; replaces the remote entry only under
    /// [`ConflictPolicy::Replace`].
    fn conflict(
        &self,
        r: &Remote,
        l: &Local<'_>,
        theirs: &ArtifactHash,
        signer: &str,
    ) -> Result<PushOutcome, RemoteError> {
        let conflict = Conflict {
            key: l.key,
            remote: r.backend.url().to_owned(),
            local: l.artifact,
            theirs: *theirs,
            signer: signer.to_owned(),
        };
        let replaced = self.on_conflict == ConflictPolicy::Replace;
        self.note(format!(
            "warning: not reproducible: key {} built to {} here but to {} by `{}` (in `{}`); {}",
            l.key.short(),
            l.artifact.short(),
            theirs.short(),
            signer,
            conflict.remote,
            if replaced { "replaced their entry" } else { "kept their entry (the first writer's)" }
        ));
        let now = unix_now();
        if let Err(e) = l.store.record_cache_conflict(&CacheConflict {
            key: l.key,
            remote: conflict.remote.clone(),
            local: l.artifact,
            theirs: *theirs,
            signer: signer.to_owned(),
            first_seen: now,
            last_seen: now,
        }) {
            self.note(format!("warning: cannot record the conflict on {}: {e}", l.key.short()));
        }
        self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
        self.conflicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conflict);
        if replaced {
            self.upload_missing(r, l.objects, l.contents)?;
            self.call(r, |b| b.put_entry(l.key, l.entry))?;
            self.stats.pushed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(PushOutcome::Conflict { replaced })
    }

    /// Uploads the objects `r` lacks, each at most once per run (blobs
    /// shared by several targets, such as the empty file, are claimed by the
    /// first push that needs them).
    fn upload_missing(&self, r: &Remote, objects: &[EntryObject], contents: &[Vec<u8>]) -> Result<(), RemoteError> {
        let ids: Vec<BlobId> = objects.iter().map(|o| o.id).collect();
        let missing = self.call(r, |b| b.missing_blobs(&ids))?;
        let missing: HashSet<[u8; 32]> = missing.iter().map(|m| m.sha256).collect();
        let uploads: Vec<(BlobId, &Vec<u8>)> = {
            let mut present = r.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut seen = HashSet::new();
            ids.iter()
                .zip(contents)
                .filter(|(id, _)| missing.contains(&id.sha256) && seen.insert(id.sha256) && present.insert(id.sha256))
                .map(|(id, b)| (*id, b))
                .collect()
        };
        let result = uploads.par_iter().try_for_each(|(id, bytes)| self.call(r, |b| b.put_blob(id, bytes)));
        if result.is_err() {
            // Not uploaded after all: let a later push try again.
            let mut present = r.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, _) in &uploads {
                present.remove(&id.sha256);
            }
        }
        result?;
        let up: usize = uploads.iter().map(|(_, b)| b.len()).sum();
        self.stats.bytes_up.fetch_add(up as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A local build being pushed.
struct Local<'a> {
    store: &'a Store,
    key: BuildKey,
    artifact: ArtifactHash,
    objects: &'a [EntryObject],
    contents: &'a [Vec<u8>],
    entry: &'a [u8],
}
