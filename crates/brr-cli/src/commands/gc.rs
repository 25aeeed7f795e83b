//! `brr gc`, `brr pin`, `brr unpin`: retention.
//!
//! What `gc` keeps (its roots): every root (pins among them); per
//! environment and service, the newest `--keep-last` + 1 distinct succeeded
//! releases (the current one and those before it), each with the key its
//! build was made with (and so its dependency artifacts, which `brr image`
//! puts in layers, and its sources); the releases of runs that have not
//! ended; inside a workspace, the latest successful build of
//! each of its targets (key, artifact and log, so the next build is a cache
//! hit and `brr why` still works). With `--max-size`, other builds of the
//! history are kept too, most recently started first, while the store's
//! objects fit. Everything else goes.
//!
//! The ledger is append-only, so its rows stay, and with them every
//! release's release and config objects and its phase log (small): `ledger
//! verify` keeps passing. What an old release loses is its build: `brr run`
//! and `brr rollback` to it refuse until the build comes back (a rebuild,
//! or `brr import`).
//!
//! `gc` deletes, so it holds the store exclusive: while a build, release
//! or run has the store open it fails at once (exit 1) naming that, or,
//! with `--wait`, waits for them to close it (new ones then wait for gc).

use std::collections::HashSet;

use brr_hash::{Digest, ObjectKind, ReleaseStatus};
use brr_store::{Access, LedgerKeep, Retention, Store, StoreError, Wait};

use super::user_error;
use crate::output;
use crate::output::store::{GcDoc, KindCount};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

#[expect(clippy::struct_excessive_bools, reason = "one per flag of `brr gc`")]
pub struct Options {
    pub dry_run: bool,
    pub keep_last: usize,
    pub max_size: Option<u64>,
    pub wait: bool,
    /// Rewrite every pack with freed bytes.
    pub full: bool,
    pub json: bool,
}

/// What gc keeps, and how many of each reason.
struct Roots {
    keep: Vec<Digest>,
    releases: u64,
    pins: u64,
    targets: u64,
    /// With `--max-size`: builds of the history, newest first.
    optional: Vec<Vec<Digest>>,
}

pub fn run(settings: &Settings, opts: &Options) -> Result<(), Failure> {
    if !Store::exists(&settings.store) {
        return Err(user_error(&format!("no store at `{}`", settings.store.display()), None));
    }
    // The workspace first: a declaration mistake must not cost its builds.
    let targets: Vec<String> = if settings.root.join("brr.ron").is_file() {
        super::load_workspace(settings)?.packages.into_iter().map(|p| p.name).collect()
    } else {
        Vec::new()
    };
    let (access, wait) = match (opts.dry_run, opts.wait) {
        (true, _) => (Access::Shared, Wait::Block),
        (false, true) => (Access::Exclusive, Wait::Block),
        (false, false) => (Access::Exclusive, Wait::NoWait),
    };
    let store = match Store::open_with(&settings.store, access, wait) {
        Err(e @ StoreError::InUse { .. }) => {
            printer::note(&format!("error: cannot collect garbage: {e}"));
            printer::note(
                "hint: wait for the builds, releases and runs on this store to end, or pass `--wait` to wait for them",
            );
            return Err(Failure::Exit(exit::FAILED));
        }
        opened => opened?,
    };
    let roots = roots(&store, &targets, opts)?;
    let retention = Retention {
        keep: &roots.keep,
        ledger: LedgerKeep::Releases,
        optional: &roots.optional,
        max_bytes: opts.max_size,
        // A pack is rewritten once a quarter of it is dead; `brr store
        // compact` rewrites every pack with dead bytes.
        rewrite_when_dead: (!opts.full).then_some(4),
    };
    let (report, dirs) = if opts.dry_run {
        (store.plan_collect(&retention)?, (0, 0))
    } else {
        let exclusive = brr_store::ExclusiveStore::try_from(store)
            .map_err(|_| Failure::Internal(anyhow::anyhow!("the store was opened exclusive but is not held so")))?;
        let report = exclusive.collect_retained(&retention, &mut |_| {})?;
        let dirs = brr_release::folder::remove_unrunnable(&exclusive);
        (report, dirs)
    };
    let doc = GcDoc {
        dry_run: opts.dry_run,
        kept: report.kept,
        kept_bytes: report.kept_bytes,
        freed: report.deleted,
        freed_bytes: report.deleted_bytes,
        freed_by_kind: report
            .deleted_by_kind
            .iter()
            .map(|(k, n, b)| KindCount { kind: k.as_str().to_owned(), objects: *n, bytes: *b })
            .collect(),
        releases_kept: roots.releases,
        pins: roots.pins,
        targets_kept: roots.targets,
        actions_removed: report.actions,
        builds_removed: report.builds,
        pack_bytes_before: report.pack_bytes_before,
        pack_bytes_after: if opts.dry_run { report.pack_bytes_before } else { report.pack_bytes_after },
        release_dirs_removed: dirs.0,
        release_dir_bytes_removed: dirs.1,
    };
    if opts.json {
        return output::print(&doc);
    }
    let verb = if opts.dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {} objects ({}), kept {} ({})",
        doc.freed,
        human(doc.freed_bytes),
        doc.kept,
        human(doc.kept_bytes)
    );
    for k in &doc.freed_by_kind {
        println!("  {:<9} {:>8} objects {:>12}", k.kind, k.objects, human(k.bytes));
    }
    println!(
        "roots: {} releases, {} pins, {} latest target builds; removed {} cache entries, {} history rows",
        doc.releases_kept, doc.pins, doc.targets_kept, doc.actions_removed, doc.builds_removed
    );
    if !opts.dry_run {
        println!(
            "packs: {} -> {}; release folders removed: {} ({})",
            human(doc.pack_bytes_before),
            human(doc.pack_bytes_after),
            doc.release_dirs_removed,
            human(doc.release_dir_bytes_removed)
        );
    }
    Ok(())
}

