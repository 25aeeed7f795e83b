//! A remote cache in a shared folder (`file://DIR`, e.g. an NFS mount).
//!
//! Layout, the same names as the HTTP protocol's paths:
//!
//! | what | file |
//! |---|---|
//! | blob | `DIR/cas/<sha256 hex>` |
//! | action-cache entry | `DIR/ac/<hex of action_id(key)>` |
//!
//! Writes go to a temporary file in the same folder (`.tmp-…`, never a valid
//! name) and are renamed into place, so readers see a whole file or none;
//! rename replaces an older entry atomically. Nothing is synced to disk: a
//! blob torn by a crash fails its hash check when read, like any corrupt
//! blob. Files are created `0666` less the umask, so a group-shared folder
//! works with a group-friendly umask.
//!
//! `DIR` itself must exist: it is never created, so an unmounted share is
//! reported as unavailable instead of silently filling a local folder.
//! The path after `file://` is taken literally (no percent-decoding); a
//! relative one is relative to the working directory.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use brr_hash::BuildKey;
use rayon::prelude::*;

use crate::{Backend, BlobId, RemoteError, action_id, hex};

/// A `file://` remote.
#[derive(Debug, Clone)]
pub struct FileBackend {
    url: String,
    root: PathBuf,
}

impl FileBackend {
    /// The remote at `file://DIR`. Does not touch the filesystem.
    pub fn new(url: &str) -> Result<Self, RemoteError> {
        match url.strip_prefix("file://") {
            Some(dir) if !dir.is_empty() => Ok(Self { url: url.to_owned(), root: PathBuf::from(dir) }),
            _ => Err(RemoteError::Url { url: url.to_owned() }),
        }
    }

    /// The shared folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.root.join("cas").join(id.sha256_hex())
    }

    fn entry_path(&self, key: BuildKey) -> PathBuf {
        self.root.join("ac").join(hex(&action_id(key)))
    }

    fn unavailable(&self, message: String) -> RemoteError {
        RemoteError::Unavailable { remote: self.url.clone(), message }
    }

    /// An I/O error on `path`: refused when permissions forbid it, else unavailable.
    fn io_error(&self, what: &str, path: &Path, e: &std::io::Error) -> RemoteError {
        let message = format!("`{}`: {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            RemoteError::Refused { remote: self.url.clone(), what: what.to_owned(), message }
        } else {
            self.unavailable(format!("cannot {what}: {message}"))
        }
    }

    /// Fails when the shared folder itself is missing (an unmounted share).
    fn check_root(&self) -> Result<(), RemoteError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(self.unavailable(format!("the folder `{}` does not exist", self.root.display())))
        }
    }

    fn read(&self, what: &str, path: &Path) -> Result<Option<Vec<u8>>, RemoteError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.check_root().map(|()| None),
            Err(e) => Err(self.io_error(what, path, &e)),
        }
    }

    /// Writes `bytes` to `path` through a temporary file and a rename.
    fn write(&self, what: &str, path: &Path, bytes: &[u8]) -> Result<(), RemoteError> {
        self.check_root()?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| self.io_error(what, dir, &e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| self.io_error(what, dir, &e))?;
        tmp.write_all(bytes).map_err(|e| self.io_error(what, tmp.path(), &e))?;
        tmp.persist(path).map_err(|e| self.io_error(what, path, &e.error))?;
        Ok(())
    }
}

impl Backend for FileBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get_blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>, RemoteError> {
        self.read("read a blob", &self.blob_path(id))
    }

    fn put_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<(), RemoteError> {
        self.write("store a blob", &self.blob_path(id), bytes)
    }

    /// A stored blob whose size differs from its id's (torn, truncated) counts
    /// as missing, so it is uploaded again.
    fn missing_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>, RemoteError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.check_root()?;
        let present: Vec<bool> = ids
            .par_iter()
            .map(|id| {
                let path = self.blob_path(id);
                match std::fs::metadata(&path) {
                    Ok(m) => Ok(m.is_file() && m.len() == id.size),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(self.io_error("look up a blob", &path, &e)),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(ids.iter().zip(present).filter(|(_, p)| !p).map(|(id, _)| *id).collect())
    }

    fn get_entry(&self, key: BuildKey) -> Result<Option<Vec<u8>>, RemoteError> {
        self.read("read an entry", &self.entry_path(key))
    }

    fn put_entry(&self, key: BuildKey, entry: &[u8]) -> Result<(), RemoteError> {
        self.write("store an entry", &self.entry_path(key), entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(FileBackend::new("file:///srv/cache").unwrap().root(), Path::new("/srv/cache"));
        assert!(matches!(FileBackend::new("file://"), Err(RemoteError::Url { .. })));
        assert!(matches!(FileBackend::new("/srv/cache"), Err(RemoteError::Url { .. })));
    }

    #[test]
    fn a_missing_folder_is_unavailable_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("not-mounted");
        let b = FileBackend::new(&format!("file://{}", root.display())).unwrap();
        let id = BlobId::of(b"x");
        assert!(matches!(b.get_blob(&id), Err(RemoteError::Unavailable { .. })));
        assert!(matches!(b.put_blob(&id, b"x"), Err(RemoteError::Unavailable { .. })));
        assert!(matches!(b.missing_blobs(&[id]), Err(RemoteError::Unavailable { .. })));
        assert!(!root.exists());
    }
}
