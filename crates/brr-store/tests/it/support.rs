//! Shared helpers: temp stores, files with modes, cleanup of read-only trees.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use brr_store::Store;
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh store in `<tempdir>/store`; keep the `TempDir` alive.
pub fn new_store() -> Result<(TempDir, Store), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    Ok((dir, store))
}

/// Writes `body` at `root/rel` (parents created) with `mode`.
pub fn write_file(root: &Path, rel: &str, body: &[u8], mode: u32) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, body)?;
    std::fs::set_permissions(&path, Permissions::from_mode(mode))
}

/// Makes every folder below `path` writable again, so temp dirs can be removed.
pub fn make_writable(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::set_permissions(path, Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(path)? {
            make_writable(&entry?.path())?;
        }
    }
    Ok(())
}

/// The permission bits of `path` (not following symlinks).
pub fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777)
}

/// Overwrites a CAS file (which is read-only) with `bytes`.
pub fn clobber(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(0o644))?;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, Permissions::from_mode(0o444))
}

/// `tag` repeated to just over [`brr_store::PACKED_MAX`] bytes: an object
/// big enough to get its own file in `cas/`.
pub fn big(tag: &[u8]) -> Vec<u8> {
    tag.iter().copied().cycle().take(brr_store::PACKED_MAX + 100).collect()
}

/// Overwrites the bytes of a small object in its pack with the start of
/// `bytes` (as many as the object has); returns how many objects it found.
pub fn clobber_packed(store: &Store, d: brr_hash::Digest, bytes: &[u8]) -> Result<usize, Box<dyn std::error::Error>> {
    use std::os::unix::fs::FileExt;
    let conn = rusqlite::Connection::open(store.db_path())?;
    let found: Option<(String, i64, i64)> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT p.name, o.pack_offset, o.size FROM objects o JOIN packs p ON p.id = o.pack WHERE o.hash = ?1",
        [d.as_bytes()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    ))?;
    let Some((name, offset, size)) = found else { return Ok(0) };
    let pack = std::fs::OpenOptions::new().write(true).open(store.root().join("packs").join(name))?;
    pack.write_all_at(&bytes[..bytes.len().min(usize::try_from(size)?)], u64::try_from(offset)?)?;
    Ok(1)
}
