//! One lease: fetch, check tools, materialize, run in the sandbox, upload.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brr_process::{BUILD_PATH, SandboxSpec};
use brr_remote::RemoteError;
use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::bazel_remote_apis::google::protobuf::Any;
use brr_remote::bazel_remote_apis::google::rpc::Status;
use brr_remote::exec::{TOOLS_PROPERTY, digest_of, encode, parse_digest_text, parse_tool_manifest};
use brr_remote::folder::{WriteError, read_folder, write_folder};
use brr_remote::grpc::GrpcBackend;
use prost::Message;

use crate::Options;

/// gRPC codes the lease status uses.
const INVALID_ARGUMENT: i32 = 3;
const DEADLINE_EXCEEDED: i32 = 4;
const FAILED_PRECONDITION: i32 = 9;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

/// Why a lease did not produce a result: its code and message.
struct Failure(i32, String);

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        Self(UNAVAILABLE, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(INTERNAL, e.to_string())
}

/// Runs the lease's action; the result and the lease status to report.
pub fn lease(backend: &GrpcBackend, payload: &Any, options: &Options) -> (reapi::ActionResult, Status) {
    match run_action(backend, payload, options) {
        Ok(result) => (result, Status::default()),
        Err(Failure(code, message)) => {
            eprintln!("brr worker: refused or failed: {message}");
            (reapi::ActionResult::default(), Status { code, message, details: vec![] })
        }
    }
}

fn fetch<M: Message + Default>(
    backend: &GrpcBackend,
    digest: Option<&reapi::Digest>,
    what: &str,
) -> Result<M, Failure> {
    let digest = digest.ok_or_else(|| Failure(INVALID_ARGUMENT, format!("no {what} digest")))?;
    let bytes = fetch_blob(backend, digest, what)?;
    M::decode(bytes.as_slice()).map_err(|e| Failure(INVALID_ARGUMENT, format!("undecodable {what}: {e}")))
}

/// A CAS blob, checked against its SHA-256 and size.
fn fetch_blob(backend: &GrpcBackend, digest: &reapi::Digest, what: &str) -> Result<Vec<u8>, Failure> {
    let bytes = backend
        .read_blob(digest)?
        .ok_or_else(|| Failure(FAILED_PRECONDITION, format!("{what} {} is not in the CAS", digest.hash)))?;
    if digest_of(&bytes) != *digest {
        return Err(Failure(INTERNAL, format!("{what} {} does not match its digest", digest.hash)));
    }
    Ok(bytes)
}

/// The REAPI `Tree` of the folder at `path`, its files added to `blobs`.
fn tree_of(path: &Path, blobs: &mut Vec<(reapi::Digest, Vec<u8>)>) -> Result<reapi::Tree, Failure> {
    let read = read_folder(path, &[]).map_err(internal)?;
    blobs.extend(read.files);
    Ok(reapi::Tree { root: Some(read.root), children: read.subfolders })
}

/// Writes the input root `dir` (its files and subfolders from the CAS) under `at`.
fn write_input_root(backend: &GrpcBackend, dir: &reapi::Directory, at: &Path) -> Result<(), Failure> {
    let mut file = |d: &reapi::Digest| fetch_blob(backend, d, "input file");
    let mut folder = |d: &reapi::Digest| fetch(backend, Some(d), "input folder");
    write_folder(dir, at, &mut file, &mut folder).map_err(|e| match e {
        WriteError::Fetch(f) => f,
        WriteError::Invalid(m) => Failure(INVALID_ARGUMENT, format!("{m} (the input root)")),
        WriteError::Io(p, e) => internal(format!("{}: {e}", p.display())),
    })
}

