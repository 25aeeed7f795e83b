//! Environment, exit codes, the shared log or separate streams and spawn errors, sandboxed or not.

use brr_process::{self as sandbox, ProcessError};

use crate::{read_back, run, sh, spec};

#[test]
fn env_is_exactly_the_given_env() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let mut spec = spec("/usr/bin/env", &[], dir.path());
        spec.env = vec![("B_VAR".into(), "two words".into()), ("A_VAR".into(), "1".into())];
        let (status, log) = run(&spec, isolate);
        assert!(status.success(), "isolate={isolate}: {status}");
        let mut lines: Vec<_> = log.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["A_VAR=1", "B_VAR=two words"], "isolate={isolate}");
    }
}

#[test]
fn exit_codes_propagate() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let (status, _) = run(&sh("exit 3", dir.path()), isolate);
        assert_eq!(status.code(), Some(3), "isolate={isolate}");
        let (status, _) = run(&sh("exit 0", dir.path()), isolate);
        assert_eq!(status.code(), Some(0), "isolate={isolate}");
    }
}

#[test]
fn stdout_and_stderr_share_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let (status, log) = run(&sh("echo out1; echo err1 >&2; echo out2; echo err2 >&2", dir.path()), isolate);
        assert!(status.success());
        assert_eq!(log, "out1\nerr1\nout2\nerr2\n", "isolate={isolate}");
    }
}

#[test]
fn stdin_is_null() {
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = run(&sh("cat; echo end", dir.path()), true);
    assert!(status.success());
    assert_eq!(log, "end\n");
}

#[test]
fn spawn_failure_names_the_program() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let spec = spec("/nonexistent/builder", &[], dir.path());
        let log = tempfile::tempfile().unwrap();
        let err = sandbox::run(&spec, &log, isolate).unwrap_err();
        assert!(
            matches!(&err, ProcessError::Spawn { program, source, .. }
                if program == &spec.program && source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(err.to_string().contains("/nonexistent/builder"), "{err}");
        // The next start on this thread (same reused child stack) is not
        // taken for a failure.
        let (status, log) = run(&sh("echo fine", dir.path()), isolate);
        assert!(status.success());
        assert_eq!(log, "fine\n");
    }
}

#[test]
fn builder_runs_in_its_own_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = tempfile::tempfile().unwrap();
    // `ps` may be missing; the shell's `$$` is its pid and /proc tells its pgid.
    let spec = sh("cut -d' ' -f5 /proc/$$/stat > pgid", dir.path());
    let builder = sandbox::spawn(&spec, &log, false).unwrap();
    let pid = builder.pid();
    assert!(builder.wait().unwrap().success());
    let group = fs_err::read_to_string(dir.path().join("pgid")).unwrap();
    assert_eq!(group.trim(), pid.to_string());
}

#[test]
fn umask_is_fixed_whatever_the_caller_has() {
    let dir = tempfile::tempdir().unwrap();
    // The test process's own umask must not leak into builders.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let results: Vec<_> = [false, true].iter().map(|&isolate| run(&sh("umask", dir.path()), isolate)).collect();
    rustix::process::umask(old);
    for (status, log) in results {
        assert!(status.success());
        assert_eq!(log.trim(), "0022");
    }
}

#[test]
fn umask_and_visible_cpus_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let mut spec = sh("umask; nproc", dir.path());
        spec.umask = 0o077;
        spec.cpus = Some(1);
        let (status, log) = run(&spec, isolate);
        assert!(status.success(), "{log}");
        assert_eq!(log, "0077\n1\n", "isolate={isolate}");
    }
}

#[test]
fn stdout_and_stderr_can_go_to_separate_files() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let spec = sh("echo out; echo err >&2; echo out2", dir.path());
        let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        let status = sandbox::spawn_with_streams(&spec, &out, &err, isolate).unwrap().wait().unwrap();
        assert!(status.success(), "isolate={isolate}: {status}");
        assert_eq!(read_back(&mut out), "out\nout2\n", "isolate={isolate}");
        assert_eq!(read_back(&mut err), "err\n", "isolate={isolate}");
    }
}

#[test]
fn only_the_listed_descriptors_stay_open_across_exec() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    // std opens both close-on-exec, as brr opens every descriptor.
    let (kept, _kept_w) = std::io::pipe().unwrap();
    let (closed, _closed_w) = std::io::pipe().unwrap();
    let (k, c) = (kept.as_raw_fd(), closed.as_raw_fd());
    for isolate in [false, true] {
        let mut spec =
            sh(&format!("[ -e /proc/self/fd/{k} ] && echo kept; [ -e /proc/self/fd/{c} ] || echo closed"), dir.path());
        spec.inherit_fds = vec![k];
        let (status, log) = run(&spec, isolate);
        assert!(status.success(), "isolate={isolate}: {status} {log}");
        assert_eq!(log, "kept\nclosed\n", "isolate={isolate}");
    }
}

/// Whether the process `pid` is gone (or dies within a few seconds of its
/// SIGKILL; a zombie counts as gone).
fn gone(pid: &str) -> bool {
    let Some(pid) = pid.trim().parse().ok().and_then(rustix::process::Pid::from_raw) else { return false };
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => crate::command::exits_within(fd, std::time::Duration::from_secs(5)),
        Err(_) => true,
    }
}

#[test]
fn a_builder_past_its_timeout_is_killed_with_all_it_started() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let log = tempfile::tempfile().unwrap();
        // A child in the builder's group and one that left it: both must go.
        let script = "sleep 30 & echo $! > bg; setsid sleep 30 & echo $! > daemon; sleep 30";
        let builder = sandbox::spawn(&sh(script, dir.path()), &log, isolate).unwrap();
        let started = std::time::Instant::now();
        let ended = builder.wait_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
        let took = started.elapsed();
        assert_eq!(ended, sandbox::Ended::TimedOut(std::time::Duration::from_secs(1)), "isolate={isolate}");
        assert!(took < std::time::Duration::from_secs(10), "isolate={isolate}: took {took:?}");
        assert!(took >= std::time::Duration::from_secs(1), "isolate={isolate}: took {took:?}");
        // Pids as seen inside a PID namespace mean nothing here.
        if !isolate || !sandbox::isolation().namespaces() {
            let bg = fs_err::read_to_string(dir.path().join("bg")).unwrap();
            assert!(gone(&bg), "isolate={isolate}: the background sleep {bg} outlived the timeout");
            let daemon = fs_err::read_to_string(dir.path().join("daemon")).unwrap();
            if isolate {
                assert!(gone(&daemon), "the setsid sleep {daemon} outlived the timeout");
            } else {
                // `--no-sandbox` reaches the process group only.
                let _ = std::process::Command::new("kill").arg("-9").arg(daemon.trim()).status();
            }
        }
    }
}

#[test]
fn a_builder_within_its_timeout_ends_as_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    for isolate in [false, true] {
        let log = tempfile::tempfile().unwrap();
        let builder = sandbox::spawn(&sh("exit 3", dir.path()), &log, isolate).unwrap();
        let started = std::time::Instant::now();
        let ended = builder.wait_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        assert!(matches!(ended, sandbox::Ended::Exited(s) if s.code() == Some(3)), "isolate={isolate}: {ended:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "isolate={isolate}");
        let builder = sandbox::spawn(&sh("exit 4", dir.path()), &log, isolate).unwrap();
        let ended = builder.wait_timeout(None).unwrap();
        assert!(matches!(ended, sandbox::Ended::Exited(s) if s.code() == Some(4)), "isolate={isolate}: {ended:?}");
    }
}
