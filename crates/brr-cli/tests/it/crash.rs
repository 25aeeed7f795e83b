//! `kill -9` in the middle of a build: the store stays sound, the next build
//! finishes the job and clears the dead build's sandboxes.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use brr_test_support::{TestWorkspace, sandbox_leftovers, temp_dir};

use crate::workspace;

/// Six independent packages; package `sN` sleeps 0.3·N s. With `-j 2`, when
/// the first of two running builders ends the other has ≥ 0.3 s to go.
fn slow_workspace() -> TestWorkspace {
    (1..=6u32).fold(workspace(), |ws, i| {
        let script = format!("sleep {}.{}; echo {i} > \"$OUT/f\"", i * 3 / 10, i * 3 % 10);
        ws.sh_lib(&format!("s{i}"), &[], &["sleep"], &script)
    })
}

#[test]
fn kill_9_mid_build_leaves_a_sound_store_and_the_next_build_finishes() {
    let ws = slow_workspace();
    // Sandboxes in the store's tmp/ (not the shared tmpfs), to count them.
    let sandboxes = ws.store().join("tmp");
    let mut child = ws
        .command()
        .env("BRR_SANDBOX_DIR", &sandboxes)
        .args(["build", "-j", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first `built` line: one action is recorded, others are running.
    let first = loop {
        let line = lines.next().unwrap_or_else(|| panic!("brr ended before building anything:\n{seen}")).unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.trim_start().strip_prefix("built ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "brr was not killed mid-build:\n{seen}");
    let stale = sandbox_leftovers(&ws.store());
    assert!(!stale.is_empty(), "no sandbox of the killed build's running builder");

    ws.brr(["store", "verify"]).success();
    let run = ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "-j", "2", "--json"]).success();
    let targets = run.targets();
    assert_eq!(targets.len(), 6);
    assert!(targets.values().all(|t| t.status == "built" || t.status == "cached"), "{}", run.stdout);
    assert_eq!(targets[&first].status, "cached", "`{first}` was recorded before brr said `built`");
    assert!(run.count("built") >= 1, "nothing was left to build, so nothing was interrupted");
    ws.brr(["store", "verify"]).success();
    assert_eq!(sandbox_leftovers(&ws.store()), Vec::<String>::new(), "stale sandboxes after the build: were {stale:?}");
}

#[test]
fn builders_die_with_a_killed_brr() {
    // The builder makes a FIFO in its $TMPDIR (it can read nothing outside
    // its sandbox) and blocks reading it until the test writes a line.
    let sandboxes = temp_dir();
    let ws = workspace().sh_lib(
        "blocked",
        &[],
        &["mkfifo"],
        "mkfifo \"$TMPDIR/fifo\"; read l < \"$TMPDIR/fifo\"; echo \"$l\" > \"$OUT/f\"",
    );
    let mut child = ws
        .command()
        .env("BRR_SANDBOX_DIR", sandboxes.path())
        .arg("build")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Opening the FIFO for writing returns once the builder opened it to read.
    let (tx, rx) = mpsc::channel();
    let root = sandboxes.path().to_path_buf();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let fifo = loop {
            let found = fs_err::read_dir(&root).ok().into_iter().flatten().flatten().find_map(|e| {
                let fifo = e.path().join("tmp/fifo");
                fifo.exists().then_some(fifo)
            });
            if let Some(fifo) = found {
                break fifo;
            }
            if std::time::Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = tx.send(File::options().write(true).open(&fifo));
    });
    let Ok(writer) = rx.recv_timeout(Duration::from_secs(60)) else {
        child.kill().unwrap();
        panic!("the builder never opened its FIFO");
    };
    let mut writer = writer.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    // With its reader gone, the FIFO's write end polls as POLLERR.
    let mut pfd = libc::pollfd { fd: writer.as_raw_fd(), events: 0, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&raw mut pfd, 1, 5000) };
    let builder_gone = ready == 1 && pfd.revents & libc::POLLERR != 0;
    if !builder_gone {
        // Let the orphan finish before failing.
        let _ = writer.write_all(b"stop\n");
    }
    assert!(builder_gone, "the builder was still running 5 s after brr was killed");
}
