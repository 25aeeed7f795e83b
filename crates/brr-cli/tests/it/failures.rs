//! A failing builder: its dependents are skipped, independent targets still
//! build, and the summary and `brr log` show what it printed. A full disk is
//! brr's failure, not the build's, and so is a tool on PATH that cannot
//! be examined (unlike a missing one, a user's mistake).

use crate::workspace;

/// A builder printing `bad line 1` … `bad line 30` on stderr, then exiting 3.
const FAILING: &str = "i=1; while [ $i -le 30 ]; do echo \"bad line $i\" >&2; i=$((i + 1)); done; exit 3";

fn failing_workspace() -> brr_test_support::TestWorkspace {
    workspace()
        .sh_lib("bad", &[], &[], FAILING)
        .sh_lib("child", &["bad"], &[], "echo c > \"$OUT/f\"")
        .sh_lib("grandchild", &["child"], &[], "echo g > \"$OUT/f\"")
        .sh_lib("other", &[], &[], "echo o > \"$OUT/f\"")
}

#[test]
fn failure_skips_dependents_and_independent_targets_build() {
    let ws = failing_workspace();
    let run = ws.brr(["build", "--json"]).code(1);
    let targets = run.targets();
    let status = |n: &str| targets[n].status.as_str();
    assert_eq!(
        [status("bad"), status("child"), status("grandchild"), status("other")],
        ["failed", "skipped", "skipped", "built"]
    );
    assert!(targets["bad"].artifact.is_none() && targets["child"].artifact.is_none());
    let json = run.json();
    let bad = json["targets"].as_array().unwrap().iter().find(|t| t["name"] == "bad").unwrap();
    assert_eq!(bad["reason"], "builder exited with status 3");
    assert!(run.stderr.contains("4 targets: 1 built, 0 cached, 1 failed, 2 skipped"), "{}", run.stderr);
    assert!(run.stderr.contains("skipped child (dependency `bad` failed)"), "{}", run.stderr);
}

#[test]
fn summary_names_the_failed_target_with_the_tail_of_its_log() {
    let ws = failing_workspace();
    let run = ws.brr(["build"]).code(1);
    assert!(run.stderr.contains("error: `bad` failed: builder exited with status 3"), "{}", run.stderr);
    let quoted: Vec<&str> = run.stderr.lines().filter_map(|l| l.strip_prefix("  | ")).collect();
    let expected: Vec<String> = (16..=30).map(|i| format!("bad line {i}")).collect();
    assert_eq!(quoted, expected, "the last 15 lines of the log:\n{}", run.stderr);
    assert!(run.stderr.contains("hint: full log: `brr log bad`"), "{}", run.stderr);
    // Nothing but `other` was built, so its artifact is the only one on stdout.
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.trim_end().ends_with("built  other"), "{}", run.stdout);
}

#[test]
fn brr_log_prints_the_whole_log_of_the_failed_build() {
    let ws = failing_workspace();
    ws.brr(["build"]).code(1);
    let log = ws.brr(["log", "bad"]).success();
    let expected: Vec<String> = (1..=30).map(|i| format!("bad line {i}")).collect();
    assert_eq!(log.stdout.lines().collect::<Vec<_>>(), expected);
    assert!(log.stdout.ends_with("bad line 30\n"), "{}", log.stdout);
    assert!(log.stderr.contains("log of `bad` (failed"), "{}", log.stderr);
    // A target that never ran a builder has no log.
    ws.brr(["log", "child"]).code(2);
}

#[test]
fn failed_build_is_retried_and_successes_are_kept() {
    let ws = failing_workspace();
    ws.brr(["build"]).code(1);
    let run = ws.brr(["build", "--json"]).code(1);
    let targets = run.targets();
    assert_eq!(targets["bad"].status, "failed", "a failure must not be cached");
    assert_eq!(targets["other"].status, "cached");
    // Fixed, the chain builds and `other` stays cached.
    let ws = ws.sh_lib("bad", &[], &[], "echo fixed > \"$OUT/f\"");
    let run = ws.brr(["build", "--json"]).success();
    let status: Vec<(String, String)> = run.targets().into_iter().map(|(n, t)| (n, t.status)).collect();
    let expect = [("bad", "built"), ("child", "built"), ("grandchild", "built"), ("other", "cached")];
    assert_eq!(status, expect.map(|(n, s)| (n.to_owned(), s.to_owned())));
}

/// Two independent builders that wait (up to 3 s) to see each other
/// running, noting it in a host folder (unsandboxed, to reach it): a
/// rendezvous, so they meet whenever both run at once, however loaded the
/// machine is.
fn concurrency_workspace(host: &std::path::Path) -> brr_test_support::TestWorkspace {
    (1..=2).fold(workspace(), |ws, i| {
        let script = format!(
            "d='{}'; touch \"$d/running-{i}\"; n=0; while [ $n -lt 30 ]; do \
             if [ \"$(ls \"$d\" | grep -c running)\" -ge 2 ]; then touch \"$d/overlap\"; break; fi; \
             sleep 0.1; n=$((n+1)); done; rm \"$d/running-{i}\"; echo {i} > \"$OUT/f\"",
            host.display()
        );
        ws.sh_lib(&format!("c{i}"), &[], &["ls", "grep", "touch", "sleep", "rm"], &script)
    })
}

