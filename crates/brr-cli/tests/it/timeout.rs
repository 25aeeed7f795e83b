//! `limits.timeout_s`: a builder (or fetch command) past it is killed with all it started and
//! the build fails like any other; declared per package or in the defaults,
//! it is in no key.

use std::time::{Duration, Instant};

use brr_test_support::{TestWorkspace, sh_library_with};

use crate::workspace;

/// A number no other test sleeps for, to find this test's leftovers.
fn marker(n: u32) -> String {
    format!("{}", 86_400 * 3 + std::process::id() * 4 + n)
}

/// Pids whose command line holds `sleep MARKER`.
fn sleeping(marker: &str) -> Vec<String> {
    let wanted = format!("sleep\0{marker}\0");
    let mut found = Vec::new();
    for entry in fs_err::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Only a process's own `/proc/PID` lists its command line.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let is_zombie = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')));
        if !is_zombie && String::from_utf8_lossy(&cmdline).ends_with(&wanted) {
            found.push(name);
        }
    }
    found
}

/// A builder that starts a second sleeper in the background, then sleeps.
fn sleeper(marker: &str) -> String {
    format!("sleep {marker} & sleep {marker}; echo late > $OUT/f")
}

/// `slow` (sleeping, with `fields`), `child` on it and an independent `other`.
fn slow_workspace(marker: &str, fields: &str) -> TestWorkspace {
    workspace()
        .file("p/slow/brr.ron", &sh_library_with("slow", &[], &["sleep"], &sleeper(marker), fields))
        .sh_lib("child", &["slow"], &[], "echo c > \"$OUT/f\"")
        .sh_lib("other", &[], &[], "echo o > \"$OUT/f\"")
}

/// Builds `ws` with `args`, checking it fails within a few seconds with
/// `slow` failed for its timeout, `child` skipped and `other` built (or
/// cached from a run before); the
/// reason given for `slow`.
fn build_times_out(ws: &TestWorkspace, args: &[&str], marker: &str) -> String {
    let started = Instant::now();
    let run = ws.brr(args).code(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "the build took {took:?}:\n{}", run.stderr);
    let targets = run.targets();
    let status = |n: &str| targets[n].status.clone();
    assert_eq!([status("slow"), status("child")], ["failed", "skipped"], "{}", run.stderr);
    assert!(["built", "cached"].contains(&status("other").as_str()), "{}", run.stderr);
    assert!(targets["slow"].artifact.is_none());
    let left = sleeping(marker);
    assert!(left.is_empty(), "the builder's sleeps {left:?} outlived its timeout");
    let json = run.json();
    let slow = json["targets"].as_array().unwrap().iter().find(|t| t["name"] == "slow").unwrap();
    slow["reason"].as_str().unwrap().to_owned()
}

#[test]
fn a_builder_past_its_declared_timeout_is_killed_and_fails_the_build() {
    let m = marker(0);
    let ws = slow_workspace(&m, "limits: Limits(timeout_s: Some(1)),");
    for args in [&["build", "--json"][..], &["build", "--no-sandbox", "--json"]] {
        let reason = build_times_out(&ws, args, &m);
        assert_eq!(
            reason,
            "builder ran past its timeout of 1 s and was killed, with all it started (`limits.timeout_s`, \
             p/slow/brr.ron:7): raise `limits: Limits(timeout_s: …)`",
            "{args:?}"
        );
        // Nothing was stored for its key: the next build runs it again.
        let plan = ws.brr(["plan"]).success().stdout;
        assert!(plan.lines().any(|l| l.contains("slow") && !l.contains("cached")), "{plan}");
        // `brr log` says why the log ends where it does.
        let log = ws.brr(["log", "slow"]).success().stdout;
        assert!(log.ends_with("brr: builder ran past its timeout of 1 s and was killed, with all it started (`limits.timeout_s`, p/slow/brr.ron:7): raise `limits: Limits(timeout_s: …)`\n"), "{log}");
    }
    let summary = ws.brr(["build"]).code(1).stderr;
    assert!(summary.contains("error: `slow` failed: builder ran past its timeout of 1 s"), "{summary}");

    // Within the timeout, the same builder builds.
    let quick = workspace().sh_lib("quick", &[], &[], "echo q > \"$OUT/f\"");
    let with = |t: &str| sh_library_with("quick", &[], &[], "echo q > \"$OUT/f\"", t);
    quick.write("p/quick/brr.ron", &with("limits: Limits(timeout_s: Some(30)),"));
    let built = quick.brr(["build", "--json"]).success().targets()["quick"].key.clone();
    assert!(quick.brr(["why", "quick"]).success().stdout.contains("timeout_s=30  (p/quick/brr.ron:7)"));
    // A timeout changes no key: without it, or with another, it is cached.
    for fields in ["", "limits: Limits(timeout_s: Some(5)),"] {
        quick.write("p/quick/brr.ron", &with(fields));
        let again = quick.brr(["build", "--json"]).success().targets()["quick"].clone();
        assert_eq!((again.status.as_str(), again.key), ("cached", built.clone()), "with `{fields}`");
    }
}

