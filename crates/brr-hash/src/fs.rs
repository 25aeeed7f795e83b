//! Hashing files and folders into blobs and Merkle trees.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::{BlobHash, Digest, EntryKind, HashedBytes, Object, Tree, TreeEntry, TreeHash};

/// Files at least this large are hashed memory-mapped and multi-threaded.
const MMAP_THRESHOLD: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("`{path}`: file names must be UTF-8")]
    NonUtf8 { path: PathBuf },
    #[error("`{path}`: symlink to `{target}` escapes the output folder")]
    EscapingSymlink { path: PathBuf, target: PathBuf },
    #[error("`{path}`: unsupported file type (only files, symlinks and folders)")]
    Special { path: PathBuf },
    #[error("`{path}`: two entries named the same")]
    Duplicate { path: String },
}

/// BLAKE3 of a file's bytes, and its length.
pub fn hash_file(path: &Path) -> Result<(BlobHash, u64), FsError> {
    hash_file_holding(path, fs_err::metadata(path)?.len(), 0).map(|(hash, len, _)| (hash, len))
}

/// BLAKE3 and length of the file at `path`, whose length `len` was just
/// stat'ed (it only picks how the file is read: no second stat), with its
/// bytes when it is at most `hold_max` long (read once, for callers that
/// store them next).
pub fn hash_file_holding(
    path: &Path,
    len: u64,
    hold_max: u64,
) -> Result<(BlobHash, u64, Option<HashedBytes>), FsError> {
    let mut hasher = blake3::Hasher::new();
    if len >= MMAP_THRESHOLD {
        hasher.update_mmap_rayon(path).map_err(|e| with_path(&e, path))?;
        return Ok((BlobHash(hasher.finalize().into()), len, None));
    }
    let mut f = std::fs::File::open(path).map_err(|e| with_path(&e, path))?;
    // The `len` bytes, then `read_to_end` finds the end (or what the file
    // grew by) with a small read of its own. A held 4 KiB file takes one
    // page, not two.
    let mut buf = read_len(&mut f, len).map_err(|e| with_path(&e, path))?;
    // `Read::read_to_end` on a `File` would stat it again for a size hint.
    (&mut f).take(u64::MAX).read_to_end(&mut buf).map_err(|e| with_path(&e, path))?;
    hasher.update(&buf);
    let len = buf.len() as u64;
    let hash = BlobHash(hasher.finalize().into());
    Ok((hash, len, (len <= hold_max).then(|| HashedBytes::hashed_by(buf, &hasher))))
}

/// The first `len` bytes of `reader` (fewer if it ends sooner), in one
/// `read` when they are there: `read_to_end` without a size hint starts at
/// 8 KiB and doubles, five reads for 72 KiB.
pub fn read_len(reader: &mut impl Read, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).unwrap_or(0)];
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn with_path(e: &std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{e}: `{}`", path.display()))
}

/// A leaf of a tree being assembled: what sits at one relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub kind: EntryKind,
    pub hash: Digest,
    pub size: u64,
}

/// Builds nested [`Tree`]s from `relative/path → leaf` pairs.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    dirs: BTreeMap<String, Node>,
    leaves: BTreeMap<String, Leaf>,
}

/// A finished tree: the root hash and every tree object below it (root included).
#[derive(Debug)]
pub struct BuiltTree {
    pub root: TreeHash,
    pub trees: Vec<(TreeHash, Vec<u8>)>,
}

impl TreeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a leaf at a `/`-separated relative path; parent folders are implied.
    pub fn insert(&mut self, rel: &str, leaf: Leaf) -> Result<(), FsError> {
        let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let name = parts.pop().ok_or_else(|| FsError::Duplicate { path: rel.to_owned() })?;
        let mut node = &mut self.root;
        for p in parts {
            node = node.dirs.entry(p.to_owned()).or_default();
        }
        if node.dirs.contains_key(name) || node.leaves.insert(name.to_owned(), leaf).is_some() {
            return Err(FsError::Duplicate { path: rel.to_owned() });
        }
        Ok(())
    }

    /// Adds an empty folder (empty folders are part of a tree's identity).
    pub fn insert_dir(&mut self, rel: &str) {
        let mut node = &mut self.root;
        for p in rel.split('/').filter(|p| !p.is_empty()) {
            node = node.dirs.entry(p.to_owned()).or_default();
        }
    }

    pub fn finish(self) -> BuiltTree {
        let mut trees = Vec::new();
        let (root, _) = Self::finish_node(self.root, &mut trees);
        BuiltTree { root, trees }
    }

    fn finish_node(node: Node, out: &mut Vec<(TreeHash, Vec<u8>)>) -> (TreeHash, u64) {
        let mut entries: Vec<TreeEntry> = Vec::with_capacity(node.dirs.len() + node.leaves.len());
        for (name, child) in node.dirs {
            let (hash, size) = Self::finish_node(child, out);
            entries.push(TreeEntry { name, kind: EntryKind::Dir, hash: hash.0, size });
        }
        for (name, leaf) in node.leaves {
            entries.push(TreeEntry { name, kind: leaf.kind, hash: leaf.hash, size: leaf.size });
        }
        // Names are unique across dirs and leaves, so byte order is a total order.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree { entries };
        let size = tree.total_size();
        let bytes = tree.encode();
        let hash = TreeHash(Digest::of(&bytes));
        out.push((hash, bytes));
        (hash, size)
    }
}

