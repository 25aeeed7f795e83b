//! Finding and loading the packages of a workspace, and checking the
//! declarations against each other: unique names, known dependencies, no
//! cycles, input globs that match files; a service's `Procfile` (optional,
//! beside its `brr.ron`), merged into its process types; then its
//! environments (`environments.ron`, optional), checked against the packages.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use brr_schema::{
    DeclError, FetchBody, PROCFILE, PackageBody, PackageDecl, ProcessDecl, SourceFile, WorkspaceDecl, cut,
};
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use petgraph::graph::{DiGraph, NodeIndex};
use rayon::prelude::*;

use crate::defaults::Inherited;
use crate::environments::{self, Environments};
use crate::error::{GraphError, io};
use brr_store::{Clock, FileStat};

use crate::snapshot::{self, Seen};

/// File name of every declaration.
pub const DECL_FILE: &str = "brr.ron";

/// Folders never searched for packages or inputs.
const SKIP_DIRS: &[&str] = &[".brr", ".git", "target", "node_modules"];

/// A validated workspace: packages and the dependency DAG between them.
#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub decl: WorkspaceDecl,
    /// The root `brr.ron`'s text, to locate its values later (`why`).
    pub source: SourceFile,
    /// In a topological order: every package after its dependencies.
    pub packages: Vec<Package>,
    /// From `environments.ron`; empty when the workspace has none.
    pub environments: Environments,
    pub(crate) by_name: HashMap<String, usize>,
    /// Restored from the saved load of an earlier run (nothing it read had changed).
    pub from_snapshot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    Library,
    Service,
    /// A `Fetch(...)`: its builder alone has the network; its output is pinned.
    Fetch,
}

/// One package, with its input files resolved.
#[derive(Debug)]
pub struct Package {
    pub name: String,
    pub kind: PackageKind,
    /// Workspace-relative folder, `/`-separated (`"services/api"`).
    pub dir: String,
    /// Declaration file as shown to users (workspace-relative).
    pub manifest: PathBuf,
    /// The declaration with the workspace defaults merged in: the
    /// effective settings (see the `defaults` module).
    pub body: PackageBody,
    /// What of `body` came from the workspace defaults.
    pub inherited: Inherited,
    /// Process types: the declaration's and its `Procfile`'s (each run as
    /// `sh -c LINE`, every setting the default). What the manifest holds.
    pub processes: BTreeMap<String, ProcessDecl>,
    /// The `Procfile` beside the declaration, when there is one (as shown
    /// to users, workspace-relative).
    pub procfile: Option<PathBuf>,
    /// Input files: workspace-relative path → absolute path, sorted.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Indices (into `Workspace::packages`) of direct dependencies.
    pub deps: Vec<usize>,
    /// The declaration's text, to locate later errors in it.
    pub source: SourceFile,
    /// A `Fetch(...)`'s own fields (URL or command, pinned hash).
    pub fetch: Option<FetchBody>,
}

/// What a full load looked at, not yet saved (see
/// [`Workspace::load_cached_unsaved`]).
#[derive(Debug)]
pub struct UnsavedLoad {
    seen: Seen,
    started: i64,
}

impl UnsavedLoad {
    /// Saves the load of `ws` for the next [`Workspace::load_cached`].
    pub fn save(self, cache_dir: &Path, ws: &Workspace) {
        snapshot::save(cache_dir, ws, self.seen, self.started);
    }
}

impl Workspace {
    /// Loads the workspace whose root `brr.ron` is in `root`.
    pub fn load(root: &Path) -> Result<Self, GraphError> {
        let root = fs_err::canonicalize(root).map_err(io(root))?;
        Ok(Self::load_full(root)?.0)
    }

    /// Like [`Workspace::load`], but reuses the load saved in `cache_dir`
    /// when no declaration and no folder listing changed since, and saves a
    /// full load there for the next time (see the `snapshot` module). The
    /// save is recorded as of `clock`'s time ([`Clock::SYSTEM`] but in
    /// tests of the racy rule).
    pub fn load_cached(root: &Path, cache_dir: &Path, clock: Clock) -> Result<Self, GraphError> {
        let (ws, unsaved) = Self::load_cached_unsaved(root, cache_dir, clock)?;
        if let Some(unsaved) = unsaved {
            unsaved.save(cache_dir, &ws);
        }
        Ok(ws)
    }

