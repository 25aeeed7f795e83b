//! `brr hash PATH…`: the hash brr gives a file (blob) or folder (tree).

use std::path::PathBuf;

use serde_json::json;

use super::print_json;
use crate::Failure;

pub fn run(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?;
        let (kind, hash) = if meta.is_dir() {
            let names: Vec<String> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", p.display()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            let snap = brr_hash::fs::snapshot(p, &names)?;
            ("tree", snap.tree.root.to_string())
        } else {
            ("blob", brr_hash::fs::hash_file(p)?.0.to_string())
        };
        out.push((p.display().to_string(), kind, hash));
    }
    if json {
        let items: Vec<_> = out.iter().map(|(p, k, h)| json!({ "path": p, "kind": k, "hash": h })).collect();
        return print_json(&json!({ "paths": items }));
    }
    for (p, k, h) in out {
        println!("{h}  {k}  {p}");
    }
    Ok(())
}
