//! Hashing what a build key is made of: input files (through the store's stat
//! cache, so unchanged files are not re-read), host tools with their
//! closures (`closure`) and declared host files (`host`), the last two
//! through the same stat cache.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use brr_hash::fs::{BuiltTree, Leaf, TreeBuilder, hash_file_holding};
use brr_hash::{Digest, EntryKind, HashedBytes, ToolClosure, ToolDigest, TreeHash};
use brr_store::{FileStat, PACKED_MAX, StatEntry, Store};
use rayon::prelude::*;

use crate::error::{GraphError, io};
use crate::workspace::{Package, Workspace};

/// The hashed inputs of every package.
#[derive(Debug)]
pub struct Inputs {
    /// Per package (same indices as `Workspace::packages`): the source-set tree.
    pub sources: Vec<TreeHash>,
    /// The leaf of each input file, package after package, each in the
    /// order of `Package::inputs` (none for packages not selected).
    leaves: Vec<Leaf>,
    /// Where each package's leaves start in `leaves` (one more at the end).
    offsets: Vec<usize>,
    /// Per package: declared tool name → resolved path and digest.
    pub tools: Vec<BTreeMap<String, Tool>>,
    /// Per package: its `host_inputs` files, absolute path → digest.
    pub host: Vec<BTreeMap<String, Digest>>,
    /// Files that had to be read (stat cache misses), for diagnostics.
    pub rehashed: usize,
    /// The bytes of small input files read while hashing, by leaf index,
    /// until a build takes them ([`Inputs::take_held`]): a cold build then
    /// reads each source once. Empty when nothing was read (a no-op).
    held: Mutex<HashMap<usize, HashedBytes>>,
    /// Stat-cache entries of the files read, not yet in the store's table
    /// (only for [`Inputs::hash_holding`]; see [`Inputs::record_stats`]).
    unrecorded: Mutex<Vec<(PathBuf, StatEntry)>>,
}

/// Input files of at most this many bytes in all are kept in memory after
/// hashing, for the builds that stage them.
const HELD_TOTAL_MAX: u64 = 32 << 20;

/// A host tool resolved on PATH.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The path found on PATH (what the builder's PATH links to).
    pub path: PathBuf,
    /// The digest of its closure.
    pub digest: ToolDigest,
    /// Every file it runs with (see `closure`), with their digests.
    pub closure: Arc<ToolClosure>,
}

/// Stats `paths`, following symlinks (an input is the content it points
/// at) only when they stay inside `root`: an input in the workspace that
/// leads out of it, or is not a regular file, is an error (a FIFO would
/// block hashing, `/etc/passwd` would enter the store). Each run of paths in
/// one folder is stat'ed relative to that folder, opened once: one path
/// lookup per file instead of one per component of its absolute path,
/// which was most of a no-op build's kernel time.
fn stat_all(root: &Path, paths: &[&Path]) -> Vec<Result<FileStat, GraphError>> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    let check = |p: &Path, st: rustix::fs::Stat| -> Result<FileStat, GraphError> {
        let Ok(shown) = p.strip_prefix(root) else {
            // A tool's real binary, found on the host PATH.
            return std::fs::metadata(p).map(|m| FileStat::from(&m)).map_err(io(p));
        };
        let mut kind = FileType::from_raw_mode(st.st_mode);
        let mut st = FileStat::from(&st);
        if kind == FileType::Symlink {
            crate::workspace::resolve_inside(root, p, shown)?;
            let meta = std::fs::metadata(p).map_err(io(p))?;
            kind = FileType::from_raw_mode(std::os::unix::fs::MetadataExt::mode(&meta));
            st = FileStat::from(&meta);
        }
        if kind != FileType::RegularFile {
            let kind = match kind {
                FileType::Directory => "a folder",
                FileType::Fifo => "a FIFO",
                FileType::Socket => "a socket",
                _ => "a device",
            };
            return Err(GraphError::InputNotAFile { path: shown.to_path_buf(), kind });
        }
        Ok(st)
    };
    paths
        .par_chunk_by(|a, b| a.parent() == b.parent())
        .flat_map_iter(|run| {
            let dir = run[0].parent().filter(|d| !d.as_os_str().is_empty()).and_then(|d| {
                rustix::fs::open(d, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()
            });
            run.iter().map(move |p| {
                let st = match (&dir, p.file_name()) {
                    (Some(dir), Some(name)) => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
                    _ => rustix::fs::lstat(*p),
                };
                check(p, st.map_err(|e| GraphError::Io { path: p.to_path_buf(), source: e.into() })?)
            })
        })
        .collect()
}