#[test]
fn a_timeout_inherited_from_the_workspace_defaults_applies_and_is_named() {
    let m = marker(1);
    let ws = slow_workspace(&m, "").file(
        "brr.ron",
        "Workspace(\n    packages: [\"p/*\"],\n    defaults: (\n        limits: (timeout_s: Some(1)),\n    ),\n)\n",
    );
    let reason = build_times_out(&ws, &["build", "--json"], &m);
    assert!(reason.starts_with("builder ran past its timeout of 1 s"), "{reason}");
    assert!(reason.contains("(`limits.timeout_s`, in the workspace defaults, brr.ron)"), "{reason}");
    let why = ws.brr(["why", "other"]).success().stdout;
    assert!(why.contains("timeout_s=1  (workspace defaults, brr.ron:4)"), "{why}");

    // A package's own timeout wins over the default.
    ws.write(
        "p/slow/brr.ron",
        &sh_library_with("slow", &[], &[], "echo s > $OUT/f", "limits: Limits(timeout_s: Some(60)),"),
    );
    let why = ws.brr(["why", "slow"]).success().stdout;
    assert!(why.contains("timeout_s=60  (p/slow/brr.ron:7, over the workspace default)"), "{why}");
    ws.brr(["build"]).success();

    // Zero is refused, naming the file, line and value.
    ws.write("brr.ron", &ws.read("brr.ron").replace("Some(1)", "Some(0)"));
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("brr.ron:4"), "{}", run.stderr);
    assert!(run.stderr.contains("`limits.timeout_s` is `0`"), "{}", run.stderr);
}

#[test]
fn a_fetch_command_past_its_timeout_fails_and_stores_nothing() {
    let m = marker(2);
    let hash = "0".repeat(64);
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"p/*\"])\n").file(
        "p/f/brr.ron",
        &format!(
            "Fetch(\n    name: \"f\",\n    command: [\"sh\", \"-c\", \"sleep {m} & sleep {m}\"],\n    tools: [\"sh\", \
             \"sleep\"],\n    hash: \"{hash}\",\n    limits: Limits(timeout_s: Some(1)),\n)\n"
        ),
    );
    let started = Instant::now();
    let run = ws.brr(["build"]).code(1);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(
        run.stderr.contains(
            "fetch command ran past its timeout of 1 s and was killed, with all it started (`limits.timeout_s`, \
             p/f/brr.ron:6)"
        ),
        "{}",
        run.stderr
    );
    let left = sleeping(&m);
    assert!(left.is_empty(), "the fetch command's sleeps {left:?} outlived its timeout");
    let plan = ws.brr(["plan"]).success().stdout;
    assert!(plan.lines().any(|l| l.contains(" f") && !l.contains("cached")), "{plan}");
}

/// A URL fetch from a server that stalls — one that never answers, one
/// that stops sending mid-body — fails at the declared timeout, naming it,
/// and stores nothing.
#[test]
fn a_download_past_its_timeout_fails_and_stores_nothing() {
    use std::io::{Read as _, Write as _};
    for partial in [false, true] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            if partial {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nten bytes.");
            }
            // Hold the connection open, silent, until the client gives up.
            let _ = conn.read(&mut request);
        });
        let hash = "0".repeat(64);
        let ws = workspace().file("brr.ron", "Workspace(packages: [\"p/*\"])\n").file(
            "p/f/brr.ron",
            &format!(
                "Fetch(\n    name: \"f\",\n    url: \"http://127.0.0.1:{port}/x.tar.gz\",\n    hash: \"{hash}\",\n    \
                 limits: Limits(timeout_s: Some(2)),\n)\n"
            ),
        );
        let started = Instant::now();
        let run = ws.brr(["build"]).code(1);
        assert!(started.elapsed() < Duration::from_secs(30), "partial {partial}: {:?}", started.elapsed());
        let expected = format!(
            "download of `http://127.0.0.1:{port}/x.tar.gz` ran past its timeout of 2 s and was stopped \
             (`limits.timeout_s`, p/f/brr.ron:5)"
        );
        assert!(run.stderr.contains(&expected), "partial {partial}:\n{}", run.stderr);
        let plan = ws.brr(["plan"]).success().stdout;
        assert!(plan.lines().any(|l| l.contains(" f") && !l.contains("cached")), "{plan}");
        server.join().unwrap();
    }
}
