//! `brr plan`: what is cached and what would build, without building.
//! With remote caches, a target whose key is known and that a remote holds a
//! valid entry for is `remote`: the build would fetch it (asked without
//! fetching anything; dependents' keys stay unknown until it is fetched).

use brr_exec::Planned;
use brr_hash::{ArtifactHash, BuildKey};
use brr_remote::remotes::{EntryState, Remotes};

use crate::Failure;
use crate::output::build::{PlanDoc, PlanStatus, PlanTarget};
use crate::output::{self, Hash};
use crate::settings::Settings;

pub fn run(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let planned = brr_exec::plan(&ws, &inputs, &store, &mask)?;
    let remotes = super::remote::open(settings, &ws)?;
    let on_remote = |key: &Option<BuildKey>| -> Option<(ArtifactHash, String)> {
        let (r, key): (&Remotes, BuildKey) = (remotes.as_ref()?, (*key)?);
        r.remotes().iter().find_map(|remote| match r.inspect(remote, key) {
            Ok(EntryState::Valid { artifact, .. }) => Some((artifact, remote.backend.url().to_owned())),
            _ => None,
        })
    };
    let planned: Vec<_> = planned
        .into_iter()
        .map(|(i, p)| {
            let remote = match &p {
                Planned::Build { key, .. } => on_remote(key),
                Planned::Cached { .. } => None,
            };
            (i, p, remote)
        })
        .collect();
    let cpu_note = |i: usize| {
        let body = &ws.packages[i].body;
        brr_graph::cpu::note(&body.builder, &body.env)
    };
    if json {
        let targets = planned
            .iter()
            .map(|(i, p, remote)| {
                let name = ws.packages[*i].name.clone();
                if let (Planned::Build { key, .. }, Some((artifact, url))) = (p, remote) {
                    return PlanTarget {
                        name,
                        status: PlanStatus::Remote,
                        key: key.map(Hash::from),
                        artifact: Some((*artifact).into()),
                        reason: format!("the remote cache `{url}` has it"),
                        cpu_note: cpu_note(*i),
                    };
                }
                match p {
                    Planned::Cached { key, artifact } => PlanTarget {
                        name,
                        status: PlanStatus::Cached,
                        key: Some((*key).into()),
                        artifact: Some((*artifact).into()),
                        reason: "cached".into(),
                        cpu_note: cpu_note(*i),
                    },
                    Planned::Build { key, reason } => PlanTarget {
                        name,
                        status: PlanStatus::Build,
                        key: key.map(Hash::from),
                        artifact: None,
                        reason: reason.clone(),
                        cpu_note: cpu_note(*i),
                    },
                }
            })
            .collect();
        return output::print(&PlanDoc { targets });
    }
    for (i, p, remote) in &planned {
        let name = &ws.packages[*i].name;
        if let Some((artifact, url)) = remote {
            println!("remote  {name}  {}  (from `{url}`)", artifact.short());
            continue;
        }
        match p {
            Planned::Cached { artifact, .. } => println!("cached  {name}  {}", artifact.short()),
            Planned::Build { reason, .. } => println!("build   {name}  ({reason})"),
        }
        if let Some(note) = cpu_note(*i) {
            println!("        note: {note}");
        }
    }
    Ok(())
}
