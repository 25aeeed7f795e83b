//! Command and Child, as the release phase and the supervisor use them: real processes, real signals.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use brr_process::{Child, Command, ExitStatus, Output, ProcessError, Signal};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::read_back;

/// Long enough for any check below on a loaded machine; never waited out
/// when things work.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// `sh -c script`, with its stdout on a pipe.
pub(crate) fn sh(script: &str) -> Command {
    Command::new("/bin/sh").args(["-c", script]).stdout(Output::Pipe)
}

/// The next line of the child's stdout, without its newline.
pub(crate) fn line(child: &mut Child) -> String {
    let out = child.take_stdout().expect("stdout is a pipe");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("read the child's stdout");
    line.trim_end().to_owned()
}

/// A pidfd of `pid`, which must be alive (or a zombie).
pub(crate) fn pidfd(pid: &str) -> OwnedFd {
    let raw: i32 = pid.parse().unwrap_or_else(|_| panic!("a pid, not {pid:?}"));
    let pid = rustix::process::Pid::from_raw(raw).expect("a positive pid");
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open")
}

/// Whether the process of `pidfd` exits (or has exited) within `timeout`.
pub(crate) fn exits_within(pidfd: impl AsFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let secs = i64::try_from(left.as_secs()).expect("a timeout in range");
        let left = Timespec { tv_sec: secs, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&left)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
    }
}

pub(crate) fn alive(pidfd: impl AsFd) -> bool {
    !exits_within(pidfd, Duration::ZERO)
}

#[test]
fn try_wait_is_none_while_running_then_the_status() {
    let mut child = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    assert_eq!(child.try_wait().unwrap(), None);
    assert!(alive(child.pidfd()));
    child.signal(Signal::Term).unwrap();
    // The pidfd a supervisor polls becomes readable, then try_wait reaps.
    assert!(exits_within(child.pidfd(), PATIENCE));
    let status = child.try_wait().unwrap().expect("exited");
    assert!(status.killed_by(Signal::Term), "{status}");
    assert_eq!(status.to_string(), "killed by SIGTERM");
    // Reaped once; later waits give the same status, signals do nothing.
    assert_eq!(child.try_wait().unwrap(), Some(status));
    assert_eq!(child.wait().unwrap(), status);
    child.signal(Signal::Kill).unwrap();
}

#[test]
fn wait_timeout_gives_up_while_it_runs_and_returns_as_soon_as_it_exits() {
    let mut running = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    let start = Instant::now();
    assert_eq!(running.wait_timeout(Duration::from_millis(200)).unwrap(), None);
    assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    assert!(alive(running.pidfd()));

    let mut quick = sh("exit 4").spawn().unwrap();
    let start = Instant::now();
    let status = quick.wait_timeout(PATIENCE * 4).unwrap();
    assert!(start.elapsed() < PATIENCE, "waited {:?}", start.elapsed());
    assert_eq!(status, Some(ExitStatus::Exited(4)));
    assert_eq!(status.unwrap().to_string(), "exited with 4");
}

#[test]
fn terminate_kills_a_child_deaf_to_sigterm_and_its_group_after_the_grace() {
    // An ignored SIGTERM is inherited: the background sleep ignores it too.
    let mut child = sh("trap '' TERM; sleep 1000 & echo $!; wait").spawn().unwrap();
    let grandchild = pidfd(&line(&mut child));
    assert!(alive(&grandchild));
    let grace = Duration::from_millis(300);
    let start = Instant::now();
    let status = child.terminate(grace).unwrap();
    assert!(start.elapsed() >= grace, "SIGKILL came after {:?}", start.elapsed());
    assert!(status.killed_by(Signal::Kill), "{status}");
    assert!(exits_within(&grandchild, PATIENCE), "the grandchild in the group survived");
}

#[test]
fn terminate_reports_how_a_child_answering_sigterm_ended() {
    let mut child = sh("echo ready; exec sleep 1000").spawn().unwrap();
    assert_eq!(line(&mut child), "ready");
    let start = Instant::now();
    let status = child.terminate(PATIENCE * 4).unwrap();
    assert!(start.elapsed() < PATIENCE, "waited {:?}", start.elapsed());
    assert_eq!(status.to_string(), "killed by SIGTERM");

    let mut child = sh("trap 'exit 3' TERM; sleep 1000 & echo ready; wait").spawn().unwrap();
    assert_eq!(line(&mut child), "ready");
    let start = Instant::now();
    let status = child.terminate(PATIENCE * 4).unwrap();
    assert!(start.elapsed() < PATIENCE, "waited {:?}", start.elapsed());
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(status.to_string(), "exited with 3");
}

