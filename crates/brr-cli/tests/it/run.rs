//! The run stage end to end: `brr run`, `brr ps`, restarts, stops with real
//! signals, switches without a failed request, and what `run` refuses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use brr_test_support::{TestWorkspace, ron_str};
use serde_json::Value;

use crate::{BRR, shop};

pub(crate) const ENVIRONMENTS: &str = r#"Environments(
    promotion: ["staging", "production"],
    environments: {"staging": Environment(vars: {"GREETING": "hi"}), "production": Environment(vars: {"GREETING": "hello"})},
)
"#;

/// A workspace with one service `app` whose process types are given as
/// (name, shell script) pairs.
fn app(processes: &[(&str, &str)]) -> TestWorkspace {
    let procs: Vec<String> = processes
        .iter()
        .map(|(name, script)| format!("{}: Process(command: [\"sh\", \"-c\", {}])", ron_str(name), ron_str(script)))
        .collect();
    TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("environments.ron", ENVIRONMENTS)
        .file(
            "p/app/brr.ron",
            &format!(
                "Service(\n    name: \"app\",\n    tools: [\"sh\"],\n    builder: [\"sh\", \"-c\", \"echo built > $OUT/f\"],\n    \
                 outputs: [\"f\"],\n    processes: {{{}}},\n)\n",
                procs.join(", ")
            ),
        )
}

/// `brr ARGS` started in the background, output to files in the workspace.
pub(crate) fn spawn(ws: &TestWorkspace, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = ws.command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(ws.path().join("run.out")).unwrap())
        .stderr(std::fs::File::create(ws.path().join("run.err")).unwrap())
        .stdin(Stdio::null());
    cmd.spawn().unwrap()
}

/// `brr ps --json`'s processes.
pub(crate) fn ps(ws: &TestWorkspace) -> Vec<Value> {
    ws.brr(["ps", "--json"]).success().json()["processes"].as_array().unwrap().clone()
}

