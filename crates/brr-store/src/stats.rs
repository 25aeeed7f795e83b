//! [`Store::stats`]: what the store holds, by kind and by pack, for people
//! deciding what to collect.

use brr_hash::{ArtifactHash, Digest, ObjectKind};

use crate::db::{KindCol, from_sql_u64};
use crate::error::IoContext;
use crate::{Store, StoreError};

/// One pack file: its size on disk and how much of it live rows name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackStats {
    pub name: String,
    pub file_bytes: u64,
    pub live_bytes: u64,
}

impl PackStats {
    /// The fraction of the file no row names (what compaction frees).
    #[expect(clippy::cast_precision_loss, reason = "a ratio for people")]
    pub fn dead_fraction(&self) -> f64 {
        if self.file_bytes == 0 {
            0.0
        } else {
            self.file_bytes.saturating_sub(self.live_bytes) as f64 / self.file_bytes as f64
        }
    }
}

/// What [`Store::stats`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Objects by kind (every kind, in [`ObjectKind::ALL`] order): kind, count, bytes.
    pub by_kind: Vec<(ObjectKind, u64, u64)>,
    pub packs: Vec<PackStats>,
    /// Roots (pins among them).
    pub roots: u64,
}

impl Store {
    /// Counts objects and bytes by kind, and each pack's size and live bytes.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let (by_kind, packs, roots) = self.db.read(|tx| {
            let mut by_kind: Vec<(ObjectKind, u64, u64)> = ObjectKind::ALL.iter().map(|k| (*k, 0, 0)).collect();
            let mut stmt = tx.prepare("SELECT kind, count(*), sum(size) FROM objects GROUP BY kind")?;
            let mut q = stmt.query([])?;
            while let Some(r) = q.next()? {
                let kind = r.get::<_, KindCol>(0)?.0;
                if let Some(slot) = by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
                    slot.1 = from_sql_u64(r.get(1)?);
                    slot.2 = from_sql_u64(r.get::<_, Option<i64>>(2)?.unwrap_or(0));
                }
            }
            let mut stmt = tx.prepare(
                "SELECT p.name, coalesce((SELECT sum(size) FROM objects o WHERE o.pack = p.id), 0) FROM packs p ORDER BY p.name",
            )?;
            let packs: Vec<(String, i64)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            let roots: i64 = tx.query_row("SELECT count(*) FROM roots", [], |r| r.get(0))?;
            Ok((by_kind, packs, from_sql_u64(roots)))
        })?;
        let mut out = StoreStats { by_kind, packs: Vec::new(), roots };
        for (name, live) in packs {
            let path = self.packs_dir().join(&name);
            let file_bytes = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e).at(&path),
            };
            out.packs.push(PackStats { name, file_bytes, live_bytes: from_sql_u64(live) });
        }
        Ok(out)
    }

    /// The objects of `artifact`'s closure (its outputs' blobs and trees,
    /// and itself), and their total size.
    pub fn closure_size(&self, artifact: ArtifactHash) -> Result<(u64, u64), StoreError> {
        let order = self.export_order(artifact.0, ObjectKind::Artifact)?;
        let digests: Vec<Digest> = order.into_iter().map(|(_, d)| d).collect();
        self.db.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT size FROM objects WHERE hash = ?1")?;
            let mut bytes = 0;
            for d in &digests {
                bytes += from_sql_u64(stmt.query_row([d.as_bytes()], |r| r.get(0))?);
            }
            Ok((digests.len() as u64, bytes))
        })
    }
}
