//! One lease: fetch, check tools, materialize, run in the sandbox, upload.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brr_process::{BUILD_PATH, SandboxSpec};
use brr_remote::RemoteError;
use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::bazel_remote_apis::google::protobuf::{Any, Timestamp};
use brr_remote::bazel_remote_apis::google::rpc::Status;
use brr_remote::exec::{TOOLS_PROPERTY, digest_of, encode, parse_digest_text, parse_tool_manifest};
use brr_remote::folder::{WriteError, prefetch_files, read_folder, write_folder};
use brr_remote::grpc::GrpcBackend;
use brr_store::{Clock, StatEntry};
use prost::Message;

use crate::Options;
use crate::paths::{self, PathError};

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
        Ok(done) => done,
        Err(Failure(code, message)) => {
            eprintln!("brr worker: refused or failed: {message}");
            (reapi::ActionResult::default(), Status { code, message, details: vec![] })
        }
    }
}

/// Blobs fetched ahead in one batch call, by digest; taken out as used.
type Ahead = HashMap<reapi::Digest, Vec<u8>>;

/// A CAS blob of at most `max` bytes: from `ahead` when it was fetched
/// there, else read now; refused unless it matches its SHA-256 and size.
fn blob(
    backend: &GrpcBackend,
    ahead: &mut Ahead,
    digest: &reapi::Digest,
    what: &str,
    max: u64,
) -> Result<Vec<u8>, Failure> {
    claim(digest, what, max)?;
    let bytes = match ahead.remove(digest) {
        Some(bytes) => bytes,
        None => backend
            .read_blob(digest)?
            .ok_or_else(|| Failure(FAILED_PRECONDITION, format!("{what} {} is not in the CAS", digest.hash)))?,
    };
    if digest_of(&bytes) != *digest {
        return Err(Failure(INTERNAL, format!("{what} {} does not match its digest", digest.hash)));
    }
    Ok(bytes)
}

/// The message `digest` names (a [`blob`] of at most [`MAX_MESSAGE`]), decoded.
fn message<M: Message + Default>(
    backend: &GrpcBackend,
    ahead: &mut Ahead,
    digest: Option<&reapi::Digest>,
    what: &str,
) -> Result<M, Failure> {
    let digest = digest.ok_or_else(|| Failure(INVALID_ARGUMENT, format!("no {what} digest")))?;
    let bytes = blob(backend, ahead, digest, what, MAX_MESSAGE)?;
    M::decode(bytes.as_slice()).map_err(|e| Failure(INVALID_ARGUMENT, format!("undecodable {what}: {e}")))
}

/// The tool manifest's digest, when `platform` names one (a malformed
/// value is reported by [`check_tools`]).
fn manifest_digest(platform: Option<&reapi::Platform>) -> Option<reapi::Digest> {
    let property = platform.iter().flat_map(|p| &p.properties).find(|p| p.name == TOOLS_PROPERTY)?;
    parse_digest_text(&property.value)
}

/// The largest Action, Command, Directory or tool manifest taken: the size
/// a digest claims is checked before anything is read.
const MAX_MESSAGE: u64 = 64 << 20;

/// Refuses a digest that claims a negative size or more than `max` bytes.
fn claim(digest: &reapi::Digest, what: &str, max: u64) -> Result<(), Failure> {
    let size = u64::try_from(digest.size_bytes)
        .map_err(|_| Failure(INVALID_ARGUMENT, format!("{what} {} has size {}", digest.hash, digest.size_bytes)))?;
    if size > max {
        return Err(Failure(
            INVALID_ARGUMENT,
            format!("{what} {} claims {size} bytes, more than the {max} this worker takes", digest.hash),
        ));
    }
    Ok(())
}

/// The bytes free for this user on the file system of `at`: the most an
/// input file written there may claim.
fn free_space(at: &Path) -> Result<u64, Failure> {
    let free = rustix::fs::statvfs(at).map_err(internal)?;
    Ok(free.f_bavail.saturating_mul(free.f_frsize))
}

/// The REAPI `Tree` of the folder at `path`, its files added to `blobs`.
fn tree_of(path: &Path, blobs: &mut Vec<(reapi::Digest, Vec<u8>)>) -> Result<reapi::Tree, Failure> {
    let read = read_folder(path, &[]).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => Failure(INVALID_ARGUMENT, format!("an output holds {e}")),
        _ => internal(e),
    })?;
    blobs.extend(read.files);
    Ok(reapi::Tree { root: Some(read.root), children: read.subfolders })
}

