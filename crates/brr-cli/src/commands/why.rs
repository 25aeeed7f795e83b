//! `brr why TARGET`: every input of the target's key, and what changed since
//! its previous build.

use brr_exec::explain::Explanation;

use crate::Failure;
use crate::output::build::{
    ChangeKind, PlanStatus, WhyChange, WhyCpu, WhyDoc, WhyFile, WhyInputs, WhyOrigin, WhyOrigins, WhyPrevious,
    WhyReuse, WhyTool, WhyToolFile,
};
use crate::output::{self, Hash};
use crate::printer::fmt_time;
use crate::settings::Settings;

pub fn run(settings: &Settings, target: &str, json: bool) -> Result<(), Failure> {
    let super::Loaded { ws, mask, store, inputs } = super::load(settings, &[target.to_owned()])?;
    let explained = brr_exec::explain::explain(&ws, &inputs, &store, &mask)?;
    let Some(e) = explained.into_iter().find(|e| e.name == target) else {
        return Err(anyhow::anyhow!("target `{target}` was not explained").into());
    };
    let pkg = ws.get(target).ok_or_else(|| anyhow::anyhow!("unknown target `{target}`"))?;
    let i = ws.index_of(target).unwrap_or_default();
    let files: Vec<_> = pkg
        .inputs
        .keys()
        .zip(inputs.leaves(i))
        .map(|(rel, leaf)| (rel.clone(), Hash::from(leaf.hash), leaf.size))
        .collect();
    let tools: Vec<WhyTool> = inputs.tools[i]
        .iter()
        .map(|(n, t)| WhyTool {
            name: n.clone(),
            digest: t.digest.into(),
            path: t.path.display().to_string(),
            closure: t
                .closure
                .files
                .iter()
                .map(|(p, d)| WhyToolFile { path: p.clone(), digest: (*d).into() })
                .collect(),
        })
        .collect();
    let cpu = e.key.cpu.as_ref().map(|identity| WhyCpu {
        identity: identity.clone(),
        because: brr_graph::cpu::native_flag(&pkg.body.builder, &pkg.body.env)
            .map(|f| f.to_string())
            .unwrap_or_default(),
    });
    let status = if e.cached.is_some() { PlanStatus::Cached } else { PlanStatus::Build };
    let origins = ws.origins(pkg);
    if json {
        return output::print(&why_doc(&e, &files, tools, cpu, status, &origins));
    }
    match e.key_hash {
        Some(k) => println!("{target}: key {k}"),
        None => println!("{target}: key not known yet (dependencies to rebuild: {})", e.pending.join(", ")),
    }
    match &e.cached {
        Some((a, rec)) => {
            let when = rec.as_ref().map_or_else(String::new, |r| format!(", built at {}", fmt_time(r.created_at)));
            println!("status: cached — reuses artifact {a}{when}");
        }
        None => println!("status: would build — {}", e.reason()),
    }
    print_key_inputs(&e, &files, &tools, cpu.as_ref(), pkg, &origins);
    match &e.previous {
        None => println!("\nno previous build of `{target}` in this store"),
        Some(p) => {
            println!(
                "\nsince the previous build ({}, key {}, at {}):",
                p.status,
                p.key.short(),
                fmt_time(p.started_at)
            );
            if e.changes.is_empty() {
                println!("  nothing changed");
            }
            for c in &e.changes {
                println!("  {c}");
            }
        }
    }
    Ok(())
}

