//! `brr log TARGET`: the log of a target's last build that ran a builder.

use super::existing_store;
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, target: &str) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    for row in store.builds_of(target, 1000)? {
        let log = match row.log {
            Some(l) => Some(l),
            None => store.lookup_action(row.key)?.and_then(|r| r.log),
        };
        if let Some(l) = log {
            let bytes = store.get(l)?;
            printer::note(&format!("log of `{target}` ({}, key {})", row.status, row.key.short()));
            if bytes.is_empty() {
                printer::note(&format!("(the builder of `{target}` printed nothing)"));
            }
            std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
            return Ok(());
        }
    }
    printer::note(&format!("error: no build log for `{target}` in this store"));
    Err(Failure::Exit(exit::USER))
}
