//! `brr export` and `brr import`: closures as one archive file (the format
//! is documented in `brr-store`'s `archive.rs` and `docs/store.md`).

use std::path::Path;

use brr_hash::ObjectKind;
use brr_store::{ArchiveSummary, StoreError};

use super::user_error;
use crate::output;
use crate::output::store::ArchiveDoc;
use crate::settings::Settings;
use crate::{Failure, printer};

fn report(file: &Path, s: &ArchiveSummary, verb: &str, json: bool) -> Result<(), Failure> {
    if json {
        return output::print(&ArchiveDoc {
            file: file.display().to_string(),
            root: s.root.into(),
            kind: s.root_kind.as_str().to_owned(),
            objects: s.objects,
            bytes: s.bytes,
            new_objects: s.new_objects,
        });
    }
    println!("{} {}", s.root_kind.as_str(), s.root);
    printer::note(&format!(
        "{verb} {} objects ({} bytes){}",
        s.objects,
        s.bytes,
        if verb == "imported" { format!(", {} new", s.new_objects) } else { String::new() }
    ));
    Ok(())
}

/// `brr export HASH -o FILE`.
pub fn export(settings: &Settings, asked: &str, out: &Path, json: bool) -> Result<(), Failure> {
    let store = super::existing_store(settings)?;
    let d = store.resolve_prefix(asked).map_err(|e| user_error(&e.to_string(), None))?;
    match store.kind_of(d)? {
        Some(ObjectKind::Release | ObjectKind::Artifact) => {}
        other => {
            return Err(user_error(
                &format!(
                    "`{asked}` is a {}, not a release or a build",
                    other.map_or("missing object", ObjectKind::as_str)
                ),
                Some("export a release hash (`brr releases --env ENV`) or a build's artifact hash"),
            ));
        }
    }
    let summary = match store.export(d, out) {
        Err(StoreError::NotFound { hash }) => {
            return Err(user_error(
                &format!("`{d}` is not whole in this store: object `{hash}` is missing"),
                Some("a release whose build `brr gc` collected cannot be exported; rebuild it first"),
            ));
        }
        r => r?,
    };
    report(out, &summary, "exported", json)
}

/// `brr import FILE`.
pub fn import(settings: &Settings, file: &Path, json: bool) -> Result<(), Failure> {
    let store = super::open_store(settings)?;
    let summary = match store.import(file) {
        Err(e @ StoreError::BadArchive { .. }) => {
            return Err(user_error(&e.to_string(), Some("nothing was imported; export the archive again")));
        }
        r => r?,
    };
    report(file, &summary, "imported", json)
}
