//! `brr cache stats`: the remote caches over this store's recent builds.

use std::collections::BTreeMap;

use crate::output;
use crate::output::cache::{CacheStatsDoc, CacheStatsTarget};
use crate::settings::Settings;
use crate::{Failure, printer};

#[expect(clippy::cast_precision_loss, reason = "a rate of counts below 2^52")]
fn rate(hits: u64, misses: u64) -> Option<f64> {
    let all = hits + misses;
    (all > 0).then(|| hits as f64 / all as f64)
}

pub fn run(settings: &Settings, runs: usize, json: bool) -> Result<(), Failure> {
    let store = super::existing_store(settings)?;
    let all = store.cache_runs(runs)?;
    // Per target: hits, misses, total build time of the misses.
    let mut per: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for t in all.iter().flat_map(|r| &r.targets) {
        let e = per.entry(t.name.clone()).or_default();
        if t.hit {
            e.0 += 1;
        } else {
            e.1 += 1;
            e.2 += t.build_ms;
        }
    }
    let targets: BTreeMap<String, CacheStatsTarget> = per
        .into_iter()
        .map(|(name, (hits, misses, ms))| {
            let build_ms = ms.checked_div(misses);
            let target = CacheStatsTarget {
                hits,
                misses,
                hit_rate: rate(hits, misses).unwrap_or(0.0),
                build_ms,
                saved_ms: build_ms.map(|b| b * hits),
            };
            (name, target)
        })
        .collect();
    let (hits, misses) = (all.iter().map(|r| r.hits).sum::<u64>(), all.iter().map(|r| r.misses).sum::<u64>());
    let saved: Vec<u64> = targets.values().filter(|t| t.hits > 0).filter_map(|t| t.saved_ms).collect();
    let doc = CacheStatsDoc {
        runs: all.len(),
        hits,
        misses,
        hit_rate: rate(hits, misses),
        bytes_down: all.iter().map(|r| r.bytes_down).sum(),
        bytes_up: all.iter().map(|r| r.bytes_up).sum(),
        wait_ms: all.iter().map(|r| r.wait_ms).sum(),
        saved_ms: (!saved.is_empty()).then(|| saved.iter().sum()),
        targets,
    };
    if json {
        return output::print(&doc);
    }
    for (name, t) in &doc.targets {
        let saved = t.saved_ms.map_or_else(String::new, |s| format!(", about {:.1}s saved", ms(s)));
        println!("{name:<24} {:>3.0}% hits ({} of {}){saved}", t.hit_rate * 100.0, t.hits, t.hits + t.misses);
    }
    printer::note(&format!(
        "{} builds: {} hits, {} misses ({}); {} bytes down, {} bytes up; {:.1}s waiting on remotes{}",
        doc.runs,
        doc.hits,
        doc.misses,
        doc.hit_rate.map_or_else(|| "no lookups".to_owned(), |r| format!("{:.0}% hit rate", r * 100.0)),
        doc.bytes_down,
        doc.bytes_up,
        ms(doc.wait_ms),
        doc.saved_ms.map_or_else(String::new, |s| format!("; about {:.1}s of building saved", ms(s)))
    ));
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "milliseconds shown as seconds")]
fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}
