//! One module per command; each resolves what it needs and calls the library.

mod archive;
mod build;
mod cache;
mod cache_stats;
mod cat;
mod gc;
mod graph;
mod hash;
mod image;
mod ledger;
mod log;
mod out_link;
mod plan;
mod release;
mod remote;
mod run;
mod show;
mod store_compact;
mod store_stats;
mod store_verify;
mod verify;
mod why;
mod worker;

use brr_graph::{GraphError, Workspace};
use brr_store::{Clock, Store};

use crate::cli::{CacheCommand, Cli, Command, KeyCommand, LedgerCommand, RestartPolicy, StoreCommand};
use crate::settings::Settings;
use crate::{Failure, printer};

pub fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::resolve(&cli)?;
    match cli.command {
        Command::Build { targets, jobs, no_sandbox, fail_on_conflict, out_link, json } => {
            let opts = build::Options { jobs, no_sandbox, fail_on_conflict, out_link: out_link.as_deref(), json };
            build::run(&settings, &targets, &opts)
        }
        Command::Cat { target, path } => cat::run(&settings, &target, &path),
        Command::Plan { targets, json } => plan::run(&settings, &targets, json),
        Command::Verify { targets, rounds, diffoscope, report, no_sandbox, json } => {
            if report {
                verify::report(&settings, json)
            } else {
                verify::run(&settings, &targets, &verify::Options { rounds, diffoscope, no_sandbox, json })
            }
        }
        Command::Why { target, json } => why::run(&settings, &target, json),
        Command::Graph { format } => graph::run(&settings, format),
        Command::Show { hash, json } => show::run(&settings, &hash, json),
        Command::Hash { paths, json } => hash::run(&settings, &paths, json),
        Command::Log { target, release } => match (target, release) {
            (_, Some(release)) => ledger::release_log(&settings, &release),
            (Some(target), None) => log::run(&settings, &target),
            (None, None) => unreachable!("clap requires a target or --release"),
        },
        Command::Release { services, env, note, no_sandbox, json } => {
            release::release(&settings, &services, &env, &release::Options { note: note.as_deref(), json, no_sandbox })
        }
        Command::Up { env, note, no_sandbox, no_run, json } => {
            release::release(&settings, &[], &env, &release::Options { note: note.as_deref(), json, no_sandbox })?;
            if no_run {
                return Ok(());
            }
            let store = existing_store(&settings)?;
            let mut targets = Vec::new();
            for service in store.ledger_services(&env)? {
                if let Some(row) = store.ledger_current(&env, &service)? {
                    targets.push(brr_run::Target { release: row.entry.release, service, env: Some(env.clone()) });
                }
            }
            run::supervise(&store, &env, &targets, &run::RunArgs::default(), true)
        }
        Command::Run { release, processes, formation, restart, grace } => {
            let formation = match formation.as_deref().map(run::parse_formation).transpose() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    printer::note(&format!("error: --formation: {e}"));
                    return Err(Failure::Exit(crate::exit::USER));
                }
            };
            let restart = match restart {
                RestartPolicy::Never => brr_run::Restart::Never,
                RestartPolicy::OnFailure => brr_run::Restart::OnFailure,
                RestartPolicy::Always => brr_run::Restart::Always,
            };
            let grace = std::time::Duration::from_secs_f64(grace.max(0.0));
            run::run(&settings, &release, &run::RunArgs { processes: &processes, formation, restart, grace })
        }
        cmd @ (Command::Image { .. } | Command::Push { .. }) => image::dispatch(&settings, cmd),
        Command::Ps { json } => run::ps(&settings, json),
        Command::Logs { run, process, follow } => run::logs(&settings, run.as_deref(), process.as_deref(), follow),
        Command::Promote { from, to, services, note, json } => release::promote(
            &settings,
            &from,
            &to,
            &services,
            &release::Options { note: note.as_deref(), json, no_sandbox: false },
        ),
        Command::Rollback { env, service, to, note, json } => release::rollback(
            &settings,
            &env,
            &service,
            to,
            &release::Options { note: note.as_deref(), json, no_sandbox: false },
        ),
        Command::Releases { env, service, limit, json } => {
            ledger::releases(&settings, &env, service.as_deref(), limit, json)
        }
        Command::Diff { a, b, service, json } => ledger::diff(&settings, &a, &b, service.as_deref(), json),
        command @ (Command::Gc { .. }
        | Command::Export { .. }
        | Command::Import { .. }
        | Command::Pin { .. }
        | Command::Unpin { .. }) => lifecycle(&settings, &command),
        Command::Ledger { command: LedgerCommand::Verify { json } } => ledger::verify(&settings, json),
        Command::Cache { command } => match command {
            CacheCommand::Status { targets, json } => cache::status(&settings, &targets, json),
            CacheCommand::Push { targets, json } => cache::push(&settings, &targets, json),
            CacheCommand::Pull { targets, json } => cache::pull(&settings, &targets, json),
            CacheCommand::Stats { runs, json } => cache_stats::run(&settings, runs, json),
        },
        Command::Key { command: KeyCommand::Generate { output, name } } => {
            remote::generate_key(&output, name.as_deref())
        }
        Command::Store { command } => store(&settings, &command),
        Command::Schema { dir } => write_schemas(&dir),
        Command::Worker { server, instance, slots, work_dir } => worker::run(server, instance, slots, work_dir),
    }
}