/// Writes the input root `dir` (its files and subfolders from the CAS)
/// under `at`. Folders are fetched a level at a time, then small files in
/// batches: a few round trips per action, not one per file.
fn write_input_root(backend: &GrpcBackend, dir: &reapi::Directory, at: &Path) -> Result<(), Failure> {
    let mut folders: HashMap<reapi::Digest, reapi::Directory> = HashMap::new();
    let mut level: Vec<reapi::Digest> = dir.directories.iter().filter_map(|d| d.digest.clone()).collect();
    while !level.is_empty() {
        level.sort_by(|a, b| a.hash.cmp(&b.hash));
        level.dedup();
        level.retain(|d| !folders.contains_key(d));
        for digest in &level {
            claim(digest, "input folder", MAX_MESSAGE)?;
        }
        let mut got = backend.read_blobs(&level)?;
        let mut next = Vec::new();
        for digest in level {
            let folder: reapi::Directory = message(backend, &mut got, Some(&digest), "input folder")?;
            next.extend(folder.directories.iter().filter_map(|d| d.digest.clone()));
            folders.insert(digest, folder);
        }
        level = next;
    }
    let mut prefetched = prefetch_files(backend, std::iter::once(dir).chain(folders.values()))?;
    let free = free_space(at)?;
    let mut file = |d: &reapi::Digest| blob(backend, &mut prefetched, d, "input file", free);
    let mut folder = |d: &reapi::Digest| {
        folders.get(d).cloned().ok_or_else(|| Failure(FAILED_PRECONDITION, format!("input folder {} missing", d.hash)))
    };
    write_folder(dir, at, &mut file, &mut folder).map_err(|e| match e {
        WriteError::Fetch(f) => f,
        WriteError::Invalid(m) => Failure(INVALID_ARGUMENT, format!("{m} (the input root)")),
        WriteError::Io(p, e) => internal(format!("{}: {e}", p.display())),
    })
}

/// Now, as a protobuf timestamp (for `ExecutedActionMetadata`).
fn now() -> Timestamp {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: i64::try_from(t.as_secs()).unwrap_or(i64::MAX), nanos: t.subsec_nanos().cast_signed() }
}

/// Runs the action: its result (with the logs, and the outputs when it
/// succeeded) and the lease status: OK, or `DEADLINE_EXCEEDED` for a
/// builder killed past its timeout, whose logs so far still come back.
fn run_action(
    backend: &GrpcBackend,
    payload: &Any,
    options: &Options,
) -> Result<(reapi::ActionResult, Status), Failure> {
    let mut metadata = reapi::ExecutedActionMetadata {
        worker: options.name.clone(),
        worker_start_timestamp: Some(now()),
        ..Default::default()
    };
    let action = if payload.type_url.ends_with(".Action") {
        reapi::Action::decode(payload.value.as_slice()).map_err(internal)?
    } else {
        let digest = reapi::Digest::decode(payload.value.as_slice()).map_err(internal)?;
        message(backend, &mut Ahead::new(), Some(&digest), "Action")?
    };
    // The Command, the input root and the tool manifest in one round trip.
    let first =
        [action.command_digest.clone(), action.input_root_digest.clone(), manifest_digest(action.platform.as_ref())];
    let first: Vec<reapi::Digest> = first.into_iter().flatten().collect();
    for digest in &first {
        claim(digest, "message", MAX_MESSAGE)?;
    }
    let mut ahead = backend.read_blobs(&first)?;
    let command: reapi::Command = message(backend, &mut ahead, action.command_digest.as_ref(), "Command")?;
    let tools = check_tools(backend, &mut ahead, &action, &command)?;
    if !brr_process::isolation().fixed_path() {
        return Err(Failure(FAILED_PRECONDITION, format!("this worker cannot show the sandbox at {BUILD_PATH}")));
    }
    std::fs::create_dir_all(&options.work_dir).map_err(internal)?;
    let dir = tempfile::Builder::new().prefix("action-").tempdir_in(&options.work_dir).map_err(internal)?;
    let root = dir.path().join("root");
    std::fs::create_dir(&root).map_err(internal)?;
    metadata.input_fetch_start_timestamp = Some(now());
    let input_root: reapi::Directory = message(backend, &mut ahead, action.input_root_digest.as_ref(), "input root")?;
    write_input_root(backend, &input_root, &root)?;
    metadata.input_fetch_completed_timestamp = Some(now());
    let (cwd, outputs) = resolve_paths(&command, &root)?;
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
        cwd: cwd.iter().fold(PathBuf::from(BUILD_PATH), |p, c| p.join(c)),
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
    metadata.execution_start_timestamp = Some(now());
    let child = brr_process::spawn_with_streams(&spec, &stdout, &stderr, true).map_err(internal)?;
    let limit = action
        .timeout
        .as_ref()
        .map(|t| Duration::new(u64::try_from(t.seconds).unwrap_or(0), u32::try_from(t.nanos).unwrap_or(0)));
    // Past its timeout the builder is killed with all it started.
    let ended = child.wait_timeout(limit.filter(|l| !l.is_zero())).map_err(internal)?;
    metadata.execution_completed_timestamp = Some(now());
    metadata.output_upload_start_timestamp = Some(now());
    let (exit_code, lease_status) = match ended {
        brr_process::Ended::Exited(status) => {
            let code = status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            });
            (code, Status::default())
        }
        brr_process::Ended::TimedOut(limit) => {
            let message = format!("the action ran past its timeout of {limit:?}");
            eprintln!("brr worker: {message}");
            (128 + 9, Status { code: DEADLINE_EXCEEDED, message, details: vec![] })
        }
    };
    let mut result = reapi::ActionResult { exit_code, ..Default::default() };
    let mut blobs: Vec<(reapi::Digest, Vec<u8>)> = Vec::new();
    let out = std::fs::read(&stdout_path).map_err(internal)?;
    let err = std::fs::read(&stderr_path).map_err(internal)?;
    result.stdout_digest = Some(digest_of(&out));
    result.stderr_digest = Some(digest_of(&err));
    blobs.push((digest_of(&out), out));
    blobs.push((digest_of(&err), err));
    if exit_code == 0 && lease_status.code == 0 {
        collect_outputs(&root, outputs, &mut result, &mut blobs)?;
    }
    let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
    backend.upload_missing(&refs)?;
    metadata.output_upload_completed_timestamp = Some(now());
    metadata.worker_completed_timestamp = Some(now());
    result.execution_metadata = Some(metadata);
    Ok((result, lease_status))
}