    /// [`Workspace::load_cached`] that writes nothing: a full load comes
    /// with what to save, for the caller to save once it knows `cache_dir`
    /// may be written (the store it is in has opened).
    pub fn load_cached_unsaved(
        root: &Path,
        cache_dir: &Path,
        clock: Clock,
    ) -> Result<(Self, Option<UnsavedLoad>), GraphError> {
        let root = fs_err::canonicalize(root).map_err(io(root))?;
        if let Some(ws) = snapshot::restore(cache_dir, &root) {
            return Ok((ws, None));
        }
        let started = clock.now_ns();
        let (ws, seen) = Self::load_full(root)?;
        Ok((ws, Some(UnsavedLoad { seen, started })))
    }

    /// Walks, parses and resolves everything; also returns what it looked at.
    fn load_full(root: PathBuf) -> Result<(Self, Seen), GraphError> {
        let mut seen = Seen::default();
        let root_decl = root.join(DECL_FILE);
        if std::fs::symlink_metadata(&root_decl).is_err() {
            return Err(GraphError::NoWorkspace { dir: root });
        }
        let (ws_file, stamp) = read_source(&root, &root_decl)?;
        seen.decls.push((DECL_FILE.to_owned(), stamp));
        let decl = brr_schema::parse_workspace(&ws_file)?;
        let files = walk(&root, &walk_roots(&decl.packages), &mut seen.dirs)?;
        let mut packages = discover(&root, &decl, &ws_file, &files, &mut seen.decls)?;
        let files = with_workspace_inputs(&root, &decl.packages, &packages, files, &mut seen.dirs)?;
        procfiles(&root, &mut packages, &files, &mut seen.optional)?;
        resolve_inputs(&mut packages, &files)?;
        let packages = order(packages)?;
        let (environments, stamp) = environments::load(&root, &packages)?;
        seen.optional.push((brr_schema::ENVIRONMENTS_FILE.to_owned(), stamp));
        let by_name = packages.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
        Ok((Self { root, decl, source: ws_file, packages, environments, by_name, from_snapshot: false }, seen))
    }

    pub fn get(&self, name: &str) -> Option<&Package> {
        self.by_name.get(name).map(|&i| &self.packages[i])
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The named targets and everything they depend on, as a mask over
    /// `packages`; all packages when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<bool>, GraphError> {
        if names.is_empty() {
            return Ok(vec![true; self.packages.len()]);
        }
        let mut mask = vec![false; self.packages.len()];
        let mut stack = Vec::new();
        for n in names {
            let i = self.index_of(n).ok_or_else(|| GraphError::UnknownTarget {
                name: n.clone(),
                known: self.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            stack.push(i);
        }
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut mask[i], true) {
                stack.extend(&self.packages[i].deps);
            }
        }
        Ok(mask)
    }

    /// Direct dependents of each package (reverse edges).
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.packages.len()];
        for (i, p) in self.packages.iter().enumerate() {
            for &d in &p.deps {
                out[d].push(i);
            }
        }
        out
    }
}

/// Largest declaration file read, in bytes: far above any real one, and it
/// bounds what a hostile file can cost (parsing, matching, messages).
pub const DECL_MAX: u64 = 1 << 20;

/// Where a symlink at `path` leads, when that is inside `root` (canonical).
pub(crate) fn resolve_inside(root: &Path, path: &Path, shown: &Path) -> Result<PathBuf, GraphError> {
    let target = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => GraphError::NotAFile { path: shown.to_path_buf(), kind: "a broken symlink" },
        _ => GraphError::Io { path: path.to_path_buf(), source: e },
    })?;
    if !target.starts_with(root) {
        return Err(GraphError::OutsideWorkspace { path: shown.to_path_buf(), target });
    }
    Ok(target)
}