/// What [`hash_files`] found.
struct Hashed {
    leaves: Vec<Leaf>,
    /// The stat-cache entries of the files read, for the table.
    fresh: Vec<(PathBuf, StatEntry)>,
    /// The bytes read, by path index, for files that [`hash_files`] was
    /// asked to hold.
    held: HashMap<usize, HashedBytes>,
    rehashed: usize,
    /// The entry now valid for each path, when they are worth saving.
    entries: Option<Vec<Option<StatEntry>>>,
}

/// Hashes files (leaves in the order of `paths`), trusting a stat-cache
/// entry where the racy-timestamp rule allows. The entries are the hints
/// `saved` returns when it finds them (the table is then asked only about
/// paths whose hint went stale), else one read of the table. Of the files
/// read among the first `holdable` paths, those of at most `PACKED_MAX`
/// bytes are held, up to [`HELD_TOTAL_MAX`] in all. The fresh entries are
/// returned, not written to the table.
fn hash_files(
    store: &Store,
    root: &Path,
    paths: &[&Path],
    holdable: usize,
    saved: impl FnOnce() -> Option<Vec<Option<StatEntry>>> + Send,
) -> Result<Hashed, GraphError> {
    // The hints are read (the saved copy, or else the table) while the files
    // are stat'ed: neither needs the other.
    let (hints, stats) = std::thread::scope(|s| {
        let hints = s.spawn(|| match saved() {
            Some(saved) => Ok((saved, true)),
            None => store.stat_cache_lookup(paths).map(|t| (t, false)),
        });
        let stats = stat_all(root, paths);
        let hints = hints.join().map_err(|_| GraphError::Io {
            path: store.root().to_path_buf(),
            source: std::io::Error::other("the stat cache reader panicked"),
        })?;
        Ok::<_, GraphError>((hints?, stats))
    })?;
    let (mut cached, had_saved) = hints;
    let stats: Vec<FileStat> = stats.into_iter().collect::<Result<_, _>>()?;
    if had_saved {
        // Hints that went stale: the table may know better (a build of
        // another selection of targets may have hashed those files since).
        let stale: Vec<usize> =
            (0..paths.len()).filter(|&i| !cached[i].is_some_and(|e| e.matches_stat(&stats[i]))).collect();
        if !stale.is_empty() {
            let asked: Vec<&Path> = stale.iter().map(|&i| paths[i]).collect();
            for (i, e) in stale.iter().zip(store.stat_cache_lookup(&asked)?) {
                cached[*i] = e;
            }
        }
    }
    let started = store.clock().now_ns();
    let budget = AtomicU64::new(HELD_TOTAL_MAX);
    let reserve = |size: u64| {
        size <= PACKED_MAX as u64
            && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(size)).is_ok()
    };
    // Held bytes are boxed: most paths hold none, and on a no-op none does.
    let results: Vec<(Leaf, Option<StatEntry>, Option<Box<HashedBytes>>)> = paths
        .par_iter()
        .enumerate()
        .zip(&stats)
        .zip(&cached)
        .map(|(((i, p), stat), cached)| {
            let kind = if stat.executable { EntryKind::Executable } else { EntryKind::File };
            if let Some(e) = cached.filter(|e| e.matches_stat(stat)) {
                return Ok((Leaf { kind, hash: e.digest.0, size: e.size }, None, None));
            }
            let hold_max = if i < holdable && reserve(stat.size) { stat.size } else { 0 };
            let (digest, size, bytes) = hash_file_holding(p, stat.size, hold_max)?;
            let entry = StatEntry::from_stat(*stat, digest, started);
            Ok((Leaf { kind, hash: digest.0, size }, Some(entry), bytes.map(Box::new)))
        })
        .collect::<Result<_, GraphError>>()?;
    let fresh: Vec<(PathBuf, StatEntry)> =
        paths.iter().zip(&results).filter_map(|(p, r)| Some((p.to_path_buf(), r.1?))).collect();
    // Only when something changed or nothing was saved: on a no-op, this
    // would be the largest allocation of all.
    let entries =
        (!fresh.is_empty() || !had_saved).then(|| results.iter().zip(&cached).map(|(r, c)| r.1.or(*c)).collect());
    let rehashed = fresh.len();
    let mut held = HashMap::new();
    let leaves = results
        .into_iter()
        .enumerate()
        .map(|(i, (leaf, _, bytes))| {
            if let Some(bytes) = bytes {
                held.insert(i, *bytes);
            }
            leaf
        })
        .collect();
    Ok(Hashed { leaves, fresh, held, rehashed, entries })
}

