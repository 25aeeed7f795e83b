//! Remote execution through BuildGrid (Execution + Bots on PostgreSQL) and
//! `brr worker`s started from the `brr` binary: actions sent with
//! brr-remote's client calls, run by the workers in brr's sandbox.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brr_remote::bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use brr_remote::exec::{TOOLS_PROPERTY, digest_of, digest_text, encode, tool_manifest};
use brr_remote::grpc::GrpcBackend;
use brr_test_support::BuildGridExecution;
use prost::Message;

/// A `brr worker` process, killed on drop; its stderr in a file.
struct Worker {
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl Worker {
    fn start(url: &str, slots: usize) -> Self {
        Self::start_with(url, slots, &[])
    }

    fn start_with(url: &str, slots: usize, args: &[&std::ffi::OsStr]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_brr"))
            .args(["worker", "--server", url, "--slots", &slots.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child: Some(child), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (at most `within`).
    fn wait_for(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.child.as_ref().unwrap());
        rustix::process::kill_process(pid, signal).unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An action: `sh -c SCRIPT` in an input root holding `in.txt`, output
/// folder `out`; its blobs uploaded. `tools`: the manifest's files.
fn upload_action(backend: &GrpcBackend, script: &str, tools: Option<&BTreeMap<String, String>>) -> reapi::Digest {
    upload_action_within(backend, script, tools, None)
}

/// [`upload_action`] with the Action's `timeout` in seconds.
fn upload_action_within(
    backend: &GrpcBackend,
    script: &str,
    tools: Option<&BTreeMap<String, String>>,
    timeout: Option<i64>,
) -> reapi::Digest {
    let input = b"hello from the input root\n".to_vec();
    let root = reapi::Directory {
        files: vec![reapi::FileNode { name: "in.txt".into(), digest: Some(digest_of(&input)), ..Default::default() }],
        ..Default::default()
    };
    let (root_bytes, root_digest) = encode(&root);
    let mut blobs: Vec<(reapi::Digest, Vec<u8>)> = vec![(digest_of(&input), input), (root_digest.clone(), root_bytes)];
    let mut platform = reapi::Platform::default();
    if let Some(files) = tools {
        let manifest = tool_manifest(files);
        platform
            .properties
            .push(reapi::platform::Property { name: TOOLS_PROPERTY.into(), value: digest_text(&digest_of(&manifest)) });
        blobs.push((digest_of(&manifest), manifest));
    }
    let command = sh_command(script, "", &["out"]);
    let (command_bytes, command_digest) = encode(&command);
    blobs.push((command_digest.clone(), command_bytes));
    let action = reapi::Action {
        command_digest: Some(command_digest),
        input_root_digest: Some(root_digest),
        do_not_cache: true,
        platform: Some(platform),
        timeout: timeout.map(|seconds| brr_remote::bazel_remote_apis::google::protobuf::Duration { seconds, nanos: 0 }),
        ..Default::default()
    };
    let (action_bytes, action_digest) = encode(&action);
    blobs.push((action_digest.clone(), action_bytes));
    let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
    backend.upload_missing(&refs).unwrap();
    action_digest
}

/// Executes `action` (skipping the action cache) on a thread of its own,
/// with its own connection, waiting at most `within`.
fn execute_in_background(
    server: &BuildGridExecution,
    action: reapi::Digest,
    within: Duration,
) -> std::thread::JoinHandle<Result<reapi::ExecuteResponse, brr_remote::RemoteError>> {
    let url = server.url();
    std::thread::spawn(move || GrpcBackend::new(&url).unwrap().execute(&action, true, within))
}

/// `sh -c SCRIPT` with `PATH` set, run in `working_directory` (empty: the
/// input root), `outputs` its output paths.
fn sh_command(script: &str, working_directory: &str, outputs: &[&str]) -> reapi::Command {
    reapi::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), script.into()],
        environment_variables: vec![reapi::command::EnvironmentVariable {
            name: "PATH".into(),
            value: "/usr/bin:/bin".into(),
        }],
        output_paths: outputs.iter().map(|&o| o.to_owned()).collect(),
        working_directory: working_directory.into(),
        ..Default::default()
    }
}

/// The file `name` in the output folder `out` of `result`.
fn output_file(backend: &GrpcBackend, result: &reapi::ActionResult, name: &str) -> Vec<u8> {
    let out = result.output_directories.iter().find(|d| d.path == "out").expect("no `out` folder in the result");
    let tree =
        reapi::Tree::decode(backend.read_blob(out.tree_digest.as_ref().unwrap()).unwrap().unwrap().as_slice()).unwrap();
    let file = tree.root.unwrap().files.into_iter().find(|f| f.name == name).expect("file missing in `out`");
    let bytes = backend.read_blob(file.digest.as_ref().unwrap()).unwrap().unwrap();
    assert_eq!(digest_of(&bytes), file.digest.unwrap(), "output does not match its digest");
    bytes
}

fn sh_manifest() -> BTreeMap<String, String> {
    let sh = std::fs::canonicalize("/bin/sh").unwrap().display().to_string();
    let (hash, _) = brr_hash::fs::hash_file(std::path::Path::new(&sh)).unwrap();
    BTreeMap::from([(sh, hash.to_string())])
}

/// Two workers; an action runs in the sandbox (it sees `/build`, no
/// network) and its output, stdout and exit code come back through the CAS.
#[test]
fn remote_exec_workers_run_actions_in_the_sandbox() {
    let Some(server) = BuildGridExecution::start() else { return };
    let workers = [Worker::start(&server.url(), 1), Worker::start(&server.url(), 1)];
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let script = "mkdir -p out && cp in.txt out/copy.txt && pwd > out/pwd.txt && \
                  cat /proc/net/dev > out/net.txt; echo ran";
    let action = upload_action(&backend, script, Some(&sh_manifest()));
    let response = backend
        .execute(&action, true, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}\n{}", workers[0].log(), workers[1].log(), server.log()));
    let status = response.status.unwrap_or_default();
    assert_eq!(status.code, 0, "{}", status.message);
    let result = response.result.unwrap();
    assert_eq!(result.exit_code, 0);
    assert_eq!(output_file(&backend, &result, "copy.txt"), b"hello from the input root\n");
    assert_eq!(output_file(&backend, &result, "pwd.txt"), b"/build\n");
    let net = String::from_utf8(output_file(&backend, &result, "net.txt")).unwrap();
    // Only loopback in the builder's network namespace.
    let interfaces: Vec<&str> = net.lines().filter_map(|l| Some(l.split_once(':')?.0.trim())).collect();
    assert_eq!(interfaces, ["lo"], "{net}");
    let stdout = backend.read_blob(result.stdout_digest.as_ref().unwrap()).unwrap().unwrap();
    assert_eq!(stdout, b"ran\n");
    assert!(workers.iter().any(|w| w.log().contains("lease")));
}

/// A tool whose file differs on the worker: the worker refuses the action
/// and nothing runs (the command would have written an output).
#[test]
fn remote_exec_tool_digest_mismatch_is_not_run() {
    let Some(server) = BuildGridExecution::start() else { return };
    let worker = Worker::start(&server.url(), 1);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let mut tools = sh_manifest();
    for digest in tools.values_mut() {
        *digest = "0".repeat(64);
    }
    let action = upload_action(&backend, "mkdir -p out && echo ran > out/ran.txt", Some(&tools));
    let answer = backend.execute(&action, true, Duration::from_secs(60));
    let refused = match &answer {
        Ok(response) => {
            let status = response.status.clone().unwrap_or_default();
            status.code == 9 && response.result.as_ref().is_none_or(|r| r.output_directories.is_empty())
        }
        Err(e) => e.to_string().contains("differs on this worker"),
    };
    assert!(refused, "{answer:?}\n{}", worker.log());
    assert!(worker.log().contains("differs on this worker"), "{}", worker.log());
}

/// A worker killed with SIGKILL while it runs a 3 s action: the server
/// requeues the lease once the bot's keepalive lapses and the other worker
/// runs it.
#[test]
fn remote_exec_worker_killed_mid_action_is_retried() {
    let Some(server) = BuildGridExecution::start() else { return };
    let first = Worker::start(&server.url(), 1);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let action = upload_action(&backend, "sleep 3; mkdir -p out && cp in.txt out/copy.txt", None);
    let waiter = execute_in_background(&server, action, Duration::from_secs(120));
    assert!(first.wait_for("lease", Duration::from_secs(30)), "{}", first.log());
    first.signal(rustix::process::Signal::KILL);
    let second = Worker::start(&server.url(), 1);
    let response = waiter.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    let result = response.result.unwrap();
    assert_eq!(result.exit_code, 0);
    assert_eq!(output_file(&backend, &result, "copy.txt"), b"hello from the input root\n");
    assert!(second.log().contains("lease"), "{}", second.log());
}

/// SIGTERM while an action runs: the worker finishes it, reports it, tells
/// the server it terminates and exits 0.
#[test]
fn remote_exec_worker_finishes_its_lease_on_sigterm() {
    let Some(server) = BuildGridExecution::start() else { return };
    let mut worker = Worker::start(&server.url(), 1);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let action = upload_action(&backend, "sleep 2; mkdir -p out && cp in.txt out/copy.txt", None);
    let waiter = execute_in_background(&server, action, Duration::from_secs(60));
    assert!(worker.wait_for("lease", Duration::from_secs(30)), "{}", worker.log());
    worker.signal(rustix::process::Signal::TERM);
    let response = waiter.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}", worker.log()));
    assert_eq!(response.result.unwrap().exit_code, 0);
    let status = worker.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status}\n{}", worker.log());
    assert!(worker.log().contains("terminating"), "{}", worker.log());
}

