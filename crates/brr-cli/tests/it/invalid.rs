//! Bad declarations, one folder per case under `fixtures/invalid/`: brr exits
//! 2 naming the file and line, and leaves an existing store untouched.

use std::path::Path;

use brr_test_support::{copy_tree, fixtures_dir, snapshot_diff, snapshot_files};
use serde::Deserialize;

use crate::workspace;

/// `expected.ron` of a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// Exit code of `brr build`.
    code: i32,
    /// Substrings stderr must hold (`file:line:col`, message).
    stderr: Vec<String>,
}

/// Builds a good workspace, replaces it by the case's files (keeping its
/// store), runs `brr build` and checks the outcome. Returns what went wrong.
fn check_case(case: &Path) -> Result<(), String> {
    let expected: Expected =
        ron::from_str(&fs_err::read_to_string(case.join("expected.ron")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("expected.ron: {e}"))?;
    let ws = workspace().sh_lib("good", &[], &[], "echo good > \"$OUT/f\"");
    ws.brr(["build"]).success();
    let before = snapshot_files(&ws.store());
    // Its small objects are in `brr.db`, whose bytes are compared below.
    if !before.contains_key("brr.db") {
        return Err(format!("the good build left no store: {:?}", before.keys()));
    }

    // Break the declarations: everything but the store is replaced by the case.
    for e in fs_err::read_dir(ws.path()).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        if e.file_name() != ".brr" {
            fs_err::remove_dir_all(e.path()).or_else(|_| fs_err::remove_file(e.path())).map_err(|e| e.to_string())?;
        }
    }
    copy_tree(case, ws.path());
    fs_err::remove_file(ws.path().join("expected.ron")).map_err(|e| e.to_string())?;

    let run = ws.brr(["build"]);
    let mut problems = Vec::new();
    if run.code != Some(expected.code) {
        problems.push(format!("exit code {:?}, expected {}", run.code, expected.code));
    }
    for s in &expected.stderr {
        if !run.stderr.contains(s.as_str()) {
            problems.push(format!("stderr lacks `{s}`"));
        }
    }
    let diff = snapshot_diff(&before, &snapshot_files(&ws.store()));
    if !diff.is_empty() {
        problems.push(format!("the store changed: {diff:?}"));
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{}\n--- stderr\n{}", problems.join("\n"), run.stderr)) }
}

#[test]
fn every_invalid_fixture_fails_as_expected() {
    let root = fixtures_dir().join("invalid");
    let mut cases: Vec<_> =
        fs_err::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 7, "cases missing from {}", root.display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            eprintln!("case {name}");
            check_case(case).err().map(|e| format!("== {name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn unknown_target_is_a_user_error() {
    let ws = workspace().sh_lib("a", &[], &[], "echo a > \"$OUT/f\"");
    let run = ws.brr(["build", "nope"]).code(2);
    assert!(run.stderr.contains("unknown target `nope`") && run.stderr.contains("known targets: a"), "{}", run.stderr);
}

#[test]
fn diagnostic_columns_agree_after_non_ascii_text() {
    let decl = "Library(\n    name: \"a\", /* café → */ colour: 1,\n    tools: [\"sh\"],\n    builder: [\"sh\"],\n    outputs: [\"f\"],\n)\n";
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"a\"])").file("a/brr.ron", decl);
    let run = ws.brr(["build"]).code(2);
    // `colour` starts at character 29, byte 32 of line 2; columns count bytes
    // (as miette's snippet header and gcc do), and both places must agree.
    assert!(run.stderr.contains("a/brr.ron:2:32: Unexpected field named `colour`"), "{}", run.stderr);
    assert!(run.stderr.contains("[a/brr.ron:2:32]"), "the snippet header names another column:\n{}", run.stderr);
}

#[test]
fn a_folder_that_is_not_a_store_is_refused_and_left_as_it_was() {
    let ws = workspace().sh_lib("a", &[], &[], "echo a > \"$OUT/f\"");
    let folder = brr_test_support::temp_dir();
    std::fs::write(folder.path().join("notes.txt"), "mine").unwrap();
    let run = ws.brr_env("BRR_STORE", folder.path(), ["build"]);
    assert_ne!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("`{}` is not a brr store", folder.path().display())), "{}", run.stderr);
    // The workspace was loaded alongside: nothing of it was saved there.
    let names: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}