/// A declaration's text, and its stamp taken before reading it. Only a
/// regular file of at most [`DECL_MAX`] bytes in the workspace is read:
/// a FIFO would block forever and a device (`/dev/zero`) never ends.
pub(crate) fn read_source(root: &Path, path: &Path) -> Result<(SourceFile, FileStat), GraphError> {
    use std::os::unix::fs::OpenOptionsExt;

    let shown = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let not_a_file =
        |t: std::fs::FileType| GraphError::NotAFile { path: shown.clone(), kind: crate::error::kind_name(t) };
    let mut meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_symlink() {
        resolve_inside(root, path, &shown)?;
        meta = std::fs::metadata(path).map_err(io(path))?;
    }
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    // Non-blocking: if it was swapped for a FIFO since, opening cannot hang.
    let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let f = std::fs::OpenOptions::new().read(true).custom_flags(nonblock).open(path).map_err(io(path))?;
    let meta = f.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let too_large = || GraphError::DeclTooLarge { path: shown.clone(), limit: DECL_MAX };
    if meta.len() > DECL_MAX {
        return Err(too_large());
    }
    let stamp = FileStat::from(&meta);
    // One byte more than allowed tells a file that grew past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, DECL_MAX + 1), &mut bytes).map_err(io(path))?;
    if bytes.len() as u64 > DECL_MAX {
        return Err(too_large());
    }
    let text = String::from_utf8(bytes).map_err(|_| GraphError::NotUtf8 { path: shown.clone() })?;
    Ok((SourceFile::new(shown, text), stamp))
}

/// The folders that can hold packages: the literal leading components of
/// each package glob (`services/*` → `services`), without nested duplicates.
/// Only these are walked, so a large tree beside the packages costs nothing.
fn walk_roots(globs: &[String]) -> Vec<String> {
    let meta = |c: &str| c.contains(['*', '?', '[', '{']);
    let mut roots: Vec<String> = globs
        .iter()
        .map(|g| {
            g.split('/').take_while(|c| !meta(c)).filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
        })
        .collect();
    roots.sort();
    roots.dedup();
    if roots.iter().any(String::is_empty) {
        return vec![String::new()];
    }
    // A root below another is walked with it. Each root looks up its own
    // ancestors: comparing every pair was quadratic in the number of globs.
    let all: HashSet<String> = roots.iter().cloned().collect();
    roots.retain(|r| !r.match_indices('/').any(|(i, _)| all.contains(&r[..i])));
    roots
}

/// Files, stamped folders and symlinks found below one folder.
type Found = (Vec<(String, PathBuf)>, Vec<(String, Option<FileStat>)>, Vec<PathBuf>);

fn skipped(name: &std::ffi::OsStr) -> bool {
    SKIP_DIRS.iter().any(|s| name == *s)
}

/// Every file below `roots` (workspace-relative, `/`-separated), skipping
/// brr's own and version-control folders; sorted, so the files below any
/// folder form one contiguous range. Each folder read is recorded in `dirs`
/// with its stamp, taken before its listing is read. A root that leads
/// outside the workspace is an error; a symlink to a folder inside it is
/// walked as that folder (once per target folder), any other symlink is
/// listed as a file (hashing checks where it leads).
fn walk(
    root: &Path,
    roots: &[String],
    dirs: &mut Vec<(String, Option<FileStat>)>,
) -> Result<Vec<(String, PathBuf)>, GraphError> {
    // The first level is listed here, so the folders below it are walked in
    // parallel (a monorepo's packages are mostly one or two levels down).
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut subtrees: Vec<PathBuf> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    for r in roots {
        let start = root.join(r);
        let stamp = std::fs::symlink_metadata(&start).ok().map(|m| FileStat::from(&m));
        dirs.push((r.clone(), stamp));
        if stamp.is_none() {
            continue;
        }
        match resolve_inside(root, &start, Path::new(r)) {
            Ok(_) => {}
            Err(GraphError::NotAFile { .. }) => continue,
            Err(e) => return Err(e),
        }
        let listing = match std::fs::read_dir(&start) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                push_file(root, start, &mut files);
                continue;
            }
            Err(e) => return Err(GraphError::Io { path: start, source: e }),
        };
        for entry in listing {
            let entry = entry.map_err(io(&start))?;
            let kind = entry.file_type().map_err(io(entry.path()))?;
            if kind.is_symlink() {
                links.push(entry.path());
            } else if !kind.is_dir() {
                push_file(root, entry.path(), &mut files);
            } else if !skipped(&entry.file_name()) {
                subtrees.push(entry.path());
            }
        }
    }
    let mut followed: HashSet<PathBuf> = HashSet::new();
    loop {
        let found: Vec<Found> = subtrees.par_iter().map(|start| walk_tree(root, start)).collect::<Result<_, _>>()?;
        for (f, d, l) in found {
            files.extend(f);
            dirs.extend(d);
            links.extend(l);
        }
        subtrees.clear();
        for link in links.drain(..) {
            if followable(root, &link).is_some_and(|target| followed.insert(target)) {
                subtrees.push(link);
            } else {
                push_file(root, link, &mut files);
            }
        }
        if subtrees.is_empty() {
            break;
        }
    }
    files.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The folder a symlink leads to, when it is inside the workspace, not one
