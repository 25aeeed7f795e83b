//! An artifact's closure: every object needed to materialize it elsewhere
//! (its outputs' blobs, their trees children-first, the artifact itself),
//! read for pushing or exporting.

use std::collections::HashSet;

use brr_hash::{Artifact, ArtifactHash, Digest, EntryKind, Object, ObjectKind, Tree, TreeHash};

use crate::{Store, StoreError};

impl Store {
    /// The bytes of every object `artifact` references, each once, with its
    /// kind: the blobs below its outputs tree, the trees children-first,
    /// then the artifact, then `log` when given. Written to another store in
    /// this order, every object's references are there before it.
    pub fn closure(
        &self,
        artifact: ArtifactHash,
        log: Option<Digest>,
    ) -> Result<Vec<(ObjectKind, Vec<u8>)>, StoreError> {
        let mut objects = Vec::new();
        let art_bytes = self.get(artifact.0)?;
        let art = Artifact::decode(&art_bytes).map_err(|source| StoreError::Invalid {
            hash: artifact.0,
            kind: ObjectKind::Artifact,
            source,
        })?;
        let mut trees = Vec::new();
        let mut seen = HashSet::new();
        self.walk(art.outputs, &mut trees, &mut seen, &mut objects)?;
        objects.extend(trees.into_iter().map(|bytes| (ObjectKind::Tree, bytes)));
        objects.push((ObjectKind::Artifact, art_bytes));
        if let Some(l) = log {
            objects.push((ObjectKind::Blob, self.get(l)?));
        }
        Ok(objects)
    }

    /// Adds the blobs below `tree` to `blobs` and collects the trees
    /// children-first; `seen` holds the entries already visited.
    fn walk(
        &self,
        tree: TreeHash,
        trees: &mut Vec<Vec<u8>>,
        seen: &mut HashSet<Digest>,
        blobs: &mut Vec<(ObjectKind, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let bytes = self.get(tree.0)?;
        let t = Tree::decode(&bytes).map_err(|source| StoreError::Invalid {
            hash: tree.0,
            kind: ObjectKind::Tree,
            source,
        })?;
        for e in &t.entries {
            if !seen.insert(e.hash) {
                continue;
            }
            if e.kind == EntryKind::Dir {
                self.walk(TreeHash(e.hash), trees, seen, blobs)?;
            } else {
                blobs.push((ObjectKind::Blob, self.get(e.hash)?));
            }
        }
        trees.push(bytes);
        Ok(())
    }
}