fn run_action(backend: &GrpcBackend, payload: &Any, options: &Options) -> Result<reapi::ActionResult, Failure> {
    let action = if payload.type_url.ends_with(".Action") {
        reapi::Action::decode(payload.value.as_slice()).map_err(internal)?
    } else {
        let digest = reapi::Digest::decode(payload.value.as_slice()).map_err(internal)?;
        fetch(backend, Some(&digest), "Action")?
    };
    let command: reapi::Command = fetch(backend, action.command_digest.as_ref(), "Command")?;
    let tools = check_tools(backend, &action, &command)?;
    if !brr_process::isolation().fixed_path() {
        return Err(Failure(FAILED_PRECONDITION, format!("this worker cannot show the sandbox at {BUILD_PATH}")));
    }
    std::fs::create_dir_all(&options.work_dir).map_err(internal)?;
    let dir = tempfile::Builder::new().prefix("action-").tempdir_in(&options.work_dir).map_err(internal)?;
    let root = dir.path().join("root");
    std::fs::create_dir(&root).map_err(internal)?;
    let input_root: reapi::Directory = fetch(backend, action.input_root_digest.as_ref(), "input root")?;
    write_input_root(backend, &input_root, &root)?;
    let cwd = root.join(&command.working_directory);
    for out in outputs(&command) {
        if let Some(parent) = cwd.join(&out).parent() {
            std::fs::create_dir_all(parent).map_err(internal)?;
        }
    }
    let Some((program, args)) = command.arguments.split_first() else {
        return Err(Failure(INVALID_ARGUMENT, "empty argv".into()));
    };
    let mut readable = vec![root.clone()];
    for tool in &tools {
        readable.extend(brr_process::tool_readable(Path::new(tool)));
    }
    let spec = SandboxSpec {
        program: PathBuf::from(program),
        args: args.to_vec(),
        env: command.environment_variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect(),
        cwd: Path::new(BUILD_PATH).join(&command.working_directory),
        writable: vec![root.clone()],
        readable,
        hostname: None,
        umask: brr_process::DEFAULT_UMASK,
        cpus: None,
        net_slot: None,
        host_network: false,
        limits: None,
        build_dir: Some(root.clone()),
        inherit_fds: Vec::new(),
    };
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdout = File::create(&stdout_path).map_err(internal)?;
    let stderr = File::create(&stderr_path).map_err(internal)?;
    let child = brr_process::spawn_with_streams(&spec, &stdout, &stderr, true).map_err(internal)?;
    let limit = action
        .timeout
        .as_ref()
        .map(|t| Duration::new(u64::try_from(t.seconds).unwrap_or(0), u32::try_from(t.nanos).unwrap_or(0)));
    let status = wait_within(child, limit)?;
    let exit_code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    let mut result = reapi::ActionResult { exit_code, ..Default::default() };
    let mut blobs: Vec<(reapi::Digest, Vec<u8>)> = Vec::new();
    let out = std::fs::read(&stdout_path).map_err(internal)?;
    let err = std::fs::read(&stderr_path).map_err(internal)?;
    result.stdout_digest = Some(digest_of(&out));
    result.stderr_digest = Some(digest_of(&err));
    blobs.push((digest_of(&out), out));
    blobs.push((digest_of(&err), err));
    if exit_code == 0 {
        for path in outputs(&command) {
            let full = cwd.join(&path);
            let Ok(meta) = std::fs::symlink_metadata(&full) else { continue };
            if meta.is_dir() {
                let tree = tree_of(&full, &mut blobs)?;
                let (bytes, digest) = encode(&tree);
                blobs.push((digest.clone(), bytes));
                result.output_directories.push(reapi::OutputDirectory {
                    path,
                    tree_digest: Some(digest),
                    ..Default::default()
                });
            } else if meta.is_file() {
                let bytes = std::fs::read(&full).map_err(internal)?;
                let digest = digest_of(&bytes);
                blobs.push((digest.clone(), bytes));
                result.output_files.push(reapi::OutputFile {
                    path,
                    digest: Some(digest),
                    is_executable: meta.permissions().mode() & 0o111 != 0,
                    ..Default::default()
                });
            }
        }
    }
    let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
    backend.upload_missing(&refs)?;
    result.execution_metadata =
        Some(reapi::ExecutedActionMetadata { worker: options.name.clone(), ..Default::default() });
    Ok(result)
}

/// Waits for the builder; past the action's timeout it is killed with all
/// it started (brr-process's shared wait) and the lease fails with
/// `DEADLINE_EXCEEDED`.
fn wait_within(
    child: brr_process::SandboxedProcess,
    limit: Option<Duration>,
) -> Result<std::process::ExitStatus, Failure> {
    match child.wait_timeout(limit.filter(|l| !l.is_zero())).map_err(internal)? {
        brr_process::Ended::Exited(status) => Ok(status),
        brr_process::Ended::TimedOut(limit) => {
            Err(Failure(DEADLINE_EXCEEDED, format!("the action ran past its timeout of {limit:?}")))
        }
    }
}

/// The output paths the command names (v2.1 `output_paths`, else the older
/// file and directory lists).
#[expect(deprecated, reason = "clients older than REAPI 2.1 still send the split lists")]
fn outputs(command: &reapi::Command) -> Vec<String> {
    if command.output_paths.is_empty() {
        command.output_files.iter().chain(&command.output_directories).cloned().collect()
    } else {
        command.output_paths.clone()
    }
}

/// Checks the tool manifest against this machine's files; the tools' paths.
/// The property is read from the Action's platform (REAPI 2.2), else the
/// Command's.
#[expect(deprecated, reason = "clients older than REAPI 2.2 put the platform in the Command")]
fn check_tools(
    backend: &GrpcBackend,
    action: &reapi::Action,
    command: &reapi::Command,
) -> Result<Vec<String>, Failure> {
    let property =
        action.platform.iter().chain(&command.platform).flat_map(|p| &p.properties).find(|p| p.name == TOOLS_PROPERTY);
    let Some(property) = property else { return Ok(Vec::new()) };
    let digest = parse_digest_text(&property.value)
        .ok_or_else(|| Failure(INVALID_ARGUMENT, format!("bad {TOOLS_PROPERTY} `{}`", property.value)))?;
    let manifest = fetch_blob(backend, &digest, "tool manifest")?;
    let files = parse_tool_manifest(&manifest)
        .ok_or_else(|| Failure(INVALID_ARGUMENT, "undecodable tool manifest".to_owned()))?;
    for (path, expected) in &files {
        let here = brr_hash::fs::hash_file(Path::new(path)).map(|(h, _)| h.to_string());
        match here {
            Ok(hex) if hex == *expected => {}
            Ok(hex) => {
                return Err(Failure(
                    FAILED_PRECONDITION,
                    format!(
                        "tool file `{path}` differs on this worker (BLAKE3 {hex}, the action's key has {expected})"
                    ),
                ));
            }
            Err(e) => return Err(Failure(FAILED_PRECONDITION, format!("tool file `{path}` missing here: {e}"))),
        }
    }
    Ok(files.into_keys().collect())
}
