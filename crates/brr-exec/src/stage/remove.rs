//! Removing folder trees the way a used sandbox needs: without following
//! symlinks, through read-only and unreadable folders, with few system calls.

use std::path::Path;

use crate::error::{ExecError, io};

/// Removes a folder tree even where folders were made read-only or
/// unreadable; one that is not there is not an error.
pub fn remove_tree(root: &Path) -> Result<(), ExecError> {
    match remove_tree_fast(root) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io(root)(e.into())),
    }
}

/// Removes `root` and everything below it, not following symlinks, with
/// one open and one `getdents` pass per folder: a sandbox is removed after
/// every build, and std's `remove_dir_all` spends twice the system calls.
fn remove_tree_fast(root: &Path) -> rustix::io::Result<()> {
    remove_contents(open_dir_at(rustix::fs::CWD, root)?)?;
    rustix::fs::rmdir(root)
}

/// Opens the folder `name` below `dir` for listing, not following a
/// symlink; one this user cannot read is made readable first (only root
/// ignores its mode).
pub(super) fn open_dir_at<P: rustix::path::Arg + Copy>(
    dir: std::os::fd::BorrowedFd<'_>,
    name: P,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Err(rustix::io::Errno::ACCESS) => {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rustix::fs::openat(dir, name, flags, Mode::empty())
        }
        other => other,
    }
}

/// Empties the folder open as `dir` (consumed).
pub(super) fn remove_contents(dir: std::os::fd::OwnedFd) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, FileType};
    let mut entries = rustix::fs::Dir::new(dir)?;
    // Names first, removals after: the folder is not changed while read.
    let mut names: Vec<(std::ffi::CString, FileType)> = Vec::new();
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push((name.to_owned(), entry.file_type()));
        }
    }
    let fd = entries.fd()?;
    for (name, file_type) in names {
        let is_dir = match file_type {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            remove_contents(open_dir_at(fd, name.as_c_str())?)?;
            unlink_in(fd, &name, AtFlags::REMOVEDIR)?;
        } else {
            unlink_in(fd, &name, AtFlags::empty())?;
        }
    }
    Ok(())
}

/// `unlinkat`, and once more after making the folder writable when it was
/// read-only (a dependency's staged tree is; only root ignores that).
fn unlink_in(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    flags: rustix::fs::AtFlags,
) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Err(rustix::io::Errno::ACCESS) => {
            rustix::fs::fchmod(dir, rustix::fs::Mode::from_raw_mode(0o700))?;
            rustix::fs::unlinkat(dir, name, flags)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::remove_tree;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remove_tree_removes_everything_below_and_nothing_a_symlink_points_at() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sandbox");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/f"), "f").unwrap();
        std::fs::write(root.join("top"), "t").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("missing", root.join("dangling")).unwrap();
        // A read-only folder (as staged dependencies are) with a file in it.
        std::fs::create_dir(root.join("ro")).unwrap();
        std::fs::write(root.join("ro/f"), "r").unwrap();
        std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        // One its owner cannot even list.
        std::fs::create_dir_all(root.join("closed/sub")).unwrap();
        std::fs::set_permissions(root.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();

        remove_tree(&root).unwrap();
        assert!(!root.exists(), "the sandbox is still there");
        assert!(outside.path().join("keep").exists(), "a symlink was followed");
        // Removing what is not there is not an error.
        remove_tree(&root).unwrap();
    }
}
