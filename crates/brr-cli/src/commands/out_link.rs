//! `brr build --out-link PATH TARGET`: the target's artifact as a folder
//! the user can run from, as Nix's `result`.
//!
//! PATH is a symlink to `<store>/artifacts/<artifact hash>/`, a read-only
//! copy of the artifact's output files. A symlink, not the folder itself:
//! replacing it is one `rename` (a reader sees the old artifact or the new
//! one, never a mix), making it costs nothing when the artifact is already
//! there, and `readlink result` names the artifact. The folder holds copies,
//! not hard links into the store, so a `chmod` on it cannot reach the store.

use std::path::{Path, PathBuf};

use brr_hash::{Artifact, ArtifactHash};
use brr_store::Store;

use crate::Failure;

/// Materializes `artifact` (once per store) and points `link` at it,
/// replacing a symlink already there; never anything else. Returns the folder.
pub fn link(store: &Store, artifact: ArtifactHash, link: &Path) -> Result<PathBuf, Failure> {
    check(link)?;
    let folder = materialize(store, artifact)?;
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = link.with_file_name(format!(".{name}.brr-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(&folder, &temp)
        .map_err(|e| anyhow::anyhow!("cannot make the link `{}`: {e}", temp.display()))?;
    if let Err(e) = std::fs::rename(&temp, link) {
        let _ = std::fs::remove_file(&temp);
        return Err(anyhow::anyhow!("cannot make the link `{}`: {e}", link.display()).into());
    }
    Ok(folder)
}

/// Whether `link` may be (re)placed: absent, or a symlink. Checked before a
/// build too, so a mistake costs no build.
pub fn check(link: &Path) -> Result<(), Failure> {
    match link.symlink_metadata() {
        Ok(m) if !m.file_type().is_symlink() => Err(Failure::User(miette::miette!(
            help = "remove it, or choose another --out-link path",
            "`{}` exists and is not a symlink: not replacing it",
            link.display()
        ))),
        _ => Ok(()),
    }
}

/// `<store>/artifacts/<artifact>/`, written when missing under a temporary
/// name and renamed into place, so it is whole or absent.
fn materialize(store: &Store, artifact: ArtifactHash) -> Result<PathBuf, Failure> {
    let parent = store.artifacts_dir();
    let dest = parent.join(artifact.to_string());
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&parent).map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", parent.display()))?;
    let a: Artifact = store.get_object(artifact.0)?;
    let temp = parent.join(format!(".tmp-{artifact}-{}", std::process::id()));
    brr_store::remove_tree(&temp);
    if let Err(e) = store.materialize_copy(a.outputs, &temp, true) {
        brr_store::remove_tree(&temp);
        return Err(e.into());
    }
    // Another brr that materialized it first made the same bytes.
    brr_store::publish_dir(&temp, &dest)
        .map(|()| dest.clone())
        .map_err(|e| anyhow::anyhow!("cannot rename `{}` to `{}`: {e}", temp.display(), dest.display()).into())
}