/// `fixtures/shop` built entirely through BuildGrid and two workers gives
/// the artifacts a local build gives in another store; every build was a
/// lease on a worker and none fell back to a local builder.
#[test]
fn remote_exec_shop_builds_on_workers_with_local_artifacts() {
    let Some(server) = BuildGridExecution::start() else { return };
    let workers = [Worker::start(&server.url(), 2), Worker::start(&server.url(), 2)];
    let local = crate::shop();
    let local_run = local.brr(["build", "--json"]).success();
    let remote = crate::shop();
    let remote_run = remote.brr_env("BRR_REMOTE_EXEC", server.url(), ["build", "--json", "-j", "4"]).success();
    let built = remote_run.count("built");
    assert!(built >= 3, "{}", remote_run.stdout);
    assert!(!remote_run.stderr.contains("building locally"), "{}", remote_run.stderr);
    let artifacts = |run: &brr_test_support::Run| -> BTreeMap<String, Option<String>> {
        run.targets().into_iter().map(|(name, t)| (name, t.artifact)).collect()
    };
    assert_eq!(artifacts(&remote_run), artifacts(&local_run));
    // No local builder: every build was run by a worker.
    let leases: usize = workers.iter().map(|w| w.log().matches(": lease ").count()).sum();
    assert_eq!(leases, built, "{}\n{}", workers[0].log(), workers[1].log());
    // `--json` says the same, and where the time went.
    let doc = crate::json_schema::valid("build", &remote_run);
    let rx = &doc["remote_exec"];
    assert_eq!(rx["ran"].as_u64(), Some(built as u64), "{rx}");
    assert_eq!(rx["sent"].as_u64(), Some(built as u64), "{rx}");
    assert_eq!(rx["fell_back"].as_u64(), Some(0), "{rx}");
    let phases = &rx["per_action"];
    for phase in ["upload_ms", "execute_ms", "queued_ms", "input_fetch_ms", "execution_ms", "download_ms"] {
        assert!(phases[phase].as_f64().is_some_and(|ms| ms > 0.0), "{phase}: {rx}");
    }
    assert!(remote_run.stderr.contains(&format!("remote execution: {built} ran remotely")), "{}", remote_run.stderr);
    assert!(local_run.json()["remote_exec"].is_null(), "{}", local_run.stdout);
}

