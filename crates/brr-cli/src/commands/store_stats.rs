//! `brr store stats`: what the store holds.

use std::collections::HashSet;

use crate::Failure;
use crate::output;
use crate::output::store::{KindCount, PackDoc, StoreStatsDoc, TargetSizeDoc};
use crate::settings::Settings;

pub fn run(settings: &Settings, top: usize, json: bool) -> Result<(), Failure> {
    let store = super::existing_store(settings)?;
    let stats = store.stats()?;
    let mut seen = HashSet::new();
    let mut targets = Vec::new();
    for b in store.builds_recent()? {
        let Some(artifact) = b.artifact else { continue };
        if !seen.insert(b.target.clone()) {
            continue;
        }
        // A build whose objects a gc removed has no closure left to measure.
        if let Ok((objects, bytes)) = store.closure_size(artifact) {
            targets.push(TargetSizeDoc { target: b.target, artifact: artifact.into(), objects, bytes });
        }
    }
    targets.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.target.cmp(&b.target)));
    targets.truncate(top);
    let doc = StoreStatsDoc {
        objects: stats.by_kind.iter().map(|k| k.1).sum(),
        bytes: stats.by_kind.iter().map(|k| k.2).sum(),
        kinds: stats
            .by_kind
            .iter()
            .map(|(k, n, b)| KindCount { kind: k.as_str().to_owned(), objects: *n, bytes: *b })
            .collect(),
        packs: stats
            .packs
            .iter()
            .map(|p| PackDoc {
                name: p.name.clone(),
                file_bytes: p.file_bytes,
                live_bytes: p.live_bytes,
                dead_fraction: p.dead_fraction(),
            })
            .collect(),
        roots: stats.roots,
        largest_targets: targets,
    };
    if json {
        return output::print(&doc);
    }
    println!("objects: {} ({} bytes)", doc.objects, doc.bytes);
    for k in &doc.kinds {
        println!("  {:<9} {:>9} {:>14} bytes", k.kind, k.objects, k.bytes);
    }
    println!("packs: {}", doc.packs.len());
    for p in &doc.packs {
        println!("  {}  {} bytes, {:.0}% dead", p.name, p.file_bytes, p.dead_fraction * 100.0);
    }
    println!("roots: {}", doc.roots);
    println!("largest targets:");
    for t in &doc.largest_targets {
        println!("  {:<24} {:>14} bytes in {} objects", t.target, t.bytes, t.objects);
    }
    Ok(())
}
