//! Process types beyond a command: a `Procfile` (in the build hash, not
//! the build key), and per type restart policy, grace and readiness probes
//! honoured by `brr run` with real processes.

use std::time::{Duration, Instant};

use brr_test_support::{TestWorkspace, ron_str};
use serde_json::Value;

use crate::BRR;
use crate::run::{ENVIRONMENTS, http_get, ps, spawn, state_of, terminate, wait_ps};

/// A workspace with one service `app` whose `processes` map holds the
/// given RON entries.
fn app(processes: &[String]) -> TestWorkspace {
    TestWorkspace::new(BRR).file("brr.ron", "Workspace(packages: [\"p/*\"])\n").file("environments.ron", ENVIRONMENTS).file(
        "p/app/brr.ron",
        &format!(
            "Service(\n    name: \"app\",\n    tools: [\"sh\"],\n    builder: [\"sh\", \"-c\", \"echo built > $OUT/f\"],\n    \
             outputs: [\"f\"],\n    processes: {{\n{}\n    }},\n)\n",
            processes.join(",\n")
        ),
    )
}

/// A `processes` entry running `script` under `sh -c`, with `settings`
/// (`restart: "never"`, …) after the command.
fn process(name: &str, script: &str, settings: &str) -> String {
    format!("        {}: Process(command: [\"sh\", \"-c\", {}], {settings})", ron_str(name), ron_str(script))
}

