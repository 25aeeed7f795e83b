//! The fixed build path: builders see their sandbox at `/build`, so a build
//! that embeds its folder (debug info) makes the same bytes anywhere; and
//! `verify --diffoscope` keeps its report in a file.

use brr_test_support::{TestWorkspace, require};

use crate::{require_namespaces, workspace};

/// A C library compiled with debug info, which records the compiler's cwd.
fn debug_c_workspace() -> TestWorkspace {
    workspace()
        .file("brr.ron", "Workspace(packages: [\"dbg\"])")
        .file("dbg/hello.c", "int hello(void) { return 42; }\n")
        .file(
            "dbg/brr.ron",
            "Library(name: \"dbg\", inputs: [\"*.c\"], tools: [\"sh\", \"cc\", \"as\"], \
         builder: [\"sh\", \"-c\", \"cc -g -O0 -c hello.c -o \\\"$OUT/hello.o\\\"\"], outputs: [\"hello.o\"])",
        )
}

#[test]
fn a_debug_build_in_two_workspaces_with_two_stores_has_one_artifact_and_verifies() {
    let (first, second) = (debug_c_workspace(), debug_c_workspace());
    assert_ne!(first.path(), second.path());
    let run = first.brr(["build", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    let a = run.success().targets()["dbg"].artifact.clone();
    let b = second.brr(["build", "--json"]).success().targets()["dbg"].artifact.clone();
    assert_eq!(a, b, "the same -g build at two paths with two stores gave two artifacts");
    // The debug info does hold the build path: the fixed one.
    let object = first.brr(["cat", "dbg", "hello.o"]).success().stdout;
    assert!(object.contains("/build/src/dbg"), "no build path in the debug info");
    let verify = first.brr(["verify", "dbg", "--json"]).success().json();
    assert_eq!(verify["targets"][0]["reproducible"], true, "{verify:#}");

    // Without the sandbox each build sees its own folder: the bytes differ,
    // so the check above can fail.
    let stores: Vec<String> =
        [&first, &second].iter().map(|ws| ws.path().join("plain").display().to_string()).collect();
    let plain: Vec<Option<String>> = [&first, &second]
        .iter()
        .zip(&stores)
        .map(|(ws, store)| {
            ws.brr(["--store", store, "build", "--no-sandbox", "--json"]).success().targets()["dbg"].artifact.clone()
        })
        .collect();
    assert_ne!(plain[0], plain[1], "unsandboxed builds at two paths should differ");
}

#[test]
fn builders_running_at_once_each_see_their_own_folder_at_the_build_path() {
    let script = |name: &str| {
        format!(
            "echo {name} > \"$OUT/mine-{name}\"; pwd > \"$OUT/where\"; echo \"$OUT $TMPDIR $DEPS $PATH\" >> \"$OUT/where\"; \
             ls /build/out > \"$TMPDIR/seen\" && mv \"$TMPDIR/seen\" \"$OUT/seen\""
        )
    };
    let ws =
        workspace().sh_lib("one", &[], &["ls", "mv"], &script("one")).sh_lib("two", &[], &["ls", "mv"], &script("two"));
    for name in ["one", "two"] {
        let decl = format!("p/{name}/brr.ron");
        ws.write(
            &decl,
            &ws.read(&decl).replace("outputs: [\"f\"]", &format!("outputs: [\"mine-{name}\", \"where\", \"seen\"]")),
        );
    }
    let run = ws.brr(["build", "-j", "2", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    run.success();
    for name in ["one", "two"] {
        let where_ = ws.brr(["cat", name, "where"]).success().stdout;
        assert_eq!(where_, format!("/build/src/p/{name}\n/build/out /build/tmp /build/deps /build/tools\n"));
        let seen = ws.brr(["cat", name, "seen"]).success().stdout;
        assert_eq!(seen, format!("mine-{name}\nwhere\n"), "{name} saw another build's files");
    }
}

#[test]
fn diffoscope_writes_its_report_to_the_store_and_prints_a_summary() {
    let found = brr_graph::which("diffoscope", &std::env::var_os("PATH").unwrap_or_default()).unwrap().is_some();
    if !require(found, "diffoscope", "not on the PATH", "apt-get install diffoscope-minimal (scripts/test-deps.sh)") {
        return;
    }
    let ws = workspace().sh_lib("clock", &[], &["date"], "date +%s%N > \"$OUT/f\"");
    let run = ws.brr(["verify", "clock", "--diffoscope"]).code(1);
    assert!(run.stdout.contains("cause: differs in every run"), "{}", run.stdout);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("diffoscope, round 1 against round 2"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains("1 differing files"), "{line}");
    let path = line.rsplit(" in ").next().unwrap();
    assert!(
        path.starts_with(ws.store().join("verify").to_str().unwrap()) && path.ends_with(".diffoscope.txt"),
        "{line}"
    );
    let report = std::fs::read_to_string(path).unwrap();
    assert!(report.contains("--- first-round/f") && report.contains("+++ other-round/f"), "{report}");
    assert!(report.lines().count() >= 3, "{report}");
    assert!(run.stdout.lines().count() < 40, "the terminal got the whole report:\n{}", run.stdout);
}