#[test]
fn what_is_left_of_the_group_dies_with_the_child() {
    let mut child = sh("sleep 1000 & echo $!").spawn().unwrap();
    let grandchild = pidfd(&line(&mut child));
    assert!(child.wait().unwrap().success());
    assert!(exits_within(&grandchild, PATIENCE), "the grandchild outlived the group's leader");
}

#[test]
fn dropping_a_running_child_kills_its_group() {
    let mut child = sh("sleep 1000 & echo $!; wait").spawn().unwrap();
    let grandchild = pidfd(&line(&mut child));
    let leader = pidfd(&child.pid().to_string());
    drop(child);
    assert!(exits_within(&leader, Duration::ZERO), "drop returned before the child was gone");
    assert!(exits_within(&grandchild, PATIENCE), "the grandchild survived the drop");
}

#[test]
fn the_environment_is_exactly_the_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let status = Command::new("/usr/bin/env")
        .env_clear()
        .envs([("B_VAR", "two words"), ("A_VAR", "1")])
        .env("A_VAR", "2")
        .cwd(dir.path())
        .stdout(Output::File(out.try_clone().unwrap()))
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success(), "{status}");
    let text = read_back(&mut out);
    let mut lines: Vec<_> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["A_VAR=2", "B_VAR=two words"]);
}

#[test]
fn a_name_is_found_on_the_childs_path() {
    let mut out = tempfile::tempfile().unwrap();
    let status = Command::new("env")
        .env_clear()
        .env("PATH", "/nonexistent:/usr/bin:/bin")
        .stdout(Output::File(out.try_clone().unwrap()))
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
    assert_eq!(read_back(&mut out), "PATH=/nonexistent:/usr/bin:/bin\n");

    let err = Command::new("env").env_clear().env("PATH", "/nonexistent").spawn().unwrap_err();
    assert!(matches!(&err, ProcessError::NotOnPath { program, .. } if program.as_os_str() == "env"), "{err:?}");
    assert_eq!(err.to_string(), "cannot find `env` on the PATH `/nonexistent`");
    let err = Command::new("env").env_clear().spawn().unwrap_err();
    assert!(matches!(err, ProcessError::NotOnPath { .. }), "no PATH, no lookup: {err:?}");
}

#[test]
fn stdout_and_stderr_go_to_separate_files() {
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let status = sh("echo out; echo err >&2; echo out2")
        .stdout(Output::File(out.try_clone().unwrap()))
        .stderr(Output::File(err.try_clone().unwrap()))
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
    assert_eq!(read_back(&mut out), "out\nout2\n");
    assert_eq!(read_back(&mut err), "err\n");
}

#[test]
fn spawn_errors_name_the_program_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let cause = |err: &ProcessError| match err {
        ProcessError::Spawn { source, .. } => (source.kind(), source.to_string()),
        other => panic!("not a spawn error: {other:?}"),
    };

    let missing = dir.path().join("missing");
    let err = Command::new(&missing).spawn().unwrap_err();
    assert!(err.to_string().contains(&*missing.to_string_lossy()), "{err}");
    assert_eq!(cause(&err).0, std::io::ErrorKind::NotFound);

    let plain = dir.path().join("plain");
    fs_err::write(&plain, "#!/bin/sh\n").unwrap();
    fs_err::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Command::new(&plain).spawn().unwrap_err();
    assert!(err.to_string().contains(&*plain.to_string_lossy()), "{err}");
    assert_eq!(cause(&err).0, std::io::ErrorKind::PermissionDenied);
    assert!(cause(&err).1.contains("not executable"), "{err:?}");

    let orphan = dir.path().join("orphan");
    fs_err::write(&orphan, "#!/nonexistent/interpreter\n").unwrap();
    fs_err::set_permissions(&orphan, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Command::new(&orphan).spawn().unwrap_err();
    assert!(cause(&err).1.contains("interpreter"), "{err:?}");

    let err = Command::new("/bin/true").cwd(&missing).spawn().unwrap_err();
    assert!(err.to_string().contains(&*missing.to_string_lossy()), "names the folder: {err}");
    assert!(cause(&err).1.contains("working directory"), "{err:?}");
}

