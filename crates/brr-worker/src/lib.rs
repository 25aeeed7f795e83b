//! `brr worker`: a bot for a Remote Execution API cluster's Bots service
//! (BuildGrid's `google.devtools.remoteworkers.v1test2`). Each slot is one
//! bot session: `CreateBotSession`, then `UpdateBotSession` in a loop; a
//! lease's `Action` is fetched with its `Command` and input root from the
//! CAS, the input root is written to a fresh folder, and the command runs
//! in brr's sandbox (namespaces, no network, Landlock, the folder seen at
//! `/build`). Outputs, stdout and stderr go to the CAS and the
//! `ActionResult` back in the lease.
//!
//! Tools are not shipped: an action names the files of its tool closures
//! and their BLAKE3 digests in a manifest (platform property
//! [`brr_remote::exec::TOOLS_PROPERTY`]); the worker hashes its own copies
//! and refuses the action (`FAILED_PRECONDITION`) when any differs or is
//! missing, so no action runs with tools other than those in its key.
//!
//! On SIGTERM (the caller sets `stop`) each slot finishes the lease it
//! holds, reports it, tells the server `BOT_TERMINATING`, and returns.

mod bots;
mod paths;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brr_remote::RemoteError;
use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::bazel_remote_apis::google::protobuf::Any;
use brr_remote::bazel_remote_apis::google::rpc::Status;
use brr_remote::grpc::GrpcBackend;
use prost::Message;

use bots::{BotSession, BotStatus, CreateBotSessionRequest, LeaseState, UpdateBotSessionRequest};

/// What `brr worker` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `grpc://HOST:PORT` (or `grpcs://`).
    pub server: String,
    /// The REAPI instance name; empty for the default one.
    pub instance: String,
    /// Bot sessions, each running one action at a time.
    pub slots: usize,
    /// Where each action's input root is written (a fresh folder per action).
    pub work_dir: PathBuf,
    /// This worker's name in bot ids and `ActionResult`s.
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("slot {slot}: {message}")]
    Slot { slot: usize, message: String },
}

/// Runs `options.slots` bot sessions until `stop` is set, then lets each
/// finish its lease and tell the server it terminates.
pub fn serve(options: &Options, stop: &Arc<AtomicBool>) -> Result<(), WorkerError> {
    let url = if options.instance.is_empty() {
        options.server.trim_end_matches('/').to_owned()
    } else {
        format!("{}/{}", options.server.trim_end_matches('/'), options.instance)
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.slots.max(1))
            .map(|slot| {
                let url = url.clone();
                scope.spawn(move || slot_loop(&url, slot, options, stop))
            })
            .collect();
        let mut first = Ok(());
        for h in handles {
            let result = h.join().unwrap_or_else(|_| Err(WorkerError::Slot { slot: 0, message: "panicked".into() }));
            if first.is_ok() {
                first = result;
            }
        }
        first
    })
}

/// The deadline of an `UpdateBotSession`: BuildGrid long-polls for at most
/// 80% of it (capped by its keepalive timeout) when the bot is idle.
const POLL: Duration = Duration::from_secs(20);

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(POLL);
    r
}

fn slot_loop(url: &str, slot: usize, options: &Options, stop: &AtomicBool) -> Result<(), WorkerError> {
    let backend = Arc::new(GrpcBackend::new(url)?);
    let bot_id = format!("{}-{slot}", options.name);
    let first = BotSession { bot_id: bot_id.clone(), status: BotStatus::Ok as i32, ..Default::default() };
    let create = CreateBotSessionRequest { parent: backend.instance().to_owned(), bot_session: Some(first) };
    let mut session = backend.run("`CreateBotSession`", POLL, bots::create(backend.channel(), request(create)))?;
    eprintln!("brr worker: {bot_id}: session {}", session.name);
    let mut running: Option<(String, std::thread::JoinHandle<(reapi::ActionResult, Status)>)> = None;
    let mut finished: Vec<String> = Vec::new();
    loop {
        let terminating = stop.load(Ordering::Relaxed);
        // A finished action: report its lease completed.
        if let Some((id, handle)) = running.take_if(|(_, h)| h.is_finished()) {
            let (result, status) = handle.join().unwrap_or_else(|_| {
                (
                    reapi::ActionResult::default(),
                    Status { code: 13, message: "the worker panicked".into(), details: vec![] },
                )
            });
            if let Some(lease) = session.leases.iter_mut().find(|l| l.id == id) {
                lease.state = LeaseState::Completed as i32;
                lease.result = Some(Any {
                    type_url: "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult".into(),
                    value: result.encode_to_vec(),
                });
                lease.status = Some(status);
            }
            finished.push(id);
        }
        // A new lease: start it (0.4.4 hands them out already ACTIVE).
        if running.is_none()
            && let Some(lease) = session.leases.iter_mut().find(|l| {
                !finished.contains(&l.id)
                    && (l.state == LeaseState::Pending as i32 || l.state == LeaseState::Active as i32)
            })
        {
            lease.state = LeaseState::Active as i32;
            let payload = lease.payload.clone().unwrap_or_default();
            let (backend, options, id) = (Arc::clone(&backend), options.clone(), lease.id.clone());
            eprintln!("brr worker: {bot_id}: lease {id}");
            let handle = std::thread::spawn(move || run::lease(&backend, &payload, &options));
            running = Some((lease.id.clone(), handle));
        }
        let idle = running.is_none();
        session.status = if terminating { BotStatus::BotTerminating } else { BotStatus::Ok } as i32;
        let update = UpdateBotSessionRequest { name: session.name.clone(), bot_session: Some(session.clone()) };
        let sent_completed = session.leases.iter().any(|l| l.state == LeaseState::Completed as i32);
        match backend.run("`UpdateBotSession`", POLL, bots::update(backend.channel(), request(update))) {
            Ok(next) => session = next,
            Err(e) => {
                // Keep the session: the next update reports the same leases.
                eprintln!("brr worker: {bot_id}: {e}");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        }
        if sent_completed {
            finished.retain(|id| session.leases.iter().any(|l| &l.id == id));
        }
        if terminating && idle && !session.leases.iter().any(|l| !finished.contains(&l.id)) {
            eprintln!("brr worker: {bot_id}: terminating");
            return Ok(());
        }
        if !idle {
            // The update returns at once while a lease is active: pace it
            // well within the server's keepalive timeout.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
