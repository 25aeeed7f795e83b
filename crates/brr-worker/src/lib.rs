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
//! On SIGTERM (the caller sets `stop`) each slot gives up an idle
//! long-poll, finishes the lease it is running, hands back (completes with
//! `UNAVAILABLE`, which BuildGrid requeues) any lease it has not started,
//! tells the server `BOT_TERMINATING`, and returns.

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

/// While an action runs, the session is renewed this often: well within
/// any sensible keepalive timeout (BuildGrid's default is 600 s; the tests
/// use 5 s). A finished action is reported at once, not at the next beat.
const BEAT: Duration = Duration::from_secs(1);

/// How often a call in flight looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The lease status that hands a lease back: BuildGrid requeues a lease
/// completed with `UNAVAILABLE` (or `INTERNAL`) for another bot.
const UNAVAILABLE: i32 = 14;

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(POLL);
    r
}

/// `call`, given up (dropped, which cancels it on the server) once `stop`
/// is set, so a SIGTERM does not wait out an idle long-poll.
async fn unless_stopped<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    stop: &AtomicBool,
) -> Result<T, tonic::Status> {
    let mut call = std::pin::pin!(call);
    loop {
        match tokio::time::timeout(STOP_CHECK, &mut call).await {
            Ok(answer) => return answer,
            Err(_) if stop.load(Ordering::Relaxed) => return Err(tonic::Status::cancelled("the worker is stopping")),
            Err(_) => {}
        }
    }
}

/// An action's outcome, sent by the thread that ran it.
type Done = (String, reapi::ActionResult, Status);

fn completed(lease: &mut bots::Lease, result: &reapi::ActionResult, status: Status) {
    lease.state = LeaseState::Completed as i32;
    lease.result = Some(Any {
        type_url: "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult".into(),
        value: result.encode_to_vec(),
    });
    lease.status = Some(status);
}

/// Updates in a row that may fail while stopping, idle, before the worker
/// gives up on telling the server (its keepalive timeout then frees the
/// session).
const GIVE_UP: u32 = 3;

/// The wait after `failures` failed calls in a row: 0.5 s, doubling, at most 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64 << failures.clamp(1, 5).saturating_sub(1)).min(Duration::from_secs(5))
}

/// A new bot session, tried again (with [`backoff`]) while the server is
/// unreachable or overloaded; `None` once `stop` is set.
fn open_session(backend: &GrpcBackend, bot_id: &str, stop: &AtomicBool) -> Result<Option<BotSession>, WorkerError> {
    let mut failures = 0;
    loop {
        let first = BotSession { bot_id: bot_id.to_owned(), status: BotStatus::Ok as i32, ..Default::default() };
        let create = CreateBotSessionRequest { parent: backend.instance().to_owned(), bot_session: Some(first) };
        let created = bots::create(backend.channel(), request(create));
        match backend.run("`CreateBotSession`", POLL, unless_stopped(created, stop)) {
            Ok(session) => {
                eprintln!("brr worker: {bot_id}: session {}", session.name);
                return Ok(Some(session));
            }
            Err(_) if stop.load(Ordering::Relaxed) => return Ok(None),
            Err(e) if e.is_transient() => {
                failures += 1;
                eprintln!("brr worker: {bot_id}: {e}");
                std::thread::sleep(backoff(failures));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn slot_loop(url: &str, slot: usize, options: &Options, stop: &AtomicBool) -> Result<(), WorkerError> {
    let backend = Arc::new(GrpcBackend::new(url)?);
    let bot_id = format!("{}-{slot}", options.name);
    let Some(mut session) = open_session(&backend, &bot_id, stop)? else { return Ok(()) };
    let mut failures = 0;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
    // The lease being run, and leases reported completed that the server
    // has not dropped from the session yet.
    let mut running: Option<String> = None;
    let mut finished: Vec<String> = Vec::new();
    loop {
        let terminating = stop.load(Ordering::Relaxed);
        // New leases: run one (0.4.4 hands them out already ACTIVE); once
        // stopping, hand them back unstarted.
        for lease in &mut session.leases {
            let open = lease.state == LeaseState::Pending as i32 || lease.state == LeaseState::Active as i32;
            if !open || finished.contains(&lease.id) || running.as_ref() == Some(&lease.id) {
                continue;
            }
            if terminating {
                eprintln!("brr worker: {bot_id}: handed back lease {}", lease.id);
                let why = Status { code: UNAVAILABLE, message: "brr worker is terminating".into(), details: vec![] };
                completed(lease, &reapi::ActionResult::default(), why);
                finished.push(lease.id.clone());
            } else if running.is_none() {
                lease.state = LeaseState::Active as i32;
                let payload = lease.payload.clone().unwrap_or_default();
                let (backend, options, id, tx) =
                    (Arc::clone(&backend), options.clone(), lease.id.clone(), done_tx.clone());
                eprintln!("brr worker: {bot_id}: lease {id}");
                std::thread::spawn(move || {
                    let (result, status) = run::lease(&backend, &payload, &options);
                    let _ = tx.send((id, result, status));
                });
                running = Some(lease.id.clone());
            }
        }
        // A running action: wait for it, at most one beat.
        if running.is_some() {
            let outcome = match done_rx.recv_timeout(BEAT) {
                Ok(done) => Some(done),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some((
                    running.clone().unwrap_or_default(),
                    reapi::ActionResult::default(),
                    Status { code: 13, message: "the worker's action thread died".into(), details: vec![] },
                )),
            };
            if let Some((id, result, status)) = outcome {
                if let Some(lease) = session.leases.iter_mut().find(|l| l.id == id) {
                    completed(lease, &result, status);
                }
                finished.push(id);
                running = None;
            }
        }
        let idle = running.is_none();
        let terminating = stop.load(Ordering::Relaxed);
        session.status = if terminating { BotStatus::BotTerminating } else { BotStatus::Ok } as i32;
        let update = UpdateBotSessionRequest { name: session.name.clone(), bot_session: Some(session.clone()) };
        let sent_completed = session.leases.iter().any(|l| l.state == LeaseState::Completed as i32);
        let call = bots::update(backend.channel(), request(update));
        // A healthy bot's update may long-poll (the server waits for work
        // while the session has room): given up on stop unless it reports
        // a finished lease, which must reach the server. A terminating
        // bot's update is short and must reach it too.
        let droppable = !terminating && !sent_completed;
        let answer = if droppable {
            backend.run("`UpdateBotSession`", POLL, unless_stopped(call, stop))
        } else {
            backend.run("`UpdateBotSession`", POLL, call)
        };
        match answer {
            Ok(next) => {
                session = next;
                failures = 0;
            }
            Err(_) if droppable && stop.load(Ordering::Relaxed) => continue,
            Err(e) => {
                failures += 1;
                eprintln!("brr worker: {bot_id}: {e}");
                if terminating && idle && failures >= GIVE_UP {
                    eprintln!("brr worker: {bot_id}: terminating without the server's acknowledgement");
                    return Ok(());
                }
                if e.is_transient() {
                    // Keep the session: the next update reports the same leases.
                    std::thread::sleep(backoff(failures));
                } else if !terminating {
                    // The server no longer knows the session (it expired, or
                    // the server lost it): a new one. The server has requeued
                    // its leases; a result still to come from the old one is
                    // dropped, as its lease is gone from the new session.
                    let Some(next) = open_session(&backend, &bot_id, stop)? else { continue };
                    session = next;
                    finished.clear();
                }
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
    }
}
