//! Writing a tree out of the store as a real folder.
//!
//! Plain files are hard links to the CAS files, which are read-only (0444),
//! so materializing is cheap and cannot be used to modify the store (short
//! of a `chmod`). Executables are copies: a hard link shares its inode, so
//! it would share the 0444 mode. Where a hard link is refused (another
//! filesystem, too many links, a protected-hardlinks policy) files are copied.

use std::fs::Permissions;
use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

use brr_hash::{Digest, EntryKind, Tree, TreeHash};

use crate::error::IoContext;
use crate::objects::check_tree;
use crate::{Store, StoreError};

impl Store {
    /// Writes `tree` out to `dest`, which must not exist: files hard-linked
    /// from the CAS (mode 0444), executables copied (0555 when `read_only`,
    /// else 0755), symlinks recreated, folders created (0555 when
    /// `read_only`). On failure, the partial `dest` is removed.
    pub fn materialize(&self, tree: TreeHash, dest: &Path, read_only: bool) -> Result<(), StoreError> {
        self.materialize_into(tree, dest, read_only, true)
    }

    /// [`Store::materialize`] with every file copied, never linked: for a
    /// reader that is not kept from writing to it (an unconfined builder
    /// could `chmod` a link and write into the store).
    pub fn materialize_copy(&self, tree: TreeHash, dest: &Path, read_only: bool) -> Result<(), StoreError> {
        self.materialize_into(tree, dest, read_only, false)
    }

    fn materialize_into(&self, tree: TreeHash, dest: &Path, read_only: bool, link: bool) -> Result<(), StoreError> {
        match std::fs::create_dir(dest) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(StoreError::DestinationExists { path: dest.to_path_buf() });
            }
            Err(e) => return Err(e).at(dest),
        }
        let result = self.materialize_dir(tree.0, dest, 0, read_only, link);
        if result.is_err() {
            remove_tree(dest);
        }
        result
    }

    /// Fills the existing folder `dir`, `depth` levels below the destination.
    fn materialize_dir(
        &self,
        hash: Digest,
        dir: &Path,
        depth: usize,
        read_only: bool,
        link: bool,
    ) -> Result<(), StoreError> {
        let tree: Tree = self.get_object(hash)?;
        check_tree(hash, &tree)?;
        for e in &tree.entries {
            let path = dir.join(&e.name);
            match e.kind {
                EntryKind::File if link => self.link_out(e.hash, &path)?,
                EntryKind::File => self.copy_out(e.hash, &path, 0o444)?,
                EntryKind::Executable => self.copy_out(e.hash, &path, if read_only { 0o555 } else { 0o755 })?,
                EntryKind::Symlink => {
                    let invalid = |reason| StoreError::InvalidTree { tree: hash, name: e.name.clone(), reason };
                    let target =
                        String::from_utf8(self.get(e.hash)?).map_err(|_| invalid("link target is not UTF-8"))?;
                    if escapes(depth, Path::new(&target)) {
                        return Err(invalid("link target escapes the tree"));
                    }
                    symlink(&target, &path).at(&path)?;
                }
                EntryKind::Dir => {
                    std::fs::create_dir(&path).at(&path)?;
                    self.materialize_dir(e.hash, &path, depth + 1, read_only, link)?;
                }
            }
        }
        if read_only {
            std::fs::set_permissions(dir, Permissions::from_mode(0o555)).at(dir)?;
        }
        Ok(())
    }

    /// Hard-links object `d` to `dest` (read-only, sharing the CAS file),
    /// copying it (mode 0444) when linking is refused or it has no file.
    pub fn link_out(&self, d: Digest, dest: &Path) -> Result<(), StoreError> {
        let src = self.object_path(d);
        match std::fs::hard_link(&src, dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound && !src.exists() => {
                if self.contains(d)? {
                    // A small object, kept in the database.
                    self.copy_out(d, dest, 0o444)
                } else {
                    Err(StoreError::NotFound { hash: d })
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(StoreError::DestinationExists { path: dest.to_path_buf() })
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EMLINK | libc::EPERM)) => {
                self.copy_out(d, dest, 0o444)
            }
            Err(e) => Err(e).at(dest),
        }
    }
}

/// Whether a symlink `depth` folders below the root, pointing at `target`,
/// leaves the tree (absolute, or more `..` than folders above it).
fn escapes(depth: usize, target: &Path) -> bool {
    let mut level = depth;
    for c in target.components() {
        match c {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => match level.checked_sub(1) {
                Some(l) => level = l,
                None => return true,
            },
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// Best effort removal of a (partly) materialized folder, read-only or not;
/// a symlink is removed itself, never followed.
pub fn remove_tree(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_dir() {
        let _ = std::fs::set_permissions(path, Permissions::from_mode(0o755));
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                remove_tree(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Renames the finished folder `temp` to `dest`. When another process got
/// there first (materializing the same content-addressed bytes), its folder
/// stays and `temp` goes; on any failure `temp` is removed too.
pub fn publish_dir(temp: &Path, dest: &Path) -> std::io::Result<()> {
    match std::fs::rename(temp, dest) {
        Ok(()) => Ok(()),
        Err(e) => {
            remove_tree(temp);
            let lost_race =
                matches!(e.kind(), std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists);
            if lost_race { Ok(()) } else { Err(e) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_links_are_detected() {
        assert!(!escapes(0, Path::new("a/b")));
        assert!(!escapes(1, Path::new("../x")));
        assert!(escapes(0, Path::new("../x")));
        assert!(escapes(1, Path::new("a/../../../x")));
        assert!(escapes(3, Path::new("/etc/passwd")));
    }
}
