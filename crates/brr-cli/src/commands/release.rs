//! `brr release`, `brr up`, `brr promote` and `brr rollback`: they resolve
//! environments, services, configs and secrets (every check before anything
//! is built, run or written), then call `brr_release` once per service.

use brr_graph::{PackageKind, Workspace};
use brr_hash::{Config, LedgerAction, PromotionSource, ReleaseStatus};
use brr_release::{ReleaseError, Released, Request, Secrets};
use brr_store::{LedgerRow, Store};

use super::{existing_store, graph_failure, open_store_and_workspace, user_error};
use crate::output::release::{ReleaseDoc, ReleaseEntry};
use crate::output::{self, Hash};
use crate::settings::Settings;
use crate::{Failure, exit, printer};

/// What the release commands share.
pub struct Options<'a> {
    pub note: Option<&'a str>,
    pub json: bool,
    pub no_sandbox: bool,
}

fn release_failure(e: ReleaseError) -> Failure {
    if e.is_user_error() { user_error(&e.to_string(), None) } else { Failure::Internal(e.into()) }
}

/// The environment must be declared in `environments.ron`.
fn check_env(ws: &Workspace, env: &str) -> Result<(), Failure> {
    if ws.environments.contains(env) {
        return Ok(());
    }
    let known: Vec<&str> = ws.environments.names().collect();
    let hint = if known.is_empty() {
        "the workspace declares no environments: add them to `environments.ron` at its root".to_owned()
    } else {
        format!("declared environments: {}", known.join(", "))
    };
    Err(user_error(&format!("unknown environment `{env}`"), Some(&hint)))
}

/// The named services (all of the workspace's when none are named); each
/// must be a service package.
fn services(ws: &Workspace, names: &[String]) -> Result<Vec<String>, Failure> {
    let all: Vec<String> =
        ws.packages.iter().filter(|p| p.kind == PackageKind::Service).map(|p| p.name.clone()).collect();
    if names.is_empty() {
        return Ok(all);
    }
    for name in names {
        match ws.get(name) {
            Some(p) if p.kind == PackageKind::Service => {}
            Some(_) => {
                return Err(user_error(
                    &format!("`{name}` is a library, not a service: only services are released"),
                    Some(&format!("services: {}", all.join(", "))),
                ));
            }
            None => {
                return Err(user_error(
                    &format!("unknown service `{name}`"),
                    Some(&format!("services: {}", all.join(", "))),
                ));
            }
        }
    }
    Ok(names.to_vec())
}

/// Each service's config in `env`, and the secrets all of them need, read
/// now: a missing secret stops everything before anything happens.
fn configs_and_secrets(ws: &Workspace, env: &str, services: &[String]) -> Result<(Vec<Config>, Secrets), Failure> {
    let configs: Vec<Config> = services.iter().map(|s| ws.environments.config(env, s).unwrap_or_default()).collect();
    let names: std::collections::BTreeSet<String> = configs.iter().flat_map(|c| c.secrets.iter().cloned()).collect();
    let secrets = Secrets::from_env(&names).map_err(|e| {
        user_error(
            &format!("{e}, needed to release into `{env}`"),
            Some("export each secret in the environment that runs brr; its value is never stored"),
        )
    })?;
    Ok((configs, secrets))
}

/// Runs the release of each request, printing the release phase's output
/// as it comes; then prints the summary (or the JSON document).
fn release_all(store: &Store, requests: Vec<Request>, secrets: &Secrets, json: bool) -> Result<(), Failure> {
    let mut done = Vec::new();
    for req in requests {
        let label = format!("{}[release]", req.service);
        printer::note(&format!("releasing `{}` into `{}` ({})", req.service, req.env, req.action.as_str()));
        let mut show = |line: &str| printer::note(&format!("{label} | {line}"));
        let released = brr_release::release(store, &req, secrets, &mut show).map_err(release_failure)?;
        if released.phase.status == ReleaseStatus::Failed {
            printer::note(&format!(
                "error: the release phase of `{}` failed ({}): v{} is recorded as failed and `{}` keeps its current release",
                req.service, released.phase.summary, released.row.entry.version, req.env
            ));
            printer::note(&format!("hint: its output: `brr log --release {}`", released.row.entry.release.short()));
        }
        done.push((released, false));
    }
    print_released(&done, json)?;
    if done.iter().any(|(r, _)| r.phase.status == ReleaseStatus::Failed) {
        return Err(Failure::Exit(exit::FAILED));
    }
    Ok(())
}

fn print_released(done: &[(Released, bool)], json: bool) -> Result<(), Failure> {
    if json {
        let releases = done
            .iter()
            .map(|(r, noop)| ReleaseEntry {
                service: r.row.entry.service.clone(),
                env: r.row.entry.env.clone(),
                version: r.row.entry.version,
                release: r.row.entry.release.into(),
                build: r.row.build.into(),
                config: r.row.config.into(),
                action: r.row.entry.action.into(),
                status: r.row.entry.status.into(),
                noop: *noop,
                log: r.row.log.map(Hash::from),
                dir: r.dir.display().to_string(),
            })
            .collect();
        return output::print(&ReleaseDoc { releases });
    }
    for (r, noop) in done {
        let e = &r.row.entry;
        let status = if *noop { "unchanged" } else { e.status.as_str() };
        println!("{}  v{}  {status}  {}@{}", e.release, e.version, e.service, e.env);
    }
    Ok(())
}

