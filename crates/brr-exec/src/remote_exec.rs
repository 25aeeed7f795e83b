//! Remote execution: a build that misses every cache runs on a REAPI
//! cluster (`BRR_REMOTE_EXEC=grpc://HOST:PORT[/INSTANCE]`, or `remote_exec`
//! in the workspace `brr.ron`) instead of here.
//!
//! The staged sandbox is the input root (sources, dependency artifacts,
//! the tool links, empty `out/` and `tmp/`), the builder's argv and
//! environment (with `/build` paths: remote execution needs the fixed build
//! path) the Command, `out` its one output folder. The tools are not sent:
//! the platform property `brr-tools` names a manifest of every file of the
//! action's tool closures with its BLAKE3 digest, and a worker refuses the
//! action unless its own files match (see brr-worker). What comes back is
//! written into the local `out/` (each blob checked against its SHA-256)
//! and from there hashed, stored and keyed exactly as a local build's
//! outputs: the BLAKE3 side is checked by that same snapshot.
//!
//! An executor that cannot be reached, or an action it refuses or loses,
//! falls back to running the builder here, with one warning per run. Calls
//! that fail for a reason that may pass (unreachable, overloaded) are tried
//! twice more; three failing in a row switch the executor off for the run. An
//! action that ran there past its declared timeout (`Action.timeout`; the
//! executor answers `DEADLINE_EXCEEDED`) does not: it failed, as it would
//! have here.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brr_process::{Ended, SandboxSpec};
use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::bazel_remote_apis::google::protobuf::Duration as Duration_;
use brr_remote::bazel_remote_apis::google::protobuf::Timestamp;
use brr_remote::breaker::Breaker;
use brr_remote::exec::{TOOLS_PROPERTY, digest_of, digest_text, encode, tool_manifest};
use brr_remote::folder::{WriteError, prefetch_files, read_folder, write_folder};
use brr_remote::grpc::GrpcBackend;
use prost::Message as _;

use crate::action::Action;

/// The gRPC code of an action stopped at its timeout.
const DEADLINE_EXCEEDED: i32 = 4;

/// How long an `Execute` may wait besides the action's own timeout.
const WAIT: Duration = Duration::from_secs(3600);

/// Failed calls in a row (each after its retries) that switch the executor
/// off for the rest of the run.
const BREAKER: u32 = 3;

/// The environment variable naming the executor.
pub const ENV: &str = "BRR_REMOTE_EXEC";

/// A connection to the executor, shared by the builds of one run.
#[derive(Debug)]
pub struct RemoteExecutor {
    backend: GrpcBackend,
    warned: AtomicBool,
    /// Calls that failed in a row (after their retries): [`BREAKER`] of
    /// them switch the executor off for the rest of the run.
    breaker: Breaker,
    /// What this run sent and where the time went.
    pub stats: Stats,
}

/// Counts and time totals (µs) of one run's remote actions. The client's
/// phases are timed here; the server's and the worker's come from the
/// result's `ExecutedActionMetadata`, each span from a single clock.
#[derive(Debug, Default)]
pub struct Stats {
    /// Actions sent to the executor.
    pub sent: AtomicU64,
    /// Actions that ran there (whatever their exit code).
    pub ran: AtomicU64,
    /// Actions that ran here instead.
    pub fell_back: AtomicU64,
    /// Blobs uploaded because the executor lacked them, and their bytes.
    pub blobs_up: AtomicU64,
    pub bytes_up: AtomicU64,
    /// Bytes of outputs and logs fetched.
    pub bytes_down: AtomicU64,
    /// Reading and hashing the input root, building the messages.
    pub prepare_us: AtomicU64,
    /// `FindMissingBlobs` and the uploads.
    pub upload_us: AtomicU64,
    /// `Execute`, from the call to the done operation.
    pub execute_us: AtomicU64,
    /// Fetching and writing outputs and logs.
    pub download_us: AtomicU64,
    /// Server: queued until a worker was given it.
    pub queued_us: AtomicU64,
    /// Server: given to a worker until reported done.
    pub lease_us: AtomicU64,
    /// Worker: inputs fetched and written.
    pub input_fetch_us: AtomicU64,
    /// Worker: the builder ran.
    pub execution_us: AtomicU64,
    /// Worker: outputs uploaded.
    pub output_upload_us: AtomicU64,
}