/// Reads the outputs the action left below `root` into `result` and their
/// blobs into `blobs`; an output that is missing is left out.
fn collect_outputs(
    root: &Path,
    outputs: Vec<paths::Output>,
    result: &mut reapi::ActionResult,
    blobs: &mut Vec<(reapi::Digest, Vec<u8>)>,
) -> Result<(), Failure> {
    for paths::Output { path, parts } in outputs {
        let Some((full, meta)) = paths::lookup(root, &parts).map_err(path_failure)? else { continue };
        if meta.is_symlink() {
            // Reported as the link it is (REAPI `OutputSymlink`), never followed.
            let target = std::fs::read_link(&full).map_err(internal)?;
            let target = target.to_str().ok_or_else(|| {
                Failure(INVALID_ARGUMENT, format!("output symlink `{path}` has a target that is not UTF-8"))
            })?;
            result.output_symlinks.push(reapi::OutputSymlink { path, target: target.to_owned(), ..Default::default() });
        } else if meta.is_dir() {
            let tree = tree_of(&full, blobs)?;
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
    Ok(())
}

fn path_failure(e: PathError) -> Failure {
    match e {
        PathError::Invalid(m) => Failure(INVALID_ARGUMENT, m),
        PathError::Io(p, e) => internal(format!("{}: {e}", p.display())),
    }
}

/// The working directory's and the outputs' components below the input
/// root written at `root` (each output with its path as the client named
/// it); checks the working directory is a folder there and creates the
/// outputs' parents.
fn resolve_paths(command: &reapi::Command, root: &Path) -> Result<(Vec<String>, Vec<paths::Output>), Failure> {
    let cwd = paths::working_directory(&command.working_directory).map_err(path_failure)?;
    paths::check_working_directory(root, &cwd).map_err(path_failure)?;
    let mut resolved = Vec::new();
    for text in outputs(command) {
        let parts = paths::output_path(&cwd, &text).map_err(path_failure)?;
        if let Some((_, parents)) = parts.split_last() {
            paths::create_folders(root, parents).map_err(path_failure)?;
        }
        resolved.push(paths::Output { path: text, parts });
    }
    Ok((cwd, resolved))
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
    ahead: &mut Ahead,
    action: &reapi::Action,
    command: &reapi::Command,
) -> Result<Vec<String>, Failure> {
    let property =
        action.platform.iter().chain(&command.platform).flat_map(|p| &p.properties).find(|p| p.name == TOOLS_PROPERTY);
    let Some(property) = property else { return Ok(Vec::new()) };
    let digest = parse_digest_text(&property.value)
        .ok_or_else(|| Failure(INVALID_ARGUMENT, format!("bad {TOOLS_PROPERTY} `{}`", property.value)))?;
    let manifest = blob(backend, ahead, &digest, "tool manifest", MAX_MESSAGE)?;
    let files = parse_tool_manifest(&manifest)
        .ok_or_else(|| Failure(INVALID_ARGUMENT, "undecodable tool manifest".to_owned()))?;
    for (path, expected) in &files {
        let here = tool_hash(Path::new(path));
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

/// Tool files' hashes by path, for this worker's life, trusted by the
/// store's stat-cache rule (same stat fields, settled before hashing): each
/// action checks its whole tool closure (a compiler's is tens of MB), and
/// hashing it again per action would dominate short actions.
static TOOL_HASHES: Mutex<Option<HashMap<PathBuf, StatEntry>>> = Mutex::new(None);

/// `path`'s BLAKE3 (hex), from [`TOOL_HASHES`] when its stat data did not
/// change since it was hashed.
fn tool_hash(path: &Path) -> std::io::Result<String> {
    let hashes = || TOOL_HASHES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let meta = std::fs::metadata(path)?;
    if let Some(seen) = hashes().as_ref().and_then(|m| m.get(path)).filter(|e| e.matches(&meta)) {
        return Ok(seen.digest.to_string());
    }
    // Stat before hashing, so a write during hashing is caught next time.
    let recorded = Clock::SYSTEM.now_ns();
    let (hash, _) = brr_hash::fs::hash_file(path).map_err(std::io::Error::other)?;
    hashes().get_or_insert_default().insert(path.to_owned(), StatEntry::new(&meta, hash, recorded));
    Ok(hash.to_string())
}