/// A file found while snapshotting a folder: where it is and what it hashes to.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub rel: String,
    pub leaf: Leaf,
    /// The bytes hashed, for a file no larger than the snapshot's `hold_max`.
    pub bytes: Option<HashedBytes>,
}

/// A folder hashed as a Merkle tree, with the files (and symlink targets) to store.
#[derive(Debug)]
pub struct Snapshot {
    pub tree: BuiltTree,
    pub files: Vec<SnapshotFile>,
    /// Symlink targets, stored as blobs so a tree can be materialized again.
    pub link_targets: Vec<(Digest, Vec<u8>)>,
}

/// Hashes the entries `names` (relative paths) below `root`, each being a file,
/// symlink or folder (taken whole). Symlinks must stay inside `root`.
pub fn snapshot(root: &Path, names: &[String]) -> Result<Snapshot, FsError> {
    snapshot_holding(root, names, 0)
}

/// [`snapshot`], keeping the bytes of every file of at most `hold_max`
/// bytes: each file is read once, whether it is then stored or not.
pub fn snapshot_holding(root: &Path, names: &[String], hold_max: u64) -> Result<Snapshot, FsError> {
    let mut builder = TreeBuilder::new();
    let mut files = Vec::new();
    let mut link_targets = Vec::new();
    for name in names {
        let start = root.join(name);
        let meta = fs_err::symlink_metadata(&start)?;
        for (path, meta) in walkdir_sorted(start, meta)? {
            let rel_path = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let rel = rel_path.to_str().ok_or_else(|| FsError::NonUtf8 { path: path.clone() })?.to_owned();
            let ft = meta.file_type();
            if ft.is_dir() {
                builder.insert_dir(&rel);
            } else if ft.is_symlink() {
                let target = fs_err::read_link(&path)?;
                check_link(root, &path, &rel_path, &target)
                    .map_err(|()| FsError::EscapingSymlink { path: rel_path.clone(), target: target.clone() })?;
                let bytes = target.to_str().ok_or_else(|| FsError::NonUtf8 { path: path.clone() })?.as_bytes().to_vec();
                let hash = Digest::of(&bytes);
                builder.insert(&rel, Leaf { kind: EntryKind::Symlink, hash, size: bytes.len() as u64 })?;
                link_targets.push((hash, bytes));
            } else if ft.is_file() {
                let (hash, size, bytes) = hash_file_holding(&path, meta.len(), hold_max)?;
                let kind = if meta.permissions().mode() & 0o111 != 0 { EntryKind::Executable } else { EntryKind::File };
                let leaf = Leaf { kind, hash: hash.0, size };
                builder.insert(&rel, leaf.clone())?;
                files.push(SnapshotFile { path, rel, leaf, bytes });
            } else {
                return Err(FsError::Special { path });
            }
        }
    }
    Ok(Snapshot { tree: builder.finish(), files, link_targets })
}

/// `start` (whose metadata is `meta`) and, when it is a real folder,
/// everything below it, each with its own metadata (not following symlinks).
fn walkdir_sorted(start: PathBuf, meta: std::fs::Metadata) -> Result<Vec<(PathBuf, std::fs::Metadata)>, FsError> {
    let is_dir = meta.is_dir();
    let mut out = vec![(start, meta)];
    if is_dir {
        let dir = out[0].0.clone();
        let mut children: Vec<PathBuf> =
            fs_err::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        children.sort();
        for c in children {
            let meta = fs_err::symlink_metadata(&c)?;
            out.extend(walkdir_sorted(c, meta)?);
        }
    }
    Ok(out)
}

