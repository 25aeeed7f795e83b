//! `brr store compact`: rewrite packs holding dead bytes and remove what
//! killed processes left, with the store held exclusive.

use brr_store::{Store, StoreError};

use crate::output;
use crate::output::inspect::StoreCompactDoc;
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, json: bool) -> Result<(), Failure> {
    if !Store::exists(&settings.store) {
        printer::note(&format!("error: no store at `{}`", settings.store.display()));
        return Err(Failure::Exit(exit::USER));
    }
    let store = match Store::open_exclusive(&settings.store) {
        Err(e @ StoreError::InUse { .. }) => {
            printer::note(&format!("error: {e}"));
            printer::note("hint: wait for the builds and other brr commands on this store to end, then retry");
            return Err(Failure::Exit(exit::FAILED));
        }
        opened => opened?,
    };
    let r = store.compact()?;
    if json {
        output::print(&StoreCompactDoc {
            packs_before: r.packs_before,
            pack_bytes_before: r.pack_bytes_before,
            packs_after: r.packs_after,
            pack_bytes_after: r.pack_bytes_after,
            moved: r.moved,
            moved_bytes: r.moved_bytes,
            orphans_removed: r.files,
            temp_files_removed: r.temp_files,
        })?;
        return Ok(());
    }
    println!(
        "packs: {} ({} bytes) -> {} ({} bytes); moved {} objects ({} bytes); removed {} orphan files and {} temp files",
        r.packs_before,
        r.pack_bytes_before,
        r.packs_after,
        r.pack_bytes_after,
        r.moved,
        r.moved_bytes,
        r.files,
        r.temp_files
    );
    Ok(())
}