/// `brr schema DIR`: the declaration files' schemas, and the documents' in `DIR/output`.
fn write_schemas(dir: &std::path::Path) -> Result<(), Failure> {
    for (name, text) in brr_schema::json_schema() {
        std::fs::write(dir.join(name), text)?;
    }
    let out = dir.join("output");
    std::fs::create_dir_all(&out)?;
    for (name, text) in crate::output::json_schemas() {
        std::fs::write(out.join(name), text)?;
    }
    Ok(())
}

/// `brr store …`.
fn store(settings: &Settings, command: &StoreCommand) -> Result<(), Failure> {
    match *command {
        StoreCommand::Verify { repair, json } => store_verify::run(settings, repair, json),
        StoreCommand::Stats { top, json } => store_stats::run(settings, top, json),
        StoreCommand::Compact { json } => store_compact::run(settings, json),
    }
}

/// `brr gc`, `pin`, `unpin`, `export`, `import`.
fn lifecycle(settings: &Settings, command: &Command) -> Result<(), Failure> {
    match command {
        &Command::Gc { dry_run, keep_last, max_size, wait, full, json } => {
            gc::run(settings, &gc::Options { dry_run, keep_last, max_size, wait, full, json })
        }
        Command::Export { hash, output, json } => archive::export(settings, hash, output, *json),
        Command::Import { file, json } => archive::import(settings, file, *json),
        Command::Pin { release } => gc::pin(settings, release, true),
        Command::Unpin { release } => gc::pin(settings, release, false),
        _ => Ok(()),
    }
}

/// Loads the workspace; declaration mistakes become located diagnostics.
pub fn load_workspace(settings: &Settings) -> Result<Workspace, Failure> {
    Workspace::load(&settings.root).map_err(graph_failure)
}

/// Opens (creating if needed) the store and loads the workspace, reusing the
/// load saved in the store when nothing it read has changed. An existing
/// store opens while the workspace loads (neither needs the other, and a
/// no-op build used to wait for one, then the other); a new one is created
/// only once the workspace has loaded, so a rejected declaration writes
/// nothing. A new load is saved only once the store has opened, so a folder
/// that is not a store gets nothing written into it.
pub fn open_store_and_workspace(settings: &Settings) -> Result<(Store, Workspace), Failure> {
    let cache_dir = Store::cache_dir_of(&settings.store);
    let load = || Workspace::load_cached_unsaved(&settings.root, &cache_dir, Clock::SYSTEM).map_err(graph_failure);
    let (store, (ws, unsaved)) = if Store::exists(&settings.store) {
        let (store, ws) = std::thread::scope(|s| {
            let store = s.spawn(|| open_store(settings));
            let ws = load();
            (store.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), ws)
        });
        // A declaration mistake comes first: it is what the user must fix.
        let ws = ws?;
        (store?, ws)
    } else {
        let ws = load()?;
        (open_store(settings)?, ws)
    };
    if let Some(unsaved) = unsaved {
        unsaved.save(&cache_dir, &ws);
    }
    Ok((store, ws))
}

pub fn graph_failure(e: GraphError) -> Failure {
    if e.is_user_error() { Failure::User(miette::Report::new(e)) } else { Failure::Internal(e.into()) }
}

/// What most commands start from: the workspace, the selected targets (with
/// their dependencies), the store, and the hashed inputs.
pub struct Loaded {
    pub ws: Workspace,
    pub mask: Vec<bool>,
    pub store: Store,
    pub inputs: brr_graph::Inputs,
}

pub fn load(settings: &Settings, targets: &[String]) -> Result<Loaded, Failure> {
    let (store, ws) = open_store_and_workspace(settings)?;
    let mask = ws.select(targets).map_err(graph_failure)?;
    let inputs = brr_graph::Inputs::hash(&ws, &store, &mask).map_err(graph_failure)?;
    Ok(Loaded { ws, mask, store, inputs })
}

/// Opens (creating if needed) the store.
pub fn open_store(settings: &Settings) -> Result<Store, Failure> {
    Store::open(&settings.store).map_err(|e| match e {
        // `--store` named something else: the user's mistake, not brr's.
        brr_store::StoreError::NotAStore { .. } => Failure::User(miette::miette!(
            help = "pass `--store` an empty or missing folder, or an existing brr store",
            "{e}"
        )),
        e => e.into(),
    })
}

/// A user mistake, printed as `error: …` and an optional `hint: …` line:
/// exit 2.
pub fn user_error(message: &str, hint: Option<&str>) -> Failure {
    printer::note(&format!("error: {message}"));
    if let Some(h) = hint {
        printer::note(&format!("hint: {h}"));
    }
    Failure::Exit(crate::exit::USER)
}

/// Opens the store only if it exists (read-only commands must not create one).
pub fn existing_store(settings: &Settings) -> Result<Store, Failure> {
    if !Store::exists(&settings.store) {
        let message = format!("no store at `{}`", settings.store.display());
        return Err(user_error(&message, Some("run `brr build` first, or pass `--store DIR`")));
    }
    open_store(settings)
}