/// SIGTERM while a lease waits to be started: the worker hands it back
/// (BuildGrid requeues it), tells the server it terminates and exits 0;
/// another worker runs the action. The lease is made to wait by stopping
/// the worker (SIGSTOP) while the server gives it the lease, then sending
/// SIGTERM before it runs again (SIGCONT).
#[test]
fn remote_exec_worker_hands_back_unstarted_leases_on_sigterm() {
    let Some(server) = BuildGridExecution::start() else { return };
    let mut first = Worker::start(&server.url(), 1);
    assert!(first.wait_for(": session ", Duration::from_secs(30)), "{}", first.log());
    first.signal(rustix::process::Signal::STOP);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let action = upload_action(&backend, "mkdir -p out && cp in.txt out/copy.txt", None);
    let waiter = execute_in_background(&server, action, Duration::from_secs(60));
    // The scheduler gives the queued action to the one bot within its
    // 50 ms assignment interval; the answer waits in the stopped worker's socket.
    std::thread::sleep(Duration::from_secs(2));
    first.signal(rustix::process::Signal::TERM);
    first.signal(rustix::process::Signal::CONT);
    let status = first.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status}\n{}", first.log());
    assert!(first.log().contains("handed back lease"), "{}", first.log());
    assert!(!first.log().contains(": lease "), "it started the lease:\n{}", first.log());
    let second = Worker::start(&server.url(), 1);
    let response = waiter.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}\n{}", first.log(), second.log()));
    let result = response.result.unwrap();
    assert_eq!(result.exit_code, 0);
    assert_eq!(output_file(&backend, &result, "copy.txt"), b"hello from the input root\n");
    assert!(second.log().contains(": lease "), "{}", second.log());
}