/// The text lines of every input of the key, each with where it was declared.
fn print_key_inputs(
    e: &Explanation,
    files: &[(String, Hash, u64)],
    tools: &[WhyTool],
    cpu: Option<&WhyCpu>,
    pkg: &brr_graph::Package,
    origins: &brr_graph::Origins,
) {
    let from = |o: Option<&brr_graph::Origin>| o.map_or_else(String::new, |o| format!("  ({o})"));
    println!("\ninputs of the key:");
    println!("  system   {}", e.key.system);
    println!("  folder   {}", e.key.package_dir);
    println!("  builder  {}", e.key.builder.join(" "));
    println!("  outputs  {}", e.key.outputs.iter().cloned().collect::<Vec<_>>().join(", "));
    for (p, h, s) in files {
        println!("  file     {p}  {}  {s} bytes", &h.to_string()[..16]);
    }
    for (k, v) in &e.key.env {
        println!("  env      {k}={v}{}", from(origins.env.get(k)));
    }
    for t in tools {
        println!(
            "  tool     {}  {}  {}  ({} files){}",
            t.name,
            &t.digest.to_string()[..16],
            t.path,
            t.closure.len(),
            from(origins.tools.get(&t.name))
        );
        for f in &t.closure {
            println!("             {}  {}", &f.digest.to_string()[..16], f.path);
        }
    }
    for (p, d) in &e.key.host_inputs {
        println!("  host     {p}  {}", &d.to_string()[..16]);
    }
    if let Some(c) = cpu {
        println!("  cpu      {} (because {})", brr_graph::cpu::describe(&c.identity), c.because);
    }
    for (n, a) in &e.key.deps {
        let note = if e.pending.contains(n) { "  (previous; will be rebuilt)" } else { "" };
        println!("  dep      {n}  {}{note}", a.short());
    }
    if !origins.limits.is_empty() {
        println!("\nlimits (not in the key):");
        let l = &pkg.body.limits;
        let values = [
            ("output_mib", l.output_mib),
            ("processes", l.processes.map(u64::from)),
            ("memory_mib", l.memory_mib),
            ("timeout_s", l.timeout_s),
        ];
        for (name, value) in values {
            if let Some(v) = value {
                println!("  {name}={v}{}", from(origins.limits.get(name)));
            }
        }
    }
}

/// The `--json` document of `why`.
fn why_doc(
    e: &Explanation,
    files: &[(String, Hash, u64)],
    tools: Vec<WhyTool>,
    cpu: Option<WhyCpu>,
    status: PlanStatus,
    origins: &brr_graph::Origins,
) -> WhyDoc {
    WhyDoc {
        name: e.name.clone(),
        status,
        key: e.key_hash.map(Hash::from),
        reason: e.reason(),
        reuses: e.cached.as_ref().map(|(a, rec)| WhyReuse {
            artifact: (*a).into(),
            built_at: rec.as_ref().map(|r| r.created_at),
            log: rec.as_ref().and_then(|r| r.log.map(Hash::from)),
        }),
        previous: e.previous.as_ref().map(|p| WhyPrevious {
            key: p.key.into(),
            status: p.status.clone(),
            at: p.started_at,
            artifact: p.artifact.map(Hash::from),
        }),
        inputs: WhyInputs {
            files: files
                .iter()
                .map(|(path, digest, size)| WhyFile { path: path.clone(), digest: *digest, size: *size })
                .collect(),
            env: e.key.env.clone(),
            tools,
            host_inputs: e.key.host_inputs.iter().map(|(p, d)| (p.clone(), Hash::from(*d))).collect(),
            cpu,
            deps: e.key.deps.iter().map(|(n, a)| (n.clone(), Hash::from(*a))).collect(),
            pending_deps: e.pending.clone(),
            builder: e.key.builder.clone(),
            outputs: e.key.outputs.clone(),
            package_dir: e.key.package_dir.clone(),
            system: e.key.system.clone(),
            sources: e.key.sources.into(),
            origins: WhyOrigins {
                env: origins.env.iter().map(|(k, o)| (k.clone(), WhyOrigin::from(o))).collect(),
                tools: origins.tools.iter().map(|(k, o)| (k.clone(), WhyOrigin::from(o))).collect(),
                limits: origins.limits.iter().map(|(k, o)| (k.clone(), WhyOrigin::from(o))).collect(),
            },
        },
        changes: e.changes.iter().map(|c| WhyChange { kind: ChangeKind::from(c), message: c.to_string() }).collect(),
    }
}