/// A symlink at `rel` (relative to the root) may point only at a relative
/// path that stays within the root: lexically (no `..` above the root), and
/// once resolved, since a `..` after another symlink (`u -> .`) climbs from
/// wherever that symlink leads. A dangling link may not use `..` at all.
fn check_link(root: &Path, path: &Path, rel: &Path, target: &Path) -> Result<(), ()> {
    if target.is_absolute() {
        return Err(());
    }
    // Depth of the link's folder below the root; `..` may not go above it.
    let mut depth = i64::try_from(rel.components().count()).unwrap_or(i64::MAX) - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(()),
        }
        if depth < 0 {
            return Err(());
        }
    }
    let has_parent = target.components().any(|c| c == Component::ParentDir);
    match (std::fs::canonicalize(path), std::fs::canonicalize(root)) {
        (Ok(resolved), Ok(root)) if resolved.starts_with(&root) => Ok(()),
        (Ok(_), Ok(_)) => Err(()),
        // Dangling: what it would resolve to cannot be checked.
        _ if has_parent => Err(()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(dir: &Path, rel: &str, body: &str) {
        let p = dir.join(rel);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, body).unwrap();
    }

    #[test]
    fn snapshot_holding_keeps_small_files_only_and_hashes_the_same() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "o/small", "tiny");
        write(d.path(), "o/large", &"x".repeat(5000));
        let names = vec!["o".to_owned()];
        let plain = snapshot(d.path(), &names).unwrap();
        let held = snapshot_holding(d.path(), &names, 100).unwrap();
        assert_eq!(plain.tree.root, held.tree.root);
        assert!(plain.files.iter().all(|f| f.bytes.is_none()));
        let bytes: Vec<(&str, Option<&[u8]>)> =
            held.files.iter().map(|f| (f.rel.as_str(), f.bytes.as_ref().map(HashedBytes::bytes))).collect();
        assert_eq!(bytes, vec![("o/large", None), ("o/small", Some(&b"tiny"[..]))]);
        // The digest held with the bytes is theirs, and the leaf's.
        let small = &held.files[1];
        assert_eq!(small.bytes.as_ref().map(HashedBytes::digest), Some(Digest::of(b"tiny")));
        assert_eq!(small.leaf.hash, Digest::of(b"tiny"));
        let missing = snapshot_holding(d.path(), &["nope".to_owned()], 100).expect_err("missing output");
        assert!(matches!(&missing, FsError::Io(e) if e.kind() == std::io::ErrorKind::NotFound), "{missing}");
    }

    #[test]
    fn same_content_same_tree_regardless_of_location_and_mtime() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            write(d, "x/one.txt", "1");
            write(d, "x/sub/two.txt", "2");
        }
        let names = vec!["x".to_owned()];
        let ta = snapshot(a.path(), &names).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs_err::write(b.path().join("x/one.txt"), "1").unwrap();
        let tb = snapshot(b.path(), &names).unwrap();
        assert_eq!(ta.tree.root, tb.tree.root);
        assert_eq!(ta.files.len(), 2);
    }

    #[test]
    fn executable_bit_and_content_change_the_tree() {
        let a = tempfile::tempdir().unwrap();
        write(a.path(), "f", "x");
        let names = vec!["f".to_owned()];
        let before = snapshot(a.path(), &names).unwrap().tree.root;
        fs_err::set_permissions(a.path().join("f"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = snapshot(a.path(), &names).unwrap().tree.root;
        assert_ne!(before, exec);
        write(a.path(), "f", "y");
        assert_ne!(exec, snapshot(a.path(), &names).unwrap().tree.root);
    }

    #[test]
    fn escaping_symlinks_are_refused() {
        let a = tempfile::tempdir().unwrap();
        write(a.path(), "out/f", "x");
        symlink("f", a.path().join("out/ok")).unwrap();
        symlink("../../etc/passwd", a.path().join("out/bad")).unwrap();
        let ok = snapshot(a.path(), &["out/ok".to_owned()]);
        assert!(ok.is_ok(), "{ok:?}");
        let bad = snapshot(a.path(), &["out/bad".to_owned()]).unwrap_err();
        assert!(matches!(bad, FsError::EscapingSymlink { .. }), "{bad}");
        symlink("/etc/passwd", a.path().join("out/abs")).unwrap();
        assert!(snapshot(a.path(), &["out/abs".to_owned()]).is_err());
    }

    #[test]
    fn a_dot_dot_through_another_symlink_is_refused() {
        let a = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(a.path().join("out")).unwrap();
        symlink(".", a.path().join("out/u")).unwrap();
        // Lexically one level down, really `out/../f`: the file beside `out`.
        symlink("u/u/../f", a.path().join("out/x")).unwrap();
        write(a.path(), "f", "outside");
        let root = a.path().join("out");
        let e = snapshot(&root, &["u".to_owned(), "x".to_owned()]).unwrap_err();
        assert!(matches!(e, FsError::EscapingSymlink { .. }), "{e}");
        assert!(snapshot(&root, &["u".to_owned()]).is_ok());
    }

    #[test]
    fn large_files_hash_like_small_ones() {
        let a = tempfile::tempdir().unwrap();
        let data = vec![7u8; 3 << 20];
        fs_err::write(a.path().join("big"), &data).unwrap();
        assert_eq!(hash_file(&a.path().join("big")).unwrap().0.0, Digest::of(&data));
    }
}
