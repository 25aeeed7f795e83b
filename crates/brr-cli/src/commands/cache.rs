//! `brr cache status|push|pull`: the remote caches and this workspace.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use brr_exec::explain::explain;
use brr_remote::entry::SignedEntry;
use brr_remote::remotes::Remotes;

use super::remote;
use crate::output;
use crate::output::cache::{CacheConflict, CachePullDoc, CachePushDoc, CacheRemote, CacheStatusDoc, PullStatus};
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
/// the remote has a trusted entry and whether it matches the local artifact.
pub fn status(settings: &Settings, targets: &[String], json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;
    let remotes = remotes_or_fail(settings, &ws)?;
    let explained = explain(&ws, &inputs, &store, &mask)?;
    let trusted = remote::trusted_keys(settings, &ws)?;
    let mut report = Vec::new();
    for r in remotes.remotes() {
        let url = r.backend.url().to_owned();
        let (mut hits, mut misses, mut conflicts, mut refused) = (0, 0, Vec::new(), 0);
        let mut error = None;
        for e in &explained {
            let Some(key) = e.key_hash else { continue };
            match r.backend.get_entry(key) {
                Ok(None) => misses += 1,
                Ok(Some(raw)) => match SignedEntry::decode(&raw).map_err(|e| e.to_string()).and_then(|entry| {
                    entry.verify(&trusted).map_err(|e| e.to_string())?;
                    Ok(entry)
                }) {
                    Ok(entry) => {
                        hits += 1;
                        if let Some((local, _)) = e.cached
                            && local != entry.body.artifact
                        {
                            conflicts.push(CacheConflict {
                                target: e.name.clone(),
                                key: key.into(),
                                local: local.into(),
                                remote: entry.body.artifact.into(),
                                signer: entry.body.signer.clone(),
                            });
                        }
                    }
                    Err(_) => refused += 1,
                },
                Err(err) => {
                    error = Some(err.to_string());
                    break;
                }
            }
        }
        report.push(CacheRemote {
            url,
            read_only: r.read_only,
            reachable: error.is_none(),
            error,
            hits,
            misses,
            refused,
            conflicts,
        });
    }
    if json {
        return output::print(&CacheStatusDoc { pushes: remotes.pushes(), remotes: report });
    }
    for r in &report {
        println!("{}{}", r.url, if r.read_only { " (read-only)" } else { "" });
        if let Some(e) = &r.error {
            println!("  unreachable: {e}");
            continue;
        }
        println!(
            "  {} of the workspace's keys cached there, {} missing, {} refused (untrusted or bad signature)",
            r.hits, r.misses, r.refused
        );
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
    printer::note(if remotes.pushes() {
        "this runner pushes (a signing key is set)"
    } else {
        "this runner does not push (no BRR_SIGNING_KEY, or read-only)"
    });
    Ok(())
}

/// Pushes the targets' builds (building what is not cached locally first).
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
    let mut pushed = Vec::new();
    for e in &explained {
        let (Some(key), Some((artifact, rec))) = (e.key_hash, &e.cached) else {
            printer::note(&format!("   skipped {} (not built here: run `brr build` first)", e.name));
            continue;
        };
        remotes.push(&store, key, *artifact, rec.as_ref().and_then(|r| r.log));
        pushed.push(e.name.clone());
    }
    let (n, up) = (remotes.stats.pushed.load(Ordering::Relaxed), remotes.stats.bytes_up.load(Ordering::Relaxed));
    if json {
        return output::print(&CachePushDoc { targets: pushed, entries_pushed: n, bytes_up: up });
    }
    printer::note(&format!("{} targets pushed ({n} entries written, {up} bytes uploaded)", pushed.len()));
    Ok(())
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
    if json {
        return output::print(&CachePullDoc { targets: status, bytes_down: down });
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
    Ok(())
}