/// The events recorded for `process`, as (event, detail), in order.
fn events(ws: &TestWorkspace, process: &str) -> Vec<(String, Option<String>)> {
    let db = rusqlite::Connection::open(ws.store().join("brr.db")).unwrap();
    db.prepare("SELECT event, detail FROM run_events WHERE process = ?1 ORDER BY id")
        .unwrap()
        .query_map([process], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Polls until `done` holds (at most 30 s).
#[track_caller]
fn wait_for(ws: &TestWorkspace, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- stderr\n{}",
            std::fs::read_to_string(ws.path().join("run.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn artifact(ws: &TestWorkspace) -> (String, String) {
    let build = ws.brr(["build", "--json"]).success().json();
    let app = build["targets"].as_array().unwrap().iter().find(|t| t["name"] == "app").unwrap().clone();
    (app["artifact"].as_str().unwrap().to_owned(), app["status"].as_str().unwrap().to_owned())
}

#[test]
fn a_procfile_edit_changes_the_build_hash_without_running_the_builder() {
    let ws = app(&[process("web", "exec sleep 1000", "")]);
    ws.write("p/app/Procfile", "# background jobs\nworker: echo working; exec sleep 1000\n");
    let (first, status) = artifact(&ws);
    assert_eq!(status, "built");
    let show = ws.brr(["show", &first, "--json"]).success().json();
    assert_eq!(show.to_string().matches("echo working; exec sleep 1000").count(), 1, "{show:#}");

    ws.write("p/app/Procfile", "# background jobs\nworker: echo working harder; exec sleep 1000\n");
    let (second, status) = artifact(&ws);
    assert_eq!(status, "cached", "the builder did not run again");
    assert_ne!(first, second, "the Procfile is part of the build hash");
    // The builder's log is the first build's: it ran once.
    let (third, status) = artifact(&ws);
    assert_eq!((third.as_str(), status.as_str()), (second.as_str(), "cached"));

    // The worker from the Procfile runs, as `sh -c LINE`.
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    wait_ps(&ws, "the Procfile's worker ready", |l| state_of(l, "worker") == Some("ready"));
    wait_for(&ws, "the worker's output", || {
        ws.brr(["logs", "staging", "--process", "worker"]).success().stdout.contains("worker.1 | working harder")
    });
    assert_eq!(terminate(&mut child), Some(0));
}

#[test]
fn procfile_mistakes_name_the_files() {
    let ws = app(&[process("web", "exec sleep 1000", "")]);
    ws.write("p/app/Procfile", "worker: bin/work\nweb: bin/web\n");
    let run = ws.brr(["build"]).code(2);
    assert!(
        run.stderr.contains("p/app/Procfile:2:1")
            && run.stderr.contains("process type `web` is declared in both `p/app/brr.ron` and `p/app/Procfile`"),
        "{}",
        run.stderr
    );
    ws.write("p/app/Procfile", "worker: bin/work\nthis is not a process\n");
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("p/app/Procfile:2:1") && run.stderr.contains("`name: command`"), "{}", run.stderr);
}

#[test]
fn a_process_that_is_never_restarted_exits_for_good() {
    let ws =
        app(&[process("once", "echo once; exit 3", "restart: \"never\""), process("steady", "exec sleep 1000", "")]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    // Its policy ends it: recorded as such, instead of a backoff.
    wait_for(&ws, "once to end by its policy", || {
        events(&ws, "once").iter().any(|(e, d)| e == "exit" && d.as_deref() == Some("not restarted (its policy)"))
    });
    let list = wait_ps(&ws, "steady ready", |l| state_of(l, "steady") == Some("ready"));
    let once = list.iter().find(|p| p["process"] == "once").unwrap();
    assert_eq!((once["state"].as_str(), once["restarts"].as_u64()), (Some("exited"), Some(0)), "{once}");
    let starts = events(&ws, "once").iter().filter(|(e, _)| e == "start").count();
    assert_eq!(starts, 1, "{:?}", events(&ws, "once"));
    assert!(!events(&ws, "once").iter().any(|(e, _)| e == "backoff"));
    assert_eq!(terminate(&mut child), Some(0));
}

/// A web server whose `/health` answers 503, logging each request to
/// `$BRR_DATA_DIR/health`, until `$BRR_DATA_DIR/healthy` exists; then 200.
const HEALTH_SERVER: &str = "exec python3 -c 'import http.server, os
d = os.environ[\"BRR_DATA_DIR\"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = os.path.exists(os.path.join(d, \"healthy\"))
        if self.path == \"/health\":
            open(os.path.join(d, \"health\"), \"a\").write(\"asked\\n\")
        self.send_response(200 if ok or self.path != \"/health\" else 503); self.send_header(\"Content-Length\", \"0\"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((\"127.0.0.1\", int(os.environ[\"PORT\"])), H).serve_forever()'";

fn row<'a>(list: &'a [Value], process: &str) -> &'a Value {
    list.iter().rev().find(|p| p["process"] == process && p["run_state"] == "running").unwrap()
}

#[test]
fn an_http_probe_keeps_a_process_running_until_its_path_answers_2xx() {
    let ws = app(&[process("web", HEALTH_SERVER, "ready: Http(path: \"/health\")")]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    let data = ws.store().join("envs/staging/data");
    // Listening, and asked twice: a TCP probe would have passed by now.
    wait_for(&ws, "two health checks", || {
        std::fs::read_to_string(data.join("health")).unwrap_or_default().lines().count() >= 2
    });
    let list = ps(&ws);
    let web = row(&list, "web");
    assert_eq!(web["state"], "running", "not ready while /health answers 503: {web}");
    let port = u16::try_from(web["port"].as_u64().unwrap()).unwrap();
    assert!(http_get(port).unwrap().starts_with("HTTP/1.0 200"), "it listens and answers other paths");
    std::fs::write(data.join("healthy"), "").unwrap();
    wait_ps(&ws, "web ready once /health answers 200", |l| state_of(l, "web") == Some("ready"));
    assert_eq!(terminate(&mut child), Some(0));
}

#[test]
fn a_command_probe_runs_in_the_release_folder_with_the_process_env() {
    // The probe sees the release folder (`f`, the build's output) and the
    // process's environment (`BRR_DATA_DIR`), and logs each try.
    let probe = "echo try >> \"$BRR_DATA_DIR/tries\"; test -e f && test -e \"$BRR_DATA_DIR/up\"";
    let ws =
        app(&[process("worker", "exec sleep 1000", &format!("ready: Command([\"sh\", \"-c\", {}])", ron_str(probe)))]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    let data = ws.store().join("envs/staging/data");
    wait_for(&ws, "two tries", || std::fs::read_to_string(data.join("tries")).unwrap_or_default().lines().count() >= 2);
    assert_eq!(row(&ps(&ws), "worker")["state"], "running", "not ready while the command fails");
    std::fs::write(data.join("up"), "").unwrap();
    wait_ps(&ws, "worker ready once the command exits 0", |l| state_of(l, "worker") == Some("ready"));
    assert_eq!(terminate(&mut child), Some(0));
}

#[test]
fn each_process_type_gets_its_own_grace() {
    // Both ignore SIGTERM; `quick` is killed after its 1 s, `patient` gets
    // until `--grace` (the default for types that declare none) but exits
    // on its own once `quick` is gone.
    let ws = app(&[
        process("quick", "trap '' TERM; echo $$ > \"$BRR_DATA_DIR/quick\"; while :; do sleep 0.1; done", "grace_s: 1"),
        process(
            "patient",
            "trap 'while kill -0 $(cat \"$BRR_DATA_DIR/quick\") 2>/dev/null; do sleep 0.05; done; exit 0' TERM; \
             while :; do sleep 0.1; done",
            "",
        ),
    ]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging", "--grace", "60"], &[]);
    wait_ps(&ws, "both ready", |l| state_of(l, "quick") == Some("ready") && state_of(l, "patient") == Some("ready"));
    let data = ws.store().join("envs/staging/data");
    wait_for(&ws, "quick's pid", || data.join("quick").exists());
    let started = Instant::now();
    assert_eq!(terminate(&mut child), Some(1), "quick needed a SIGKILL");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "quick had its grace: {took:?}");
    assert!(took < Duration::from_secs(30), "quick was not given the 60 s default: {took:?}");
    let list = ps(&ws);
    let quick = list.iter().find(|p| p["process"] == "quick").unwrap();
    assert_eq!(quick["last_exit"].as_str().map(|s| s.contains("SIGKILL")), Some(true), "{quick}");
    let patient = list.iter().find(|p| p["process"] == "patient").unwrap();
    assert_eq!(patient["last_exit"].as_str().map(|s| s.contains("SIGKILL")), Some(false), "{patient}");
}
