//! Hostile files: symlinks out of the workspace, FIFOs, devices and huge
//! declarations are refused as user mistakes, quickly and in bounded memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use brr_test_support::{Run, TestWorkspace, ron_str, sh_library, temp_dir};

use crate::{BRR, workspace};

/// Wall time a refused hostile case may take in a debug build (release
/// takes milliseconds; the cases took minutes or forever).
const TIME_MAX: Duration = Duration::from_secs(10);
/// Peak resident memory such a case may use, in KiB.
const RSS_MAX_KIB: u64 = 100 * 1024;

/// Runs `brr ARGS` in `ws` under `timeout` (killed after 60 s) and GNU
/// `time`: the run, its wall time and its peak resident memory in KiB.
fn bounded(ws: &TestWorkspace, args: &[&str]) -> (Run, Duration, u64) {
    assert!(Path::new("/usr/bin/time").exists(), "these tests measure memory with GNU time: install `time`");
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["-s", "KILL", "60", "/usr/bin/time", "-f", "brr-maxrss-kib=%M", BRR, "-C"])
        .arg(ws.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("BRR_STORE")
        .output()
        .unwrap();
    let took = started.elapsed();
    let mut run = Run::from(out);
    let line = run.stderr.lines().rfind(|l| l.starts_with("brr-maxrss-kib=")).map(str::to_owned);
    let rss = line.as_deref().and_then(|l| l["brr-maxrss-kib=".len()..].parse().ok()).unwrap_or(u64::MAX);
    if let Some(line) = line {
        run.stderr = run.stderr.replace(&line, "");
    }
    (run, took, rss)
}

/// Asserts a bounded refusal: exit 2, every needle in stderr, a short
/// message, within the time and memory limits.
#[track_caller]
fn refused(ws: &TestWorkspace, needles: &[&str]) -> Run {
    let (run, took, rss) = bounded(ws, &["build"]);
    let stderr = &run.stderr[..run.stderr.len().min(4000)];
    assert_eq!(run.code, Some(2), "took {took:?}, {rss} KiB\n{stderr}");
    for n in needles {
        assert!(run.stderr.contains(n), "stderr lacks `{n}`:\n{stderr}");
    }
    assert!(run.stderr.len() < 4000, "a {}-byte message", run.stderr.len());
    assert!(took < TIME_MAX, "took {took:?}");
    assert!(rss < RSS_MAX_KIB, "used {rss} KiB");
    run
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// A library `a` whose builder lists and prints its inputs into `$OUT/f`.
fn lib_with_inputs(inputs: &[&str]) -> TestWorkspace {
    let decl = sh_library("a", &[], &["cat"], "cat src/* > \"$OUT/f\"");
    let list = inputs.iter().map(|i| ron_str(i)).collect::<Vec<_>>().join(", ");
    let decl = decl.replace("    outputs:", &format!("    inputs: [{list}],\n    outputs:"));
    workspace().file("brr.ron", "Workspace(packages: [\"a\"])\n").file("a/brr.ron", &decl)
}

/// Every file below `dir` holds no occurrence of `needle`.
fn nowhere_in(dir: &Path, needle: &[u8]) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .all(|e| !std::fs::read(e.path()).unwrap_or_default().windows(needle.len()).any(|w| w == needle))
}

#[test]
fn an_input_symlink_out_of_the_workspace_is_refused_and_not_stored() {
    let outside = temp_dir();
    let secret = b"secret-7f3e9c1d-not-for-the-store";
    std::fs::write(outside.path().join("secret.txt"), secret).unwrap();
    let ws = lib_with_inputs(&["src/*"]).file("a/src/ok.txt", "fine\n");
    symlink(outside.path().join("secret.txt"), ws.path().join("a/src/secret.txt"));
    refused(&ws, &["`a/src/secret.txt` leads outside the workspace"]);
    assert!(nowhere_in(&ws.store(), secret), "the outside file's bytes reached the store");
}

#[test]
fn an_input_symlink_inside_the_workspace_is_followed() {
    let ws = lib_with_inputs(&["src/*"]).file("shared/x.txt", "shared bytes\n").file("a/src/own.txt", "own\n");
    symlink("../../shared/x.txt", ws.path().join("a/src/x.txt"));
    ws.brr(["build"]).success();
    let run = ws.brr(["why", "a"]).success();
    assert!(run.stdout.contains("a/src/x.txt"), "{}", run.stdout);
}

#[test]
fn a_symlinked_input_folder_inside_the_workspace_is_followed() {
    let ws = lib_with_inputs(&["src/**"]).file("shared/lib/x.txt", "from a linked folder\n");
    std::fs::create_dir_all(ws.path().join("a")).unwrap();
    symlink("../shared/lib", ws.path().join("a/src"));
    ws.brr(["build"]).success();
    let run = ws.brr(["why", "a"]).success();
    assert!(run.stdout.contains("a/src/x.txt"), "the linked folder's file is not an input:\n{}", run.stdout);
}

#[test]
fn a_symlinked_input_folder_out_of_the_workspace_is_refused() {
    let outside = temp_dir();
    std::fs::write(outside.path().join("x.txt"), "outside").unwrap();
    let ws = lib_with_inputs(&["src"]);
    symlink(outside.path(), ws.path().join("a/src"));
    refused(&ws, &["`a/src` leads outside the workspace"]);
}

