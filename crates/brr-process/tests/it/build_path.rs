//! The fixed build path: every builder sees its own folder at `/build`, and only its own.

use std::io::Write;
use std::path::Path;

use brr_process::{self as sandbox, BUILD_PATH, SandboxSpec};

use crate::{Needs, read_back, require, run, sh};

/// A builder of `script` in `dir`, which it sees at the build path.
fn at_build_path(script: &str, dir: &Path) -> SandboxSpec {
    let mut spec = sh(script, Path::new(BUILD_PATH));
    spec.writable = vec![dir.to_path_buf()];
    spec.build_dir = Some(dir.to_path_buf());
    spec
}

#[test]
fn two_builders_at_once_each_see_only_their_own_folder_at_the_build_path() {
    if !require(Needs::FixedPath) {
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // `a` waits on a FIFO in its folder while `b` runs start to end: they overlap.
    let fifo = a.path().join("go");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .unwrap();
    let script = |name: &str| format!("pwd; pwd -P; echo {name} > {BUILD_PATH}/{name}; ls {BUILD_PATH}");
    let mut log_a = tempfile::tempfile().unwrap();
    let first = sandbox::spawn(&at_build_path(&format!("read x < go; {}", script("a")), a.path()), &log_a, true)
        .expect("start a");
    let (status, log_b) = run(&at_build_path(&script("b"), b.path()), true);
    assert!(status.success(), "{log_b}");
    fs_err::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go\n").unwrap();
    let status = first.wait().unwrap();
    let log_a = read_back(&mut log_a);
    assert!(status.success(), "{log_a}");
    assert_eq!(log_a, "/build\n/build\na\ngo\n");
    assert_eq!(log_b, "/build\n/build\nb\n");
    // Each wrote into its own host folder.
    assert_eq!(fs_err::read_to_string(a.path().join("a")).unwrap(), "a\n");
    assert_eq!(fs_err::read_to_string(b.path().join("b")).unwrap(), "b\n");
    assert!(!a.path().join("b").exists() && !b.path().join("a").exists());

    // The host's folders are where they were, and Landlock still confines
    // writes to the builder's own folder (rules hold through the bind mount).
    let outside = a.path().join("../brr-build-path-escape");
    let (status, log) =
        run(&at_build_path(&format!("ls /usr/bin/env && echo x > '{}'", outside.display()), b.path()), true);
    assert!(log.contains("/usr/bin/env"), "{log}");
    if sandbox::isolation().landlock() {
        assert!(!status.success() && !outside.exists(), "{log}");
    }
    let _ = std::fs::remove_file(outside);

    // Without namespaces the builder sees the host path.
    let mut spec = at_build_path("pwd", a.path());
    spec.cwd = a.path().to_path_buf();
    let (status, log) = run(&spec, false);
    assert!(status.success());
    assert_eq!(log.trim(), a.path().to_str().unwrap());
}
