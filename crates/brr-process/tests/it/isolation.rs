//! What the sandbox denies (network, writes outside `writable`), what it sets (host name, ids) and what it keeps on request (the host network).

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;

use brr_process::{self as sandbox, ProcessError, SetupStep};

use crate::{Needs, require, run, sh, spec};

#[test]
fn network_is_unreachable_inside() {
    if !require(Needs::NetworkIsolation) {
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
    if !require(Needs::Landlock) {
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
    if !require(Needs::Namespaces) {
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
    if !require(Needs::Namespaces) {
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
    if !require(Needs::Namespaces) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/bin/true", &[], dir.path());
    spec.hostname = Some("x".repeat(100));
    let err = sandbox::run(&spec, &tempfile::tempfile().unwrap(), true).unwrap_err();
    assert!(matches!(err, ProcessError::Setup { step: SetupStep::Hostname, .. }), "{err:?}");
    assert!(err.to_string().contains("sethostname"), "{err}");
}

#[test]
fn missing_writable_path_is_an_error() {
    if !require(Needs::Landlock) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("/bin/true", &[], dir.path());
    let missing = dir.path().join("missing");
    spec.writable.push(missing.clone());
    let err = sandbox::run(&spec, &tempfile::tempfile().unwrap(), true).unwrap_err();
    assert!(matches!(&err, ProcessError::Writable { path, .. } if path == &missing), "{err:?}");
}

#[test]
fn isolation_is_reported() {
    let isolation = sandbox::isolation();
    eprintln!("isolation on this machine: {isolation:?}");
    if let sandbox::Isolation::Off { reason, .. } = isolation {
        assert!(!reason.is_empty());
    }
}

/// Network slots: a builder joins the slot of its permit instead of making
/// a namespace. Builders in one slot, one after the other, share it; other
/// slots, fresh namespaces and the host's are different. Inside, the
/// builder still cannot reach the host, keeps its ids and sees only a
/// loopback interface, which it has no power to bring up.
#[test]
fn builders_join_their_network_slot_and_stay_cut_off() {
    if !require(Needs::Namespaces) {
        return;
    }
    let slots = sandbox::net_slots(2).expect("network slots where namespaces work");
    assert_eq!(slots.len(), 2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let netns = |slot: Option<usize>| {
        let script = format!(
            "import os, socket\n\
             print(os.readlink('/proc/self/ns/net'), os.geteuid())\n\
             print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('reached')\n\
             except OSError as e: print('unreachable')\n\
             import fcntl, struct\n\
             try:\n    fcntl.ioctl(s, 0x8914, struct.pack('16sH14x', b'lo', 1)); print('lo up')\n\
             except OSError as e: print('lo stays down', e.errno)\n"
        );
        let mut spec = spec("/usr/bin/python3", &["-c", &script], dir.path());
        spec.net_slot = slot.map(|i| slots.slot(i));
        let (status, log) = run(&spec, true);
        assert!(status.success(), "{log}");
        log
    };
    let first = netns(Some(0));
    let again = netns(Some(0));
    let other = netns(Some(1));
    let fresh = netns(None);
    let ns = |log: &str| log.split_whitespace().next().unwrap_or_default().to_owned();
    assert_eq!(ns(&first), ns(&again), "one slot, one namespace:\n{first}\n{again}");
    assert_ne!(ns(&first), ns(&other), "two slots share a namespace");
    assert_ne!(ns(&first), ns(&fresh));
    assert_ne!(ns(&first), std::fs::read_link("/proc/self/ns/net").unwrap().to_string_lossy());
    let euid = rustix::process::geteuid().as_raw().to_string();
    for log in [&first, &again, &other] {
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.first().and_then(|l| l.split_whitespace().nth(1)), Some(euid.as_str()), "{log}");
        assert_eq!(lines.get(1), Some(&"['lo']"), "{log}");
        assert_eq!(lines.get(2), Some(&"unreachable"), "{log}");
        assert!(lines.get(3).is_some_and(|l| l.starts_with("lo stays down")), "{log}");
    }
    // A fresh namespace is the builder's own: run by root (root of that
    // namespace too, where it keeps its capabilities) it may bring lo up,
    // which shows the check above can see it happen.
    if euid == "0" {
        assert!(fresh.contains("lo up"), "{fresh}");
    }
}

#[test]
fn host_network_reaches_the_host_and_keeps_the_rest_of_the_sandbox() {
    if !require(Needs::NetworkIsolation) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let script =
        format!("import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')");
    let mut spec = spec("/usr/bin/python3", &["-c", &script], dir.path());
    spec.host_network = true;
    let (status, log) = run(&spec, true);
    assert!(status.success(), "connect with the host's network must work: {log}");
    assert_eq!(log, "connected\n");
    // Still in the other namespaces: the host name is the sandbox's.
    if sandbox::isolation().namespaces() {
        let mut spec = spec.clone();
        spec.program = "/bin/hostname".into();
        spec.args = Vec::new();
        let (status, log) = run(&spec, true);
        assert!(status.success(), "{log}");
        assert_eq!(log, format!("{}\n", sandbox::DEFAULT_HOSTNAME));
    }
}
