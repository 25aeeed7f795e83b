//! Where a `Command`'s paths land in the action folder. The client is not
//! trusted: its working directory and output paths are resolved lexically
//! (as Buildbarn's worker does: `..` allowed, never above the input root)
//! and walked on disk one component at a time without following a symlink,
//! since the worker reads and creates them unsandboxed.

use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Why a path was not used.
#[derive(Debug)]
pub enum PathError {
    /// The path (or what the action left at it) is refused: the lease fails
    /// with `INVALID_ARGUMENT` and this message.
    Invalid(String),
    Io(PathBuf, std::io::Error),
}

/// An output: its path as the client named it, and where that resolves.
#[derive(Debug)]
pub struct Output {
    pub path: String,
    /// Components below the input root.
    pub parts: Vec<String>,
}

/// The working directory's components below the input root; empty is the
/// root itself.
pub fn working_directory(text: &str) -> Result<Vec<String>, PathError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    resolve(&[], text).map_err(|why| PathError::Invalid(format!("working directory `{text}` {why}")))
}

/// An output path's components below the input root; `text` is relative to
/// the working directory `cwd`.
pub fn output_path(cwd: &[String], text: &str) -> Result<Vec<String>, PathError> {
    if text.is_empty() {
        return Err(PathError::Invalid("output path `` is empty".into()));
    }
    resolve(cwd, text).map_err(|why| PathError::Invalid(format!("output path `{text}` {why}")))
}

fn resolve(base: &[String], text: &str) -> Result<Vec<String>, &'static str> {
    if text.starts_with('/') {
        return Err("is absolute");
    }
    if text.ends_with('/') {
        return Err("ends with `/`");
    }
    if text.contains('\0') {
        return Err("contains a NUL byte");
    }
    let mut parts = base.to_vec();
    for part in text.split('/') {
        match part {
            "" => return Err("has an empty component"),
            "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("resolves to a location outside the input root");
                }
            }
            name => parts.push(name.to_owned()),
        }
    }
    Ok(parts)
}

/// `parts` joined for messages.
fn shown(parts: &[String]) -> String {
    parts.join("/")
}

/// Creates the folders `parts` below `root` where missing, one at a time;
/// refused when one is a symlink or not a folder.
pub fn create_folders(root: &Path, parts: &[String]) -> Result<(), PathError> {
    let mut path = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => return Err(PathError::Invalid(not_a_folder(&parts[..=i], &meta))),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir(&path).map_err(|e| PathError::Io(path.clone(), e))?;
            }
            Err(e) => return Err(PathError::Io(path, e)),
        }
    }
    Ok(())
}

fn not_a_folder(parts: &[String], meta: &Metadata) -> String {
    let what = if meta.is_symlink() { "a symlink" } else { "not a folder" };
    format!("`{}` is {what}", shown(parts))
}

/// What is at `parts` below `root` (the last component not followed), or
/// `None` when nothing is. Refused when a folder on the way is a symlink.
pub fn lookup(root: &Path, parts: &[String]) -> Result<Option<(PathBuf, Metadata)>, PathError> {
    let mut path = root.to_path_buf();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(PathError::Io(path, e)),
        };
        if i == last {
            return Ok(Some((path, meta)));
        }
        if meta.is_symlink() {
            return Err(PathError::Invalid(not_a_folder(&parts[..=i], &meta)));
        }
        if !meta.is_dir() {
            return Ok(None);
        }
    }
    let meta = std::fs::symlink_metadata(&path).map_err(|e| PathError::Io(path.clone(), e))?;
    Ok(Some((path, meta)))
}

