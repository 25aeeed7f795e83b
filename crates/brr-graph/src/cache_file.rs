//! Files of derived data in the store's `cache/` folder: postcard with a
//! BLAKE3 checksum at the end, written to a temp file and renamed. Reading
//! gives `None` for anything missing, damaged or of another layout; writing
//! ignores failures. Losing one only costs the work it saved.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `<cache_dir>/<kind>-<hash of the workspace root>.bin`: one file of each
/// kind per workspace.
pub(crate) fn path_for(cache_dir: &Path, kind: &str, root: &Path) -> PathBuf {
    let id = blake3::hash(root.as_os_str().as_bytes()).to_hex();
    cache_dir.join(format!("{kind}-{}.bin", &id[..16]))
}

/// The value in `path`, if it is there, intact and decodes as a `T`.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// Writes `value` to `path` (creating its folder); never leaves a partial
/// file under the real name.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) {
    let Ok(mut bytes) = postcard::to_stdvec(value) else { return };
    let sum = *blake3::hash(&bytes).as_bytes();
    bytes.extend_from_slice(&sum);
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, &bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
