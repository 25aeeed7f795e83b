//! `Store::repair`: makes a damaged store sound again by forgetting what is
//! damaged, so that the next build or fetch puts it back.
//!
//! Nothing good is rewritten and no bytes are invented: a recorded object
//! whose bytes are missing, corrupt or invalid loses its row, and so does
//! everything that references it, transitively (trees holding it, artifacts
//! of those trees, keys naming them, action-cache entries, history rows,
//! verifications and roots), which keeps the rows closed under references. A row whose
//! own values do not decode is dropped too. The next build then misses the
//! cache where it must and rebuilds, writing the objects afresh.
//!
//! All of it is one write transaction, which holds the store's write lock
//! from the scan to the commit: no other process records anything that the
//! scan did not see (a new row referencing a dropped object), and a
//! `kill -9` before the commit changes nothing. Corrupt CAS files are moved
//! out before the commit; see [`Store::quarantine`].

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use brr_hash::Digest;

use crate::db::TxError;
use crate::error::IoContext;
use crate::objects::satisfies;
use crate::verify::{Scan, Table};
use crate::{Store, StoreError, TEMP_PREFIX, VerifyReport};

/// What [`Store::repair`] found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// What the store looked like before (as [`Store::verify`] reports it).
    pub found: VerifyReport,
    /// `objects` rows removed (with any bytes of theirs in the database).
    pub objects: u64,
    /// Action-cache entries removed.
    pub actions: u64,
    /// Build-history rows removed.
    pub builds: u64,
    /// Verification rows removed.
    pub verifications: u64,
    /// Stat-cache rows removed.
    pub stat_entries: u64,
    /// Roots removed: their object was damaged and dropped (a later put
    /// does not bring a root back: pin it again).
    pub roots: u64,
    /// Corrupt files removed from `cas/`.
    pub files: u64,
}

/// Makes quarantine names unique within a process.
static QUARANTINE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Scans the store as [`Store::verify`] does and, in the same write
    /// transaction, removes every damaged row and every row that depends on
    /// one (see the module docs), and corrupt files in `cas/`. Damage inside
    /// SQLite's own structures (`quick_check`) and unexpected entries in
    /// `cas/` are reported, not repaired. Other writers wait while it runs.
    pub fn repair(&self) -> Result<RepairReport, StoreError> {
        self.db.write(|tx| {
            let scan = self.scan(tx)?;
            let mut out = RepairReport::default();
            let dropped = dropped_objects(&scan);
            for d in &dropped {
                out.objects +=
                    tx.prepare_cached("DELETE FROM objects WHERE hash = ?1")?.execute([d.as_bytes()])? as u64;
                tx.prepare_cached("DELETE FROM object_data WHERE hash = ?1")?.execute([d.as_bytes()])?;
            }
            for d in &scan.stray_data {
                tx.prepare_cached("DELETE FROM object_data WHERE hash = ?1")?.execute([d.as_bytes()])?;
            }
            let kept = |r: &Digest, expected| {
                !dropped.contains(r) && scan.objects.get(r).is_some_and(|(k, _)| satisfies(*k, expected))
            };
            for row in &scan.rows {
                if row.problem.is_none() && row.refs.iter().all(|(r, k)| kept(r, *k)) {
                    continue;
                }
                let n = tx.prepare_cached(row.table.delete_sql())?.execute([&row.id])? as u64;
                match row.table {
                    Table::ActionCache => out.actions += n,
                    Table::Builds => out.builds += n,
                    Table::Verifications => out.verifications += n,
                    Table::StatCache => out.stat_entries += n,
                    Table::Roots => out.roots += n,
                }
            }
            // Before the commit: while this transaction holds the write lock,
            // no row can be committed for a file being moved (see
            // `quarantine`).
            for (path, ino) in &scan.corrupt_files {
                out.files += u64::from(self.quarantine(path, *ino)?);
            }
            if !scan.corrupt_files.is_empty() {
                self.sync_fs()?;
            }
            out.found = scan.report;
            Ok(out)
        })
    }

    /// Removes the corrupt CAS file at `path`, which was hashed as inode
    /// `ino`. Another process may have put the object meanwhile, replacing
    /// the file with good bytes (renamed over it): the file is therefore
    /// first moved to `tmp/` and removed only if it is the inode that was
    /// hashed, else moved back (a good copy, like any other writer's).
    /// Returns whether a corrupt file was removed.
    fn quarantine(&self, path: &Path, ino: u64) -> Result<bool, TxError> {
        let n = QUARANTINE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let aside = self.tmp_dir().join(format!("{TEMP_PREFIX}{}-bad-{n}", std::process::id()));
        match std::fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }.into()),
        }
        if std::fs::symlink_metadata(&aside).at(&aside)?.ino() == ino {
            std::fs::remove_file(&aside).at(&aside)?;
            Ok(true)
        } else {
            std::fs::rename(&aside, path).at(path)?;
            Ok(false)
        }
    }
}

/// The damaged objects, and every object that references one or
/// references an object not recorded with the kind it needs, transitively.
fn dropped_objects(scan: &Scan) -> HashSet<Digest> {
    let mut referrers: HashMap<Digest, Vec<Digest>> = HashMap::new();
    let mut dropped = scan.bad.clone();
    let mut todo: Vec<Digest> = dropped.iter().copied().collect();
    for &(owner, r, expected) in &scan.refs {
        referrers.entry(r).or_default().push(owner);
        if !scan.objects.get(&r).is_some_and(|(k, _)| satisfies(*k, expected)) && dropped.insert(owner) {
            todo.push(owner);
        }
    }
    while let Some(d) = todo.pop() {
        for &owner in referrers.get(&d).into_iter().flatten() {
            if dropped.insert(owner) {
                todo.push(owner);
            }
        }
    }
    dropped
}
