//! `host_inputs`: globs over absolute host paths (`/usr/include/**`), with
//! the glob rules of `inputs`. They are expanded on every run (the host is
//! not part of the saved workspace load), walking only below each glob's
//! literal folder; symlinks to files count as the files they lead to.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use brr_schema::{DeclError, SourceFile, Step};

use crate::error::GraphError;
use crate::workspace::{Package, compile_glob};

/// The files `pkg`'s `host_inputs` match: path as text → path. `memo`
/// keeps each glob's files for the other packages of the run. Mistakes are
/// located in the package's `brr.ron`, or in `root` (the root `brr.ron`)
/// for a glob inherited from the workspace defaults.
pub(crate) fn expand(
    pkg: &Package,
    root: &SourceFile,
    memo: &mut HashMap<String, Vec<(String, PathBuf)>>,
) -> Result<BTreeMap<String, PathBuf>, GraphError> {
    let mut out = BTreeMap::new();
    for g in &pkg.body.host_inputs {
        let (file, at) = if pkg.inherited.host_inputs.contains(g) {
            (root, root.locate(&[Step::Field("defaults"), Step::Field("host_inputs")]).offset())
        } else {
            (&pkg.source, pkg.source.find_field("host_inputs"))
        };
        if !memo.contains_key(g) {
            let files = matches(g).map_err(|e| {
                DeclError::at(file, file.find_value(g, at), format!("invalid host input glob `{g}`"), e)
            })?;
            memo.insert(g.clone(), files);
        }
        let files = &memo[g];
        if files.is_empty() {
            return Err(DeclError::at(
                file,
                file.find_value(g, at),
                format!("host input glob `{g}` matches no file"),
                "matches nothing",
            )
            .with_help("host inputs are absolute paths of files on this machine")
            .into());
        }
        out.extend(files.iter().cloned());
    }
    Ok(out)
}

/// The files matching absolute glob `g`, sorted.
fn matches(g: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let glob = compile_glob(g).map_err(|e| e.kind().to_string())?.compile_matcher();
    // The folder below which it can match: its components up to the first
    // with a wildcard.
    let literal: Vec<&str> = g.split('/').take_while(|c| !c.contains(['*', '?', '[', '{', '\\'])).collect();
    let base = if literal.len() == g.split('/').count() {
        // No wildcard: one file.
        let p = PathBuf::from(g);
        return Ok(if p.is_file() { vec![(g.to_owned(), p)] } else { Vec::new() });
    } else {
        literal.join("/")
    };
    let base = if base.is_empty() { "/".to_owned() } else { base };
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&base).follow_links(false).sort_by_file_name().into_iter().flatten() {
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let Some(text) = entry.path().to_str() else { continue };
        if glob.is_match(text) && (ft.is_file() || (ft.is_symlink() && Path::new(text).is_file())) {
            out.push((text.to_owned(), entry.into_path()));
        }
    }
    Ok(out)
}