#[test]
fn a_package_folder_linked_out_of_the_workspace_is_refused() {
    let outside = temp_dir();
    let secret = b"secret-0b5a-package-outside";
    std::fs::create_dir_all(outside.path().join("x")).unwrap();
    std::fs::write(outside.path().join("x/brr.ron"), sh_library("x", &[], &[], "echo x > \"$OUT/f\"")).unwrap();
    std::fs::write(outside.path().join("x/secret.txt"), secret).unwrap();
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"libs/*\"])\n");
    symlink(outside.path(), ws.path().join("libs"));
    refused(&ws, &["`libs` leads outside the workspace"]);
    assert!(!ws.store().exists(), "a rejected workspace made a store");
}

#[test]
fn a_package_declaration_that_is_a_fifo_is_refused() {
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"a\"])\n");
    std::fs::create_dir(ws.path().join("a")).unwrap();
    let fifo = ws.path().join("a/brr.ron");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0).unwrap();
    refused(&ws, &["declaration `a/brr.ron` is not a regular file: it is a FIFO"]);
}

#[test]
fn a_declaration_linked_to_a_device_is_refused() {
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"a\", \"b\"])\n");
    std::fs::create_dir_all(ws.path().join("a")).unwrap();
    std::fs::create_dir_all(ws.path().join("b")).unwrap();
    symlink("/dev/zero", ws.path().join("a/brr.ron"));
    refused(&ws, &["`a/brr.ron` leads outside the workspace, to `/dev/zero`"]);
    // The same device linked from inside the workspace is still no file.
    std::fs::remove_file(ws.path().join("a/brr.ron")).unwrap();
    symlink("/dev/zero", ws.path().join("zero"));
    symlink("../zero", ws.path().join("a/brr.ron"));
    refused(&ws, &["`a/brr.ron` leads outside the workspace"]);
}

#[test]
fn a_declaration_over_one_mebibyte_is_refused_unread() {
    // The 50 MB glob string: refused by size, not parsed.
    let glob = "x".repeat(50 << 20);
    let ws = workspace().file("brr.ron", &format!("Workspace(packages: [\"{glob}\"])\n"));
    refused(&ws, &["declaration `brr.ron` is larger than 1024 KiB"]);
}

#[test]
fn a_long_glob_is_refused_with_a_short_message() {
    let glob = "y".repeat(1000 << 10);
    let ws = workspace().file("brr.ron", &format!("Workspace(packages: [\"{glob}\"])\n"));
    let run = refused(&ws, &["brr.ron:1:22", "is longer than 4096 bytes"]);
    assert!(run.stderr.contains(&format!("`{}…`", "y".repeat(100))), "the glob is not cut:\n{}", run.stderr);
}

#[test]
fn many_package_globs_are_matched_in_linear_time() {
    // 100,000 globs fit in 1 MiB; matching them one by one against every
    // folder, and comparing every glob with every other, was quadratic.
    let n = 100_000;
    let globs: Vec<String> = (0..n).map(|i| format!("\"p/{i}\"")).collect();
    let ws = workspace().file("brr.ron", &format!("Workspace(packages: [{}])\n", globs.join(",")));
    for i in [0, 1, n - 1] {
        ws.write(&format!("p/{i}/brr.ron"), &sh_library(&format!("l{i}"), &[], &[], "echo > \"$OUT/f\""));
    }
    refused(&ws, &["package glob `p/2` matches no folder"]);
}

#[test]
fn a_rejected_declaration_leaves_no_store() {
    let ws = workspace().sh_lib("a", &[], &[], "echo a > \"$OUT/f\"").file("p/b/brr.ron", "Library(nope)");
    for args in [&["build"][..], &["plan"], &["why", "a"], &["graph"], &["verify"], &["cache", "status"]] {
        let run = ws.brr(args).code(2);
        assert!(run.stderr.contains("p/b/brr.ron:1:9"), "{args:?}: {}", run.stderr);
        assert!(!ws.store().exists(), "`brr {}` made a store for a rejected workspace", args.join(" "));
    }
}

#[test]
fn a_trusted_key_name_given_twice_with_another_key_is_refused() {
    let keys = temp_dir();
    let public = |file: &str| {
        let out =
            Command::new(BRR).args(["key", "generate", "--name", "ci", "-o"]).arg(keys.path().join(file)).output();
        String::from_utf8(out.unwrap().stdout).unwrap().trim().to_owned()
    };
    let (first, second) = (public("k1"), public("k2"));
    assert!(first.starts_with("ci:") && second.starts_with("ci:") && first != second, "{first} {second}");
    let ws = workspace().sh_lib("a", &[], &[], "echo a > \"$OUT/f\"").file(
        "brr.ron",
        &format!(
            "Workspace(packages: [\"p/*\"], remotes: [Remote(url: {})], trusted_keys: [{}])\n",
            ron_str(&format!("file://{}", keys.path().join("cache").display())),
            ron_str(&first)
        ),
    );
    let run = ws.brr_env("BRR_TRUSTED_KEYS", &second, ["cache", "status"]).code(2);
    assert!(run.stderr.contains("the trusted keys name `ci` twice"), "{}", run.stderr);
}

#[test]
fn many_wildcard_globs_are_refused_before_compiling() {
    // 70,000 of these took 342 MiB in a debug build and ended in a failed
    // automaton build with no location.
    let globs: Vec<String> = (0..70_000).map(|i| format!("\"p/[ab]{i}\"")).collect();
    let ws = workspace().file("brr.ron", &format!("Workspace(packages: [{}])\n", globs.join(",")));
    refused(&ws, &["brr.ron:1:", "`packages` holds more than 4096 globs with wildcards"]);
}
