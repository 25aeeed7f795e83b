//! What a new user trips over: paths under `-C`, closed pipes, empty logs, user mistakes' exit codes, the README.

use std::process::{Command, Stdio};

use brr_test_support::Run;

use crate::{BRR, shop, workspace};

#[test]
fn hash_reads_relative_paths_from_the_workspace_of_dash_c() {
    let ws = shop();
    let elsewhere = brr_test_support::temp_dir();
    let run = |path: &str| {
        let out = Command::new(BRR)
            .current_dir(elsewhere.path())
            .arg("-C")
            .arg(ws.path())
            .args(["hash", path])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Run::from(out)
    };
    let from_c = run("services/api/src/main.c").success();
    let inside = ws.brr(["hash", "services/api/src/main.c"]).success();
    assert_eq!(from_c.stdout, inside.stdout);
    assert!(from_c.stdout.ends_with("  blob  services/api/src/main.c\n"), "{}", from_c.stdout);

    let missing = run("services/api/src/nope.c").code(2);
    assert!(missing.stderr.contains("`services/api/src/nope.c`"), "{}", missing.stderr);
}

/// Runs `brr ARGS` in `ws` with stdout a pipe whose reader is already gone,
/// as `brr show HASH | head` ends once `head` has read its lines.
fn into_closed_pipe(ws: &brr_test_support::TestWorkspace, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ws.command().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    Run::from(out)
}

#[test]
fn a_closed_stdout_ends_quietly_with_success() {
    let ws = shop();
    let built = ws.brr(["build", "--json"]).success().targets();
    let artifact = built["api"].artifact.clone().unwrap();
    let source = ws.brr(["hash", "services/api/src/main.c"]).success();
    let blob = source.stdout.split_whitespace().next().unwrap().to_owned();
    // `println!` (an artifact), `write_all` (a blob), a buffered writer
    // (`build`), a JSON document (`--json`).
    for args in [
        vec!["show", &artifact],
        vec!["show", &blob],
        vec!["show", &artifact, "--json"],
        vec!["build"],
        vec!["hash", "services/api/src/main.c"],
    ] {
        let run = into_closed_pipe(&ws, &args).code(0);
        assert!(!run.stderr.contains("Broken pipe") && !run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn log_of_a_silent_builder_says_it_printed_nothing() {
    let ws = workspace().sh_lib("quiet", &[], &[], "echo -n x > $OUT/f").sh_lib(
        "loud",
        &[],
        &[],
        "echo hello from loud; echo -n x > $OUT/f",
    );
    ws.brr(["build"]).success();
    let quiet = ws.brr(["log", "quiet"]).success();
    assert_eq!(quiet.stdout, "");
    assert!(quiet.stderr.contains("the builder of `quiet` printed nothing"), "{}", quiet.stderr);
    let loud = ws.brr(["log", "loud"]).success();
    assert_eq!(loud.stdout, "hello from loud\n");
    assert!(!loud.stderr.contains("printed nothing"), "{}", loud.stderr);
}

#[test]
fn key_generate_never_overwrites_a_file() {
    let dir = brr_test_support::temp_dir();
    let key = dir.path().join("key");
    std::fs::write(&key, "precious").unwrap();
    let run = workspace().brr(["key", "generate", "-o", key.to_str().unwrap()]).code(2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "precious");
}

#[test]
fn a_store_flag_on_a_folder_that_is_not_a_store_is_a_user_mistake() {
    let ws = shop();
    let other = brr_test_support::temp_dir();
    std::fs::write(other.path().join("notes.txt"), "mine").unwrap();
    let run = ws.command().arg("--store").arg(other.path()).arg("build").output().unwrap();
    let run = Run::from(run).code(2);
    assert!(run.stderr.contains("is not a brr store"), "{}", run.stderr);
    // A file, not a folder.
    let file = other.path().join("notes.txt");
    let run = Run::from(ws.command().arg("--store").arg(&file).arg("build").output().unwrap()).code(2);
    assert!(run.stderr.contains("is not a brr store"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn the_readme_explains_declaring_before_sandbox_internals() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let declaring = readme.find("## Declaring a workspace").unwrap();
    let how = readme.find("## How a build runs").unwrap();
    let tmpfs = readme.find("tmpfs").unwrap();
    assert!(tmpfs > declaring && tmpfs > how, "the first mention of the tmpfs comes before `How a build runs`");
}

/// A `//` input is staged at its workspace path, read by the builder from
/// its package folder, and a change to it rebuilds the package.
#[test]
fn workspace_relative_inputs_are_staged_and_tracked() {
    let decl = brr_test_support::sh_library_with(
        "x",
        &[],
        &["cat"],
        "cat ../../shared/msg.txt > \"$OUT/f\"",
        "inputs: [\"//shared/msg.txt\"],",
    );
    let ws = crate::workspace()
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("p/x/brr.ron", &decl)
        .file("shared/msg.txt", "hello\n");
    let built = ws.brr(["build", "--json"]).success();
    let artifact = built.targets()["x"].artifact.clone().unwrap();
    assert_eq!(ws.brr(["cat", "x", "f"]).success().stdout, "hello\n");
    ws.write("shared/msg.txt", "changed\n");
    let plan = ws.brr(["plan", "--json"]).success();
    assert_eq!(plan.targets()["x"].status, "build", "{}", plan.stdout);
    let rebuilt = ws.brr(["build", "--json"]).success();
    assert_ne!(rebuilt.targets()["x"].artifact.clone().unwrap(), artifact);
    assert_eq!(ws.brr(["cat", "x", "f"]).success().stdout, "changed\n");
}
