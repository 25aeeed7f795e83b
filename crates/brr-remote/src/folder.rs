//! Folders as REAPI `Directory` trees, both ways: what the remote-execution
//! client uploads as an input root and the worker returns as outputs, and
//! what each writes back to disk. One implementation, so the checks on
//! names that arrive from a server (no `/`, `.` or `..`) exist once.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;

use crate::RemoteError;
use crate::exec::{digest_of, encode};
use crate::grpc::GrpcBackend;

/// A folder read as REAPI messages.
#[derive(Debug, Default)]
pub struct ReadFolder {
    pub root: reapi::Directory,
    /// Every folder below the root, each after its own subfolders.
    pub subfolders: Vec<reapi::Directory>,
    /// Every file's bytes, by digest.
    pub files: Vec<(reapi::Digest, Vec<u8>)>,
}

/// Reads the folder at `path`: entries sorted by name, symlinks as links
/// (never followed), the executable bit kept; the top-level names in `skip`
/// are left out. Anything else than a file, folder or symlink (a FIFO, a
/// socket, a device) is an error of kind `InvalidInput`.
pub fn read_folder(path: &Path, skip: &[&str]) -> std::io::Result<ReadFolder> {
    let mut out = ReadFolder::default();
    out.root = read_dir(path, skip, &mut out.subfolders, &mut out.files)?;
    Ok(out)
}

fn read_dir(
    path: &Path,
    skip: &[&str],
    subfolders: &mut Vec<reapi::Directory>,
    files: &mut Vec<(reapi::Digest, Vec<u8>)>,
) -> std::io::Result<reapi::Directory> {
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut dir = reapi::Directory::default();
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.is_symlink() {
            let target = std::fs::read_link(e.path())?.to_string_lossy().into_owned();
            dir.symlinks.push(reapi::SymlinkNode { name, target, ..Default::default() });
        } else if meta.is_dir() {
            let sub = read_dir(&e.path(), &[], subfolders, files)?;
            let digest = encode(&sub).1;
            subfolders.push(sub);
            dir.directories.push(reapi::DirectoryNode { name, digest: Some(digest) });
        } else if meta.is_file() {
            let bytes = std::fs::read(e.path())?;
            let digest = digest_of(&bytes);
            files.push((digest.clone(), bytes));
            let is_executable = meta.permissions().mode() & 0o111 != 0;
            dir.files.push(reapi::FileNode { name, digest: Some(digest), is_executable, ..Default::default() });
        } else {
            // A FIFO would block the reader, a device read the host's.
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a file, folder or symlink", e.path().display()),
            ));
        }
    }
    Ok(dir)
}

/// Small files fetched ahead, up to this much in all: the rest are
/// fetched one by one as they are written.
const PREFETCH_BYTES: i64 = 64 << 20;
/// What counts as a small file for [`prefetch_files`].
const PREFETCH_FILE: i64 = 1 << 20;

/// The small files of `folders` (a tree's folders), fetched from `backend`
/// in batches before [`write_folder`] asks for them: a few round trips for a
/// tree instead of one per file. Not checked against their digests (the
/// `file` callback does that, for these and for the rest).
pub fn prefetch_files<'a>(
    backend: &GrpcBackend,
    folders: impl Iterator<Item = &'a reapi::Directory>,
) -> Result<HashMap<reapi::Digest, Vec<u8>>, RemoteError> {
    let mut budget = PREFETCH_BYTES;
    let small: Vec<reapi::Digest> = folders
        .flat_map(|f| f.files.iter().filter_map(|f| f.digest.clone()))
        .filter(|d| (0..=PREFETCH_FILE).contains(&d.size_bytes))
        .take_while(|d| {
            budget -= d.size_bytes;
            budget >= 0
        })
        .collect();
    backend.read_blobs(&small)
}

/// Why [`write_folder`] stopped.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The tree is malformed: a name that is not one plain component, or a
    /// node without a digest.
    Invalid(String),
    Io(PathBuf, std::io::Error),
    /// What a callback returned.
    Fetch(E),
}