fn add(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The time between two metadata timestamps (zero when either is unset or
/// they are out of order).
fn span(from: Option<&Timestamp>, to: Option<&Timestamp>) -> Duration {
    let nanos = |t: &Timestamp| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    match (from, to) {
        (Some(a), Some(b)) if a.seconds > 0 && b.seconds > 0 => {
            Duration::from_nanos(u64::try_from((nanos(b) - nanos(a)).max(0)).unwrap_or(u64::MAX))
        }
        _ => Duration::ZERO,
    }
}

impl Stats {
    fn add_metadata(&self, m: &reapi::ExecutedActionMetadata) {
        add(&self.queued_us, span(m.queued_timestamp.as_ref(), m.worker_start_timestamp.as_ref()));
        add(&self.lease_us, span(m.worker_start_timestamp.as_ref(), m.worker_completed_timestamp.as_ref()));
        add(
            &self.input_fetch_us,
            span(m.input_fetch_start_timestamp.as_ref(), m.input_fetch_completed_timestamp.as_ref()),
        );
        add(&self.execution_us, span(m.execution_start_timestamp.as_ref(), m.execution_completed_timestamp.as_ref()));
        add(
            &self.output_upload_us,
            span(m.output_upload_start_timestamp.as_ref(), m.output_upload_completed_timestamp.as_ref()),
        );
    }
}

/// An action as REAPI messages, ready to send.
struct Messages {
    /// Every blob the action needs, by digest.
    blobs: HashMap<reapi::Digest, Vec<u8>>,
    action_digest: reapi::Digest,
    /// The output folder as the `Command` names it.
    out_path: String,
}

/// Why an action did not run remotely (it then runs here).
#[derive(Debug)]
pub struct NotRun(pub String);

impl RemoteExecutor {
    /// Connects to `$BRR_REMOTE_EXEC` when it is set (empty: none), else to
    /// the workspace's `remote_exec`; `None` (after one warning) when the
    /// executor cannot be reached.
    pub fn connect(declared: Option<&str>) -> Option<Self> {
        let url = match std::env::var(ENV) {
            Ok(url) => url,
            Err(_) => declared?.to_owned(),
        };
        if url.is_empty() {
            return None;
        }
        match GrpcBackend::new(&url) {
            Ok(backend) => Some(Self {
                backend,
                warned: AtomicBool::new(false),
                breaker: Breaker::default(),
                stats: Stats::default(),
            }),
            Err(e) => {
                eprintln!("warning: remote executor {url} unavailable, building locally: {e}");
                None
            }
        }
    }

    /// Warns once per run that an action fell back to local execution.
    pub fn warn_fallback(&self, why: &NotRun) {
        self.stats.fell_back.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: remote execution failed, building locally: {}", why.0);
        }
    }

    /// Runs the builder `spec` (already with `/build` paths) of `action`
    /// on the executor, with `root` (the staged sandbox) as its input root
    /// and at most `timeout` to run. Fills `root/out` with its outputs and
    /// `log` with its stdout and stderr; returns how it ended.
    pub fn run(
        &self,
        action: &Action<'_>,
        spec: &SandboxSpec,
        timeout: Option<Duration>,
        root: &Path,
        log: &File,
    ) -> Result<Ended, NotRun> {
        let err = |e: &dyn std::fmt::Display| NotRun(e.to_string());
        if self.breaker.is_off() {
            return Err(NotRun(format!("the executor was switched off after {BREAKER} failures in a row")));
        }
        let started = Instant::now();
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let Messages { blobs, action_digest, out_path } = Self::messages(action, spec, timeout, root)?;
        let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
        let prepared = Instant::now();
        add(&self.stats.prepare_us, prepared - started);
        let sent = self.attempt(|| self.backend.upload_missing(&refs))?;
        let uploaded = Instant::now();
        add(&self.stats.upload_us, uploaded - prepared);
        self.stats.blobs_up.fetch_add(sent.len() as u64, Ordering::Relaxed);
        self.stats.bytes_up.fetch_add(sent.iter().map(|d| d.size_bytes.unsigned_abs()).sum(), Ordering::Relaxed);
        // The builder's own time, and some for the queue and the transfers.
        let within = timeout.map_or(WAIT, |t| t.saturating_add(WAIT).max(WAIT));
        let response = self.attempt(|| self.backend.execute(&action_digest, false, within))?;
        let executed = Instant::now();
        add(&self.stats.execute_us, executed - uploaded);
        let status = response.status.unwrap_or_default();
        if let (DEADLINE_EXCEEDED, Some(limit)) = (status.code, timeout) {
            // It ran and was stopped: a failed build, not one to run again here.
            // (Without a declared timeout the executor's own limit stopped it:
            // that is the executor's failure, so it falls back.)
            self.stats.ran.fetch_add(1, Ordering::Relaxed);
            if let Some(result) = &response.result {
                let mut log = log;
                for digest in [&result.stdout_digest, &result.stderr_digest].into_iter().flatten() {
                    if let Ok(bytes) = self.blob(&mut HashMap::new(), digest) {
                        log.write_all(&bytes).map_err(|e| err(&e))?;
                    }
                }
            }
            return Ok(Ended::TimedOut(limit));
        }
        if status.code != 0 {
            return Err(NotRun(format!("the executor answered code {}: {}", status.code, status.message)));
        }
        let result = response.result.ok_or_else(|| NotRun("no ActionResult".into()))?;
        self.stats.ran.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &result.execution_metadata {
            self.stats.add_metadata(m);
        }
        self.receive(&result, &out_path, root, log)
    }

    /// The `Action` for the builder `spec` of `action` with `root` as its
    /// input root: every blob it needs (by digest), its digest, and the
    /// output folder's path as the `Command` names it.
    fn messages(
        action: &Action<'_>,
        spec: &SandboxSpec,
        timeout: Option<Duration>,
        root: &Path,
    ) -> Result<Messages, NotRun> {
        let err = |e: &dyn std::fmt::Display| NotRun(e.to_string());
        let mut blobs: HashMap<reapi::Digest, Vec<u8>> = HashMap::new();
        // The builder's `log` is this side's, not an input.
        let read = read_folder(root, &["log"]).map_err(|e| err(&e))?;
        blobs.extend(read.files);
        blobs.extend(read.subfolders.iter().map(|d| {
            let (bytes, digest) = encode(d);
            (digest, bytes)
        }));
        let input_root = read.root;
        let (bytes, root_digest) = encode(&input_root);
        blobs.insert(root_digest.clone(), bytes);

        let mut files = BTreeMap::new();
        for closure in action.key.tools.values() {
            for (path, digest) in &closure.files {
                files.insert(path.clone(), digest.to_string());
            }
        }
        let manifest = tool_manifest(&files);
        let manifest_digest = digest_of(&manifest);
        blobs.insert(manifest_digest.clone(), manifest);

        let cwd = spec.cwd.strip_prefix(brr_process::BUILD_PATH).map_err(|e| err(&e))?;
        let up = "../".repeat(cwd.components().count());
        let mut argv = vec![spec.program.to_string_lossy().into_owned()];
        argv.extend(spec.args.iter().cloned());
        let mut env: Vec<_> = spec
            .env
            .iter()
            .map(|(k, v)| reapi::command::EnvironmentVariable { name: k.clone(), value: v.clone() })
            .collect();
        env.sort_by(|a, b| a.name.cmp(&b.name));
        let out_path = format!("{up}out");
        let command = reapi::Command {
            arguments: argv,
            environment_variables: env,
            output_paths: vec![out_path.clone()],
            working_directory: cwd.to_string_lossy().into_owned(),
            ..Default::default()
        };
        let (bytes, command_digest) = encode(&command);
        blobs.insert(command_digest.clone(), bytes);
        let platform = reapi::Platform {
            properties: vec![reapi::platform::Property {
                name: TOOLS_PROPERTY.to_owned(),
                value: digest_text(&manifest_digest),
            }],
        };
        let action_message = reapi::Action {
            command_digest: Some(command_digest),
            input_root_digest: Some(root_digest),
            platform: Some(platform),
            timeout: timeout.map(|t| Duration_ { seconds: i64::try_from(t.as_secs()).unwrap_or(i64::MAX), nanos: 0 }),
            ..Default::default()
        };
        let (bytes, action_digest) = encode(&action_message);
        blobs.insert(action_digest.clone(), bytes);
        Ok(Messages { blobs, action_digest, out_path })
    }

    /// Writes the result's stdout and stderr into `log` and, when it
    /// succeeded, its output folder into `root/out`; how it ended.
    fn receive(
        &self,
        result: &reapi::ActionResult,
        out_path: &str,
        root: &Path,
        mut log: &File,
    ) -> Result<Ended, NotRun> {
        let err = |e: &dyn std::fmt::Display| NotRun(e.to_string());
        let started = Instant::now();
        // The logs and the output tree in one round trip.
        let out = result.output_directories.iter().find(|d| d.path == out_path);
        let first: Vec<reapi::Digest> =
            [&result.stdout_digest, &result.stderr_digest, &out.and_then(|o| o.tree_digest.clone())]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        let mut ahead = self.backend.read_blobs(&first).map_err(|e| err(&e))?;
        for digest in [&result.stdout_digest, &result.stderr_digest].into_iter().flatten() {
            let bytes = self.blob(&mut ahead, digest)?;
            log.write_all(&bytes).map_err(|e| err(&e))?;
        }
        if result.exit_code == 0 {
            let Some(out) = out else {
                return Err(NotRun("the result has no `out` folder".into()));
            };
            let tree_digest = out.tree_digest.as_ref().ok_or_else(|| NotRun("no tree digest".into()))?;
            let tree = reapi::Tree::decode(self.blob(&mut ahead, tree_digest)?.as_slice()).map_err(|e| err(&e))?;
            let children: HashMap<reapi::Digest, &reapi::Directory> =
                tree.children.iter().map(|d| (encode(d).1, d)).collect();
            let top = tree.root.as_ref().ok_or_else(|| NotRun("an empty tree".into()))?;
            let mut folder = |d: &reapi::Digest| {
                children.get(d).map(|&d| d.clone()).ok_or_else(|| NotRun(format!("folder {} not in the tree", d.hash)))
            };
            ahead.extend(
                prefetch_files(&self.backend, std::iter::once(top).chain(&tree.children)).map_err(|e| err(&e))?,
            );
            let mut file = |d: &reapi::Digest| self.blob(&mut ahead, d);
            write_folder(top, &root.join("out"), &mut file, &mut folder).map_err(|e| match e {
                WriteError::Fetch(e) => e,
                WriteError::Invalid(m) => NotRun(m),
                WriteError::Io(p, e) => NotRun(format!("{}: {e}", p.display())),
            })?;
        }
        add(&self.stats.download_us, started.elapsed());
        Ok(Ended::Exited(std::process::ExitStatus::from_raw((result.exit_code & 0xff) << 8)))
    }

    /// `call`, tried again after 1 s and 2 s while it fails for a reason
    /// that may pass (unreachable, overloaded). [`BREAKER`] calls failing
    /// in a row switch the executor off: the rest of the run builds here
    /// without waiting on it.
    fn attempt<T>(&self, call: impl Fn() -> Result<T, brr_remote::RemoteError>) -> Result<T, NotRun> {
        let mut wait = Duration::from_secs(1);
        let mut answer = call();
        for _ in 0..2 {
            match &answer {
                Err(e) if e.is_transient() && !self.breaker.is_off() => {
                    std::thread::sleep(wait);
                    wait *= 2;
                    answer = call();
                }
                _ => break,
            }
        }
        match answer {
            Ok(value) => {
                self.breaker.succeeded();
                Ok(value)
            }
            Err(e) => {
                if self.breaker.failed(BREAKER).is_some() {
                    eprintln!(
                        "warning: remote executor switched off after {BREAKER} failures in a row: building the rest here"
                    );
                }
                Err(NotRun(e.to_string()))
            }
        }
    }

    /// A blob, refused unless it matches its digest: taken from `ahead`
    /// when it was fetched there in a batch, else read now.
    fn blob(&self, ahead: &mut HashMap<reapi::Digest, Vec<u8>>, digest: &reapi::Digest) -> Result<Vec<u8>, NotRun> {
        let bytes = match ahead.remove(digest) {
            Some(bytes) => bytes,
            None => self
                .backend
                .read_blob(digest)
                .map_err(|e| NotRun(e.to_string()))?
                .ok_or_else(|| NotRun(format!("blob {} missing on the executor", digest.hash)))?,
        };
        self.stats.bytes_down.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if digest_of(&bytes) != *digest {
            return Err(NotRun(format!("blob {} does not match its digest: refused", digest.hash)));
        }
        Ok(bytes)
    }
}