/// What gc keeps (see the module docs).
fn roots(store: &Store, targets: &[String], opts: &Options) -> Result<Roots, Failure> {
    let mut keep = Vec::new();
    let mut releases = HashSet::new();
    for env in store.ledger_envs()? {
        for service in store.ledger_services(&env)? {
            let mut seen = HashSet::new();
            for row in store.ledger_history(&env, Some(&service), usize::MAX)? {
                if row.entry.status != ReleaseStatus::Succeeded {
                    continue;
                }
                if seen.len() > opts.keep_last {
                    break;
                }
                seen.insert(row.entry.release);
            }
            releases.extend(seen);
        }
    }
    for run in store.runs_unfinished()? {
        releases.extend(store.run_processes(run.id)?.into_iter().map(|p| p.release));
    }
    keep.extend(releases.iter().map(|r| r.0));
    // `--out-link` copies live in `artifacts/<hash>`: a link may point there.
    if let Ok(entries) = std::fs::read_dir(store.artifacts_dir()) {
        keep.extend(entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<Digest>().ok()));
    }
    let pins = store.roots()?.iter().filter(|r| r.name.starts_with("pin ")).count() as u64;
    let history = store.builds_recent()?;
    let mut latest = HashSet::new();
    for target in targets {
        if let Some(b) = history.iter().find(|b| &b.target == target) {
            latest.insert(b.key);
            keep.push(b.key.0);
            keep.extend(b.artifact.map(|a| a.0));
            keep.extend(b.log);
        }
    }
    // What the action cache names for those keys (a cached use records no
    // log in its history row, but its action entry does): without them the
    // entry goes, and the next build runs every builder again.
    // The key each kept release's build was made with (its newest): it names
    // the dependency artifacts `brr image` layers and `why` lists, and keeps
    // them. Its history row and action entry stay only with their logs.
    // Dependencies' keys too: an image layers the whole closure.
    let mut release_keys = HashSet::new();
    let mut todo: Vec<brr_hash::ArtifactHash> =
        releases.iter().filter_map(|r| store.get_object::<brr_hash::Release>(r.0).ok()).map(|r| r.build).collect();
    let mut seen = HashSet::new();
    while let Some(artifact) = todo.pop() {
        if !seen.insert(artifact) {
            continue;
        }
        if let Some(key) = store.keys_of_artifact(artifact)?.first()
            && release_keys.insert(*key)
        {
            keep.push(key.0);
            if let Ok(action) = store.get_object::<brr_hash::ActionKey>(key.0) {
                todo.extend(action.deps.into_values());
            }
        }
    }
    keep.extend(history.iter().filter(|b| release_keys.contains(&b.key)).filter_map(|b| b.log));
    let keys: Vec<brr_hash::BuildKey> = latest.iter().chain(&release_keys).copied().collect();
    for rec in store.lookup_actions(&keys)?.into_iter().flatten() {
        keep.push(rec.artifact.0);
        keep.extend(rec.log);
        keep.extend(rec.outputs.map(|t| t.0));
    }
    let optional = if opts.max_size.is_some() {
        history
            .iter()
            .filter(|b| !latest.contains(&b.key))
            .map(|b| [Some(b.key.0), b.artifact.map(|a| a.0), b.log].into_iter().flatten().collect())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Roots { keep, releases: releases.len() as u64, pins, targets: latest.len() as u64, optional })
}

/// `brr pin RELEASE` (a root named `pin <hash>`) and `brr unpin RELEASE`.
pub fn pin(settings: &Settings, asked: &str, on: bool) -> Result<(), Failure> {
    let store = super::existing_store(settings)?;
    let d = store.resolve_prefix(asked).map_err(|e| user_error(&e.to_string(), None))?;
    if store.kind_of(d)? != Some(ObjectKind::Release) {
        return Err(user_error(
            &format!("`{asked}` is not a release"),
            Some("pin a release hash, as `brr releases --env ENV` lists them"),
        ));
    }
    let name = format!("pin {d}");
    if on {
        store.add_root(&name, d, "pinned by `brr pin`")?;
        printer::note(&format!("pinned release `{d}`"));
    } else if store.remove_root(&name)? {
        printer::note(&format!("unpinned release `{d}`: the next `brr gc` may delete its build"));
    } else {
        return Err(user_error(&format!("release `{d}` is not pinned"), None));
    }
    Ok(())
}

/// Bytes for people: `1.5 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[expect(clippy::cast_precision_loss, reason = "for display")]
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}
