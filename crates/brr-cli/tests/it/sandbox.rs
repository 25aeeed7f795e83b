//! The builder sandbox: no network, no writes outside the build's own
//! folders, and no output symlink that leads out of the artifact.

use std::io::ErrorKind;
use std::net::TcpListener;

use brr_test_support::{path_with_real_python3, ron_str, temp_dir};

use crate::{require_namespaces, workspace};

#[test]
fn builder_cannot_reach_a_server_on_the_host_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = path_with_real_python3().expect("python3 is needed for this test");
    let code = format!(
        "import os, socket; socket.create_connection(('127.0.0.1', {port}), timeout=10).close(); \
         open(os.environ['OUT'] + '/f', 'w').write('reached')"
    );
    let decl = format!(
        "Library(name: \"net\", tools: [\"python3\"], builder: [\"python3\", \"-c\", {}], outputs: [\"f\"])",
        ron_str(&code)
    );
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"net\"])").file("net/brr.ron", &decl);

    let run = ws.brr_env("PATH", &path, ["build", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.code(1);
    assert_eq!(run.targets()["net"].status, "failed");
    assert!(run.stderr.contains("error: `net` failed"), "{}", run.stderr);
    assert_eq!(listener.accept().map(|_| ()).map_err(|e| e.kind()), Err(ErrorKind::WouldBlock), "it connected");

    // The same builder without the sandbox reaches the server: the test can fail.
    let run = ws.brr_env("PATH", &path, ["build", "--no-sandbox", "--json"]).success();
    assert_eq!(run.targets()["net"].status, "built");
    assert!(listener.accept().is_ok(), "the unsandboxed builder did not connect");
}

#[test]
fn builder_cannot_write_outside_its_folders() {
    let outside = temp_dir();
    let host_file = outside.path().join("escape");
    let ws = workspace()
        // $DEPS/../.. is the store's tmp/ folder (pinned below), next to the sandbox.
        .sh_lib("into-store", &[], &[], "echo x > \"$DEPS/../../escape\" && echo ok > \"$OUT/f\"")
        .sh_lib("into-host", &[], &[], &format!("echo x > '{}' && echo ok > \"$OUT/f\"", host_file.display()));
    let sandboxes = ws.store().join("tmp");
    let store_file = sandboxes.join("escape");

    let run = ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.code(1);
    for name in ["into-store", "into-host"] {
        assert_eq!(run.targets()[name].status, "failed", "{name}");
        assert!(run.stderr.contains(&format!("error: `{name}` failed")), "{}", run.stderr);
    }
    assert!(!store_file.exists() && !host_file.exists(), "a write escaped the sandbox");

    // Without the sandbox both writes land: the check above can fail.
    ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "--no-sandbox"]).success();
    assert!(store_file.exists() && host_file.exists());
}

/// A workspace whose package `sym` runs `script` and declares `outputs`.
fn symlink_workspace(script: &str, outputs: &[&str]) -> brr_test_support::TestWorkspace {
    let outputs: Vec<String> = outputs.iter().map(|o| ron_str(o)).collect();
    let decl = format!(
        "Library(name: \"sym\", tools: [\"sh\", \"ln\", \"mkdir\"], builder: [\"sh\", \"-c\", {}], outputs: [{}])",
        ron_str(script),
        outputs.join(", ")
    );
    workspace().file("brr.ron", "Workspace(packages: [\"sym\"])").file("sym/brr.ron", &decl)
}

#[test]
fn absolute_output_symlink_fails_and_is_not_cached() {
    let ws = symlink_workspace("ln -s /etc/passwd \"$OUT/link\"", &["link"]);
    for attempt in 1..=2 {
        let run = ws.brr(["build", "--json"]).code(1);
        let t = &run.targets()["sym"];
        assert_eq!((t.status.as_str(), &t.artifact), ("failed", &None), "attempt {attempt}");
        assert!(run.json()["targets"][0]["reason"].as_str().is_some_and(|r| r.contains("escapes the output folder")));
        assert!(run.stderr.contains("symlink to `/etc/passwd` escapes the output folder"), "{}", run.stderr);
        // Nothing entered the action cache: the builder runs again each time.
        assert!(run.stderr.contains("building sym"), "attempt {attempt}: not run:\n{}", run.stderr);
    }
    let plan = ws.brr(["plan", "--json"]).success();
    assert_eq!(plan.targets()["sym"].status, "build");
}