/// of the skipped folders, and not above the link (which would loop).
fn followable(root: &Path, link: &Path) -> Option<PathBuf> {
    if !std::fs::metadata(link).ok()?.is_dir() || link.file_name().is_some_and(skipped) {
        return None;
    }
    let target = std::fs::canonicalize(link).ok()?;
    let inside = target.strip_prefix(root).ok()?;
    if inside.components().any(|c| skipped(c.as_os_str())) {
        return None;
    }
    let parent = std::fs::canonicalize(link.parent()?).ok()?;
    (!parent.starts_with(&target)).then_some(target)
}

/// Walks one folder (through it, if it is a symlink) without following
/// the symlinks below it: those are returned for the caller to decide.
fn walk_tree(root: &Path, start: &PathBuf) -> Result<Found, GraphError> {
    let (mut files, mut dirs, mut links) = (Vec::new(), Vec::new(), Vec::new());
    let walker = walkdir::WalkDir::new(start).follow_links(false).into_iter();
    let skip = |e: &walkdir::DirEntry| e.file_type().is_dir() && skipped(e.file_name());
    for entry in walker.filter_entry(|e| !skip(e)) {
        let entry = entry.map_err(|e| GraphError::Io {
            path: e.path().map_or_else(|| start.clone(), Path::to_path_buf),
            source: e.into(),
        })?;
        if entry.file_type().is_dir() {
            // Yielded before its listing is read (opening it reads nothing).
            let meta =
                entry.metadata().map_err(|e| GraphError::Io { path: entry.path().to_path_buf(), source: e.into() })?;
            if let Some(rel) = entry.path().strip_prefix(root).ok().and_then(Path::to_str) {
                dirs.push((rel.to_owned(), Some(FileStat::from(&meta))));
            }
        } else if entry.path_is_symlink() {
            links.push(entry.into_path());
        } else {
            push_file(root, entry.into_path(), &mut files);
        }
    }
    Ok((files, dirs, links))
}

/// Records a file found by the walk under its workspace-relative name
/// (names that are not UTF-8 cannot be matched by globs and are left out).
fn push_file(root: &Path, abs: PathBuf, files: &mut Vec<(String, PathBuf)>) {
    if let Some(rel) = abs.strip_prefix(root).ok().and_then(Path::to_str) {
        files.push((rel.to_owned(), abs));
    }
}

/// The files below folder `dir` (workspace-relative), from the sorted list.
fn files_below<'a>(files: &'a [(String, PathBuf)], dir: &str) -> &'a [(String, PathBuf)] {
    let prefix = format!("{dir}/");
    let start = files.partition_point(|(rel, _)| rel.as_str() < prefix.as_str());
    let len = files[start..].partition_point(|(rel, _)| rel.starts_with(&prefix));
    &files[start..start + len]
}

/// One glob of a declaration, by the rules of gitignore, ripgrep and Bazel:
/// `*` and `?` stay within one folder (`"*.c"` does not match `sub/x.c`),
/// `**` crosses folders (`"**/*.c"`, `"src/**"`).
pub(crate) fn compile_glob(g: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(g).literal_separator(true).backslash_escape(true).build()
}

fn glob_set(globs: &[String], file: &SourceFile) -> Result<GlobSet, GraphError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = compile_glob(g).map_err(|e| {
            DeclError::at(file, file.find_value(g, 0), format!("invalid glob `{}`", cut(g)), e.kind().to_string())
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| {
        DeclError::at(file, (0, 0).into(), format!("invalid globs: {}", cut(&e.to_string())), "here").into()
    })
}

