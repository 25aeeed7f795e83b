//! Tool lookup on PATH: only a missing file means "not found"; any other failure names the path.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use brr_graph::{GraphError, which};

/// A `PATH` of these folders.
fn path_of(dirs: &[&Path]) -> OsString {
    std::env::join_paths(dirs).unwrap()
}

/// Writes `dir/name` with `mode`.
fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn missing_folders_files_and_non_executables_are_passed_over() {
    let root = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = root.path().join(n);
        std::fs::create_dir(&p).unwrap();
        p
    };
    let (plain, folder, good) = (d("plain"), d("folder"), d("good"));
    let not_a_folder = file(root.path(), "not-a-folder", 0o644); // ENOTDIR
    file(&plain, "tool", 0o644);
    std::fs::create_dir(folder.join("tool")).unwrap();
    let tool = file(&good, "tool", 0o755);
    let missing = root.path().join("missing"); // ENOENT
    let path = path_of(&[&missing, &not_a_folder, &plain, &folder, &good]);
    assert_eq!(which("tool", &path).unwrap(), Some(tool));
    assert_eq!(which("other", &path).unwrap(), None);
}

/// A symlink loop (`ELOOP`) where the tool would be is an error naming it,
/// even though a later folder holds the tool: before, any `stat` error read
/// as "not there", so a transient one made an installed tool "not on PATH".
#[test]
fn a_stat_error_other_than_not_found_is_reported_with_its_path() {
    let root = tempfile::tempdir().unwrap();
    let (looping, good) = (root.path().join("looping"), root.path().join("good"));
    std::fs::create_dir(&looping).unwrap();
    std::fs::create_dir(&good).unwrap();
    std::os::unix::fs::symlink("tool", looping.join("tool")).unwrap();
    file(&good, "tool", 0o755);

    let err = which("tool", &path_of(&[&looping, &good])).unwrap_err();
    let GraphError::ToolLookup { tool, path, source } = &err else { panic!("not a lookup error: {err:?}") };
    assert_eq!((tool.as_str(), path), ("tool", &looping.join("tool")));
    assert_eq!(source.raw_os_error(), Some(rustix::io::Errno::LOOP.raw_os_error()), "{source}");
    assert!(!err.is_user_error(), "an environment failure, not a user mistake");
    let message = err.to_string();
    assert!(message.contains(&looping.join("tool").display().to_string()), "{message}");
    assert!(!message.contains("not on PATH"), "{message}");
}

/// A `PATH` folder whose name is too long (`ENAMETOOLONG`) is not "no tool there" either.
#[test]
fn an_unusable_path_entry_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let long = root.path().join("x".repeat(300));
    let err = which("sh", &path_of(&[&long, Path::new("/bin")])).unwrap_err();
    assert!(matches!(&err, GraphError::ToolLookup { path, .. } if *path == long.join("sh")), "{err:?}");
    assert!(err.to_string().contains("cannot look for tool `sh`"), "{err}");
}