#[test]
fn relative_output_symlinks_inside_the_artifact_are_kept() {
    let ws = symlink_workspace("mkdir \"$OUT/d\" && echo hi > \"$OUT/d/f\" && ln -s d/f \"$OUT/link\"", &["d", "link"]);
    let run = ws.brr(["build", "--json"]).success();
    assert_eq!(run.targets()["sym"].status, "built");
}

#[test]
fn output_symlink_escaping_through_another_symlink_fails() {
    // `u -> .` and `x -> u/u/…/../../…/etc/passwd` each look contained when
    // read lexically, but `x` resolves to the host's /etc/passwd.
    let ups = "u/".repeat(12) + &"../".repeat(12) + "etc/passwd";
    let ws = symlink_workspace(&format!("ln -s . \"$OUT/u\" && ln -s {ups} \"$OUT/x\""), &["u", "x"]);
    let run = ws.brr(["build", "--json"]);
    assert_eq!(run.code, Some(1), "accepted an escaping symlink:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("escapes the output folder"), "{}", run.stderr);
}

#[test]
fn small_builds_run_on_a_tmpfs_unless_a_folder_is_chosen() {
    let ws = workspace().sh_lib("where", &[], &["pwd"], "pwd > \"$OUT/f\"");
    // The output file's bytes, through `brr show`.
    let out = |run: &brr_test_support::Run| {
        let artifact = run.targets()["where"].artifact.clone().unwrap();
        let json = ws.brr(["show", "--json", &artifact]).success().json();
        let tree = json["object"]["outputs"].as_str().unwrap().to_owned();
        let json = ws.brr(["show", "--json", &tree]).success().json();
        let blob = json["object"]["entries"][0]["hash"].as_str().unwrap().to_owned();
        ws.brr(["show", &blob]).success().stdout
    };
    let on_tmpfs = brr_exec::stage::tmpfs_base();
    // Sandboxed builders see their folder at `/build`: only an unsandboxed
    // one sees where its sandbox is.
    let cwd = out(&ws.brr(["build", "--no-sandbox", "--json"]).success());
    match on_tmpfs {
        Some(base) => assert!(cwd.starts_with(base.to_str().unwrap()), "built in {cwd}, not below {}", base.display()),
        None => assert!(cwd.starts_with(ws.store().join("tmp").to_str().unwrap()), "built in {cwd}"),
    }
    // A chosen folder wins (a new key: `BRR_SANDBOX_DIR` is not an input,
    // so the output would be cached; change the script instead).
    let chosen = temp_dir();
    ws.write("p/where/brr.ron", &brr_test_support::sh_library("where", &[], &["pwd"], "pwd > \"$OUT/f\"; true"));
    let cwd = out(&ws.brr_env("BRR_SANDBOX_DIR", chosen.path(), ["build", "--no-sandbox", "--json"]).success());
    assert!(cwd.starts_with(chosen.path().to_str().unwrap()), "built in {cwd}");
}

#[test]
fn an_unconfined_builder_cannot_write_into_the_store_through_its_dependencies() {
    // A dependency output big enough to be a file in `cas/`, in sandboxes on
    // the store's file system, where a hard link would share that file.
    let ws = workspace().sh_lib("dep", &[], &["head"], "head -c 40000 /dev/zero > \"$OUT/f\"").sh_lib(
        "user",
        &["dep"],
        &["chmod"],
        "chmod u+w \"$DEPS/dep/f\" 2>/dev/null; echo evil > \"$DEPS/dep/f\" 2>/dev/null; echo ok > \"$OUT/f\"",
    );
    let sandboxes = ws.store().join("tmp");
    ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "--no-sandbox"]).success();
    let verify = ws.brr(["store", "verify"]);
    assert_eq!(verify.code, Some(0), "the store was written through a dependency:\n{}{}", verify.stdout, verify.stderr);
}