/// `brr release [SERVICE…] --env ENV` (and `brr up ENV`, all services).
pub fn release(settings: &Settings, names: &[String], env: &str, opts: &Options<'_>) -> Result<(), Failure> {
    let (store, ws) = open_store_and_workspace(settings)?;
    check_env(&ws, env)?;
    let services = services(&ws, names)?;
    let (configs, secrets) = configs_and_secrets(&ws, env, &services)?;
    let mask = ws.select(&services).map_err(graph_failure)?;
    let outcomes = super::build::build_for_release(settings, &store, &ws, &mask, opts.no_sandbox)?;
    let actor = brr_release::actor();
    let mut requests = Vec::new();
    for (service, config) in services.iter().zip(configs) {
        let build = outcomes
            .iter()
            .find(|o| &o.name == service)
            .and_then(|o| o.artifact)
            .ok_or_else(|| anyhow::anyhow!("`{service}` was built but has no artifact"))?;
        requests.push(Request {
            env: env.to_owned(),
            service: service.clone(),
            build,
            config,
            action: LedgerAction::Release,
            source: None,
            actor: actor.clone(),
            note: opts.note.map(str::to_owned),
        });
    }
    release_all(&store, requests, &secrets, opts.json)
}

/// `brr promote --from ENV --to ENV [SERVICE…]`: each service's current
/// build in `from`, with `to`'s config. Never builds.
pub fn promote(settings: &Settings, from: &str, to: &str, names: &[String], opts: &Options<'_>) -> Result<(), Failure> {
    let ws = super::load_workspace(settings)?;
    check_env(&ws, from)?;
    check_env(&ws, to)?;
    if !ws.environments.promotes_to(from, to) {
        let order = ws.environments.promotion().join(" → ");
        let hint = if order.is_empty() {
            "the workspace declares no promotion order".to_owned()
        } else {
            format!("promotion order: {order}")
        };
        return Err(user_error(&format!("`{to}` does not come after `{from}` in the promotion order"), Some(&hint)));
    }
    let store = existing_store(settings)?;
    let services = if names.is_empty() {
        let all = services(&ws, &[])?;
        let mut with_releases = Vec::new();
        for s in all {
            if store.ledger_latest(from, &s)?.is_some() {
                with_releases.push(s);
            }
        }
        if with_releases.is_empty() {
            return Err(user_error(
                &format!("`{from}` has no releases to promote"),
                Some(&format!("release first: `brr release --env {from}`")),
            ));
        }
        with_releases
    } else {
        services(&ws, names)?
    };
    let sources: Vec<LedgerRow> = services
        .iter()
        .map(|s| brr_release::promotion_source(&store, from, s))
        .collect::<Result<_, _>>()
        .map_err(release_failure)?;
    let (configs, secrets) = configs_and_secrets(&ws, to, &services)?;
    let actor = brr_release::actor();
    let mut requests = Vec::new();
    let mut unchanged = Vec::new();
    for ((service, source), config) in services.iter().zip(sources).zip(configs) {
        let req = Request {
            env: to.to_owned(),
            service: service.clone(),
            build: source.build,
            config,
            action: LedgerAction::Promote,
            source: Some(PromotionSource { env: from.to_owned(), version: source.entry.version }),
            actor: actor.clone(),
            note: opts.note.map(str::to_owned),
        };
        let release = brr_release::release_of(&req).hash();
        if let Some(current) = store.ledger_current(to, service)?
            && current.entry.release == release
        {
            printer::note(&format!(
                "`{service}` in `{to}` already runs this release (v{}): nothing to promote",
                current.entry.version
            ));
            unchanged.push(current);
            continue;
        }
        requests.push(req);
    }
    if requests.is_empty() {
        if opts.json {
            let done: Vec<(Released, bool)> =
                unchanged.into_iter().map(|row| (unchanged_release(&store, row), true)).collect();
            return print_released(&done, true);
        }
        return Ok(());
    }
    release_all(&store, requests, &secrets, opts.json)
}

/// A no-op's report: the current entry as it stands.
fn unchanged_release(store: &Store, row: LedgerRow) -> Released {
    let dir = brr_release::folder::release_dir(store, row.entry.release);
    let phase = brr_release::PhaseOutcome { status: row.entry.status, log: row.log, summary: "unchanged".into() };
    Released { row, phase, dir }
}

/// `brr rollback --env ENV SERVICE [--to vN]`.
pub fn rollback(
    settings: &Settings,
    env: &str,
    service: &str,
    to: Option<u64>,
    opts: &Options<'_>,
) -> Result<(), Failure> {
    let ws = super::load_workspace(settings)?;
    check_env(&ws, env)?;
    services(&ws, &[service.to_owned()])?;
    let store = existing_store(settings)?;
    let (current, target) = brr_release::rollback_target(&store, env, service, to).map_err(release_failure)?;
    if store.closure(target.build, None).is_err() {
        return Err(user_error(
            &format!(
                "cannot roll back to v{}: its build `{}` is no longer whole in this store",
                target.entry.version, target.build
            ),
            Some("rebuild the commit it came from (`brr release` there), or import the build, then roll back"),
        ));
    }
    let config: Config = store.get_object(target.config.0)?;
    let secrets = Secrets::from_env(&config.secrets).map_err(|e| {
        user_error(
            &format!("{e}, needed to release into `{env}`"),
            Some("export each secret in the environment that runs brr"),
        )
    })?;
    let req = Request {
        env: env.to_owned(),
        service: service.to_owned(),
        build: target.build,
        config,
        action: LedgerAction::Rollback,
        source: None,
        actor: brr_release::actor(),
        note: opts.note.map(str::to_owned).or_else(|| Some(format!("rollback to v{}", target.entry.version))),
    };
    let result = release_all(&store, vec![req], &secrets, opts.json);
    printer::note(&format!("to undo: brr rollback --env {env} {service} --to v{}", current.entry.version));
    result
}
