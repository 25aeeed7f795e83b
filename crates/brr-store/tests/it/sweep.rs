//! Deleting and compaction on an exclusive store: what roots, the ledger and the keep-set reach stays readable, everything else goes, and a kill at any moment leaves a store that verifies.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brr_hash::{
    Artifact, ArtifactHash, BuildKey, Config, Digest, EntryKind, ObjectKind, Release, ServiceManifest, Tree, TreeEntry,
    TreeHash,
};
use brr_store::{ActionRecord, BuildRow, ExclusiveStore, Put, Store, SweepStep};

use crate::support::{TestResult, big, clobber_packed};

/// What one fake build put.
struct Built {
    artifact: ArtifactHash,
    tree: Digest,
    blobs: Vec<Digest>,
    log: Digest,
    key: BuildKey,
}

impl Built {
    fn objects(&self) -> Vec<Digest> {
        let mut all = self.blobs.clone();
        all.extend([self.tree, self.artifact.0, self.log]);
        all
    }
}

/// Puts a build's outputs (a shared blob, its own blobs, a large one when
/// `large`), its artifact and log, and records its action and history.
fn build(store: &Store, tag: &str, large: bool) -> Result<Built, Box<dyn std::error::Error>> {
    let mut bodies = vec![b"shared by all builds".to_vec(), format!("{tag} one").into_bytes()];
    if large {
        bodies.push(big(tag.as_bytes()));
    }
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let hash = store.put_bytes(ObjectKind::Blob, body)?;
        blobs.push(hash);
        entries.push(TreeEntry { name: format!("f{i}"), kind: EntryKind::File, hash, size: body.len() as u64 });
    }
    let tree = store.put_object(&Tree { entries })?;
    let artifact =
        ArtifactHash(store.put_object(&Artifact { outputs: TreeHash(tree), manifest: ServiceManifest::default() })?);
    let log = store.put_bytes(ObjectKind::Blob, format!("log of {tag}").as_bytes())?;
    let key = BuildKey(Digest::of(format!("key {tag}").as_bytes()));
    store.record_action(&ActionRecord {
        key,
        artifact,
        log: Some(log),
        duration_ms: 1,
        created_at: 0,
        outputs: None,
    })?;
    store.record_build(&BuildRow {
        target: format!("//{tag}"),
        key,
        artifact: Some(artifact),
        status: "built".into(),
        log: Some(log),
        started_at: 0,
        duration_ms: 1,
    })?;
    Ok(Built { artifact, tree, blobs, log, key })
}

fn exclusive() -> Result<(tempfile::TempDir, ExclusiveStore), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_exclusive(&dir.path().join("store"))?;
    Ok((dir, store))
}

fn pack_files(store: &Store) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(store.root().join("packs"))? {
        total += e?.metadata()?.len();
    }
    Ok(total)
}

#[test]
fn collect_keeps_what_roots_reach_and_deletes_the_rest_with_the_rows_naming_it() -> TestResult {
    let (_dir, store) = exclusive()?;
    let kept = build(&store, "kept", true)?;
    let gone = build(&store, "gone", true)?;
    store.add_root("kept", kept.artifact.0, "test")?;
    let before = store.verify()?;
    let pack_bytes = pack_files(&store)?;

    let report = store.collect(&[])?;
    // The artifact, its tree, 3 blobs; the log is not reachable from it.
    assert_eq!(report.kept, 5, "{report:?}");
    assert_eq!(report.kept + report.deleted, before.objects);
    assert_eq!((report.actions, report.builds), (2, 2), "{report:?}");
    for d in [kept.artifact.0, kept.tree].into_iter().chain(kept.blobs.iter().copied()) {
        store.get(d)?;
    }
    let shared = kept.blobs[0];
    assert_eq!(gone.blobs[0], shared);
    for d in gone.objects().into_iter().filter(|d| *d != shared).chain([kept.log]) {
        assert!(!store.contains(d)?, "{d} is still recorded");
        assert!(!store.object_path(d).exists(), "the file of {d} is still there");
    }
    // Entries naming the log or the deleted artifact went with them.
    assert!(store.lookup_action(kept.key)?.is_none());
    assert!(store.lookup_action(gone.key)?.is_none());
    assert!(store.last_build("//gone")?.is_none());
    let after = store.verify()?;
    assert!(after.is_ok(), "{:?}", after.problems);
    assert_eq!((after.objects, after.orphans), (5, 0));
    assert!(pack_files(&store)? < pack_bytes, "packs were not compacted");
    assert_eq!(report.pack_bytes_after, pack_files(&store)?);
    Ok(())
}

