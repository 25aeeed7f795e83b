//! `brr plan`: what is cached and what would build, without building.

use brr_exec::Planned;
use serde_json::json;

use super::print_json;
use crate::Failure;
use crate::settings::Settings;

pub fn run(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let planned = brr_exec::plan(&ws, &inputs, &store, &mask)?;
    if json {
        let targets: Vec<_> = planned
            .iter()
            .map(|(i, p)| match p {
                Planned::Cached { key, artifact } => json!({
                    "name": ws.packages[*i].name, "status": "cached",
                    "key": key.to_string(), "artifact": artifact.to_string(), "reason": "cached",
                }),
                Planned::Build { key, reason } => json!({
                    "name": ws.packages[*i].name, "status": "build",
                    "key": key.map(|k| k.to_string()), "artifact": null, "reason": reason,
                }),
            })
            .collect();
        return print_json(&json!({ "targets": targets }));
    }
    for (i, p) in &planned {
        let name = &ws.packages[*i].name;
        match p {
            Planned::Cached { artifact, .. } => println!("cached  {name}  {}", artifact.short()),
            Planned::Build { reason, .. } => println!("build   {name}  ({reason})"),
        }
    }
    Ok(())
}
