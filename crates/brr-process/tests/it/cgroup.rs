//! Cgroup: a run's processes, a double-forked `setsid` daemon included, found and killed as one.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use brr_process::{Cgroup, Command, ProcessError, Signal};

use crate::command::{PATIENCE, alive, exits_within, line, pidfd, sh};

/// How to get a cgroup brr may write to, for `require`'s hint. (The v2
/// mount is usually /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid
/// machine; brr finds it in /proc/self/mountinfo.)
const CGROUP_HINT: &str = "brr needs a cgroup v2 hierarchy (a `cgroup2` mount) in which its own cgroup is \
     writable: run as root, or under a systemd unit with `Delegate=yes` \
     (`systemd-run --user --scope -p Delegate=yes cargo test …`)";

/// A new cgroup for `name`; the test fails where the machine delegates none
/// (or, with `BRR_TEST_ALLOW_SKIP=1`, this is `None` and the test returns).
#[track_caller]
fn cgroup(name: &str) -> Option<Cgroup> {
    let made = Cgroup::create(name).expect("make a cgroup");
    let detail = match Cgroup::parent() {
        Ok(dir) => format!("making a cgroup in `{}` was refused", dir.display()),
        Err(why) => why.to_string(),
    };
    let available = brr_test_support::require(made.is_some(), "a delegated cgroup v2 hierarchy", &detail, CGROUP_HINT);
    made.filter(|_| available)
}

/// The script of a daemon: a subshell forks it in the background and
/// exits (the double fork: it is orphaned), and it calls `setsid`, so it
/// leaves its parent's process group and session. It prints its pid.
const DAEMON: &str = "(setsid sh -c 'echo $$; exec sleep 1000' &)";

/// Starts [`DAEMON`] from a child (in `cgroup`, if given) and returns the
/// daemon's pid once that child has exited.
fn start_daemon(cgroup: Option<&Cgroup>) -> u32 {
    let mut child = sh(DAEMON).cgroup(cgroup).spawn().expect("start the daemon's parent");
    let pid = line(&mut child);
    assert!(child.wait().expect("wait for the daemon's parent").success());
    pid.parse().unwrap_or_else(|_| panic!("the daemon printed {pid:?}, not a pid"))
}

/// The session of `pid`, from `/proc/<pid>/stat`.
fn session(pid: u32) -> u32 {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).expect("read the stat of the process");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    after_name.split(' ').nth(3).and_then(|s| s.parse().ok()).expect("the session field")
}

/// Polls `check` until it holds or `PATIENCE` runs out; whether it held.
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn a_setsid_daemon_stays_in_the_cgroup_and_dies_with_it() {
    let Some(cgroup) = cgroup("daemon") else { return };
    let daemon = start_daemon(Some(&cgroup));
    let daemon_fd = pidfd(&daemon.to_string());
    // Its parent has exited and its group was killed: the daemon lives on,
    // in a session of its own, beyond any process-group signal.
    assert!(alive(&daemon_fd), "the daemon did not outlive its parent");
    assert_eq!(session(daemon), daemon, "the daemon did not call setsid");
    assert_eq!(cgroup.procs().unwrap(), [daemon], "the cgroup holds the daemon and nothing else");
    assert!(cgroup.populated().unwrap());

    // The same daemon started outside the cgroup is not a member, and
    // survives what the cgroup's members do not.
    let outsider = start_daemon(None);
    let outsider_fd = pidfd(&outsider.to_string());
    assert!(!cgroup.procs().unwrap().contains(&outsider));

    cgroup.kill().unwrap();
    assert!(cgroup.wait_empty(PATIENCE).unwrap(), "members are left: {:?}", cgroup.procs());
    assert!(cgroup.procs().unwrap().is_empty());
    assert!(!cgroup.populated().unwrap());
    assert!(exits_within(&daemon_fd, PATIENCE), "the daemon survived the kill");
    assert!(alive(&outsider_fd), "the kill reached a process outside the cgroup");
    rustix::process::pidfd_send_signal(&outsider_fd, rustix::process::Signal::KILL).unwrap();
}