#[test]
fn the_keep_set_and_the_ledger_keep_their_closures() -> TestResult {
    let (_dir, store) = exclusive()?;
    let released = build(&store, "released", false)?;
    let kept = build(&store, "kept", false)?;
    let gone = build(&store, "gone", false)?;
    let config = Config::default();
    store.put_object(&config)?;
    let release = Release { build: released.artifact, config: config.hash() };
    let release_hash = store.put_object(&release)?;
    rusqlite::Connection::open(store.db_path())?.execute(
        "INSERT INTO ledger (hash, env, service, version, release, action, status, actor, time_ms, build, config)
         VALUES (?1, 'prod', 'web', 1, ?2, 'release', 'succeeded', 'test', 0, ?3, ?4)",
        rusqlite::params![
            Digest::of(b"entry").as_bytes(),
            release_hash.as_bytes(),
            released.artifact.0.as_bytes(),
            config.hash().0.as_bytes()
        ],
    )?;
    let report = store.collect(&[kept.artifact.0, kept.key.0, Digest::of(b"not in the store")])?;
    for d in [release_hash, config.hash().0, released.artifact.0, released.tree, kept.artifact.0, kept.tree] {
        store.get(d)?;
    }
    assert!(!store.contains(gone.artifact.0)? && !store.contains(gone.blobs[1])?);
    assert!(report.deleted > 0);
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn compaction_moves_live_bytes_out_of_packs_with_dead_ones_and_removes_leftovers() -> TestResult {
    let (dir, store) = exclusive()?;
    let root = store.root().to_path_buf();
    let a = store.put_bytes(ObjectKind::Blob, b"first object")?;
    let b = store.put_bytes(ObjectKind::Blob, b"second object")?;
    // A damaged copy replaced by a put leaves dead bytes in the pack.
    assert_eq!(clobber_packed(&store, a, b"XXXXX")?, 1);
    store.put_bytes(ObjectKind::Blob, b"first object")?;
    drop(store);
    // Leftovers of killed processes: a large file placed and never
    // recorded, an unregistered pack, a temp file.
    {
        let other = Store::open(&root)?;
        let src = dir.path().join("big");
        std::fs::write(&src, big(b"orphan"))?;
        other.place_many(&[Put::File { path: &src, hash: Digest::of(&big(b"orphan")) }])?;
    }
    std::fs::write(root.join("packs").join("1-1.pack"), b"left by a killed sweep")?;
    std::fs::write(root.join("tmp").join("obj-1-1"), b"left by a killed put")?;

    let store = Store::open_exclusive(&root)?;
    assert_eq!(store.verify()?.orphans, 1);
    let report = store.compact()?;
    assert_eq!(report.deleted, 0);
    assert_eq!((report.moved, report.moved_bytes), (2, 25), "{report:?}");
    assert_eq!((report.files, report.temp_files), (1, 1), "{report:?}");
    assert_eq!(store.get(a)?, b"first object");
    assert_eq!(store.get(b)?, b"second object");
    assert_eq!(pack_files(&store)?, 25);
    let after = store.verify()?;
    assert!(after.is_ok() && after.orphans == 0, "{after:?}");
    assert!(!root.join("packs").join("1-1.pack").exists() && !root.join("tmp").join("obj-1-1").exists());
    // Nothing left to do the second time.
    let again = store.compact()?;
    assert_eq!((again.moved, again.files, again.packs_after), (0, 0, 1), "{again:?}");
    Ok(())
}

#[test]
fn a_sweep_keeps_the_pack_this_process_appends_to() -> TestResult {
    let (_dir, store) = exclusive()?;
    let rooted = store.put_bytes(ObjectKind::Blob, b"rooted")?;
    store.put_bytes(ObjectKind::Blob, b"dead")?;
    store.add_root("r", rooted, "")?;
    // A batch placed before the sweep and recorded after it.
    let batch = store.place_batch(&[Put::Bytes { kind: ObjectKind::Blob, bytes: b"placed" }])?;
    store.collect(&[])?;
    assert!(store.commit(&[(batch, None)])?.into_iter().all(|r| r.is_ok()));
    assert_eq!(store.get(Digest::of(b"placed"))?, b"placed");
    assert_eq!(store.get(rooted)?, b"rooted");
    assert!(store.verify()?.is_ok());
    Ok(())
}

/// Set (to a store folder) only in the child process the crash test spawns.
const CHILD_ENV: &str = "BRR_STORE_SWEEP_CHILD";
const READY: &str = "brr-store-sweep-child-ready";
const ROUND: &str = "brr-store-sweep-round";
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// The child: rounds of opening the store exclusive, building, moving
/// roots and collecting, until killed.
fn child_sweeper(root: &Path) -> TestResult {
    let pid = std::process::id();
    let start = Instant::now();
    let mut stdout = std::io::stdout();
    for i in 0_u32.. {
        let store = Store::open_exclusive(root)?;
        let built = build(&store, &format!("{pid} {i}"), i % 3 == 0)?;
        store.add_root(&format!("{pid} {i}"), built.artifact.0, "crash test")?;
        if let Some(old) = i.checked_sub(2) {
            store.remove_root(&format!("{pid} {old}"))?;
        }
        store.collect(&[])?;
        drop(store);
        writeln!(stdout, "{}", if i == 3 { READY } else { ROUND })?;
        stdout.flush()?;
        if start.elapsed() > CHILD_LIMIT {
            break;
        }
    }
    Ok(())
}

#[test]
fn sigkill_mid_sweep_leaves_a_store_that_verifies() -> TestResult {
    if let Some(root) = std::env::var_os(CHILD_ENV) {
        return child_sweeper(Path::new(&root));
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--exact", "sweep::sigkill_mid_sweep_leaves_a_store_that_verifies", "--nocapture"])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let ready = lines.by_ref().any(|l| l.contains(READY));
        // A different number of rounds each time, so the kill lands elsewhere.
        let more = lines.by_ref().take(round).count();
        child.kill()?;
        let status = child.wait()?;
        assert!(ready && more == round, "round {round}: the child stopped early: {status}");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: the child ended by itself: {status}");

        let store = Store::open(&root)?;
        let report = store.verify()?;
        assert!(report.is_ok(), "round {round}: {:?}", report.problems);
        let roots = store.roots()?;
        assert!(roots.len() >= 2, "round {round}: {} roots", roots.len());
        for r in &roots {
            store.closure(ArtifactHash(r.hash), None)?;
        }
        drop(store);
        // A sweep of its own cleans up after the killed one.
        let store = Store::open_exclusive(&root)?;
        store.collect(&[])?;
        let report = store.verify()?;
        assert!(report.is_ok() && report.orphans == 0, "round {round}: {report:?}");
        let reachable: HashSet<Digest> = roots
            .iter()
            .flat_map(|r| {
                let tree = store.get_object::<Artifact>(r.hash).map(|a| a.outputs.0);
                [Ok(r.hash), tree]
            })
            .collect::<Result<_, _>>()?;
        assert!(report.objects >= reachable.len() as u64);
        assert!(report.objects <= 5 * roots.len() as u64, "round {round}: {} objects kept", report.objects);
    }
    Ok(())
}

#[test]
fn a_damaged_live_object_stops_a_sweep_before_it_changes_anything() -> TestResult {
    let (_dir, store) = exclusive()?;
    let live = store.put_bytes(ObjectKind::Blob, b"live and damaged")?;
    let dead = store.put_bytes(ObjectKind::Blob, b"dead")?;
    store.add_root("live", live, "")?;
    assert_eq!(clobber_packed(&store, live, b"XXXX")?, 1);
    let packs = std::fs::read_dir(store.root().join("packs"))?.count();
    let err = store.collect(&[]).err().ok_or("collected a damaged store")?;
    assert!(matches!(err, brr_store::StoreError::Corrupt { hash, .. } if hash == live), "{err}");
    assert!(store.contains(dead)?);
    assert_eq!(std::fs::read_dir(store.root().join("packs"))?.count(), packs);
    assert_eq!(store.verify()?.problems.len(), 1);
    Ok(())
}

/// Set (to `<store folder>|<step>`) only in the child of the test below.
const STOP_ENV: &str = "BRR_STORE_SWEEP_STOP";
const STEPS: [SweepStep; 5] = [
    SweepStep::Planned,
    SweepStep::PacksWritten,
    SweepStep::RowsChanged,
    SweepStep::Committed,
    SweepStep::PacksRemoved,
];

/// The child: collects, and kills itself with SIGKILL at step `stop`.
fn child_stopping_at(spec: &str) -> TestResult {
    let (root, index) = spec.rsplit_once('|').ok_or("bad spec")?;
    let stop = STEPS[index.parse::<usize>()?];
    let store = Store::open_exclusive(Path::new(root))?;
    store.collect_with(&[], &mut |s| {
        if s == stop {
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        }
    })?;
    Err("the sweep went past the step it should have died at".into())
}

#[test]
fn a_sweep_killed_at_each_step_leaves_a_store_that_verifies() -> TestResult {
    if let Some(spec) = std::env::var_os(STOP_ENV) {
        return child_stopping_at(&spec.to_string_lossy());
    }
    for (i, step) in STEPS.iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("store");
        let (kept, gone, objects) = {
            let store = Store::open(&root)?;
            let kept = build(&store, "kept", true)?;
            let gone = build(&store, "gone", true)?;
            store.add_root("kept", kept.artifact.0, "")?;
            (kept, gone, store.verify()?.objects)
        };
        let status = Command::new(std::env::current_exe()?)
            .args(["--exact", "sweep::a_sweep_killed_at_each_step_leaves_a_store_that_verifies"])
            .env(STOP_ENV, format!("{}|{i}", root.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{step:?}: the child was not killed there: {status}");

        let store = Store::open(&root)?;
        let report = store.verify()?;
        assert!(report.is_ok(), "killed at {step:?}: {:?}", report.problems);
        let committed = i >= 3;
        assert_eq!(
            report.objects == objects,
            !committed,
            "killed at {step:?}: {} objects of {objects}",
            report.objects
        );
        assert_eq!(store.contains(gone.blobs[2])?, !committed, "killed at {step:?}");
        store.closure(kept.artifact, None)?;
        drop(store);
        let store = Store::open_exclusive(&root)?;
        store.collect(&[])?;
        let report = store.verify()?;
        assert!(report.is_ok() && report.orphans == 0, "after {step:?}: {report:?}");
        assert_eq!(std::fs::read_dir(root.join("packs"))?.count(), 1, "after {step:?}");
        assert!(!store.object_path(gone.blobs[2]).exists(), "after {step:?}");
        store.closure(kept.artifact, None)?;
    }
    Ok(())
}
