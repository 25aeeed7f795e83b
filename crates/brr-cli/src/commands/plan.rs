//! `brr plan`: what is cached and what would build, without building.

use brr_exec::Planned;

use crate::Failure;
use crate::output::build::{PlanDoc, PlanStatus, PlanTarget};
use crate::output::{self, Hash};
use crate::settings::Settings;

pub fn run(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let planned = brr_exec::plan(&ws, &inputs, &store, &mask)?;
    if json {
        let targets = planned
            .iter()
            .map(|(i, p)| {
                let name = ws.packages[*i].name.clone();
                match p {
                    Planned::Cached { key, artifact } => PlanTarget {
                        name,
                        status: PlanStatus::Cached,
                        key: Some((*key).into()),
                        artifact: Some((*artifact).into()),
                        reason: "cached".into(),
                    },
                    Planned::Build { key, reason } => PlanTarget {
                        name,
                        status: PlanStatus::Build,
                        key: key.map(Hash::from),
                        artifact: None,
                        reason: reason.clone(),
                    },
                }
            })
            .collect();
        return output::print(&PlanDoc { targets });
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
