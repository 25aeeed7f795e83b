//! `brr releases`, `brr diff`, `brr ledger verify` and `brr log --release`:
//! reading the ledger. None of them needs the workspace.

use std::io::Write;

use brr_hash::ReleaseHash;
use brr_release::diff::{Change, SpecError};
use brr_store::LedgerRow;

use super::{existing_store, user_error};
use crate::output;
use crate::output::release::{
    BrokenLink, CommandChange, DiffDoc, DiffSide, FileChange, FileChangeKind, LedgerEntry, LedgerVerifyDoc,
    ReleasesDoc, SettingChange, VarChange,
};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

/// `brr releases --env ENV [SERVICE]`: newest first, the current release
/// of each service marked.
pub fn releases(
    settings: &Settings,
    env: &str,
    service: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let rows = store.ledger_history(env, service, limit)?;
    if rows.is_empty() {
        let known = store.ledger_envs()?;
        let what = service.map_or_else(String::new, |s| format!(" of `{s}`"));
        printer::note(&format!("error: `{env}` has no releases{what}"));
        if !known.is_empty() {
            printer::note(&format!("hint: environments with releases: {}", known.join(", ")));
        }
        return Err(Failure::Exit(exit::USER));
    }
    // The current entry of each service listed.
    let mut current = std::collections::HashMap::new();
    for row in &rows {
        if !current.contains_key(&row.entry.service) {
            let cur = store.ledger_current(env, &row.entry.service)?.map(|r| r.id);
            current.insert(row.entry.service.clone(), cur);
        }
    }
    let is_current = |row: &LedgerRow| current.get(&row.entry.service).copied().flatten() == Some(row.id);
    if json {
        let releases = rows.iter().map(|r| entry_doc(r, is_current(r))).collect();
        return output::print(&ReleasesDoc { releases });
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in &rows {
        let e = &r.entry;
        let mark = if is_current(r) { "*" } else { " " };
        let source = e.source.as_ref().map(|s| format!(" from {}@v{}", s.env, s.version)).unwrap_or_default();
        let note = e.note.as_ref().map(|n| format!("  \"{n}\"")).unwrap_or_default();
        writeln!(
            out,
            "{mark} {:<12} v{:<5} {}  {:<9} {:<9}{source}  {}  {}{note}",
            e.service,
            e.version,
            e.release.short(),
            e.action.as_str(),
            e.status.as_str(),
            time(e.time_ms),
            e.actor,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn time(ms: i64) -> String {
    printer::fmt_time(ms.div_euclid(1000))
}

fn entry_doc(r: &LedgerRow, current: bool) -> LedgerEntry {
    let e = &r.entry;
    LedgerEntry {
        service: e.service.clone(),
        env: e.env.clone(),
        version: e.version,
        release: e.release.into(),
        build: r.build.into(),
        config: r.config.into(),
        action: e.action.into(),
        status: e.status.into(),
        current,
        actor: e.actor.clone(),
        time: time(e.time_ms),
        note: e.note.clone(),
        source_env: e.source.as_ref().map(|s| s.env.clone()),
        source_version: e.source.as_ref().map(|s| s.version),
        hash: r.hash.into(),
    }
}

fn spec_failure(e: SpecError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string(), None) } else { Failure::Internal(e.into()) }
}

/// `brr diff A B`.
pub fn diff(settings: &Settings, spec_a: &str, spec_b: &str, service: Option<&str>, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let side_a = brr_release::diff::resolve(&store, spec_a, service).map_err(spec_failure)?;
    // B defaults to A's service, so `diff staging@v3 production` compares one service.
    let service_b = service.or(side_a.service.as_deref());
    let side_b = brr_release::diff::resolve(&store, spec_b, service_b).map_err(spec_failure)?;
    let delta = brr_release::diff::diff(&store, side_a, side_b).map_err(|e| Failure::Internal(e.into()))?;
    if json {
        return output::print(&diff_doc(&delta));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "--- {}  release {}", delta.a.label, delta.a.release.short())?;
    writeln!(out, "+++ {}  release {}", delta.b.label, delta.b.release.short())?;
    if delta.is_empty() {
        writeln!(out, "no differences: same build, config and processes")?;
        return Ok(out.flush()?);
    }
    if delta.a.build == delta.b.build {
        writeln!(out, "build: same ({})", delta.a.build.short())?;
    } else {
        writeln!(out, "build: {} → {}", delta.a.build.short(), delta.b.build.short())?;
        for f in &delta.files {
            let size = |s: Option<u64>| s.map_or_else(|| "-".to_owned(), |s| s.to_string());
            let (sign, sizes) = match f.change {
                Change::Added => ("A", format!("{} bytes", size(f.new_size))),
                Change::Removed => ("D", format!("{} bytes", size(f.old_size))),
                Change::Changed => ("M", format!("{} → {} bytes", size(f.old_size), size(f.new_size))),
            };
            writeln!(out, "  {sign} {}  ({sizes})", f.path)?;
        }
    }
    if delta.a.config == delta.b.config {
        writeln!(out, "config: same ({})", delta.a.config.short())?;
    } else {
        writeln!(out, "config: {} → {}", delta.a.config.short(), delta.b.config.short())?;
        for v in &delta.vars {
            match (&v.old, &v.new) {
                (None, Some(n)) => writeln!(out, "  + {}={n}", v.name)?,
                (Some(o), None) => writeln!(out, "  - {}={o}", v.name)?,
                (Some(o), Some(n)) => writeln!(out, "  ~ {}: {o} → {n}", v.name)?,
                (None, None) => {}
            }
        }
        for s in &delta.secrets_added {
            writeln!(out, "  + secret {s}")?;
        }
        for s in &delta.secrets_removed {
            writeln!(out, "  - secret {s}")?;
        }
    }
    let argv = |c: &Option<Vec<String>>| c.as_ref().map_or_else(|| "(none)".to_owned(), |c| c.join(" "));
    for c in &delta.processes {
        writeln!(out, "process `{}`: {} → {}", c.name, argv(&c.old), argv(&c.new))?;
    }
    let setting = |v: &Option<String>| v.clone().unwrap_or_else(|| "(default)".to_owned());
    for c in &delta.process_settings {
        writeln!(out, "process `{}` {}: {} → {}", c.process, c.setting, setting(&c.old), setting(&c.new))?;
    }
    if let Some(c) = &delta.release_command {
        writeln!(out, "release command: {} → {}", argv(&c.old), argv(&c.new))?;
    }
    Ok(out.flush()?)
}

/// The `--json` document of a diff.
fn diff_doc(delta: &brr_release::diff::ReleaseDiff) -> DiffDoc {
    let side = |s: &brr_release::diff::Side| DiffSide {
        label: s.label.clone(),
        release: s.release.into(),
        build: s.build.into(),
        config: s.config.into(),
        service: s.service.clone(),
    };
    let command = |c: &brr_release::diff::CommandChange| CommandChange {
        name: c.name.clone(),
        old: c.old.clone(),
        new: c.new.clone(),
    };
    DiffDoc {
        a: side(&delta.a),
        b: side(&delta.b),
        files: delta
            .files
            .iter()
            .map(|f| FileChange {
                path: f.path.clone(),
                change: match f.change {
                    Change::Added => FileChangeKind::Added,
                    Change::Removed => FileChangeKind::Removed,
                    Change::Changed => FileChangeKind::Changed,
                },
                old_size: f.old_size,
                new_size: f.new_size,
            })
            .collect(),
        vars: delta
            .vars
            .iter()
            .map(|v| VarChange { name: v.name.clone(), old: v.old.clone(), new: v.new.clone() })
            .collect(),
        secrets_added: delta.secrets_added.clone(),
        secrets_removed: delta.secrets_removed.clone(),
        processes: delta.processes.iter().map(command).collect(),
        process_settings: delta
            .process_settings
            .iter()
            .map(|c| SettingChange {
                process: c.process.clone(),
                setting: c.setting.to_owned(),
                old: c.old.clone(),
                new: c.new.clone(),
            })
            .collect(),
        release_command: delta.release_command.as_ref().map(command),
    }
}

/// `brr ledger verify`: exit 1 when a chain is broken.
pub fn verify(settings: &Settings, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let report = store.ledger_verify()?;
    if json {
        output::print(&LedgerVerifyDoc {
            ok: report.is_ok(),
            entries: report.entries,
            envs: report.envs.clone(),
            broken: report
                .broken
                .iter()
                .map(|b| BrokenLink {
                    env: b.env.clone(),
                    service: b.service.clone(),
                    version: b.version,
                    row: b.id,
                    reason: b.reason.clone(),
                })
                .collect(),
        })?;
    } else {
        for b in &report.broken {
            println!("broken: `{}` at v{} of `{}` (ledger row {}): {}", b.env, b.version, b.service, b.id, b.reason);
        }
        println!(
            "{} entries in {} environments: {}",
            report.entries,
            report.envs.len(),
            if report.is_ok() { "every chain verifies" } else { "the ledger was tampered with" }
        );
    }
    if report.is_ok() { Ok(()) } else { Err(Failure::Exit(exit::FAILED)) }
}

/// `brr log --release HASH`: the output of the release's latest release phase.
pub fn release_log(settings: &Settings, prefix: &str) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let d = store.resolve_prefix(prefix).map_err(|e| user_error(&e.to_string(), None))?;
    let Some(row) = store.ledger_last_of_release(ReleaseHash(d))? else {
        return Err(user_error(&format!("release `{d}` has no ledger entry in this store"), None));
    };
    let Some(log) = row.log else {
        printer::note(&format!(
            "`{}` has no release command: v{} in `{}` ran nothing",
            row.entry.service, row.entry.version, row.entry.env
        ));
        return Ok(());
    };
    printer::note(&format!(
        "release phase of `{}` v{} in `{}` ({})",
        row.entry.service,
        row.entry.version,
        row.entry.env,
        row.entry.status.as_str()
    ));
    std::io::stdout().write_all(&store.get(log.0)?)?;
    Ok(())
}
