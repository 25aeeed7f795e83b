//! `brr why TARGET`: every input of the target's key, and what changed since
//! its previous build.

use serde_json::json;

use super::print_json;
use crate::Failure;
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
        .map(|(rel, leaf)| (rel.clone(), leaf.hash.to_string(), leaf.size))
        .collect();
    let tools: Vec<_> =
        inputs.tools[i].iter().map(|(n, t)| (n.clone(), t.digest.to_string(), t.path.display().to_string())).collect();
    let status = match (&e.cached, e.key_hash) {
        (Some(_), _) => "cached",
        _ => "build",
    };
    if json {
        let reuses = e.cached.as_ref().map(|(a, rec)| {
            json!({ "artifact": a.to_string(), "built_at": rec.as_ref().map(|r| r.created_at), "log": rec.as_ref().and_then(|r| r.log.map(|l| l.to_string())) })
        });
        let previous = e.previous.as_ref().map(|p| {
            json!({ "key": p.key.to_string(), "status": p.status, "at": p.started_at, "artifact": p.artifact.map(|a| a.to_string()) })
        });
        return print_json(&json!({
            "name": e.name,
            "status": status,
            "key": e.key_hash.map(|k| k.to_string()),
            "reason": e.reason(),
            "reuses": reuses,
            "previous": previous,
            "inputs": {
                "files": files.iter().map(|(p, h, s)| json!({ "path": p, "digest": h, "size": s })).collect::<Vec<_>>(),
                "env": e.key.env,
                "tools": tools.iter().map(|(n, d, p)| json!({ "name": n, "digest": d, "path": p })).collect::<Vec<_>>(),
                "deps": e.key.deps.iter().map(|(n, a)| (n.clone(), a.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                "pending_deps": e.pending,
                "builder": e.key.builder,
                "outputs": e.key.outputs,
                "package_dir": e.key.package_dir,
                "system": e.key.system,
                "sources": e.key.sources.to_string(),
            },
            "changes": e.changes.iter().map(|c| json!({ "kind": c.kind(), "message": c.to_string() })).collect::<Vec<_>>(),
        }));
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
    println!("\ninputs of the key:");
    println!("  system   {}", e.key.system);
    println!("  folder   {}", e.key.package_dir);
    println!("  builder  {}", e.key.builder.join(" "));
    println!("  outputs  {}", e.key.outputs.iter().cloned().collect::<Vec<_>>().join(", "));
    for (p, h, s) in &files {
        println!("  file     {p}  {}  {s} bytes", &h[..16]);
    }
    for (k, v) in &e.key.env {
        println!("  env      {k}={v}");
    }
    for (n, d, p) in &tools {
        println!("  tool     {n}  {}  {p}", &d[..16]);
    }
    for (n, a) in &e.key.deps {
        let note = if e.pending.contains(n) { "  (previous; will be rebuilt)" } else { "" };
        println!("  dep      {n}  {}{note}", a.short());
    }
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
