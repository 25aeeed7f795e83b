//! `brr verify`: rebuild under varied conditions and compare every output;
//! `brr verify --report`: what has been verified so far.

use std::collections::BTreeMap;

use brr_exec::{BuildOptions, Status};
use brr_verify::{Progress, TargetReport, VerifyOptions};

use super::existing_store;
use crate::output;
use crate::output::cache::RecordedConflict;
use crate::output::verify::{VerifyDoc, VerifyReportDoc, VerifyReportTarget, VerifyTarget};
use crate::printer::{self, BuildProgress};
use crate::settings::Settings;
use crate::{Failure, exit};

pub struct Options {
    pub rounds: u32,
    pub diffoscope: bool,
    pub no_sandbox: bool,
    pub json: bool,
}

struct RoundPrinter;

impl Progress for RoundPrinter {
    fn round_started(&self, target: &str, round: u32, rounds: u32) {
        printer::note(&format!("  verifying {target}: round {round}/{rounds}"));
    }

    fn checking_cause(&self, target: &str, condition: brr_verify::conditions::Condition) {
        printer::note(&format!("  verifying {target}: looking for the cause ({})", condition.label()));
    }
}

pub fn run(settings: &Settings, targets: &[String], o: &Options) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, targets)?;

    // Dependencies (and the targets' normal builds) come from a normal build.
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let progress = BuildProgress::new(mask.iter().filter(|m| **m).count(), !o.no_sandbox);
    let outcomes = brr_exec::build(
        &ws,
        &inputs,
        &store,
        &mask,
        &BuildOptions {
            jobs,
            isolate: !o.no_sandbox,
            remotes: None,
            sandbox_dir: settings.sandbox_dir.as_deref(),
            // Verification varies this machine's conditions: it builds here.
            remote_exec: None,
        },
        &progress,
    )?;
    progress.finish();
    if let Some(f) = outcomes.iter().find(|o| matches!(o.status, Status::Failed(_) | Status::Skipped { .. })) {
        printer::note(&format!(
            "error: `{}` does not build ({}); fix that before verifying",
            f.name,
            f.status.as_str()
        ));
        let environment = matches!(&f.status, Status::Failed(f) if f.cause.is_environment());
        return Err(Failure::Exit(if environment { exit::INTERNAL } else { exit::FAILED }));
    }
    let artifacts: BTreeMap<usize, _> =
        outcomes.iter().filter_map(|o| Some((ws.index_of(&o.name)?, o.artifact?))).collect();
    let chosen: Vec<usize> = if targets.is_empty() {
        (0..ws.packages.len()).collect()
    } else {
        targets.iter().filter_map(|t| ws.index_of(t)).collect()
    };
    let opts = VerifyOptions { rounds: o.rounds, isolate: !o.no_sandbox };
    let reports = brr_verify::verify(&ws, &inputs, &store, &chosen, &artifacts, &opts, &RoundPrinter)?;

    if o.json {
        output::print(&VerifyDoc { targets: reports.iter().map(VerifyTarget::from).collect() })?;
    } else {
        for r in &reports {
            print_report(r);
            if o.diffoscope && !r.reproducible {
                run_diffoscope(&store, r)?;
            }
        }
    }
    let bad = reports.iter().filter(|r| !r.reproducible).count();
    printer::note(&format!("{} targets verified: {} reproducible, {bad} not", reports.len(), reports.len() - bad));
    if bad == 0 { Ok(()) } else { Err(Failure::Exit(exit::FAILED)) }
}

