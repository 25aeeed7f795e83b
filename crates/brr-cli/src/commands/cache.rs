//! `brr cache status|push|pull`: the remote caches and this workspace.
//! Each exits 1 when a remote is unreachable, or an item is missing, broken
//! or conflicting, so CI can gate on it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use brr_exec::explain::explain;
use brr_remote::remotes::{EntryState, PushOutcome, Remotes};

use super::remote;
use crate::output;
use crate::output::cache::{
    CacheBroken, CacheConflict, CachePullDoc, CachePushDoc, CacheRemote, CacheStatusDoc, PullStatus, RecordedConflict,
};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

fn remotes_or_fail(settings: &Settings, ws: &brr_graph::Workspace) -> Result<Remotes, Failure> {
    match remote::open(settings, ws)? {
        Some(r) if !r.is_empty() => Ok(r),
        _ => {
            printer::note("error: no remote cache configured");
            printer::note(
                "hint: add `remotes: [Remote(url: \"http://…\")]` to the workspace brr.ron, or set BRR_REMOTE_CACHE",
            );
            Err(Failure::Exit(exit::USER))
        }
    }
}

/// Per remote: reachable, and for every target whose key is known, whether
/// the remote's entry is present and valid, present but broken (and why),
/// untrusted, or missing, and whether it matches the local artifact; then
/// the conflicts this runner recorded. Exits 1 when a remote is unreachable
/// or an entry is missing, broken or conflicting.
pub fn status(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let remotes = remotes_or_fail(settings, &ws)?;
    let explained = explain(&ws, &inputs, &store, &mask)?;
    let mut report = Vec::new();
    let mut trouble = false;
    for r in remotes.remotes() {
        let url = r.backend.url().to_owned();
        let (mut hits, mut refused, mut missing, mut broken, mut conflicts) =
            (0, 0, Vec::new(), Vec::new(), Vec::new());
        let mut error = None;
        for e in &explained {
            let Some(key) = e.key_hash else { continue };
            match remotes.inspect(r, key) {
                Ok(EntryState::Missing) => missing.push(e.name.clone()),
                Ok(EntryState::Untrusted { .. }) => refused += 1,
                Ok(EntryState::Broken { reason }) => {
                    broken.push(CacheBroken { target: e.name.clone(), key: key.into(), reason });
                }
                Ok(EntryState::Valid { artifact, signer }) => {
                    hits += 1;
                    if let Some((local, _)) = e.cached
                        && local != artifact
                    {
                        conflicts.push(CacheConflict {
                            target: e.name.clone(),
                            key: key.into(),
                            local: local.into(),
                            remote: artifact.into(),
                            signer,
                        });
                    }
                }
                Err(err) => {
                    error = Some(err.to_string());
                    break;
                }
            }
        }
        trouble |= error.is_some() || !missing.is_empty() || !broken.is_empty() || !conflicts.is_empty();
        report.push(CacheRemote {
            url,
            read_only: r.read_only,
            reachable: error.is_none(),
            error,
            hits,
            misses: missing.len() as u64,
            missing,
            refused,
            broken,
            conflicts,
        });
    }
    let names: BTreeMap<_, _> = explained.iter().filter_map(|e| Some((e.key_hash?, e.name.clone()))).collect();
    let recorded: Vec<RecordedConflict> = store
        .cache_conflicts()?
        .into_iter()
        .map(|c| {
            let target = names.get(&c.key).cloned();
            RecordedConflict::new(c, target)
        })
        .collect();
    trouble |= recorded.iter().any(|c| c.target.is_some());
    let code = if trouble { Err(Failure::Exit(exit::FAILED)) } else { Ok(()) };
    if json {
        output::print(&CacheStatusDoc { pushes: remotes.pushes(), remotes: report, recorded_conflicts: recorded })?;
        return code;
    }
    print_status(&report, &recorded);
    printer::note(if remotes.pushes() {
        "this runner pushes (a signing key is set)"
    } else {
        "this runner does not push (no BRR_SIGNING_KEY, or read-only)"
    });
    code
}

/// `cache status` as text.
fn print_status(report: &[CacheRemote], recorded: &[RecordedConflict]) {
    for r in report {
        println!("{}{}", r.url, if r.read_only { " (read-only)" } else { "" });
        if let Some(e) = &r.error {
            println!("  unreachable: {e}");
            continue;
        }
        println!(
            "  {} present and valid, {} present but broken, {} missing, {} signed by keys not trusted here",
            r.hits,
            r.broken.len(),
            r.misses,
            r.refused
        );
        for b in &r.broken {
            println!("  broken: `{}`: {}", b.target, b.reason);
        }
        for m in &r.missing {
            println!("  missing: `{m}`");
        }
        for c in &r.conflicts {
            println!(
                "  NOT reproducible: `{}` built to {} here, to {} by `{}`",
                c.target,
                &c.local.to_string()[..12],
                &c.remote.to_string()[..12],
                c.signer
            );
        }
    }
    for c in recorded {
        println!(
            "conflict recorded: {} (key {}) built to {} here, to {} by `{}` in `{}`",
            c.target.as_deref().map_or_else(|| "an older key".to_owned(), |t| format!("`{t}`")),
            &c.key.to_string()[..12],
            &c.local.to_string()[..12],
            &c.theirs.to_string()[..12],
            c.signer,
            c.remote
        );
    }
}

