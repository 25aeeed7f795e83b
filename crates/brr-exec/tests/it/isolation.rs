//! What the sandbox denies (network, writes outside `writable`) and what it sets (host name, ids).

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;

use brr_exec::sandbox::{self, SandboxError, SetupStep};

use crate::{run, sh, skip_unless, spec};

#[test]
fn network_is_unreachable_inside() {
    let isolation = sandbox::isolation();
    if skip_unless(isolation.namespaces() || isolation.landlock(), "network isolation") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let script = format!("import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)");
    let spec = spec("/usr/bin/python3", &["-c", &script], dir.path());
    // The listener's backlog completes the handshake without `accept`.
    let (status, log) = run(&spec, false);
    assert!(status.success(), "unsandboxed connect must work: {log}");
    let (status, log) = run(&spec, true);
    assert!(!status.success(), "sandboxed connect must fail");
    assert!(log.contains("Error"), "{log}");
}

#[test]
fn writes_are_confined_to_writable() {
    if skip_unless(sandbox::isolation().landlock(), "Landlock") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    fs_err::create_dir(&out).unwrap();
    fs_err::write(root.path().join("existing"), "keep").unwrap();
    let elsewhere = other.path().join("file");

    let (status, _) = run(&sh("echo x > ../outside", &out), true);
    assert!(!status.success());
    assert!(!root.path().join("outside").exists());
    let (status, _) = run(&sh(&format!("echo x > '{}'", elsewhere.display()), &out), true);
    assert!(!status.success());
    assert!(!elsewhere.exists());
    let (status, _) = run(&sh("rm -f ../existing", &out), true);
    assert!(!status.success());
    assert_eq!(fs_err::read_to_string(root.path().join("existing")).unwrap(), "keep");

    let (status, log) =
        run(&sh("echo x > inside && mkdir sub && echo y > sub/f && mv sub/f g && echo z >/dev/null", &out), true);
    assert!(status.success(), "{log}");
    assert_eq!(fs_err::read_to_string(out.join("inside")).unwrap(), "x\n");
    assert_eq!(fs_err::read_to_string(out.join("g")).unwrap(), "y\n");

    // The same write outside succeeds unsandboxed, so the checks above can fail.
    let (status, _) = run(&sh("echo x > ../outside", &out), false);
    assert!(status.success());
    assert!(root.path().join("outside").exists());
}

#[test]
fn hostname_is_the_requested_one() {
    if skip_unless(sandbox::isolation().namespaces(), "namespaces") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/bin/hostname", &[], dir.path());
    let (status, log) = run(&spec, true);
    assert!(status.success());
    assert_eq!(log, format!("{}\n", sandbox::DEFAULT_HOSTNAME));
    spec.hostname = Some("builder-7".into());
    let (status, log) = run(&spec, true);
    assert!(status.success());
    assert_eq!(log, "builder-7\n");
}

#[test]
fn files_created_inside_belong_to_the_caller() {
    if skip_unless(sandbox::isolation().namespaces(), "namespaces") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = run(&sh("echo x > made; id -u; id -g", dir.path()), true);
    assert!(status.success());
    let ours = fs_err::metadata(dir.path()).unwrap();
    let made = fs_err::metadata(dir.path().join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (ours.uid(), ours.gid()));
    assert_eq!(log, format!("{}\n{}\n", ours.uid(), ours.gid()));
}

#[test]
fn setup_failure_names_the_step() {
    if skip_unless(sandbox::isolation().namespaces(), "namespaces") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/bin/true", &[], dir.path());
    spec.hostname = Some("x".repeat(100));
    let err = sandbox::run(&spec, tempfile::tempfile().unwrap(), true).unwrap_err();
    assert!(matches!(err, SandboxError::Setup { step: SetupStep::Hostname, .. }), "{err:?}");
    assert!(err.to_string().contains("sethostname"), "{err}");
}

#[test]
fn missing_writable_path_is_an_error() {
    if skip_unless(sandbox::isolation().landlock(), "Landlock") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/bin/true", &[], dir.path());
    let missing = dir.path().join("missing");
    spec.writable.push(missing.clone());
    let err = sandbox::run(&spec, tempfile::tempfile().unwrap(), true).unwrap_err();
    assert!(matches!(&err, SandboxError::Writable { path, .. } if path == &missing), "{err:?}");
}

#[test]
fn isolation_is_reported() {
    let isolation = sandbox::isolation();
    eprintln!("isolation on this machine: {isolation:?}");
    if let sandbox::Isolation::Off { reason, .. } = isolation {
        assert!(!reason.is_empty());
    }
}