fn print_report(r: &TargetReport) {
    if r.reproducible {
        println!("reproducible      {}", r.name);
        return;
    }
    println!("NOT reproducible  {}", r.name);
    for cause in &r.causes {
        println!("  cause: {}", cause.message);
    }
    for round in &r.rounds {
        if let Some(f) = &round.failure {
            println!("  round {} failed: {f}", round.round);
        }
    }
    for d in &r.differences {
        let round = &r.rounds[d.round as usize - 1];
        let diff = &d.difference;
        let sizes = match (diff.size_before, diff.size_after) {
            (Some(a), Some(b)) => format!("{a} → {b} bytes"),
            (None, Some(b)) => format!("{b} bytes"),
            (Some(a), None) => format!("{a} bytes"),
            (None, None) => String::new(),
        };
        let change = format!("{:?}", diff.change).to_lowercase();
        if r.causes.is_empty() {
            println!("  {change} `{}` ({sizes}) in round {} (varied: {})", diff.path, d.round, round.varied.join(", "));
        } else {
            println!("  {change} `{}` ({sizes}) in round {}", diff.path, d.round);
        }
        if let Some((a, b)) = &diff.kinds {
            println!("    kind: {a} → {b}");
        }
        if let Some(off) = diff.first_difference_offset {
            println!("    binary; first difference at byte {off}");
        }
        if let Some(text) = &diff.diff {
            for l in text.lines() {
                println!("    {l}");
            }
        }
    }
}

fn run_diffoscope(store: &brr_store::Store, r: &TargetReport) -> Result<(), Failure> {
    let Some(reference) = r.rounds[0].outputs else { return Ok(()) };
    for round in &r.rounds[1..] {
        let Some(t) = round.outputs.filter(|t| *t != reference) else { continue };
        let Some(report) = brr_verify::diffoscope(store, &r.name, r.key, round.round, reference, t)? else {
            printer::note("note: diffoscope is not installed (Debian: `apt install diffoscope`)");
            return Ok(());
        };
        let files = r.differences.iter().filter(|d| d.round == round.round).count();
        println!(
            "  diffoscope, round 1 against round {}: {files} differing files, {} lines in {}",
            round.round,
            report.lines,
            report.path.display()
        );
        for line in &report.head {
            println!("    {line}");
        }
        if report.lines > report.head.len() {
            println!("    … ({} more lines in the file)", report.lines - report.head.len());
        }
    }
    Ok(())
}

pub fn report(settings: &Settings, json: bool) -> Result<(), Failure> {
    let store = existing_store(settings)?;
    let all = store.latest_verifications()?;
    let good = all.iter().filter(|v| v.reproducible).count();
    let conflicts: Vec<RecordedConflict> = store
        .cache_conflicts()?
        .into_iter()
        .map(|c| {
            let target = all.iter().find(|v| v.key == c.key).map(|v| v.target.clone());
            RecordedConflict::new(c, target)
        })
        .collect();
    if json {
        let targets = all
            .iter()
            .map(|v| VerifyReportTarget {
                name: v.target.clone(),
                key: v.key.into(),
                reproducible: v.reproducible,
                rounds: v.rounds,
                differing: v.differing.clone(),
                verified_at: v.verified_at,
            })
            .collect();
        return output::print(&VerifyReportDoc {
            verified: all.len(),
            reproducible: good,
            targets,
            cache_conflicts: conflicts,
        });
    }
    for v in &all {
        let state = if v.reproducible { "reproducible    " } else { "NOT reproducible" };
        let when = printer::fmt_time(v.verified_at);
        let files =
            if v.differing.is_empty() { String::new() } else { format!("  differs: {}", v.differing.join(", ")) };
        println!("{state}  {}  ({} rounds, {when}){files}", v.target, v.rounds);
    }
    for c in &conflicts {
        println!(
            "NOT reproducible  key {} (remote cache `{}`): {} here, {} by `{}`",
            &c.key.to_string()[..12],
            c.remote,
            &c.local.to_string()[..12],
            &c.theirs.to_string()[..12],
            c.signer
        );
    }
    let pct = (good * 100).checked_div(all.len()).unwrap_or(0);
    printer::note(&format!("{good} of {} verified targets reproducible ({pct}%)", all.len()));
    Ok(())
}