impl Inputs {
    /// Hashes the inputs and tools of the packages selected by `mask`.
    pub fn hash(ws: &Workspace, store: &Store, mask: &[bool]) -> Result<Self, GraphError> {
        Self::hash_inner(ws, store, mask, false)
    }

    /// [`Inputs::hash`] for a build: the small files it reads are held for
    /// the builds that stage them ([`Inputs::take_held`]), and their
    /// stat-cache entries wait for [`Inputs::record_stats`], which the
    /// caller runs while the first builds start instead of before them.
    pub fn hash_holding(ws: &Workspace, store: &Store, mask: &[bool]) -> Result<Self, GraphError> {
        Self::hash_inner(ws, store, mask, true)
    }

    fn hash_inner(ws: &Workspace, store: &Store, mask: &[bool], hold: bool) -> Result<Self, GraphError> {
        let host_path = std::env::var_os("PATH").unwrap_or_default();
        // Tools by name: the path found on PATH and the real binary behind it.
        let mut tool_paths: BTreeMap<String, (PathBuf, PathBuf)> = BTreeMap::new();
        // Every selected input file; packages' inputs never overlap.
        let mut all: Vec<&Path> = Vec::new();
        let mut memo = HashMap::new();
        let mut host_globs: Vec<BTreeMap<String, PathBuf>> = Vec::with_capacity(ws.packages.len());
        for (i, p) in ws.packages.iter().enumerate() {
            if !mask[i] {
                host_globs.push(BTreeMap::new());
                continue;
            }
            for t in &p.body.tools {
                if !tool_paths.contains_key(t) {
                    let found = which(t, &host_path)?.ok_or_else(|| GraphError::ToolNotFound {
                        tool: t.clone(),
                        package: p.name.clone(),
                        manifest: p.manifest.clone(),
                    })?;
                    // Tools are hashed by their real binary, through the same stat cache.
                    let real = fs_err::canonicalize(&found).map_err(io(&found))?;
                    tool_paths.insert(t.clone(), (found, real));
                }
            }
            host_globs.push(crate::host::expand(p, &ws.source, &mut memo)?);
            all.extend(p.inputs.values().map(PathBuf::as_path));
        }
        let first_host = all.len();
        let cache_dir = store.cache_dir();
        // The files of each tool's closure: discovered once, then saved.
        let closure_files = crate::closure::of_tools(&cache_dir, &ws.root, &tool_paths, &host_path)
            .map_err(|(tool, e)| GraphError::ToolClosure { tool, program: e.program, question: e.question })?;
        // Host files (closures and `host_inputs`) once each, sorted.
        let host_files: std::collections::BTreeSet<&Path> = closure_files
            .values()
            .flatten()
            .map(PathBuf::as_path)
            .chain(host_globs.iter().flat_map(|m| m.values().map(PathBuf::as_path)))
            .collect();
        all.extend(host_files.iter().copied());
        let saved = || crate::saved_stats::load(&cache_dir, &ws.root, &all);
        let holdable = if hold { first_host } else { 0 };
        let Hashed { leaves, fresh, held, rehashed, entries } = hash_files(store, &ws.root, &all, holdable, saved)?;
        let unrecorded = if hold {
            fresh
        } else {
            store.stat_cache_put(&fresh)?;
            Vec::new()
        };
        if let Some(entries) = entries {
            crate::saved_stats::save(&cache_dir, &ws.root, &all, &entries);
        }
        let host_digest: HashMap<&Path, Digest> =
            host_files.iter().zip(&leaves[first_host..]).map(|(p, leaf)| (*p, leaf.hash)).collect();
        let text = |p: &Path| p.to_string_lossy().into_owned();
        let tool_digest: BTreeMap<&str, Tool> = tool_paths
            .iter()
            .map(|(name, (found, _))| {
                let files = closure_files[name.as_str()].iter().map(|p| (text(p), host_digest[p.as_path()])).collect();
                let closure = ToolClosure { files };
                (name.as_str(), Tool { path: found.clone(), digest: closure.digest(), closure: Arc::new(closure) })
            })
            .collect();
        let host =
            host_globs.iter().map(|m| m.iter().map(|(t, p)| (t.clone(), host_digest[p.as_path()])).collect()).collect();

        // Each package's share of `leaves`, in the order `all` was filled in.
        let mut leaves = leaves;
        leaves.truncate(first_host);
        let mut offsets = Vec::with_capacity(ws.packages.len() + 1);
        let mut at = 0;
        for (i, p) in ws.packages.iter().enumerate() {
            offsets.push(at);
            at += if mask[i] { p.inputs.len() } else { 0 };
        }
        offsets.push(at);
        // Only the roots are kept: a build that needs the tree objects
        // recomputes them ([`source_tree`]), and most targets never build.
        let sources: Vec<TreeHash> = ws
            .packages
            .par_iter()
            .enumerate()
            .map(|(i, p)| Ok(source_tree(p, &leaves[offsets[i]..offsets[i + 1]])?.root))
            .collect::<Result<_, GraphError>>()?;
        let tools = ws
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if !mask[i] {
                    return BTreeMap::new();
                }
                p.body.tools.iter().map(|name| (name.clone(), tool_digest[name.as_str()].clone())).collect()
            })
            .collect();
        Ok(Self {
            sources,
            leaves,
            offsets,
            tools,
            host,
            rehashed,
            held: Mutex::new(held),
            unrecorded: Mutex::new(unrecorded),
        })
    }

    /// Writes the stat-cache entries [`Inputs::hash_holding`] left for later
    /// to the store's table (once; a second call writes nothing). Until
    /// then, only a later run's speed depends on them.
    pub fn record_stats(&self, store: &Store) -> Result<(), GraphError> {
        let fresh = std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if !fresh.is_empty() {
            store.stat_cache_put(&fresh)?;
        }
        Ok(())
    }

    /// The hashed input files of package `i`, in the order of its `inputs`.
    pub fn leaves(&self, i: usize) -> &[Leaf] {
        &self.leaves[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The bytes of package `i`'s input files that were read while hashing
    /// and are held (see `HELD_TOTAL_MAX`), in the order of
    /// [`Inputs::leaves`]; `None` for the others. They hash to their leaf
    /// (they are the bytes that were hashed). Taken: a second call gives none.
    pub fn take_held(&self, i: usize) -> Vec<Option<HashedBytes>> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.offsets[i]..self.offsets[i + 1]).map(|leaf| held.remove(&leaf)).collect()
    }
}