/// An executor nobody answers at (declared in the workspace `brr.ron`):
/// one warning, and the build runs here.
#[test]
fn remote_exec_unreachable_executor_builds_locally() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ws = crate::shop();
    ws.write(
        "brr.ron",
        &format!("Workspace(packages: [\"libs/*\", \"services/*\"], remote_exec: Some(\"grpc://127.0.0.1:{port}\"))"),
    );
    let run = ws.brr(["build", "--json"]).success();
    assert!(run.count("built") >= 3, "{}", run.stdout);
    assert_eq!(run.stderr.matches("warning: remote executor").count(), 1, "{}", run.stderr);
}

/// A builder that fails on a worker fails as a local one does: the same
/// reason, its remote stderr as the log, its dependents skipped; no local
/// retry.
#[test]
fn remote_exec_failed_action_reports_like_a_local_failure() {
    let Some(server) = BuildGridExecution::start() else { return };
    let worker = Worker::start(&server.url(), 1);
    let ws = crate::workspace().sh_lib("bad", &[], &[], "echo 'remote trouble' >&2; exit 3").sh_lib(
        "child",
        &["bad"],
        &[],
        "echo c > \"$OUT/f\"",
    );
    let run = ws.brr_env("BRR_REMOTE_EXEC", server.url(), ["build"]).code(1);
    assert!(run.stderr.contains("error: `bad` failed: builder exited with status 3"), "{}", run.stderr);
    assert!(run.stderr.contains("  | remote trouble"), "{}", run.stderr);
    assert!(!run.stderr.contains("building locally"), "{}", run.stderr);
    assert_eq!(worker.log().matches(": lease ").count(), 1, "{}", worker.log());
    let log = ws.brr(["log", "bad"]).success();
    assert_eq!(log.stdout, "remote trouble\n");
}

