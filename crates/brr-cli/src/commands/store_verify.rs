//! `brr store verify`: re-hash every object, check every reference.

use serde_json::json;

use super::{existing_store, print_json};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let r = store.verify()?;
    if json {
        print_json(&json!({
            "ok": r.problems.is_empty(), "objects": r.objects, "bytes": r.bytes,
            "orphans": r.orphans, "problems": r.problems,
        }))?;
    } else {
        for p in &r.problems {
            println!("problem: {p}");
        }
        printer::note(&format!(
            "{} objects ({} bytes) checked, {} unreferenced files, {} problems",
            r.objects,
            r.bytes,
            r.orphans,
            r.problems.len()
        ));
    }
    if r.problems.is_empty() { Ok(()) } else { Err(Failure::Exit(exit::FAILED)) }
}