fn discover(
    root: &Path,
    decl: &WorkspaceDecl,
    ws_file: &SourceFile,
    files: &[(String, PathBuf)],
    stamps: &mut Vec<(String, FileStat)>,
) -> Result<Vec<Package>, GraphError> {
    // One set for all globs: matching each folder against each glob in
    // turn was quadratic in a workspace with many globs and packages.
    // Globs without wildcards are looked up by name: a compiled glob takes
    // hundreds of bytes, and long package lists are mostly plain folders.
    let (plain, patterns): (Vec<usize>, Vec<usize>) =
        (0..decl.packages.len()).partition(|&i| !decl.packages[i].contains(['*', '?', '[', '{', '\\']));
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::with_capacity(plain.len());
    for &i in &plain {
        by_name.entry(decl.packages[i].as_str()).or_default().push(i);
    }
    let pattern_globs: Vec<String> = patterns.iter().map(|&i| decl.packages[i].clone()).collect();
    let set = glob_set(&pattern_globs, ws_file)?;
    let mut used = vec![false; decl.packages.len()];
    let mut hits = Vec::new();
    let mut candidates: Vec<(&str, &PathBuf)> = Vec::new();
    let suffix = format!("/{DECL_FILE}");
    for (rel, abs) in files {
        let Some(dir) = rel.strip_suffix(&suffix) else { continue };
        set.matches_into(dir, &mut hits);
        let named = by_name.get(dir).map_or(&[][..], Vec::as_slice);
        for i in hits.iter().map(|&h| patterns[h]).chain(named.iter().copied()) {
            used[i] = true;
        }
        if !hits.is_empty() || !named.is_empty() {
            candidates.push((dir, abs));
        }
    }
    // Parsing is the expensive part of loading: in parallel, errors in order.
    let parsed: Vec<Result<(SourceFile, PackageDecl, FileStat), GraphError>> = candidates
        .par_iter()
        .map(|(_, abs)| {
            let (file, stamp) = read_source(root, abs)?;
            let decl = brr_schema::parse_package_with(&file, &decl.defaults)?;
            Ok((file, decl, stamp))
        })
        .collect();
    let mut packages: Vec<Package> = Vec::with_capacity(parsed.len());
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for ((dir, _), result) in candidates.iter().zip(parsed) {
        let (file, pkg, stamp) = result?;
        if let Some(rel) = file.path.to_str() {
            stamps.push((rel.to_owned(), stamp));
        }
        let mut body = pkg.body().into_owned();
        let inherited = crate::defaults::apply(&decl.defaults, &mut body);
        if let Some(first) = seen.insert(body.name.clone(), file.path.clone()) {
            return Err(DeclError::at(
                &file,
                file.find_value(&body.name, 0),
                format!("package name `{}` is already used by `{}`", cut(&body.name), first.display()),
                "duplicate name",
            )
            .into());
        }
        let kind = match &pkg {
            PackageDecl::Service(_) => PackageKind::Service,
            PackageDecl::Library(_) => PackageKind::Library,
            PackageDecl::Fetch(_) => PackageKind::Fetch,
        };
        packages.push(Package {
            name: body.name.clone(),
            kind,
            dir: (*dir).to_owned(),
            manifest: file.path.clone(),
            processes: body.processes.clone(),
            procfile: None,
            body,
            inherited,
            inputs: BTreeMap::new(),
            deps: Vec::new(),
            source: file,
            fetch: pkg.fetch().cloned(),
        });
    }
    if let Some(i) = used.iter().position(|u| !u) {
        let g = &decl.packages[i];
        return Err(DeclError::at(
            ws_file,
            ws_file.find_value(g, 0),
            format!("package glob `{}` matches no folder with a `{DECL_FILE}`", cut(g)),
            "matches nothing",
        )
        .into());
    }
    Ok(packages)
}

/// Reads the `Procfile` of each package that has one (the walk listed it)
/// and adds its process types, recording its stamp in `stamps`. A package
/// without one records nothing: creating one changes its folder's listing,
/// which the saved load checks already. A library with a `Procfile`, and a
/// type declared in both files, are errors.
fn procfiles(
    root: &Path,
    packages: &mut [Package],
    files: &[(String, PathBuf)],
    stamps: &mut Vec<(String, Option<FileStat>)>,
) -> Result<(), GraphError> {
    let found: Vec<(usize, String, &PathBuf)> = packages
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let rel = format!("{}/{PROCFILE}", p.dir);
            let at = files.binary_search_by(|(f, _)| f.as_str().cmp(&rel)).ok()?;
            Some((i, rel, &files[at].1))
        })
        .collect();
    for (i, rel, abs) in found {
        let (file, stamp) = read_source(root, abs)?;
        let entries = brr_schema::parse_procfile(&file)?;
        stamps.push((rel, Some(stamp)));
        let p = &mut packages[i];
        if p.kind != PackageKind::Service {
            let span = entries.first().map_or((0, 0).into(), |e| e.span);
            return Err(DeclError::at(
                &file,
                span,
                format!("library `{}` has a `{PROCFILE}`", cut(&p.name)),
                "libraries do not run",
            )
            .with_help(format!("declare it as `Service(...)` in `{}`, or remove the {PROCFILE}", p.manifest.display()))
            .into());
        }
        for e in entries {
            if p.body.processes.contains_key(&e.name) {
                let declared = p.source.locate(&[brr_schema::Step::Field("processes"), brr_schema::Step::Key(&e.name)]);
                let (line, col) = p.source.line_col(declared.offset());
                return Err(DeclError::at(
                    &file,
                    e.span,
                    format!(
                        "process type `{}` is declared in both `{}` and `{}`",
                        cut(&e.name),
                        p.manifest.display(),
                        file.path.display()
                    ),
                    "declared twice",
                )
                .with_help(format!("`{}:{line}:{col}` declares it too; keep one", p.manifest.display()))
                .into());
            }
            p.processes.insert(e.name.clone(), ProcessDecl::command(e.argv()));
        }
        p.procfile = Some(file.path.clone());
    }
    Ok(())
}