#[test]
fn the_child_leads_its_own_process_group_unless_told_not_to() {
    let pid_and_group = |own: bool| {
        let mut child = sh("cut -d' ' -f5 /proc/$$/stat").own_process_group(own).spawn().unwrap();
        let group = line(&mut child);
        assert!(child.wait().unwrap().success());
        (child.pid().to_string(), group)
    };
    let (leader, group) = pid_and_group(true);
    assert_eq!(group, leader);
    let (member, group) = pid_and_group(false);
    assert_ne!(group, member);
    assert_eq!(group, rustix::process::getpgrp().as_raw_nonzero().to_string());
}

/// The variable that turns [`death_signal_helper`] on: `kill` or `none`.
const HELPER: &str = "BRR_TEST_DEATH_SIGNAL_HELPER";

/// Not a test on its own: re-run by [`a_killed_parent_takes_its_child_along`]
/// as the parent to kill. Starts `sleep`, prints its pid, and waits.
#[test]
fn death_signal_helper() {
    let Ok(choice) = std::env::var(HELPER) else { return };
    let signal = (choice == "kill").then_some(Signal::Kill);
    let mut child = Command::new("/bin/sleep").arg("1000").death_signal(signal).spawn().expect("start sleep");
    // After libtest's "test … ... " on the same line.
    println!("pid={}", child.pid());
    let _ = child.wait();
}

/// Starts the helper (a parent brr) with `choice`, kills it with SIGKILL,
/// and returns a pidfd of the child it had started.
fn kill_a_parent(choice: &str) -> OwnedFd {
    let exe = std::env::current_exe().expect("the test binary");
    let mut parent = Command::new(exe)
        .args(["command::death_signal_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env(HELPER, choice)
        .own_process_group(false)
        .stdout(Output::Pipe)
        .spawn()
        .expect("start the helper");
    let out = BufReader::new(parent.take_stdout().expect("stdout is a pipe"));
    let pid = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("pid=").map(|(_, pid)| pid.to_owned()))
        .expect("the helper prints its child's pid");
    let child = pidfd(&pid);
    parent.signal(Signal::Kill).expect("kill the helper");
    assert!(parent.wait().expect("reap the helper").killed_by(Signal::Kill));
    child
}

#[test]
fn a_killed_parent_takes_its_child_along() {
    let child = kill_a_parent("kill");
    assert!(exits_within(&child, PATIENCE), "the child outlived its killed parent");

    // Without a death signal it lives on (so the check above can fail).
    let child = kill_a_parent("none");
    assert!(alive(&child), "the child died without a death signal");
    rustix::process::pidfd_send_signal(&child, rustix::process::Signal::KILL).unwrap();
    assert!(exits_within(&child, PATIENCE));
}

#[test]
fn a_relative_program_is_taken_from_the_childs_folder() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello");
    fs_err::write(&script, "#!/bin/sh\necho hello from \"$PWD\"\n").unwrap();
    fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new("./hello").cwd(dir.path()).stdout(Output::Pipe).spawn().unwrap();
    assert_eq!(line(&mut child), format!("hello from {}", dir.path().display()));
    assert!(child.wait().unwrap().success());
    assert_eq!(child.program(), script);
}

#[test]
fn without_a_group_of_its_own_signals_reach_the_child_alone() {
    // In the test's own group: a signal to the group would kill this test.
    let mut child = sh("sleep 1000 & echo $!; wait").own_process_group(false).spawn().unwrap();
    let grandchild = pidfd(&line(&mut child));
    child.signal(Signal::Kill).unwrap();
    assert!(child.wait().unwrap().killed_by(Signal::Kill));
    assert!(alive(&grandchild), "no group of its own, no group kill");
    rustix::process::pidfd_send_signal(&grandchild, rustix::process::Signal::KILL).unwrap();
    assert!(exits_within(&grandchild, PATIENCE));
}

#[test]
fn the_environment_is_brrs_unless_cleared() {
    let mut child = sh("echo \"$PATH\"").spawn().unwrap();
    assert_eq!(line(&mut child), std::env::var("PATH").unwrap_or_default());
    assert!(child.wait().unwrap().success());
    // `env` prints only what is exported (a shell makes up a PATH of its own).
    let mut out = tempfile::tempfile().unwrap();
    let cleared = Command::new("/usr/bin/env").env_clear().stdout(Output::File(out.try_clone().unwrap()));
    assert!(cleared.spawn().unwrap().wait().unwrap().success());
    assert_eq!(read_back(&mut out), "");
}
