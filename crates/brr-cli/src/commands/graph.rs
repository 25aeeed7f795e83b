//! `brr graph`: the dependency DAG as Graphviz dot or JSON.

use brr_graph::PackageKind;

use super::load_workspace;
use crate::Failure;
use crate::cli::GraphFormat;
use crate::output;
use crate::output::build::{GraphDoc, GraphNode, PackageKind as Kind};
use crate::settings::Settings;

pub fn run(settings: &Settings, format: GraphFormat) -> Result<(), Failure> {
    let ws = load_workspace(settings)?;
    match format {
        GraphFormat::Json => {
            let targets = ws
                .packages
                .iter()
                .map(|p| GraphNode {
                    name: p.name.clone(),
                    kind: match p.kind {
                        PackageKind::Service => Kind::Service,
                        PackageKind::Library => Kind::Library,
                        PackageKind::Fetch => Kind::Fetch,
                    },
                    dir: p.dir.clone(),
                    deps: p.body.deps.clone(),
                    inputs: p.inputs.len(),
                })
                .collect();
            output::print(&GraphDoc { targets })
        }
        GraphFormat::Dot => {
            println!("digraph brr {{");
            println!("  rankdir=LR;");
            for p in &ws.packages {
                let shape = match p.kind {
                    PackageKind::Service => "box",
                    PackageKind::Library => "ellipse",
                    PackageKind::Fetch => "note",
                };
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