/// Writes `dir` under the existing folder `at`: file bytes come from
/// `file`, subfolders from `folder` (both by digest; the callers check what
/// they fetch).
pub fn write_folder<E>(
    dir: &reapi::Directory,
    at: &Path,
    file: &mut dyn FnMut(&reapi::Digest) -> Result<Vec<u8>, E>,
    folder: &mut dyn FnMut(&reapi::Digest) -> Result<reapi::Directory, E>,
) -> Result<(), WriteError<E>> {
    for f in &dir.files {
        let digest =
            f.digest.as_ref().ok_or_else(|| WriteError::Invalid(format!("file `{}` has no digest", f.name)))?;
        let bytes = file(digest).map_err(WriteError::Fetch)?;
        let path = at.join(plain_name(&f.name)?);
        std::fs::write(&path, bytes).map_err(|e| WriteError::Io(path.clone(), e))?;
        let mode = if f.is_executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| WriteError::Io(path.clone(), e))?;
    }
    for s in &dir.symlinks {
        let path = at.join(plain_name(&s.name)?);
        std::os::unix::fs::symlink(&s.target, &path).map_err(|e| WriteError::Io(path.clone(), e))?;
    }
    for d in &dir.directories {
        let digest =
            d.digest.as_ref().ok_or_else(|| WriteError::Invalid(format!("folder `{}` has no digest", d.name)))?;
        let path = at.join(plain_name(&d.name)?);
        std::fs::create_dir(&path).map_err(|e| WriteError::Io(path.clone(), e))?;
        let sub = folder(digest).map_err(WriteError::Fetch)?;
        write_folder(&sub, &path, file, folder)?;
    }
    Ok(())
}

/// `name` when it is one plain path component.
fn plain_name<E>(name: &str) -> Result<&str, WriteError<E>> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(WriteError::Invalid(format!("refused name `{name}` in a tree")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fetched = Result<(), WriteError<String>>;

    /// Writes `root` with blobs and folders from the given maps.
    fn write(root: &reapi::Directory, at: &Path, read: &ReadFolder) -> Fetched {
        let files: HashMap<_, _> = read.files.iter().cloned().collect();
        let dirs: HashMap<_, _> = read.subfolders.iter().map(|d| (encode(d).1, d.clone())).collect();
        let mut file = |d: &reapi::Digest| files.get(d).cloned().ok_or_else(|| "no blob".to_owned());
        let mut folder = |d: &reapi::Digest| dirs.get(d).cloned().ok_or_else(|| "no folder".to_owned());
        write_folder(root, at, &mut file, &mut folder)
    }

    #[test]
    fn a_folder_read_and_written_back_is_the_same() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("a/b")).unwrap();
        std::fs::write(from.path().join("a/b/x"), "x").unwrap();
        std::fs::write(from.path().join("run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(from.path().join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/b/x", from.path().join("l")).unwrap();
        std::fs::write(from.path().join("log"), "left out").unwrap();
        let read = read_folder(from.path(), &["log"]).unwrap();
        let to = tempfile::tempdir().unwrap();
        write(&read.root, to.path(), &read).unwrap();
        assert_eq!(std::fs::read_to_string(to.path().join("a/b/x")).unwrap(), "x");
        assert_eq!(std::fs::read_link(to.path().join("l")).unwrap(), Path::new("a/b/x"));
        assert_ne!(std::fs::metadata(to.path().join("run")).unwrap().permissions().mode() & 0o111, 0);
        assert!(!to.path().join("log").exists());
        let again = read_folder(to.path(), &[]).unwrap();
        assert_eq!(encode(&again.root).1, encode(&read.root).1, "the same tree");
    }

    #[test]
    fn symlinks_are_read_as_links_not_followed() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/", from.path().join("d/root")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.path().join("passwd")).unwrap();
        let read = read_folder(from.path(), &[]).unwrap();
        assert!(read.files.is_empty(), "a file read through a symlink");
        assert_eq!(read.subfolders.len(), 1);
        assert!(read.subfolders[0].directories.is_empty() && read.subfolders[0].files.is_empty());
        let links: Vec<_> = read.subfolders[0].symlinks.iter().map(|l| (l.name.as_str(), l.target.as_str())).collect();
        assert_eq!(links, [("root", "/")]);
        assert_eq!(read.root.symlinks[0].target, "/etc/passwd");
    }

    #[test]
    fn a_fifo_is_an_error_not_a_hang() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("d")).unwrap();
        let fifo = from.path().join("d/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let e = read_folder(from.path(), &[]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("d/pipe` is not a file, folder or symlink"), "{e}");
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for name in ["..", ".", "", "a/b"] {
            let dir = reapi::Directory {
                symlinks: vec![reapi::SymlinkNode {
                    name: name.to_owned(),
                    target: "/etc".into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let to = tempfile::tempdir().unwrap();
            let e = write(&dir, &to.path().join("in"), &ReadFolder::default());
            assert!(matches!(e, Err(WriteError::Invalid(_))), "`{name}`: {e:?}");
            assert!(std::fs::read_dir(to.path()).unwrap().next().is_none(), "`{name}` wrote something");
        }
    }
}
