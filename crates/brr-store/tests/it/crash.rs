//! Crash safety: a writer (this test re-executed as a child) killed with SIGKILL mid-write leaves a store that verifies.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brr_hash::{
    Artifact, ArtifactHash, BuildKey, Digest, EntryKind, ObjectKind, ServiceManifest, Tree, TreeEntry, TreeHash,
};
use brr_store::{ActionRecord, BuildRow, StatEntry, Store, StoreError};

use crate::support::TestResult;

/// Set (to a store folder) only in the child process this test spawns.
const CHILD_ENV: &str = "BRR_STORE_CRASH_CHILD";
/// What the child prints when the parent may kill it (libtest may print
/// before it on the same line).
const READY: &str = "brr-store-child-ready";
/// Puts the child makes before telling the parent it may kill it.
const WARM_UP: u64 = 25;
/// The child gives up after this long if nobody kills it.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// One round of everything a build writes.
fn write_round(store: &Store, seed: &str, i: u64) -> Result<(), StoreError> {
    let size = usize::try_from((i * 7919) % 300_000).unwrap_or(0);
    let body: Vec<u8> = format!("{seed} {i} ").bytes().cycle().take(size.max(1)).collect();
    let blob = store.put_bytes(ObjectKind::Blob, &body)?;
    let entry = TreeEntry { name: format!("f{i}"), kind: EntryKind::File, hash: blob, size: body.len() as u64 };
    let tree = TreeHash(store.put_object(&Tree { entries: vec![entry] })?);
    let artifact = ArtifactHash(store.put_object(&Artifact { outputs: tree, manifest: ServiceManifest::default() })?);
    let key = BuildKey(Digest::of(format!("{seed} key {i}").as_bytes()));
    store.record_action(&ActionRecord {
        key,
        artifact,
        log: Some(blob),
        duration_ms: i,
        created_at: 0,
        outputs: None,
    })?;
    let status = "built".to_owned();
    store.record_build(&BuildRow {
        target: "//x".into(),
        key,
        artifact: Some(artifact),
        status,
        log: None,
        started_at: 0,
        duration_ms: i,
    })?;
    let stat = StatEntry { size: i, mtime_ns: 0, ino: i, ctime_ns: 0, digest: blob.into(), recorded_ns: 0 };
    store.stat_cache_put(&[(format!("p{i}").into(), stat)])
}

/// The child's body: write until killed (or, if nobody kills it, until
/// [`CHILD_LIMIT`], which the parent counts as a failure).
fn child_writer(root: &Path) -> TestResult {
    let store = Store::open(root)?;
    let seed = format!("pid {}", std::process::id());
    let start = Instant::now();
    let mut stdout = std::io::stdout();
    for i in 0.. {
        write_round(&store, &seed, i)?;
        if i == WARM_UP {
            writeln!(stdout, "{READY}")?;
            stdout.flush()?;
        }
        if start.elapsed() > CHILD_LIMIT {
            break;
        }
    }
    Ok(())
}

/// One test, two roles: run by `cargo test`, it is the parent, which
/// re-executes this very test with [`CHILD_ENV`] set, so the child is this
/// test's own process too and no test exists that could pass without
/// doing anything.
#[test]
fn sigkill_mid_write_leaves_a_valid_store() -> TestResult {
    if let Some(root) = std::env::var_os(CHILD_ENV) {
        return child_writer(Path::new(&root));
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    Store::open(&root)?;
    let mut objects = 0;
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--exact", "crash::sigkill_mid_write_leaves_a_valid_store", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains(READY));
        child.kill()?;
        let status = child.wait()?;
        assert!(ready, "child never got ready in round {round}: {status}");
        // Killed while it was still writing, not exited (nor failed) first.
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: the child ended by itself: {status}");

        let store = Store::open(&root)?;
        // What the child wrote before saying it was ready is there.
        for i in [0, WARM_UP] {
            let key = BuildKey(Digest::of(format!("pid {pid} key {i}").as_bytes()));
            assert!(store.lookup_action(key)?.is_some(), "round {round}: the child's round {i} is missing");
        }
        let report = store.verify()?;
        assert!(report.is_ok(), "round {round}: {:?}", report.problems);
        assert!(report.objects > objects + WARM_UP, "round {round}: {} objects after {objects}", report.objects);
        objects = report.objects;
        let d = store.put_bytes(ObjectKind::Blob, format!("after round {round}").as_bytes())?;
        assert_eq!(store.get(d)?, format!("after round {round}").as_bytes());
        write_round(&store, "parent", round)?;
    }
    Ok(())
}