/// An action past its `timeout` is killed on the worker and fails with
/// `DEADLINE_EXCEEDED`, with no output.
#[test]
fn remote_exec_action_timeout_is_enforced_by_the_worker() {
    let Some(server) = BuildGridExecution::start() else { return };
    let worker = Worker::start(&server.url(), 1);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let action = upload_action_within(
        &backend,
        "echo started; echo warming >&2; sleep 30; mkdir -p out && echo late > out/late.txt",
        None,
        Some(1),
    );
    let started = Instant::now();
    let answer = backend.execute(&action, true, Duration::from_secs(60));
    assert!(started.elapsed() < Duration::from_secs(20), "not killed in time: {:?}", started.elapsed());
    let timed_out = match &answer {
        Ok(response) => response.status.as_ref().is_some_and(|s| s.code == 4),
        Err(e) => e.to_string().contains("timeout"),
    };
    assert!(timed_out, "{answer:?}\n{}", worker.log());
    assert!(worker.log().contains("past its timeout"), "{}", worker.log());
    // What it printed before it was killed comes back; no outputs do.
    let result = answer.unwrap().result.expect("a result with the logs so far");
    let log = |d: &Option<reapi::Digest>| backend.read_blob(d.as_ref().unwrap()).unwrap().unwrap();
    assert_eq!(log(&result.stdout_digest), b"started\n");
    assert_eq!(log(&result.stderr_digest), b"warming\n");
    assert!(result.output_directories.is_empty(), "{result:?}");
}

/// `sh -c SCRIPT` in the input root `root` (its other blobs in `blobs`),
/// with `working_directory` and `outputs` as given; uploaded and executed.
fn execute_command(
    backend: &GrpcBackend,
    mut blobs: Vec<(reapi::Digest, Vec<u8>)>,
    root: &reapi::Directory,
    working_directory: &str,
    outputs: &[&str],
    script: &str,
) -> Result<reapi::ExecuteResponse, brr_remote::RemoteError> {
    let (root_bytes, root_digest) = encode(root);
    blobs.push((root_digest.clone(), root_bytes));
    let command = sh_command(script, working_directory, outputs);
    let (command_bytes, command_digest) = encode(&command);
    blobs.push((command_digest.clone(), command_bytes));
    let action = reapi::Action {
        command_digest: Some(command_digest),
        input_root_digest: Some(root_digest),
        do_not_cache: true,
        ..Default::default()
    };
    let (action_bytes, action_digest) = encode(&action);
    blobs.push((action_digest.clone(), action_bytes));
    let refs: Vec<(reapi::Digest, &[u8])> = blobs.iter().map(|(d, b)| (d.clone(), b.as_slice())).collect();
    backend.upload_missing(&refs).unwrap();
    backend.execute(&action_digest, true, Duration::from_secs(60))
}

/// Whether `answer` is a refusal with gRPC `code` whose message has `needle`.
fn refused_with(answer: &Result<reapi::ExecuteResponse, brr_remote::RemoteError>, code: i32, needle: &str) -> bool {
    match answer {
        Ok(response) => {
            let status = response.status.clone().unwrap_or_default();
            status.code == code
                && status.message.contains(needle)
                && response.result.as_ref().is_none_or(|r| {
                    r.output_directories.is_empty() && r.output_files.is_empty() && r.output_symlinks.is_empty()
                })
        }
        Err(e) => e.to_string().contains(needle),
    }
}