#[test]
fn jobs_bounds_the_builders_running_at_once() {
    let host = brr_test_support::temp_dir();
    let ws = concurrency_workspace(host.path());
    ws.brr(["build", "-j", "1", "--no-sandbox"]).success();
    assert!(!host.path().join("overlap").exists(), "two builders ran at once under -j 1");
    // The same with -j 2 does overlap: the check above can fail.
    let ws = concurrency_workspace(host.path());
    ws.brr(["build", "-j", "2", "--no-sandbox"]).success();
    assert!(host.path().join("overlap").exists(), "the two builders never ran at once under -j 2");
}

/// "built X (N s)" and "FAILED X (N s)" say how long X's build took, not
/// how long it waited for a builder slot: under `-j 1` each one-second
/// build after the first waits a second or more for the ones before, and
/// used to be reported with that wait.
#[test]
fn a_reported_build_time_leaves_out_the_wait_for_a_builder_slot() {
    let ws = (1..=2).fold(workspace(), |ws, i| {
        ws.sh_lib(&format!("s{i}"), &[], &["sleep"], &format!("sleep 1; echo {i} > \"$OUT/f\""))
    });
    // Two that fail after the same second.
    let ws = (1..=2).fold(ws, |ws, i| ws.sh_lib(&format!("f{i}"), &[], &["sleep"], "sleep 1; exit 3"));
    let started = std::time::Instant::now();
    let run = ws.brr(["build", "-j", "1", "--no-sandbox"]).code(1);
    let whole_run = started.elapsed().as_secs_f64();
    let secs = |word: &str| -> Vec<f64> {
        run.stderr
            .lines()
            .filter_map(|l| l.trim().strip_prefix(word)?.split_once(" (")?.1.split_once("s)")?.0.parse().ok())
            .collect()
    };
    let (built, failed) = (secs("built s"), secs("FAILED f"));
    assert_eq!((built.len(), failed.len()), (2, 2), "expected two `built` and two `FAILED` lines:\n{}", run.stderr);
    let reported: Vec<f64> = built.into_iter().chain(failed).collect();
    for s in &reported {
        // At least the builder's own second (its `sleep 1` guarantees it).
        assert!(*s >= 1.0, "reported {s} s:\n{}", run.stderr);
    }
    // Under `-j 1` the four builders run one after the other, so their own
    // times add up to less than the whole run, however slow the machine.
    // Counting the waits, the k-th to finish would add at least k - 1
    // seconds more: 6 s over the run in all (the slack allows for the
    // rounding of the reported times, and the storing of each build's
    // outputs after its builder has exited).
    let total: f64 = reported.iter().sum();
    assert!(total < whole_run + 1.0, "reported {total} s in all over a {whole_run} s run:\n{}", run.stderr);
}

#[test]
fn a_full_disk_is_an_environment_failure() {
    // A real ENOSPC: the store on a 1 MiB tmpfs, mounted in a private mount
    // namespace (as root), and a build whose output does not fit.
    let ws = workspace().sh_lib("big", &[], &["head"], "head -c 3000000 /dev/zero > \"$OUT/f\"");
    let mnt = brr_test_support::temp_dir();
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" || { echo "brr-test: cannot mount a tmpfs" >&2; exit 99; }
exec "$2" -C "$3" --store "$1/store" build --no-sandbox"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(mnt.path())
        .arg(crate::BRR)
        .arg(ws.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("this test needs `unshare` (util-linux)");
    let run = brr_test_support::Run::from(out);
    assert!(
        run.code != Some(99) && !run.stderr.contains("unshare failed"),
        "this test needs root to mount a tmpfs in a private mount namespace:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("No space left on device"), "{}", run.stderr);
    run.code(70);
}

/// A declared tool found nowhere on PATH is the user's mistake (exit 2); a
/// candidate that cannot be examined (here a symlink loop, before the real
/// tool) is an environment failure (exit 70) naming its path, not "not on PATH".
#[test]
fn a_tool_that_cannot_be_examined_is_not_a_missing_tool() {
    let ws = workspace().sh_lib("t", &[], &["tr", "no-such-tool-brr"], "echo t > \"$OUT/f\"");
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("tool `no-such-tool-brr` of package `t` is not on PATH"), "{}", run.stderr);

    let ws = workspace().sh_lib("t", &[], &["tr"], "echo t > \"$OUT/f\"");
    let bin = brr_test_support::temp_dir();
    std::os::unix::fs::symlink("tr", bin.path().join("tr")).unwrap();
    let mut dirs = vec![bin.path().to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let run = ws.brr_env("PATH", std::env::join_paths(dirs).unwrap(), ["build"]).code(70);
    let looping = bin.path().join("tr");
    let expected = format!("cannot look for tool `tr` at `{}`", looping.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(!run.stderr.contains("not on PATH"), "{}", run.stderr);
}