/// Checks that the working directory `parts` is a folder of the input root
/// written at `root` (the REAPI spec requires it to exist there).
pub fn check_working_directory(root: &Path, parts: &[String]) -> Result<(), PathError> {
    match lookup(root, parts)? {
        Some((_, meta)) if meta.is_dir() => Ok(()),
        Some((_, meta)) => Err(PathError::Invalid(format!("working directory {}", not_a_folder(parts, &meta)))),
        None => Err(PathError::Invalid(format!("working directory `{}` is not in the input root", shown(parts)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(cwd: &str, text: &str) -> Result<String, String> {
        let cwd = working_directory(cwd).map_err(|e| format!("{e:?}"))?;
        match output_path(&cwd, text) {
            Ok(parts) => Ok(parts.join("/")),
            Err(PathError::Invalid(m)) => Err(m),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn dot_dot_inside_the_root_resolves() {
        assert_eq!(out("src/p", "../../out"), Ok("out".into()));
        assert_eq!(out("src/p", "../q/x"), Ok("src/q/x".into()));
        assert_eq!(out("", "a/../b"), Ok("b".into()));
        assert_eq!(out("src", "./x/./y"), Ok("src/x/y".into()));
        assert_eq!(out("src/p", "."), Ok("src/p".into()));
    }

    #[test]
    fn dot_dot_above_the_root_is_refused() {
        let e = out("src/p", "../../../out").unwrap_err();
        assert_eq!(e, "output path `../../../out` resolves to a location outside the input root");
        assert!(out("", "..").is_err());
        assert!(out("", "a/../../etc").is_err());
        let Err(PathError::Invalid(m)) = working_directory("../..") else { panic!() };
        assert_eq!(m, "working directory `../..` resolves to a location outside the input root");
    }

    #[test]
    fn absolute_empty_and_slashed_paths_are_refused() {
        assert_eq!(out("", "/etc"), Err("output path `/etc` is absolute".into()));
        assert_eq!(out("", "a//b"), Err("output path `a//b` has an empty component".into()));
        assert_eq!(out("", "out/"), Err("output path `out/` ends with `/`".into()));
        assert_eq!(out("", ""), Err("output path `` is empty".into()));
        assert_eq!(out("", "a\0b"), Err("output path `a\0b` contains a NUL byte".into()));
        assert!(matches!(working_directory("/"), Err(PathError::Invalid(_))));
        assert!(matches!(working_directory("src/"), Err(PathError::Invalid(_))));
        assert_eq!(working_directory("").unwrap(), Vec::<String>::new());
    }

    fn parts(text: &str) -> Vec<String> {
        text.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn folders_are_not_created_through_a_symlink() {
        let host = tempfile::tempdir().unwrap();
        let root = host.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(host.path(), root.join("a")).unwrap();
        let e = create_folders(&root, &parts("a/x")).unwrap_err();
        assert!(matches!(&e, PathError::Invalid(m) if m == "`a` is a symlink"), "{e:?}");
        assert!(!host.path().join("x").exists());
        create_folders(&root, &parts("b/c")).unwrap();
        assert!(root.join("b/c").is_dir());
        std::fs::write(root.join("f"), "").unwrap();
        assert!(
            matches!(create_folders(&root, &parts("f/x")), Err(PathError::Invalid(m)) if m == "`f` is not a folder")
        );
    }

    #[test]
    fn lookup_does_not_follow_symlinks() {
        let host = tempfile::tempdir().unwrap();
        let root = host.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink(host.path(), root.join("a")).unwrap();
        // Through a symlink: refused.
        let e = lookup(&root, &parts("a/secret")).unwrap_err();
        assert!(matches!(&e, PathError::Invalid(m) if m == "`a` is a symlink"), "{e:?}");
        // The symlink itself: found as a symlink.
        let (_, meta) = lookup(&root, &parts("a")).unwrap().unwrap();
        assert!(meta.is_symlink());
        assert!(lookup(&root, &parts("missing/x")).unwrap().is_none());
        let (path, meta) = lookup(&root, &[]).unwrap().unwrap();
        assert!(meta.is_dir() && path == root);
        assert!(check_working_directory(&root, &parts("a")).is_err());
        assert!(check_working_directory(&root, &parts("missing")).is_err());
        check_working_directory(&root, &[]).unwrap();
    }
}
