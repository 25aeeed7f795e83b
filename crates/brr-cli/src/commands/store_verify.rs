//! `brr store verify [--repair]`: re-hash every object, check every
//! reference; with `--repair`, drop what is damaged.

use brr_store::{RepairReport, VerifyReport};

use super::existing_store;
use crate::output;
use crate::output::inspect::{Repaired, StoreVerifyDoc};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, repair: bool, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let (r, repaired) = if repair {
        let repaired = store.repair()?;
        // Checked again from scratch: what is left is what repair cannot fix.
        (store.verify()?, Some(repaired))
    } else {
        (store.verify()?, None)
    };
    if json {
        let doc = StoreVerifyDoc {
            ok: r.problems.is_empty(),
            objects: r.objects,
            bytes: r.bytes,
            orphans: r.orphans,
            problems: r.problems.clone(),
            repaired: repaired.as_ref().map(|rep| Repaired {
                found: rep.found.problems.clone(),
                objects: rep.objects,
                action_cache: rep.actions,
                builds: rep.builds,
                verifications: rep.verifications,
                stat_cache: rep.stat_entries,
                roots: rep.roots,
                files: rep.files,
            }),
        };
        output::print(&doc)?;
    } else {
        if let Some(rep) = &repaired {
            print_repaired(rep);
        }
        print_report(&r, repaired.is_some());
    }
    if r.problems.is_empty() { Ok(()) } else { Err(Failure::Exit(exit::FAILED)) }
}

fn print_repaired(rep: &RepairReport) {
    for p in &rep.found.problems {
        println!("found: {p}");
    }
    printer::note(&format!(
        "repaired: removed {} objects, {} action-cache entries, {} history rows, {} verifications, {} stat-cache \
         entries, {} roots and {} corrupt files; the next build rebuilds what they held",
        rep.objects, rep.actions, rep.builds, rep.verifications, rep.stat_entries, rep.roots, rep.files
    ));
}

fn print_report(r: &VerifyReport, repaired: bool) {
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
    if !r.problems.is_empty() && !repaired {
        printer::note("hint: run `brr store verify --repair` to drop what is damaged; the next build rebuilds it");
    }
}