#[test]
fn wait_empty_times_out_while_a_member_lives() {
    let Some(cgroup) = cgroup("timeout") else { return };
    let mut child = Command::new("/bin/sleep").arg("1000").cgroup(Some(&cgroup)).spawn().unwrap();
    assert_eq!(cgroup.procs().unwrap(), [child.pid()]);
    let start = Instant::now();
    assert!(!cgroup.wait_empty(Duration::from_millis(200)).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    // A member ending on its own empties the cgroup too.
    child.signal(Signal::Term).unwrap();
    assert!(cgroup.wait_empty(PATIENCE).unwrap());
    assert!(child.wait().unwrap().killed_by(Signal::Term));
}

#[test]
fn dropping_the_cgroup_kills_what_is_left_and_removes_it() {
    let Some(cgroup) = cgroup("drop") else { return };
    let path = cgroup.path().to_path_buf();
    assert!(path.join("cgroup.procs").is_file(), "{} is no cgroup", path.display());
    let daemon = pidfd(&start_daemon(Some(&cgroup)).to_string());
    drop(cgroup);
    assert!(exits_within(&daemon, Duration::ZERO), "drop returned before the daemon was gone");
    assert!(!path.exists(), "{} is still there", path.display());

    // remove() does the same and says how it went.
    let Some(cgroup) = self::cgroup("remove") else { return };
    let path = cgroup.path().to_path_buf();
    let mut child = Command::new("/bin/sleep").arg("1000").cgroup(Some(&cgroup)).spawn().unwrap();
    cgroup.remove().unwrap();
    assert!(!path.exists(), "{} is still there", path.display());
    assert!(child.wait().unwrap().killed_by(Signal::Kill));
}

#[test]
fn two_cgroups_coexist_and_keep_their_own_members() {
    let (Some(a), Some(b)) = (cgroup("pair"), cgroup("pair")) else { return };
    assert_ne!(a.path(), b.path(), "two cgroups of one name collided");
    let name = |c: &Cgroup| c.path().file_name().unwrap().to_string_lossy().into_owned();
    let pid = std::process::id();
    assert_eq!(name(&a), format!("brr-{pid}-pair"));
    assert_eq!(name(&b), format!("brr-{pid}-pair.2"));

    let mut in_a = Command::new("/bin/sleep").arg("1000").cgroup(Some(&a)).spawn().unwrap();
    let mut in_b = Command::new("/bin/sleep").arg("1000").cgroup(Some(&b)).spawn().unwrap();
    assert_eq!(a.procs().unwrap(), [in_a.pid()]);
    assert_eq!(b.procs().unwrap(), [in_b.pid()]);
    a.kill().unwrap();
    assert!(a.wait_empty(PATIENCE).unwrap());
    assert!(in_a.wait().unwrap().killed_by(Signal::Kill));
    assert!(alive(in_b.pidfd()), "killing one cgroup reached the other");
    assert_eq!(b.procs().unwrap(), [in_b.pid()]);
    drop(b);
    assert!(in_b.wait().unwrap().killed_by(Signal::Kill));
}

#[test]
fn cgroups_made_inside_are_members_killed_and_removed_too() {
    let Some(cgroup) = cgroup("nested") else { return };
    let path = cgroup.path().to_path_buf();
    // The child moves itself into a cgroup of its own below ours.
    let script = "mkdir \"$CG/inner\" && echo $$ > \"$CG/inner/cgroup.procs\" && echo $$ && exec sleep 1000";
    let mut child = sh(script).env("CG", &path).cgroup(Some(&cgroup)).spawn().unwrap();
    let inner = line(&mut child);
    assert_eq!(inner, child.pid().to_string());
    assert!(path.join("inner").is_dir());
    assert_eq!(cgroup.procs().unwrap(), [child.pid()]);
    cgroup.remove().unwrap();
    assert!(!path.exists(), "{} is still there", path.display());
    assert!(child.wait().unwrap().killed_by(Signal::Kill));
}

#[test]
fn a_child_that_cannot_join_its_cgroup_is_not_started() {
    let Some(cgroup) = cgroup("gone") else { return };
    let path = cgroup.path().to_path_buf();
    let command = Command::new("/bin/true").cgroup(Some(&cgroup));
    cgroup.remove().unwrap();
    let err = command.spawn().unwrap_err();
    let ProcessError::JoinCgroup { program, cgroup, source } = &err else { panic!("not a cgroup error: {err:?}") };
    assert_eq!(program.to_str(), Some("/bin/true"));
    assert_eq!(cgroup, &path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{source}");
    assert_eq!(err.to_string(), format!("cannot start `/bin/true` in the cgroup `{}`", path.display()));
}

#[test]
fn empty_cgroups_of_a_gone_brr_are_removed_and_others_kept() {
    let Some(parent) = Cgroup::parent().ok().filter(|_| cgroup("probe").is_some()) else {
        // `cgroup` has failed the test, or allowed the skip.
        return;
    };
    // A pid that is gone: a child's, once reaped.
    let mut gone = Command::new("/bin/true").spawn().unwrap();
    assert!(gone.wait().unwrap().success());
    let living = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    let stale = parent.join(format!("brr-{}-stale", gone.pid()));
    let kept = parent.join(format!("brr-{}-kept", living.pid()));
    fs_err::create_dir(&stale).unwrap();
    fs_err::create_dir(&kept).unwrap();

    let fresh = cgroup("fresh");
    let stale_removed = !stale.exists();
    let kept_kept = kept.exists();
    let _ = fs_err::remove_dir(&kept);
    let _ = fs_err::remove_dir(&stale);
    drop(fresh);
    living.signal(Signal::Kill).unwrap();
    assert!(stale_removed, "{} was left", stale.display());
    assert!(kept_kept, "{} was removed while its brr lives", kept.display());
}

#[test]
fn members_are_listed_as_they_come_and_go() {
    let Some(cgroup) = cgroup("procs") else { return };
    // Three background sleeps and the shell (then a sleep too): four
    // members, then one.
    let mut child = sh("for i in 1 2 3; do sleep 1000 & done; echo started; exec sleep 1000")
        .cgroup(Some(&cgroup))
        .spawn()
        .unwrap();
    let out = child.take_stdout().unwrap();
    let mut reader = BufReader::new(out);
    let mut started = String::new();
    reader.read_line(&mut started).unwrap();
    assert_eq!(started, "started\n");
    assert_eq!(cgroup.procs().unwrap().len(), 4, "{:?}", cgroup.procs());
    assert!(cgroup.procs().unwrap().contains(&child.pid()));
    for pid in cgroup.procs().unwrap().into_iter().filter(|p| *p != child.pid()) {
        rustix::process::pidfd_send_signal(pidfd(&pid.to_string()), rustix::process::Signal::KILL).unwrap();
    }
    assert!(eventually(|| cgroup.procs().unwrap() == [child.pid()]), "{:?}", cgroup.procs());
}
