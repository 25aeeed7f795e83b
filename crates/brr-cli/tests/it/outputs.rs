//! Getting an artifact out: `build --out-link PATH TARGET` and `cat TARGET PATH`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use brr_test_support::{Run, TestWorkspace};

use crate::shop;

/// `brr ARGS` started in the workspace folder: `--out-link` paths are read
/// from the current folder, as Nix's are.
fn brr_in(ws: &TestWorkspace, args: &[&str]) -> Run {
    Run::from(ws.command().current_dir(ws.path()).args(args).output().unwrap())
}

#[test]
fn out_link_gives_a_runnable_read_only_artifact() {
    let ws = shop();
    brr_in(&ws, &["build", "--out-link", "result", "api"]).success();
    let link = ws.path().join("result");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    // The api binary with no arguments prints its usage and fails.
    let out = Command::new(link.join("bin/api")).current_dir(ws.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: api serve | api worker"), "{out:?}");
    // Read-only: no write bit on its folders or files (root ignores them).
    for p in ["bin", "bin/api", "migrate.py"] {
        let mode = std::fs::metadata(link.join(p)).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{p} is writable: {mode:o}");
    }
    // A new artifact replaces the link.
    let first = std::fs::read_link(&link).unwrap();
    // migrate.py ships in the artifact: another artifact.
    let migrate = ws.read("services/api/migrate.py");
    ws.write("services/api/migrate.py", &format!("{migrate}# changed\n"));
    brr_in(&ws, &["build", "--out-link", "result", "api"]).success();
    assert_ne!(std::fs::read_link(&link).unwrap(), first);
    assert!(link.join("bin/api").is_file());
}

#[test]
fn out_link_never_replaces_a_file_and_takes_one_target() {
    let ws = shop();
    ws.write("result", "mine");
    let run = brr_in(&ws, &["build", "--out-link", "result", "api"]).code(2);
    assert!(run.stderr.contains("is not a symlink"), "{}", run.stderr);
    assert_eq!(ws.read("result"), "mine");
    assert!(!ws.store().exists(), "a rejected --out-link built anyway");
    brr_in(&ws, &["build", "--out-link", "r", "api", "billing"]).code(2);
    brr_in(&ws, &["build", "--out-link", "r"]).code(2);
}

#[test]
fn cat_prints_one_output_file() {
    let ws = shop();
    let run = ws.brr(["cat", "api", "migrate.py"]).success();
    assert_eq!(run.stdout, ws.read("services/api/migrate.py"));
    let missing = ws.brr(["cat", "api", "bin/nope"]).code(2);
    assert!(missing.stderr.contains("`bin/nope` is not in the artifact of `api`"), "{}", missing.stderr);
    let folder = ws.brr(["cat", "api", "bin"]).code(2);
    assert!(folder.stderr.contains("is a folder"), "{}", folder.stderr);
    ws.brr(["cat", "nosuch", "x"]).code(2);
}