/// `files` plus the files below the folders that `//` input globs (relative
/// to the workspace root) start in, when the package walk did not cover
/// them; those folders are stamped like the others, so a saved load sees
/// their changes.
fn with_workspace_inputs(
    root: &Path,
    package_globs: &[String],
    packages: &[Package],
    mut files: Vec<(String, PathBuf)>,
    dirs: &mut Vec<(String, Option<FileStat>)>,
) -> Result<Vec<(String, PathBuf)>, GraphError> {
    let globs: Vec<String> = packages
        .iter()
        .flat_map(|p| p.body.inputs.iter())
        .filter_map(|g| g.strip_prefix(brr_schema::WORKSPACE_INPUT).map(str::to_owned))
        .collect();
    if globs.is_empty() {
        return Ok(files);
    }
    let walked = walk_roots(package_globs);
    let covered = |r: &str| walked.iter().any(|w| w.is_empty() || r == w || r.starts_with(&format!("{w}/")));
    let extra: Vec<String> = walk_roots(&globs).into_iter().filter(|r| !covered(r)).collect();
    if extra.is_empty() {
        return Ok(files);
    }
    files.extend(walk(root, &extra, dirs)?);
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    Ok(files)
}

fn resolve_inputs(packages: &mut [Package], files: &[(String, PathBuf)]) -> Result<(), GraphError> {
    // A nested package's files belong to it, not to the enclosing package.
    let dirs: HashSet<String> = packages.iter().map(|p| p.dir.clone()).collect();
    // Compiling a glob set is the slow part, and most packages of a monorepo
    // share the same input globs: compile each distinct list once.
    let mut distinct: Vec<&[String]> = packages.iter().map(|p| p.body.inputs.as_slice()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let compiled: HashMap<Vec<String>, GlobSet> = distinct
        .par_iter()
        .filter_map(|globs| {
            let mut b = GlobSetBuilder::new();
            for g in *globs {
                b.add(compile_glob(g).ok()?);
            }
            Some((globs.to_vec(), b.build().ok()?))
        })
        .collect();
    packages.par_iter_mut().try_for_each(|p| {
        let owned;
        let set = if let Some(set) = compiled.get(&p.body.inputs) {
            set
        } else {
            // Not compiled: an invalid glob, reported with its location.
            owned = glob_set(&p.body.inputs, &p.source)?;
            &owned
        };
        let mut matched = vec![false; p.body.inputs.len()];
        // `//` globs, relative to the workspace root, against every file.
        let workspace: Vec<(usize, &str)> = p
            .body
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((i, g.strip_prefix(brr_schema::WORKSPACE_INPUT)?)))
            .collect();
        if !workspace.is_empty() {
            let globs: Vec<String> = workspace.iter().map(|(_, g)| (*g).to_owned()).collect();
            let set = glob_set(&globs, &p.source)?;
            for (rel, abs) in files {
                let hits = set.matches(rel);
                for &h in &hits {
                    matched[workspace[h].0] = true;
                }
                if !hits.is_empty() {
                    p.inputs.insert(rel.clone(), abs.clone());
                }
            }
        }
        for (rel, abs) in files_below(files, &p.dir) {
            let local = &rel[p.dir.len() + 1..];
            if in_nested_package(&p.dir, rel, &dirs) {
                continue;
            }
            let hits = set.matches(local);
            for &h in &hits {
                matched[h] = true;
            }
            if !hits.is_empty() {
                p.inputs.insert(rel.clone(), abs.clone());
            }
        }
        if let Some(i) = matched.iter().position(|m| !m) {
            let g = &p.body.inputs[i];
            let file = &p.source;
            return Err(DeclError::at(
                file,
                file.find_value(g, file.find_field("inputs")),
                match g.strip_prefix(brr_schema::WORKSPACE_INPUT) {
                    Some(_) => format!("input glob `{}` matches no file in the workspace", cut(g)),
                    None => format!("input glob `{}` matches no file in `{}`", cut(g), p.dir),
                },
                "matches nothing",
            )
            .into());
        }
        Ok(())
    })
}

