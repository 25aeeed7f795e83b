//! `brr show HASH`: any stored object, decoded by its kind.

use std::io::Write;

use brr_hash::{ActionKey, Artifact, Config, LedgerEntry, Object, ObjectKind, Release, Tree};

use super::existing_store;
use crate::output;
use crate::output::inspect::{Blob, ShowDoc, ShowObject};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

pub fn run(settings: &Settings, hash: &str, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let d = match store.resolve_prefix(hash) {
        Ok(d) => d,
        Err(e) => {
            printer::note(&format!("error: {e}"));
            return Err(Failure::Exit(exit::USER));
        }
    };
    let kind = store.kind_of(d)?.unwrap_or(ObjectKind::Blob);
    let bytes = store.get(d)?;
    let object = match kind {
        ObjectKind::Blob => {
            if !json {
                std::io::stdout().write_all(&bytes)?;
                return Ok(());
            }
            let text = std::str::from_utf8(&bytes).ok().map(str::to_owned);
            ShowObject::Blob(Blob { size: bytes.len(), text })
        }
        ObjectKind::Tree => {
            let t = Tree::decode(&bytes)?;
            if !json {
                for e in &t.entries {
                    println!("{:<10} {}  {:>10}  {}", format!("{:?}", e.kind).to_lowercase(), e.hash, e.size, e.name);
                }
                return Ok(());
            }
            ShowObject::Tree(t.into())
        }
        ObjectKind::Action => ShowObject::Action(ActionKey::decode(&bytes)?.into()),
        ObjectKind::Artifact => ShowObject::Artifact(Artifact::decode(&bytes)?.into()),
        ObjectKind::Config => ShowObject::Config(Config::decode(&bytes)?.into()),
        ObjectKind::Release => ShowObject::Release(Release::decode(&bytes)?.into()),
        ObjectKind::Ledger => ShowObject::Ledger(LedgerEntry::decode(&bytes)?.into()),
    };
    let doc = ShowDoc { hash: d.into(), object };
    if json {
        return output::print(&doc);
    }
    // Action keys and artifacts read as the document's `object`.
    let value = serde_json::to_value(&doc)?;
    println!("{} {}", kind.as_str(), d);
    println!("{}", serde_json::to_string_pretty(&value["object"])?);
    Ok(())
}
