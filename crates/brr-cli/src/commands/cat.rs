//! `brr cat TARGET PATH`: one file of a target's artifact on stdout. The
//! target is built first when its current inputs are not (a cache hit
//! otherwise), so the bytes are those of the workspace as it is.

use std::io::Write;

use brr_exec::Status;
use brr_hash::{Artifact, EntryKind, Tree};

use super::{build, graph_failure, open_store_and_workspace};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, target: &str, path: &str) -> Result<(), Failure> {
    let (store, ws) = open_store_and_workspace(settings)?;
    let mask = ws.select(&[target.to_owned()]).map_err(graph_failure)?;
    let (outcomes, _) = build::build_mask(settings, &store, &ws, &mask, None, false, &printer::Timings::from_env())?;
    let Some(outcome) = outcomes.iter().find(|o| o.name == target) else {
        return Err(anyhow::anyhow!("`{target}` was selected but not built").into());
    };
    let Some(artifact) = outcome.artifact.filter(|_| matches!(outcome.status, Status::Built | Status::Cached)) else {
        printer::note(&format!("error: `{target}` did not build; nothing to print"));
        return Err(Failure::Exit(exit::FAILED));
    };
    let a: Artifact = store.get_object(artifact.0)?;
    let missing = |why: &str| {
        Failure::User(miette::miette!(
            help = format!("`brr show {}` lists the artifact's files", a.outputs.0),
            "`{path}` {why} in the artifact of `{target}`"
        ))
    };
    let mut tree: Tree = store.get_object(a.outputs.0)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() {
        return Err(missing("is not a file"));
    }
    for (i, part) in parts.iter().enumerate() {
        let Some(entry) = tree.entries.iter().find(|e| e.name == *part).cloned() else {
            return Err(missing("is not"));
        };
        let last = i + 1 == parts.len();
        match (entry.kind, last) {
            (EntryKind::Dir, false) => tree = store.get_object(entry.hash)?,
            (EntryKind::File | EntryKind::Executable, true) => {
                let bytes = store.get(entry.hash)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
                return Ok(());
            }
            (EntryKind::Dir, true) => return Err(missing("is a folder, not a file,")),
            (EntryKind::Symlink, _) => return Err(missing("is a symlink, not a file,")),
            (EntryKind::File | EntryKind::Executable, false) => return Err(missing("is not")),
        }
    }
    Err(missing("is not"))
}
