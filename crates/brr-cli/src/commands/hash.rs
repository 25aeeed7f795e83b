//! `brr hash PATH…`: the hash brr gives a file (blob) or folder (tree).
//! Relative paths are read from the workspace root (`-C DIR`, else the
//! current folder), as every other command reads them.

use std::path::PathBuf;

use crate::Failure;
use crate::output::inspect::{HashDoc, HashKind, HashedPath};
use crate::output::{self, Hash};
use crate::settings::Settings;

pub fn run(settings: &Settings, paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let mut out = Vec::new();
    for given in paths {
        let p = &settings.root.join(given);
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::User(miette::miette!(
                    "no file or folder `{}` in `{}`",
                    given.display(),
                    settings.root.display()
                )));
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read `{}`: {e}", p.display()).into()),
        };
        let (kind, hash) = if meta.is_dir() {
            let names: Vec<String> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            let snap = brr_hash::fs::snapshot(p, &names)?;
            (HashKind::Tree, Hash::from(snap.tree.root))
        } else {
            (HashKind::Blob, Hash::from(brr_hash::fs::hash_file(p)?.0))
        };
        out.push(HashedPath { path: given.display().to_string(), kind, hash });
    }
    if json {
        return output::print(&HashDoc { paths: out });
    }
    for HashedPath { path, kind, hash } in out {
        let kind = match kind {
            HashKind::Blob => "blob",
            HashKind::Tree => "tree",
        };
        println!("{hash}  {kind}  {path}");
    }
    Ok(())
}
