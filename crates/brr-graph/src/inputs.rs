//! Hashing what a build key is made of: input files (through the store's stat
//! cache, so unchanged files are not re-read) and host tools.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use brr_hash::fs::{BuiltTree, Leaf, TreeBuilder, hash_file};
use brr_hash::{EntryKind, ToolDigest};
use brr_store::{FileStat, StatEntry, Store};
use rayon::prelude::*;

use crate::error::{GraphError, io};
use crate::workspace::Workspace;

/// The hashed inputs of every package.
#[derive(Debug)]
pub struct Inputs {
    /// Per package (same indices as `Workspace::packages`): the source-set tree.
    pub sources: Vec<BuiltTree>,
    /// Per package: the leaf of each input file, in the order of
    /// `Package::inputs` (empty for packages not selected).
    pub leaves: Vec<Vec<Leaf>>,
    /// Per package: declared tool name → resolved path and digest.
    pub tools: Vec<BTreeMap<String, Tool>>,
    /// Files that had to be read (stat cache misses), for diagnostics.
    pub rehashed: usize,
}

/// A host tool resolved on PATH.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The path found on PATH (what the builder's PATH links to).
    pub path: PathBuf,
    pub digest: ToolDigest,
}

/// Hashes files, trusting the stat cache where the racy-timestamp rule allows.
/// Returns each path's leaf (in the order of `paths`) and how many files
/// had to be read.
pub fn hash_files(store: &Store, paths: &[&Path]) -> Result<(Vec<Leaf>, usize), GraphError> {
    // The stat cache is read while the files are stat'ed: both are on every
    // build's path, and neither needs the other.
    let (cached, stats) = std::thread::scope(|s| {
        let cached = s.spawn(|| store.stat_cache_lookup(paths));
        // Follow symlinks: an input is the content it points at.
        let stats: Vec<std::io::Result<FileStat>> =
            paths.par_iter().map(|p| std::fs::metadata(p).map(|m| FileStat::from(&m))).collect();
        (cached.join(), stats)
    });
    let cached = cached.map_err(|_| GraphError::Io {
        path: store.root().to_path_buf(),
        source: std::io::Error::other("the stat cache reader panicked"),
    })??;
    let started = StatEntry::now_ns();
    let results: Vec<(Leaf, Option<StatEntry>)> = paths
        .par_iter()
        .zip(stats)
        .zip(cached)
        .map(|((p, stat), cached)| {
            let stat = stat.map_err(io(p))?;
            let kind = if stat.executable { EntryKind::Executable } else { EntryKind::File };
            if let Some(e) = cached.filter(|e| e.matches_stat(&stat)) {
                return Ok((Leaf { kind, hash: e.digest.0, size: e.size }, None));
            }
            let (digest, size) = hash_file(p)?;
            Ok((Leaf { kind, hash: digest.0, size }, Some(StatEntry::from_stat(stat, digest, started))))
        })
        .collect::<Result<_, GraphError>>()?;
    let fresh: Vec<(PathBuf, StatEntry)> =
        paths.iter().zip(&results).filter_map(|(p, (_, e))| e.map(|e| (p.to_path_buf(), e))).collect();
    if !fresh.is_empty() {
        store.stat_cache_put(&fresh)?;
    }
    Ok((results.into_iter().map(|(l, _)| l).collect(), fresh.len()))
}

impl Inputs {
    /// Hashes the inputs and tools of the packages selected by `mask`.
    pub fn hash(ws: &Workspace, store: &Store, mask: &[bool]) -> Result<Self, GraphError> {
        let host_path = std::env::var_os("PATH").unwrap_or_default();
        // Tools by name: the path found on PATH and the real binary behind it.
        let mut tool_paths: BTreeMap<String, (PathBuf, PathBuf)> = BTreeMap::new();
        // Every selected input file; packages' inputs never overlap.
        let mut all: Vec<&Path> = Vec::new();
        for p in ws.packages.iter().enumerate().filter(|(i, _)| mask[*i]).map(|(_, p)| p) {
            for t in &p.body.tools {
                if !tool_paths.contains_key(t) {
                    let found = which(t, &host_path).ok_or_else(|| GraphError::ToolNotFound {
                        tool: t.clone(),
                        package: p.name.clone(),
                        manifest: p.manifest.clone(),
                    })?;
                    // Tools are hashed by their real binary, through the same stat cache.
                    let real = fs_err::canonicalize(&found).map_err(io(&found))?;
                    tool_paths.insert(t.clone(), (found, real));
                }
            }
            all.extend(p.inputs.values().map(PathBuf::as_path));
        }
        let first_tool = all.len();
        all.extend(tool_paths.values().map(|(_, real)| real.as_path()));
        let (leaves, rehashed) = hash_files(store, &all)?;
        let tool_digest: BTreeMap<&str, (PathBuf, ToolDigest)> = tool_paths
            .iter()
            .zip(&leaves[first_tool..])
            .map(|((name, (found, _)), leaf)| (name.as_str(), (found.clone(), ToolDigest(leaf.hash))))
            .collect();

        // Each package's share of `leaves`, in the order `all` was filled in.
        let mut shares: Vec<&[Leaf]> = Vec::with_capacity(ws.packages.len());
        let mut rest = &leaves[..first_tool];
        for (i, p) in ws.packages.iter().enumerate() {
            let n = if mask[i] { p.inputs.len() } else { 0 };
            let (mine, tail) = rest.split_at(n);
            shares.push(mine);
            rest = tail;
        }
        let trees: Vec<BuiltTree> = ws
            .packages
            .par_iter()
            .zip(&shares)
            .map(|(p, mine)| {
                let mut b = TreeBuilder::new();
                for (rel, leaf) in p.inputs.keys().zip(*mine) {
                    b.insert(rel, leaf.clone())?;
                }
                Ok(b.finish())
            })
            .collect::<Result<_, GraphError>>()?;
        let tools = ws
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if !mask[i] {
                    return BTreeMap::new();
                }
                p.body
                    .tools
                    .iter()
                    .map(|name| {
                        let (path, digest) = tool_digest[name.as_str()].clone();
                        (name.clone(), Tool { path, digest })
                    })
                    .collect()
            })
            .collect();
        let leaves = shares.into_iter().map(<[Leaf]>::to_vec).collect();
        Ok(Self { sources: trees, leaves, tools, rehashed })
    }
}

/// First executable named `name` on `path`.
pub fn which(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