/// Pushes the targets' builds (built here), healing broken remote entries.
/// Exits 1 when a target is not built here, a push fails or conflicts.
pub fn push(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let remotes = remotes_or_fail(settings, &ws)?;
    if !remotes.pushes() {
        printer::note(
            "error: nothing can be pushed: set BRR_SIGNING_KEY (see `brr key generate`), unset BRR_CACHE_READ_ONLY, and configure a writable remote",
        );
        return Err(Failure::Exit(exit::USER));
    }
    let explained = explain(&ws, &inputs, &store, &mask)?;
    let (mut pushed, mut skipped, mut failed, mut conflicts) = (Vec::new(), Vec::new(), BTreeMap::new(), Vec::new());
    for e in &explained {
        let (Some(key), Some((artifact, rec))) = (e.key_hash, &e.cached) else {
            printer::note(&format!("   skipped {} (not built here: run `brr build` first)", e.name));
            skipped.push(e.name.clone());
            continue;
        };
        let outcomes = remotes.push(&store, key, *artifact, rec.as_ref().and_then(|r| r.log));
        for (url, outcome) in outcomes {
            match outcome {
                PushOutcome::Failed(why) => {
                    failed.insert(e.name.clone(), format!("{url}: {why}"));
                }
                PushOutcome::Conflict { .. } => conflicts.push(e.name.clone()),
                PushOutcome::Written | PushOutcome::Healed | PushOutcome::Present => {}
            }
        }
        if !failed.contains_key(&e.name) {
            pushed.push(e.name.clone());
        }
    }
    let (n, up) = (remotes.stats.pushed.load(Ordering::Relaxed), remotes.stats.bytes_up.load(Ordering::Relaxed));
    let healed = remotes.stats.healed.load(Ordering::Relaxed);
    let code = if skipped.is_empty() && failed.is_empty() && conflicts.is_empty() {
        Ok(())
    } else {
        Err(Failure::Exit(exit::FAILED))
    };
    if json {
        output::print(&CachePushDoc {
            targets: pushed,
            skipped,
            failed,
            conflicts,
            healed,
            entries_pushed: n,
            bytes_up: up,
        })?;
        return code;
    }
    for (target, why) in &failed {
        printer::note(&format!("error: could not push `{target}`: {why}"));
    }
    printer::note(&format!(
        "{} targets pushed ({n} entries written, {healed} healed, {up} bytes uploaded); {} not built here, {} failed, \
         {} conflicting",
        pushed.len(),
        skipped.len(),
        failed.len(),
        conflicts.len()
    ));
    code
}

/// Fetches the targets' builds from the remotes without building anything.
pub fn pull(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let remotes = remotes_or_fail(settings, &ws)?;
    let mut status = BTreeMap::new();
    // Keys of dependents are known once their dependencies are: repeat until
    // nothing more can be fetched.
    loop {
        let explained = explain(&ws, &inputs, &store, &mask)?;
        let mut progress = false;
        for e in &explained {
            if e.cached.is_some() {
                status.entry(e.name.clone()).or_insert(PullStatus::Cached);
                continue;
            }
            let Some(key) = e.key_hash else { continue };
            if status.contains_key(&e.name) {
                continue;
            }
            if remotes.fetch(&store, key).is_some() {
                status.insert(e.name.clone(), PullStatus::Pulled);
                progress = true;
            } else {
                status.insert(e.name.clone(), PullStatus::Missing);
            }
        }
        if !progress {
            for e in &explained {
                status.entry(e.name.clone()).or_insert(PullStatus::Missing);
            }
            break;
        }
    }
    let down = remotes.stats.bytes_down.load(Ordering::Relaxed);
    let count = |s: PullStatus| status.values().filter(|v| **v == s).count();
    let code = if count(PullStatus::Missing) == 0 { Ok(()) } else { Err(Failure::Exit(exit::FAILED)) };
    if json {
        output::print(&CachePullDoc { targets: status, bytes_down: down })?;
        return code;
    }
    for (name, s) in &status {
        println!("{:<8} {name}", s.as_str());
    }
    printer::note(&format!(
        "{} pulled, {} already cached, {} missing ({down} bytes downloaded)",
        count(PullStatus::Pulled),
        count(PullStatus::Cached),
        count(PullStatus::Missing)
    ));
    code
}
