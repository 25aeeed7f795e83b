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
//! falls back to running the builder here, with one warning per run. An
//! action that ran there past its declared timeout (`Action.timeout`; the
//! executor answers `DEADLINE_EXCEEDED`) does not: it failed, as it would
//! have here.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brr_process::{Ended, SandboxSpec};
use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::bazel_remote_apis::google::protobuf::Duration as Duration_;
use brr_remote::exec::{TOOLS_PROPERTY, digest_of, digest_text, encode, tool_manifest};
use brr_remote::folder::{WriteError, read_folder, write_folder};
use brr_remote::grpc::GrpcBackend;
use prost::Message as _;

use crate::action::Action;

/// The gRPC code of an action stopped at its timeout.
const DEADLINE_EXCEEDED: i32 = 4;

/// How long an `Execute` may wait besides the action's own timeout.
const WAIT: Duration = Duration::from_secs(3600);

/// The environment variable naming the executor.
pub const ENV: &str = "BRR_REMOTE_EXEC";

/// A connection to the executor, shared by the builds of one run.
#[derive(Debug)]
pub struct RemoteExecutor {
    backend: GrpcBackend,
    warned: AtomicBool,
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
            Ok(backend) => Some(Self { backend, warned: AtomicBool::new(false) }),
            Err(e) => {
                eprintln!("warning: remote executor {url} unavailable, building locally: {e}");
                None
            }
        }
    }

    /// Warns once per run that an action fell back to local execution.
    pub fn warn_fallback(&self, why: &NotRun) {
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
        mut log: &File,
    ) -> Result<Ended, NotRun> {
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

        let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
        self.backend.upload_missing(&refs).map_err(|e| err(&e))?;
        // The builder's own time, and some for the queue and the transfers.
        let within = timeout.map_or(WAIT, |t| t.saturating_add(WAIT).max(WAIT));
        let response = self.backend.execute(&action_digest, false, within).map_err(|e| err(&e))?;
        let status = response.status.unwrap_or_default();
        if let (DEADLINE_EXCEEDED, Some(limit)) = (status.code, timeout) {
            // It ran and was stopped: a failed build, not one to run again here.
            // (Without a declared timeout the executor's own limit stopped it:
            // that is the executor's failure, so it falls back.)
            if let Some(result) = &response.result {
                for digest in [&result.stdout_digest, &result.stderr_digest].into_iter().flatten() {
                    if let Ok(bytes) = self.fetch(digest) {
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
        for digest in [&result.stdout_digest, &result.stderr_digest].into_iter().flatten() {
            let bytes = self.fetch(digest)?;
            log.write_all(&bytes).map_err(|e| err(&e))?;
        }
        if result.exit_code == 0 {
            let Some(out) = result.output_directories.iter().find(|d| d.path == out_path) else {
                return Err(NotRun("the result has no `out` folder".into()));
            };
            let tree_digest = out.tree_digest.as_ref().ok_or_else(|| NotRun("no tree digest".into()))?;
            let tree = reapi::Tree::decode(self.fetch(tree_digest)?.as_slice()).map_err(|e| err(&e))?;
            let children: HashMap<reapi::Digest, &reapi::Directory> =
                tree.children.iter().map(|d| (encode(d).1, d)).collect();
            let top = tree.root.as_ref().ok_or_else(|| NotRun("an empty tree".into()))?;
            let mut folder = |d: &reapi::Digest| {
                children.get(d).map(|&d| d.clone()).ok_or_else(|| NotRun(format!("folder {} not in the tree", d.hash)))
            };
            write_folder(top, &root.join("out"), &mut |d| self.fetch(d), &mut folder).map_err(|e| match e {
                WriteError::Fetch(e) => e,
                WriteError::Invalid(m) => NotRun(m),
                WriteError::Io(p, e) => NotRun(format!("{}: {e}", p.display())),
            })?;
        }
        Ok(Ended::Exited(std::process::ExitStatus::from_raw((result.exit_code & 0xff) << 8)))
    }

    /// A blob, refused unless it matches its digest.
    fn fetch(&self, digest: &reapi::Digest) -> Result<Vec<u8>, NotRun> {
        let bytes = self.backend.read_blob(digest).map_err(|e| NotRun(e.to_string()))?;
        let bytes = bytes.ok_or_else(|| NotRun(format!("blob {} missing on the executor", digest.hash)))?;
        if digest_of(&bytes) != *digest {
            return Err(NotRun(format!("blob {} does not match its digest: refused", digest.hash)));
        }
        Ok(bytes)
    }
}
