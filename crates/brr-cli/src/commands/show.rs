//! `brr show HASH`: any stored object, decoded by its kind.

use std::io::Write;

use brr_hash::{ActionKey, Artifact, Object, ObjectKind, Tree};
use serde_json::json;

use super::{existing_store, print_json};
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
            if json {
                let text = std::str::from_utf8(&bytes).ok();
                json!({ "size": bytes.len(), "text": text })
            } else {
                std::io::stdout().write_all(&bytes)?;
                return Ok(());
            }
        }
        ObjectKind::Tree => {
            let t = Tree::decode(&bytes)?;
            if !json {
                for e in &t.entries {
                    println!("{:<10} {}  {:>10}  {}", format!("{:?}", e.kind).to_lowercase(), e.hash, e.size, e.name);
                }
                return Ok(());
            }
            serde_json::to_value(&t)?
        }
        ObjectKind::Action => serde_json::to_value(ActionKey::decode(&bytes)?)?,
        ObjectKind::Artifact => serde_json::to_value(Artifact::decode(&bytes)?)?,
    };
    if json {
        return print_json(&json!({ "hash": d.to_string(), "kind": kind.as_str(), "object": object }));
    }
    println!("{} {}", kind.as_str(), d);
    println!("{}", serde_json::to_string_pretty(&object)?);
    Ok(())
}