/// Polls `brr ps` until `done` holds (at most 30 s); returns the last list.
#[track_caller]
pub(crate) fn wait_ps(ws: &TestWorkspace, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = ps(ws);
        if done(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; ps: {list:#?}\n--- stderr\n{}",
            std::fs::read_to_string(ws.path().join("run.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn state_of<'a>(list: &'a [Value], process: &str) -> Option<&'a str> {
    list.iter().rev().find(|p| p["process"] == process && p["run_state"] == "running")?["state"].as_str()
}

/// SIGTERM to `child`, then its exit code.
pub(crate) fn terminate(child: &mut Child) -> Option<i32> {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    child.wait().unwrap().code()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("");
    !state.is_empty() && state != "Z"
}

pub(crate) fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// The port the router of `service` listens on, as `brr run` printed it.
fn router_port(ws: &TestWorkspace) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let err = std::fs::read_to_string(ws.path().join("run.err")).unwrap_or_default();
        if let Some(port) = err
            .lines()
            .find_map(|l| l.split("routed from port ").nth(1).or_else(|| l.split("http://127.0.0.1:").nth(1)))
        {
            return port.trim_end_matches('/').trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no router port printed:\n{err}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_staging_starts_the_shop_and_answers_http() {
    let ws = shop();
    let token = [("SHOP_API_TOKEN", "t0k3n")];
    ws.brr_env("SHOP_API_TOKEN", "t0k3n", ["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &token);
    let list = wait_ps(&ws, "web ready and two workers", |l| {
        state_of(l, "web") == Some("ready")
            && l.iter().filter(|p| p["process"] == "worker" && p["state"] == "ready").count() == 2
    });
    let releases = ws.brr(["releases", "--env", "staging", "--json"]).success().json();
    let api =
        releases["releases"].as_array().unwrap().iter().find(|r| r["service"] == "api").unwrap()["release"].clone();
    let web = list.iter().find(|p| p["process"] == "web").unwrap();
    assert_eq!(web["release"], api, "ps names the release hash");
    // The process's own port answers, and so does the router's.
    let port = u16::try_from(web["port"].as_u64().unwrap()).unwrap();
    assert!(http_get(port).unwrap().contains("Welcome"), "web answers on its PORT");
    assert!(http_get(router_port(&ws)).unwrap().contains("Welcome"), "the router forwards");
    assert_eq!(terminate(&mut child), Some(0), "{}", std::fs::read_to_string(ws.path().join("run.err")).unwrap());
    let after = ps(&ws);
    assert!(after.iter().all(|p| p["state"] == "stopped" && p["pid"].is_null()), "{after:#?}");
}

#[test]
fn a_crashing_process_backs_off_then_fails_while_others_run() {
    let ws = app(&[("crash", "echo crashing; exit 1"), ("steady", "while :; do sleep 1; done")]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    wait_ps(&ws, "crash to fail", |l| state_of(l, "crash") == Some("failed"));
    let list = ps(&ws);
    assert_eq!(state_of(&list, "steady"), Some("ready"), "the other process keeps running: {list:#?}");
    let crash = list.iter().find(|p| p["process"] == "crash").unwrap();
    assert_eq!(crash["restarts"], 4, "five starts, then the start limit: {crash}");
    // The recorded start times: each delay at least the previous one's double.
    let db = rusqlite::Connection::open(ws.store().join("brr.db")).unwrap();
    let starts: Vec<i64> = db
        .prepare("SELECT at_ms FROM run_events WHERE process = 'crash' AND event = 'start' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(starts.len(), 5, "{starts:?}");
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 100, "the first restart waits the first delay: {gaps:?}");
    for w in gaps.windows(2) {
        assert!(w[1] >= w[0] + 50, "delays grow: {gaps:?}");
    }
    assert_eq!(terminate(&mut child), Some(1), "a failed process type makes the exit status 1");
    let log = ws.brr(["logs", "staging", "--process", "crash"]).success();
    assert!(log.stdout.contains("crash.1 | crashing") && !log.stdout.contains("steady"), "{}", log.stdout);
}

#[test]
fn sigterm_stops_everything_including_escaped_daemons() {
    let ws = app(&[
        // Exits on SIGTERM, saying so.
        ("polite", "trap 'echo got TERM > \"$BRR_DATA_DIR/polite\"; exit 0' TERM; while :; do sleep 0.1; done"),
        // Ignores SIGTERM: killed after the grace.
        ("stubborn", "trap '' TERM; echo $$ > \"$BRR_DATA_DIR/stubborn\"; while :; do sleep 0.1; done"),
        // Leaves a daemon in a session of its own (double fork + setsid).
        ("forker", "(setsid sh -c 'echo $$ > \"$BRR_DATA_DIR/daemon\"; exec sleep 1000' &); exec sleep 1000"),
    ]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging", "--grace", "1"], &[]);
    let data = ws.store().join("envs/staging/data");
    let list = wait_ps(&ws, "all three running", |l| {
        ["polite", "stubborn", "forker"].iter().all(|p| state_of(l, p) == Some("ready"))
            && data.join("daemon").exists()
            && data.join("stubborn").exists()
    });
    let read_pid = |name: &str| -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(pid) = std::fs::read_to_string(data.join(name)).unwrap_or_default().trim().parse() {
                return pid;
            }
            assert!(Instant::now() < deadline, "no pid in {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let daemon = read_pid("daemon");
    let stubborn = read_pid("stubborn");
    assert!(alive(daemon), "the daemon runs");
    let pids: Vec<u32> = list.iter().filter_map(|p| p["pid"].as_u64()).map(|p| u32::try_from(p).unwrap()).collect();
    let started = Instant::now();
    let code = terminate(&mut child);
    assert!(started.elapsed() >= Duration::from_secs(1), "the stubborn process had its grace");
    assert_eq!(code, Some(1), "a SIGKILL was needed: not a clean stop");
    assert_eq!(std::fs::read_to_string(data.join("polite")).unwrap(), "got TERM\n");
    for pid in pids.iter().chain([&daemon, &stubborn]) {
        assert!(!alive(*pid), "process {pid} of the run survived");
    }
    let stubborn_row = ps(&ws).into_iter().find(|p| p["process"] == "stubborn").unwrap();
    assert_eq!(stubborn_row["last_exit"].as_str().map(|s| s.contains("SIGKILL")), Some(true), "{stubborn_row}");
}

#[test]
fn a_promotion_switches_a_running_environment_without_a_failed_request() {
    let web = "exec python3 -c 'import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        body = os.environ[\"GREETING\"].encode()\n        self.send_response(200); self.send_header(\"Content-Length\", str(len(body))); self.end_headers(); self.wfile.write(body)\n    def log_message(self, *a): pass\nhttp.server.ThreadingHTTPServer((\"127.0.0.1\", int(os.environ[\"PORT\"])), H).serve_forever()'";
    let ws = app(&[("web", web)]);
    ws.brr(["release", "--env", "staging"]).success();
    ws.brr(["promote", "--from", "staging", "--to", "production"]).success();
    // Production runs staging's build with production's config: "hello".
    ws.write("environments.ron", &ENVIRONMENTS.replace("\"hello\"", "\"bonjour\""));
    let mut child = spawn(&ws, &["run", "production"], &[]);
    wait_ps(&ws, "web ready", |l| state_of(l, "web") == Some("ready"));
    let port = router_port(&ws);
    assert_eq!(body(&http_get(port).unwrap()), "hello");
    // A client loops requests while a new production release (new config) is promoted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                answers.push(http_get(port).map(|r| body(&r).to_owned()).map_err(|e| e.to_string()));
            }
            answers
        })
    };
    ws.brr(["promote", "--from", "staging", "--to", "production"]).success();
    let new_release =
        ws.brr(["releases", "--env", "production", "--json"]).success().json()["releases"][0]["release"].clone();
    wait_ps(&ws, "only the new release", |l| {
        let running: Vec<&Value> = l.iter().filter(|p| p["run_state"] == "running").collect();
        !running.is_empty() && running.iter().all(|p| p["release"] == new_release && p["state"] == "ready")
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = client.join().unwrap();
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), answers.len());
    assert!(answers.iter().any(|a| a.as_deref() == Ok("bonjour")), "the new release answered");
    assert_eq!(answers.last().unwrap().as_deref(), Ok("bonjour"));
    assert_eq!(terminate(&mut child), Some(0));
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

#[test]
fn run_refuses_builds_services_and_unknown_names() {
    let ws = app(&[("steady", "while :; do sleep 1; done")]);
    let build = ws.brr(["build", "--json"]).success();
    let artifact = build.targets()["app"].artifact.clone().unwrap();
    ws.brr(["release", "--env", "staging"]).success();
    let run = ws.brr(["run", &artifact]).code(2);
    assert!(run.stderr.contains("is a build (artifact) hash, not a release"), "{}", run.stderr);
    let run = ws.brr(["run", "app"]).code(2);
    assert!(run.stderr.contains("`app` is a service, not a release"), "{}", run.stderr);
    let run = ws.brr(["run", "nowhere"]).code(2);
    assert!(run.stderr.contains("neither an environment with releases nor a release hash"), "{}", run.stderr);
    let run = ws.brr(["run", "staging", "--process", "nope"]).code(2);
    assert!(run.stderr.contains("no process type `nope`"), "{}", run.stderr);
}

/// A supervisor killed with `kill -9` leaves its run shown as lost.
#[test]
fn a_killed_supervisor_is_shown_as_lost() {
    let ws = app(&[("steady", "while :; do sleep 1; done")]);
    ws.brr(["release", "--env", "staging"]).success();
    let mut child = spawn(&ws, &["run", "staging"], &[]);
    let list = wait_ps(&ws, "steady ready", |l| state_of(l, "steady") == Some("ready"));
    let pid = u32::try_from(list[0]["pid"].as_u64().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let list = ps(&ws);
    assert!(list.iter().all(|p| p["run_state"] == "lost" && p["state"] == "lost"), "{list:#?}");
    // Its process died with it (the death signal), soon.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} outlived its killed supervisor");
        std::thread::sleep(Duration::from_millis(20));
    }
}
