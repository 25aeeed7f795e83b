//! `brr graph`: the dependency DAG as Graphviz dot or JSON.

use brr_graph::PackageKind;
use serde_json::json;

use super::{load_workspace, print_json};
use crate::Failure;
use crate::cli::GraphFormat;
use crate::settings::Settings;

pub fn run(settings: &Settings, format: GraphFormat) -> Result<(), Failure> {
    let ws = load_workspace(settings)?;
    let kind = |k: PackageKind| if k == PackageKind::Service { "service" } else { "library" };
    match format {
        GraphFormat::Json => {
            let nodes: Vec<_> = ws
                .packages
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name, "kind": kind(p.kind), "dir": p.dir,
                        "deps": p.body.deps, "inputs": p.inputs.len(),
                    })
                })
                .collect();
            print_json(&json!({ "targets": nodes }))
        }
        GraphFormat::Dot => {
            println!("digraph brr {{");
            println!("  rankdir=LR;");
            for p in &ws.packages {
                let shape = if p.kind == PackageKind::Service { "box" } else { "ellipse" };
                println!("  \"{}\" [shape={shape}];", p.name);
            }
            for p in &ws.packages {
                for d in &p.body.deps {
                    println!("  \"{}\" -> \"{d}\";", p.name);
                }
            }
            println!("}}");
            Ok(())
        }
    }
}