/// The source-set tree of `pkg` (root and every tree object), given the
/// leaves of its input files in the order of its `inputs`.
pub fn source_tree(pkg: &Package, leaves: &[Leaf]) -> Result<BuiltTree, GraphError> {
    let mut b = TreeBuilder::new();
    for (rel, leaf) in pkg.inputs.keys().zip(leaves) {
        b.insert(rel, leaf.clone())?;
    }
    Ok(b.finish())
}

/// The first executable file named `name` in a folder of `path` (a
/// `PATH`-style list), as the shell's `execvp` finds it; `Ok(None)` when
/// there is none.
///
/// Only "not there" passes a folder over: the candidate does not exist
/// (`ENOENT`), a part of it is not a folder (`ENOTDIR`), or it exists but
/// is not an executable file. A folder the user may not search (`EACCES`)
/// is passed over too, as `execvp` does, but if no later folder has the
/// tool that denial is the error. Any other failure to `stat` a candidate
/// (`EIO`, `ENOMEM`, `ELOOP`, …) is an error naming it, never "not
/// found": a tool that exists must not be reported missing because one
/// look at it failed. `EINTR` is retried.
pub fn which(name: &str, path: &std::ffi::OsStr) -> Result<Option<PathBuf>, GraphError> {
    let mut denied = None;
    for candidate in std::env::split_paths(path).map(|d| d.join(name)) {
        match executable(&candidate) {
            Ok(true) => return Ok(Some(candidate)),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied.get_or_insert((candidate, e));
            }
            Err(source) => return Err(GraphError::ToolLookup { tool: name.to_owned(), path: candidate, source }),
        }
    }
    match denied {
        Some((path, source)) => Err(GraphError::ToolLookup { tool: name.to_owned(), path, source }),
        None => Ok(None),
    }
}

/// Whether `p` is an executable file: `Ok(false)` when it is something
/// else or is not there (`ENOENT`, `ENOTDIR`); other errors as they are.
fn executable(p: &Path) -> std::io::Result<bool> {
    use std::io::ErrorKind;
    let mut interrupted = 0;
    loop {
        return match std::fs::metadata(p) {
            Ok(m) => Ok(m.is_file() && m.permissions().mode() & 0o111 != 0),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted && interrupted < 10 => {
                interrupted += 1;
                continue;
            }
            Err(e) => Err(e),
        };
    }
}