/// A hostile client's paths: a working directory or an output above the
/// input root, an absolute output, outputs and parents through a symlink
/// (one in the input root pointing at the host, one the action made), a
/// 1 TB input file claim. Each is refused with `INVALID_ARGUMENT` naming
/// the path, nothing of the host is created or uploaded, and the worker
/// keeps serving: brr's own `../../out` from `src/p` and a symlink output
/// (returned as a link) then succeed.
#[test]
fn remote_exec_hostile_paths_are_refused_and_nothing_leaks() {
    let Some(server) = BuildGridExecution::start() else { return };
    // The worker's folders sit next to a secret of its host.
    let host = tempfile::tempdir().unwrap();
    let secret = b"the worker host's secret\n".to_vec();
    std::fs::write(host.path().join("secret.txt"), &secret).unwrap();
    std::fs::create_dir(host.path().join("work")).unwrap();
    let work = host.path().join("work");
    let worker = Worker::start_with(&server.url(), 1, &["--work-dir".as_ref(), work.as_os_str()]);
    let backend = GrpcBackend::new(&server.url()).unwrap();
    let empty = encode(&reapi::Directory::default());
    let folder = |name: &str| reapi::DirectoryNode { name: name.into(), digest: Some(empty.1.clone()) };
    let p = reapi::Directory { directories: vec![folder("p")], ..Default::default() };
    let (p_bytes, p_digest) = encode(&p);
    let root = reapi::Directory {
        directories: vec![reapi::DirectoryNode { name: "src".into(), digest: Some(p_digest.clone()) }],
        symlinks: vec![reapi::SymlinkNode {
            name: "host".into(),
            target: host.path().display().to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let blobs = || vec![(empty.1.clone(), empty.0.clone()), (p_digest.clone(), p_bytes.clone())];
    // Root: work/action-…/root, so `../../..` from it is `host`.
    let cases: [(&str, &str, &str, &str); 8] = [
        ("../..", "out", "true", "working directory `../..` resolves to a location outside the input root"),
        ("", "../../../secret.txt", "true", "output path `../../../secret.txt` resolves to a location outside"),
        ("src", "../../../../etc", "true", "output path `../../../../etc` resolves to a location outside"),
        ("", "/etc", "true", "output path `/etc` is absolute"),
        ("", "out/", "true", "output path `out/` ends with `/`"),
        ("missing", "out", "true", "working directory `missing` is not in the input root"),
        // Parents are not created through the input root's symlink to the host.
        ("", "host/made/out", "true", "`host` is a symlink"),
        // Nor is an output read through a symlink the action made.
        ("", "a/secret.txt", &format!("rmdir a && ln -s {} a", host.path().display()), "`a` is a symlink"),
    ];
    for (cwd, out, script, needle) in cases {
        let answer = execute_command(&backend, blobs(), &root, cwd, &[out], script);
        assert!(refused_with(&answer, 3, needle), "{cwd:?} {out:?}: {answer:?}\n{}", worker.log());
        assert!(worker.log().contains(needle), "{}", worker.log());
    }
    assert!(!host.path().join("made").exists(), "a folder was created on the host");
    assert_eq!(backend.read_blob(&digest_of(&secret)).unwrap(), None, "the host's secret is in the CAS");

    // A 1 TB input file claim: refused before anything is read, and the
    // client's own read of such a claim does not reserve it either.
    let huge = reapi::Digest { hash: digest_of(b"small").hash, size_bytes: 1 << 40 };
    let read = backend.read_blob(&huge);
    assert!(!matches!(read, Ok(Some(_))), "{read:?}");
    let big = reapi::Directory {
        files: vec![reapi::FileNode { name: "big".into(), digest: Some(huge), ..Default::default() }],
        ..Default::default()
    };
    let answer = execute_command(&backend, blobs(), &big, "", &["out"], "true");
    assert!(refused_with(&answer, 3, "claims 1099511627776 bytes"), "{answer:?}\n{}", worker.log());

    // Still serving: brr's own layout, and a symlink output as a link.
    let script = "mkdir ../../out && echo ok > ../../out/ok.txt && ln -s / ../../link";
    let answer = execute_command(&backend, blobs(), &root, "src/p", &["../../out", "../../link"], script);
    let response = answer.unwrap_or_else(|e| panic!("{e}\n{}", worker.log()));
    let status = response.status.unwrap_or_default();
    assert_eq!(status.code, 0, "{}", status.message);
    let result = response.result.unwrap();
    assert_eq!(result.exit_code, 0);
    let out = result.output_directories.iter().find(|d| d.path == "../../out").expect("no `../../out` folder");
    let tree =
        reapi::Tree::decode(backend.read_blob(out.tree_digest.as_ref().unwrap()).unwrap().unwrap().as_slice()).unwrap();
    let names: Vec<_> = tree.root.unwrap().files.into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["ok.txt"]);
    let links: Vec<_> = result.output_symlinks.iter().map(|l| (l.path.as_str(), l.target.as_str())).collect();
    assert_eq!(links, [("../../link", "/")]);
    assert_eq!(result.output_directories.len(), 1, "the link was followed: {result:?}");
}

/// A builder that sleeps past its declared `limits.timeout_s`, built through
/// BuildGrid and one worker: the worker kills it, and the build fails with
/// the message a local timeout gives; it is not run again here.
#[test]
fn remote_exec_declared_timeout_fails_the_build_like_a_local_one() {
    let Some(server) = BuildGridExecution::start() else { return };
    let worker = Worker::start(&server.url(), 1);
    let ws = crate::workspace()
        .file(
            "p/slow/brr.ron",
            &brr_test_support::sh_library_with(
                "slow",
                &[],
                &["sleep"],
                "echo before the sleep; sleep 30; echo late > \"$OUT/f\"",
                "limits: Limits(timeout_s: Some(1)),",
            ),
        )
        .sh_lib("child", &["slow"], &[], "echo c > \"$OUT/f\"");
    let started = Instant::now();
    let run = ws.brr_env("BRR_REMOTE_EXEC", server.url(), ["build", "--json"]).code(1);
    assert!(started.elapsed() < Duration::from_secs(30), "not killed in time: {:?}", started.elapsed());
    let targets = run.targets();
    assert_eq!([targets["slow"].status.as_str(), targets["child"].status.as_str()], ["failed", "skipped"]);
    let json = run.json();
    let slow = json["targets"].as_array().unwrap().iter().find(|t| t["name"] == "slow").unwrap();
    assert_eq!(
        slow["reason"],
        "builder ran past its timeout of 1 s and was killed, with all it started (`limits.timeout_s`, \
         p/slow/brr.ron:7): raise `limits: Limits(timeout_s: …)`",
        "{}",
        run.stderr
    );
    // It ran on the worker, once, and not here: a local run follows the
    // one warning of a fallback.
    assert!(!run.stderr.contains("building locally"), "{}", run.stderr);
    assert_eq!(worker.log().matches(": lease ").count(), 1, "{}", worker.log());
    assert!(worker.log().contains("past its timeout"), "{}", worker.log());
    let log = ws.brr(["log", "slow"]).success().stdout;
    assert!(log.contains("brr: builder ran past its timeout of 1 s"), "{log}");
    // What the builder printed on the worker before it was killed.
    assert!(log.contains("before the sleep"), "{log}");
}

/// The executor goes away in the middle of a build (BuildGrid and its
/// database stopped): the actions in flight and the rest build here, the
/// executor is switched off after three failures in a row with one warning,
/// and the build succeeds without waiting on it per action.
#[test]
fn remote_exec_executor_gone_mid_build_is_switched_off_and_the_rest_builds_here() {
    let Some(server) = BuildGridExecution::start() else { return };
    let worker = Worker::start(&server.url(), 2);
    let mut ws = crate::workspace();
    for i in 0..12 {
        ws = ws.sh_lib(&format!("t{i}"), &[], &["sleep"], &format!("sleep 1; echo {i} > \"$OUT/f\""));
    }
    let url = server.url();
    let run = std::thread::scope(|s| {
        let build = s.spawn(|| ws.brr_env("BRR_REMOTE_EXEC", url.clone(), ["build", "--json", "-j", "2"]).success());
        assert!(worker.wait_for(": lease ", Duration::from_secs(60)), "{}", worker.log());
        drop(server);
        build.join().unwrap()
    });
    assert_eq!(run.count("built"), 12, "{}", run.stdout);
    assert_eq!(run.stderr.matches("remote executor switched off").count(), 1, "{}", run.stderr);
    let rx = &run.json()["remote_exec"];
    let (ran, fell_back) = (rx["ran"].as_u64().unwrap(), rx["fell_back"].as_u64().unwrap());
    assert!(fell_back >= 10, "{rx}");
    assert!(ran + fell_back >= 12, "{rx}");
    // Switched off: most of the builds never tried the executor.
    assert!(rx["sent"].as_u64().unwrap() <= 6, "{rx}");
}
