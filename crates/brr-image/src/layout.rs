//! Writing an [`Image`] out: an OCI image layout folder (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`), which `skopeo` reads as
//! `oci:DIR:TAG`, or an `oci-archive`, a tar of that folder's files
//! (`oci-archive:FILE:TAG`).
//!
//! A layout folder is written for one image: blobs already there are kept
//! (they are named by their content), and `index.json` is written last and
//! names only this image, under the tag given (`org.opencontainers.image.ref.name`).

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::tar::{Builder, Kind};
use crate::{Descriptor, Image, ImageError, MEDIA_INDEX};

const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: [IndexEntry<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry<'a> {
    #[serde(flatten)]
    descriptor: Descriptor,
    annotations: Annotations<'a>,
}

#[derive(Serialize)]
struct Annotations<'a> {
    #[serde(rename = "org.opencontainers.image.ref.name")]
    ref_name: &'a str,
}

/// The `index.json` naming `image` as `tag`.
pub fn index_json(image: &Image, tag: &str) -> Result<Vec<u8>, ImageError> {
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_INDEX,
        manifests: [IndexEntry { descriptor: image.manifest.descriptor(), annotations: Annotations { ref_name: tag } }],
    };
    Ok(serde_json::to_vec(&index)?)
}

/// Writes `image` as an OCI image layout into `dir` (created if missing).
pub fn write_dir(image: &Image, tag: &str, dir: &Path) -> Result<(), ImageError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|source| ImageError::Io { path: blobs.clone(), source })?;
    for blob in image.blobs() {
        let path = blobs.join(blob.digest.hex());
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == blob.bytes.len() as u64) {
            continue;
        }
        write_atomic(&path, &blob.bytes)?;
    }
    write_atomic(&dir.join("oci-layout"), OCI_LAYOUT.as_bytes())?;
    write_atomic(&dir.join("index.json"), &index_json(image, tag)?)
}

/// `image` as an `oci-archive`: the layout's files in a tar, in a fixed
/// order, with the tar's fixed owners and times.
pub fn archive(image: &Image, tag: &str) -> Result<Vec<u8>, ImageError> {
    let mut tar = Builder::default();
    crate::append(&mut tar, "blobs", Kind::Dir, b"")?;
    crate::append(&mut tar, "blobs/sha256", Kind::Dir, b"")?;
    let mut blobs: Vec<_> = image.blobs().collect();
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    for blob in blobs {
        crate::append(&mut tar, &format!("blobs/sha256/{}", blob.digest.hex()), Kind::File, &blob.bytes)?;
    }
    crate::append(&mut tar, "index.json", Kind::File, &index_json(image, tag)?)?;
    crate::append(&mut tar, "oci-layout", Kind::File, OCI_LAYOUT.as_bytes())?;
    tar.finish().map_err(|source| ImageError::Tar { entry: "the end of the archive".into(), source })
}

/// Writes `image` as an `oci-archive` file at `path`.
pub fn write_archive(image: &Image, tag: &str, path: &Path) -> Result<(), ImageError> {
    write_atomic(path, &archive(image, tag)?)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let io = |source| ImageError::Io { path: path.to_path_buf(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    std::fs::rename(&temp, path).map_err(io)
}