/// brr keeps transparent huge pages out of its own heap without touching
/// the process's setting; its builders must see the setting brr was
/// started with, sandboxed or not.
#[test]
fn builders_keep_the_huge_page_setting_brr_was_started_with() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
    let hint = "a kernel with transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE=y), which reports `THP_enabled:` \
                in /proc/PID/status";
    if !brr_test_support::require(line.is_some(), "the THP_enabled process status", "not in /proc/self/status", hint) {
        return;
    }
    let line = line.unwrap();
    let script = format!("grep -qx '{line}' /proc/self/status && echo same > \"$OUT/f\"");
    let ws = workspace().sh_lib("plain", &[], &["grep"], &script);
    let run = ws.brr(["build", "--no-sandbox", "--json"]).success();
    assert_eq!(run.targets()["plain"].status, "built", "{}", run.stderr);
    // A second package (another key), built in the sandbox.
    let ws = ws.sh_lib("sandboxed", &[], &["grep"], &format!("{script} # sandboxed"));
    let run = ws.brr(["build", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.success();
    assert_eq!(run.targets()["sandboxed"].status, "built", "{}", run.stderr);
}

#[test]
fn a_reused_sandbox_holds_nothing_an_earlier_build_left() {
    // Unsandboxed, so a builder can write anywhere; under `-j 1` the three
    // run one after another (each depends on the one before). Each writes
    // its $OUT, and `b` and `c` what the sandbox holds, to a host file.
    let seen_dir = temp_dir();
    let seen = seen_dir.path().join("seen");
    let seen = seen.display();
    let look = format!(
        "echo \"$OUT\" >> {seen}; for d in . src tools; do echo \"$d: $(cd \"$OUT/../$d\" && ls -A | tr '\\n' ' ')\" >> {seen}; done"
    );
    let ws = workspace()
        .sh_lib("a", &[], &["cat"], &format!("echo \"$OUT\" >> {seen}; echo a > \"$OUT/f\""))
        // `b` leaves the sandbox changed: files in its root, src/ and
        // tools/, and a read-only $TMPDIR.
        .sh_lib(
            "b",
            &["a"],
            &["ls", "tr", "touch", "chmod"],
            &format!(
                "{look}; touch \"$OUT/../stray\" \"$OUT/../src/stray\" \"$OUT/../tools/stray\"; \
                 chmod 555 \"$TMPDIR\"; echo b > \"$OUT/f\""
            ),
        )
        .sh_lib("c", &["b"], &["ls", "tr"], &format!("{look}; echo t > \"$TMPDIR/t\" && echo c > \"$OUT/f\""));
    let sandboxes = ws.store().join("tmp");
    ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "--no-sandbox", "-j", "1"]).success();

    let seen = std::fs::read_to_string(seen_dir.path().join("seen")).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 9, "{seen}");
    let (a_out, b_out, c_out) = (lines[0], lines[1], lines[5]);
    // `a` left its sandbox as it was made: `b` ran in the same one, with
    // only its own tools (not `a`'s `cat`) and none of `a`'s files.
    assert_eq!(a_out, b_out, "the sandbox was not reused:\n{seen}");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), [".:", "deps", "log", "out", "src", "tmp", "tools"]);
    assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["src:", "p"]);
    assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["tools:", "chmod", "ls", "sh", "touch", "tr"]);
    // `b` changed its sandbox: `c` got a fresh one, holding none of it.
    assert_ne!(b_out, c_out, "a changed sandbox was reused:\n{seen}");
    assert_eq!(lines[6].split_whitespace().collect::<Vec<_>>(), [".:", "deps", "log", "out", "src", "tmp", "tools"]);
    assert_eq!(lines[8].split_whitespace().collect::<Vec<_>>(), ["tools:", "ls", "sh", "tr"]);
    // None is left once the build is over.
    assert_eq!(brr_test_support::sandbox_leftovers(&ws.store()), Vec::<String>::new());
}
