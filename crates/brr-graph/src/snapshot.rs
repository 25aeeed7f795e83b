//! A saved workspace load, so a build that changed no declaration and no
//! folder listing skips walking the tree, parsing every `brr.ron` and
//! matching globs (git's untracked cache works the same way).
//!
//! What a load reads is exactly: the listing of every folder it walked, the
//! text of every declaration, whether the optional `environments.ron`
//! is there (and its text when it is), and the text of each package's
//! `Procfile` (one that is not there is seen through its folder's listing). A folder's mtime changes whenever an entry
//! is added, removed or renamed in it, and a file's stat fields change when
//! it is written, so the saved result is reused only when every one of those
//! still has the stat fields it had (an optional file that was missing is
//! still missing), and each of them was already older than
//! the moment the load started by the racy margin (the stat cache's rule).
//! The stamps were taken before the listing or text was read, so a change
//! racing the load makes the snapshot stale, never wrong.
//!
//! The file lives in the store's `cache/` folder, one per workspace root. It
//! is a `cache_file`: ignored (the workspace is loaded in full) when it is
//! missing, damaged, stale or written by another brr binary.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use brr_schema::{EnvironmentsDecl, FetchBody, PackageBody, ProcessDecl, SourceFile, WorkspaceDecl};
use brr_store::FileStat;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::defaults::Inherited;
use crate::environments::Environments;
use crate::workspace::{Package, PackageKind, Workspace};

/// Bump when the layout below changes.
const FORMAT: u32 = 6;

/// A path's own stat fields (a symlink is not followed); `None` when missing.
fn stat_of(path: &Path) -> Option<FileStat> {
    std::fs::symlink_metadata(path).ok().map(|m| FileStat::from(&m))
}

/// What a full load looked at, with the stamps taken before reading it.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Workspace-relative folders whose listing was read (`None`: a package
    /// root that did not exist).
    pub dirs: Vec<(String, Option<FileStat>)>,
    /// Workspace-relative declaration files, the root `brr.ron` included.
    pub decls: Vec<(String, FileStat)>,
    /// Workspace-relative files read when present (`None`: missing), as
    /// `environments.ron` (creating one must be seen too) and each
    /// `Procfile` found.
    pub optional: Vec<(String, Option<FileStat>)>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    /// The brr binary that wrote it: another build of brr may parse or
    /// match differently.
    exe: Option<FileStat>,
    root: Vec<u8>,
    recorded_ns: i64,
    dirs: Vec<(String, Option<FileStat>)>,
    decls: Vec<(String, FileStat)>,
    optional: Vec<(String, Option<FileStat>)>,
    decl: WorkspaceDecl,
    /// The root `brr.ron`'s text.
    text: String,
    packages: Vec<SavedPackage>,
    environments: Option<SavedEnvironments>,
}

/// A workspace's `environments.ron`, validated when it was saved.
#[derive(Serialize, Deserialize)]
struct SavedEnvironments {
    path: String,
    text: String,
    decl: EnvironmentsDecl,
}

#[derive(Serialize, Deserialize)]
struct SavedPackage {
    name: String,
    service: bool,
    dir: String,
    manifest: String,
    body: PackageBody,
    inherited: Inherited,
    processes: BTreeMap<String, ProcessDecl>,
    procfile: Option<String>,
    inputs: Vec<String>,
    deps: Vec<usize>,
    text: String,
    fetch: Option<FetchBody>,
}

fn exe_stamp() -> Option<FileStat> {
    std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok()).map(|m| FileStat::from(&m))
}

