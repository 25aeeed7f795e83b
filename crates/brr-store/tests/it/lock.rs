//! The store-wide lock: shared opens coexist, an exclusive open excludes every other, and a killed holder releases it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use brr_hash::ObjectKind;
use brr_store::{Access, Store, StoreError, Wait};

use crate::support::TestResult;

/// Set (to a store folder) only in the child process the tests spawn.
const CHILD_ENV: &str = "BRR_STORE_LOCK_CHILD";
const READY: &str = "brr-store-lock-child-ready";

/// Starts this test binary again as a process that opens the store at
/// `root` shared, says so, and holds it until its stdin closes or it is
/// killed.
fn holder(root: &Path, test: &str) -> Result<Child, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.by_ref().map_while(Result::ok).any(|l| l.contains(READY));
    assert!(ready, "the holder never opened the store");
    // The rest is drained, so that the child's last words find a reader.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(child)
}

/// The child's body, when [`CHILD_ENV`] is set.
fn hold_until_stdin_closes() -> Option<TestResult> {
    let root = std::env::var_os(CHILD_ENV)?;
    Some((|| {
        let store = Store::open(Path::new(&root))?;
        store.put_bytes(ObjectKind::Blob, b"held")?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{READY}")?;
        stdout.flush()?;
        std::io::stdin().read_to_end(&mut Vec::new())?;
        drop(store);
        Ok(())
    })())
}

fn is_in_use<T>(r: Result<T, StoreError>, wanted: Access) -> bool {
    matches!(r.map(drop), Err(StoreError::InUse { wanted: w, .. }) if w == wanted)
}

#[test]
fn shared_opens_coexist_and_exclude_an_exclusive_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let stores: Vec<Store> = (0..4).map(|_| Store::open(&root)).collect::<Result<_, _>>()?;
    for s in &stores {
        assert_eq!(s.access(), Access::Shared);
        s.put_bytes(ObjectKind::Blob, b"shared")?;
    }
    let err = Store::open_exclusive(&root).err().ok_or("opened exclusive beside shared holders")?;
    assert!(is_in_use(Err::<(), _>(err), Access::Exclusive));
    drop(stores);
    let exclusive = Store::open_exclusive(&root)?;
    assert_eq!(exclusive.access(), Access::Exclusive);
    assert!(exclusive.verify()?.is_ok());
    Ok(())
}

#[test]
fn an_exclusive_holder_excludes_shared_and_exclusive_opens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let exclusive = Store::open_exclusive(&root)?;
    assert!(is_in_use(Store::open_with(&root, Access::Shared, Wait::NoWait), Access::Shared));
    assert!(is_in_use(Store::open_exclusive(&root), Access::Exclusive));
    let message = Store::open_with(&root, Access::Shared, Wait::NoWait).err().ok_or("opened")?.to_string();
    assert!(message.contains("in use") && message.contains("lock"), "{message}");
    drop(exclusive);
    Store::open_with(&root, Access::Shared, Wait::NoWait)?;
    Ok(())
}

#[test]
fn a_blocking_shared_open_waits_for_the_exclusive_holder() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let exclusive = Store::open_exclusive(&root)?;
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let root = root.clone();
        std::thread::spawn(move || {
            let opened = Store::open(&root).map(|s| s.access());
            let _ = tx.send(opened);
        })
    };
    // Not a synchronisation: the waiter must still be waiting afterwards.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a shared open went past an exclusive holder");
    drop(exclusive);
    assert_eq!(rx.recv()??, Access::Shared);
    waiter.join().map_err(|_| "waiter panicked")?;
    Ok(())
}

#[test]
fn another_process_holding_the_store_excludes_an_exclusive_open_until_killed() -> TestResult {
    if let Some(r) = hold_until_stdin_closes() {
        return r;
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let test = "lock::another_process_holding_the_store_excludes_an_exclusive_open_until_killed";
    let mut first = holder(&root, test)?;
    let mut second = holder(&root, test)?;
    // Two processes and this one share it.
    let here = Store::open(&root)?;
    drop(here);
    assert!(is_in_use(Store::open_exclusive(&root), Access::Exclusive));
    // One closes it normally, the other is killed: the kernel releases both.
    drop(first.stdin.take());
    assert!(first.wait()?.success());
    assert!(is_in_use(Store::open_exclusive(&root), Access::Exclusive));
    second.kill()?;
    second.wait()?;
    let exclusive = Store::open_exclusive(&root)?;
    assert!(exclusive.verify()?.is_ok());
    Ok(())
}

#[test]
fn a_store_being_created_accepts_its_lock_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    std::fs::create_dir(&root)?;
    std::fs::write(root.join("lock"), b"")?;
    let store = Store::open(&root)?;
    assert!(store.root().join("lock").is_file());
    Ok(())
}