/// Whether `rel` lies in a package folder nested inside `dir`.
fn in_nested_package(dir: &str, rel: &str, dirs: &HashSet<String>) -> bool {
    let mut cur = rel;
    while let Some((parent, _)) = cur.rsplit_once('/') {
        if parent.len() <= dir.len() {
            return false;
        }
        if dirs.contains(parent) {
            return true;
        }
        cur = parent;
    }
    false
}

/// Resolves dependency names, rejects cycles (naming the whole cycle) and
/// returns the packages in topological order.
fn order(mut packages: Vec<Package>) -> Result<Vec<Package>, GraphError> {
    let index: HashMap<String, usize> = packages.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..packages.len()).map(|i| graph.add_node(i)).collect();
    for (i, p) in packages.iter().enumerate() {
        for d in &p.body.deps {
            let Some(&j) = index.get(d) else {
                return Err(unknown_dep(p, d));
            };
            graph.add_edge(nodes[j], nodes[i], ());
        }
    }
    if let Some(cycle) = find_cycle(&graph, &packages) {
        return Err(GraphError::Cycle { cycle });
    }
    let sorted = petgraph::algo::toposort(&graph, None).map_err(|_| GraphError::Cycle { cycle: Vec::new() })?;
    let new_pos: HashMap<usize, usize> = sorted.iter().enumerate().map(|(pos, n)| (graph[*n], pos)).collect();
    let mut slots: Vec<Option<Package>> = packages.drain(..).map(Some).collect();
    let mut out: Vec<Package> = sorted.iter().filter_map(|n| slots[graph[*n]].take()).collect();
    for p in &mut out {
        p.deps = p.body.deps.iter().map(|d| new_pos[&index[d]]).collect();
    }
    Ok(out)
}

fn unknown_dep(p: &Package, dep: &str) -> GraphError {
    let file = &p.source;
    DeclError::at(
        file,
        file.find_value(dep, file.find_field("deps")),
        format!("unknown dependency `{dep}`"),
        "no such package",
    )
    .into()
}

/// One cycle, in order, closing on its first package (`a → b → a`).
fn find_cycle(graph: &DiGraph<usize, ()>, packages: &[Package]) -> Option<Vec<String>> {
    let scc = petgraph::algo::tarjan_scc(graph).into_iter().find(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))?;
    let start = *scc.iter().min_by_key(|n| &packages[graph[**n]].name)?;
    // Walk edges inside the component until we return to the start.
    let mut path = vec![start];
    let mut seen = std::collections::HashSet::from([start]);
    let mut cur = start;
    loop {
        let mut next: Vec<NodeIndex> = graph.neighbors(cur).filter(|n| scc.contains(n)).collect();
        next.sort_by_key(|n| &packages[graph[*n]].name);
        if next.contains(&start) {
            break;
        }
        let n = *next.iter().find(|n| !seen.contains(n)).or(next.first())?;
        if !seen.insert(n) {
            break;
        }
        path.push(n);
        cur = n;
    }
    path.push(start);
    // Edges run dependency → dependent; show "depends on" order instead.
    path.reverse();
    Some(path.iter().map(|n| packages[graph[*n]].name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::walk_roots;

    fn roots(globs: &[&str]) -> Vec<String> {
        walk_roots(&globs.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn only_the_literal_prefixes_of_package_globs_are_walked() {
        assert_eq!(roots(&["libs/*", "services/*"]), ["libs", "services"]);
        assert_eq!(roots(&["a", "a/b/*", "c/*/d"]), ["a", "c"]);
        assert_eq!(roots(&["./x/*"]), ["x"]);
        assert_eq!(roots(&["libs/*", "**/pkg"]), [""]);
        assert_eq!(roots(&["*"]), [""]);
    }
}