/// The saved load of `root`, if it is still what a full load would give.
pub(crate) fn restore(cache_dir: &Path, root: &Path) -> Option<Workspace> {
    let saved: Saved = crate::cache_file::read(&crate::cache_file::path_for(cache_dir, "workspace", root))?;
    if saved.format != FORMAT || saved.root != root.as_os_str().as_bytes() || saved.exe != exe_stamp() {
        return None;
    }
    let recorded = saved.recorded_ns;
    let dirs_ok = saved.dirs.par_iter().all(|(rel, stamp)| {
        let now = stat_of(&root.join(rel));
        now == *stamp && stamp.is_none_or(|s| s.settled_before(recorded))
    });
    let decls_ok = dirs_ok
        && saved.decls.par_iter().all(|(rel, stamp)| {
            stat_of(&root.join(rel)).is_some_and(|now| now == *stamp && stamp.settled_before(recorded))
        })
        && saved
            .optional
            .par_iter()
            .all(|(rel, stamp)| stat_of(&root.join(rel)) == *stamp && stamp.is_none_or(|s| s.settled_before(recorded)));
    if !decls_ok {
        return None;
    }
    Some(into_workspace(root, saved))
}

fn into_workspace(root: &Path, saved: Saved) -> Workspace {
    let packages: Vec<Package> = saved
        .packages
        .into_par_iter()
        .map(|p| {
            let manifest = PathBuf::from(p.manifest);
            let inputs: BTreeMap<String, PathBuf> = p
                .inputs
                .into_iter()
                .map(|rel| {
                    let abs = root.join(&rel);
                    (rel, abs)
                })
                .collect();
            Package {
                name: p.name,
                kind: match (p.service, &p.fetch) {
                    (true, _) => PackageKind::Service,
                    (false, Some(_)) => PackageKind::Fetch,
                    (false, None) => PackageKind::Library,
                },
                dir: p.dir,
                source: SourceFile::new(manifest.clone(), p.text),
                manifest,
                body: p.body,
                inherited: p.inherited,
                processes: p.processes,
                procfile: p.procfile.map(PathBuf::from),
                inputs,
                deps: p.deps,
                fetch: p.fetch,
            }
        })
        .collect();
    let by_name: HashMap<String, usize> = packages.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
    let environments = match saved.environments {
        Some(e) => Environments::restored(Some(SourceFile::new(e.path, e.text)), e.decl),
        None => Environments::default(),
    };
    Workspace {
        root: root.to_path_buf(),
        decl: saved.decl,
        source: SourceFile::new(crate::DECL_FILE, saved.text),
        packages,
        environments,
        by_name,
        from_snapshot: true,
    }
}

/// Saves a full load; failures are ignored (it is a cache) but leave no
/// partial file behind under the real name.
pub(crate) fn save(cache_dir: &Path, ws: &Workspace, seen: Seen, recorded_ns: i64) {
    let Some(packages) = ws
        .packages
        .iter()
        .map(|p| {
            Some(SavedPackage {
                name: p.name.clone(),
                service: p.kind == PackageKind::Service,
                dir: p.dir.clone(),
                manifest: p.manifest.to_str()?.to_owned(),
                body: p.body.clone(),
                inherited: p.inherited.clone(),
                processes: p.processes.clone(),
                procfile: match &p.procfile {
                    Some(path) => Some(path.to_str()?.to_owned()),
                    None => None,
                },
                inputs: p.inputs.keys().cloned().collect(),
                deps: p.deps.clone(),
                text: p.source.text.to_string(),
                fetch: p.fetch.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let environments = match ws.environments.source() {
        Some(source) => {
            let Some(path) = source.path.to_str() else { return };
            Some(SavedEnvironments {
                path: path.to_owned(),
                text: source.text.to_string(),
                decl: ws.environments.decl().clone(),
            })
        }
        None => None,
    };
    let saved = Saved {
        format: FORMAT,
        exe: exe_stamp(),
        root: ws.root.as_os_str().as_bytes().to_vec(),
        recorded_ns,
        dirs: seen.dirs,
        decls: seen.decls,
        optional: seen.optional,
        decl: ws.decl.clone(),
        text: ws.source.text.to_string(),
        packages,
        environments,
    };
    crate::cache_file::write(&crate::cache_file::path_for(cache_dir, "workspace", &ws.root), &saved);
}
