//! Retention: `brr gc` with `--keep-last`, pins, `--dry-run`, a store in
//! use, and `kill -9`, on real stores and releases.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use brr_test_support::{TestWorkspace, ron_str};

use crate::BRR;
use crate::run::ENVIRONMENTS;

/// A service `app` whose build writes 300 KB that differ by `version`.
fn set_app(ws: &TestWorkspace, version: u32) {
    let builder = format!("yes v{version} | head -c 300000 > \"$OUT/f\"");
    ws.write(
        "p/app/brr.ron",
        &format!(
            "Service(\n    name: \"app\",\n    tools: [\"sh\", \"yes\", \"head\"],\n    builder: [\"sh\", \"-c\", {}],\n    \
             outputs: [\"f\"],\n    processes: {{\"web\": Process(command: [\"sh\", \"-c\", \"exec sleep 600\"])}},\n)\n",
            ron_str(&builder)
        ),
    );
}

/// A release of `app` on staging: (release, build).
struct Released {
    release: String,
    build: String,
}

/// A workspace with `n` releases of `app` on staging, each of another build.
fn released(n: u32) -> (TestWorkspace, Vec<Released>) {
    let ws = TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("environments.ron", ENVIRONMENTS);
    let mut out = Vec::new();
    for v in 1..=n {
        set_app(&ws, v);
        let doc = ws.brr(["release", "--env", "staging", "--json"]).success().json();
        let r = &doc["releases"][0];
        assert_eq!(r["status"], "succeeded", "{doc}");
        out.push(Released {
            release: r["release"].as_str().unwrap().to_owned(),
            build: r["build"].as_str().unwrap().to_owned(),
        });
    }
    (ws, out)
}

fn recorded(ws: &TestWorkspace, hash: &str) -> bool {
    let db = rusqlite::Connection::open(ws.store().join("brr.db")).unwrap();
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap()).collect();
    db.query_row("SELECT count(*) FROM objects WHERE hash = ?1", [bytes], |r| r.get::<_, i64>(0)).unwrap() == 1
}

/// Every file under `dir` (relative path → size), `lock` and the
/// database's own files left out.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if !(rel == "lock" || rel.starts_with("brr.db")) {
                    out.insert(rel, m.len());
                }
            }
        }
    }
    out
}

fn du(dir: &Path) -> u64 {
    files(dir).values().sum()
}

fn verifies(ws: &TestWorkspace) {
    ws.brr(["store", "verify"]).success();
    ws.brr(["ledger", "verify"]).success();
}

/// The must-show: ten releases, `gc --keep-last 3` keeps the current one
/// and the three before it whole, the older builds go, disk usage drops by
/// what gc printed, and both verifications pass. A pinned old release
/// survives until unpinned; `--dry-run` changes nothing.
#[test]
fn gc_keeps_the_last_releases_and_pins_and_frees_the_rest() {
    let (ws, rel) = released(10);
    let store = ws.store();
    ws.brr(["pin", &rel[1].release]).success();

    let before = files(&store);
    let planned = ws.brr(["gc", "--keep-last", "3", "--dry-run", "--json"]).success().json();
    assert_eq!(files(&store), before, "a dry run changed the store");
    assert_eq!(planned["dry_run"], true);

    let doc = ws.brr(["gc", "--keep-last", "3", "--json"]).success().json();
    assert_eq!(doc["freed"], planned["freed"], "the dry run planned otherwise: {planned} vs {doc}");
    let freed = doc["freed_bytes"].as_u64().unwrap() + doc["release_dir_bytes_removed"].as_u64().unwrap();
    assert!(doc["freed_bytes"].as_u64().unwrap() >= 5 * 300_000, "{doc}");
    let after = du(&store);
    let dropped = du_of(&before) - after;
    assert!(dropped + 100_000 >= freed && dropped <= freed + 100_000, "du dropped {dropped}, gc said {freed}: {doc}");

    for (i, r) in rel.iter().enumerate() {
        assert!(recorded(&ws, &r.release), "release v{} lost its release object", i + 1);
        let kept = i >= 6 || i == 1;
        assert_eq!(recorded(&ws, &r.build), kept, "build of v{}", i + 1);
    }
    verifies(&ws);
    // The kept releases are whole: they diff, and a rollback to one works.
    ws.brr(["diff", &rel[6].release, &rel[9].release]).success();
    let refused = ws.brr(["rollback", "--env", "staging", "app", "--to", "v3"]).code(2);
    assert!(refused.stderr.contains("no longer whole"), "{}", refused.stderr);
    ws.brr(["rollback", "--env", "staging", "app", "--to", "v8"]).success();

    // Unpinned, v2's build goes at the next gc.
    ws.brr(["unpin", &rel[1].release]).success();
    ws.brr(["gc", "--keep-last", "3"]).success();
    assert!(!recorded(&ws, &rel[1].build), "an unpinned release kept its build");
    assert!(recorded(&ws, &rel[9].build));
    verifies(&ws);
}

fn du_of(files: &BTreeMap<String, u64>) -> u64 {
    files.values().sum()
}

/// While another process has the store open, gc refuses (exit 1, naming
/// that the store is in use) and changes nothing; with `--wait` it runs
/// once the store is closed.
#[test]
fn gc_refuses_a_store_in_use_or_waits() {
    let (ws, _) = released(2);
    let store = ws.store();
    let lock = File::options().read(true).write(true).open(store.join("lock")).unwrap();
    lock.lock_shared().unwrap();
    let before = files(&store);
    let refused = ws.brr(["gc", "--keep-last", "0"]).code(1);
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);
    assert_eq!(files(&store), before);

    let mut waiting = ws.command().args(["gc", "--keep-last", "0", "--wait"]).stdout(Stdio::null()).spawn().unwrap();
    assert!(waiting.try_wait().unwrap().is_none());
    lock.unlock().unwrap();
    assert!(waiting.wait().unwrap().success());
    assert!(du(&store) < du_of(&before));
    verifies(&ws);
}

/// `kill -9` of gc while it holds the store leaves a store that verifies,
/// and the next gc finishes the job.
#[test]
fn gc_killed_leaves_a_sound_store() {
    let (ws, rel) = released(4);
    let store = ws.store();
    let mut gc =
        ws.command().args(["gc", "--keep-last", "0"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until gc holds the store exclusive (or has ended), then kill it.
    let probe = File::options().read(true).write(true).open(store.join("lock")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe.try_lock_shared() {
            Err(TryLockError::WouldBlock) => break,
            Ok(()) => probe.unlock().unwrap(),
            Err(TryLockError::Error(e)) => panic!("{e}"),
        }
        if gc.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::yield_now();
    }
    let _ = gc.kill();
    let _ = gc.wait();
    drop(probe);
    verifies(&ws);
    ws.brr(["gc", "--keep-last", "0"]).success();
    assert!(!recorded(&ws, &rel[0].build));
    assert!(recorded(&ws, &rel[3].build));
    verifies(&ws);
}

/// The objects a store records (0 when it has none).
fn object_count(ws: &TestWorkspace) -> i64 {
    let db = rusqlite::Connection::open(ws.store().join("brr.db")).unwrap();
    db.query_row("SELECT count(*) FROM objects", [], |r| r.get(0)).unwrap()
}

/// Export on one store, import into an empty one elsewhere: the same
/// release hash, and `brr run` of it starts its process. A truncated or
/// corrupted archive is refused and imports nothing.
#[test]
fn export_then_import_elsewhere_runs_and_bad_archives_import_nothing() {
    let (ws, rel) = released(2);
    // `store stats` sees both builds' blobs, and `app` as the largest target.
    let stats = ws.brr(["store", "stats", "--json"]).success().json();
    let blob = stats["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "blob").unwrap().clone();
    assert!(blob["bytes"].as_u64().unwrap() >= 600_000, "{stats}");
    assert_eq!(stats["largest_targets"][0]["target"], "app", "{stats}");
    assert!(stats["largest_targets"][0]["bytes"].as_u64().unwrap() >= 300_000, "{stats}");
    let archive = ws.path().join("app.brrx");
    let archive_arg = archive.to_str().unwrap();
    let doc = ws.brr(["export", &rel[1].release, "-o", archive_arg, "--json"]).success().json();
    assert_eq!(doc["root"], rel[1].release.as_str());
    assert_eq!(doc["kind"], "release");
    let good = std::fs::read(&archive).unwrap();

    let there = TestWorkspace::new(BRR).file("brr.ron", "Workspace(packages: [])\n");
    let bad = there.path().join("bad.brrx");
    let bad_arg = bad.to_str().unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("trailer cut", good[..good.len() - 1].to_vec()),
        ("corrupted", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            b
        }),
        ("not an archive", b"hello".to_vec()),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        let refused = there.brr(["import", bad_arg]).code(2);
        assert!(refused.stderr.contains("not a valid brr archive"), "{what}: {}", refused.stderr);
        assert_eq!(object_count(&there), 0, "{what}: a bad archive imported objects");
    }

    let imported = there.brr(["import", archive_arg, "--json"]).success().json();
    assert_eq!(imported["root"], rel[1].release.as_str());
    assert_eq!(imported["new_objects"], imported["objects"]);
    there.brr(["store", "verify"]).success();
    assert!(recorded(&there, &rel[1].build));

    let mut child = crate::run::spawn(&there, &["run", &rel[1].release], &[]);
    crate::run::wait_ps(&there, "web to run", |list| crate::run::state_of(list, "web") == Some("running"));
    crate::run::terminate(&mut child);
}

/// `--max-size` keeps unrooted builds too, most recently built first,
/// while the store's objects fit: room for one more build keeps v3's only.
#[test]
fn max_size_keeps_the_newest_unrooted_builds_that_fit() {
    let (ws, rel) = released(4);
    let base = ws.brr(["gc", "--keep-last", "0", "--dry-run", "--json"]).success().json();
    let room = base["kept_bytes"].as_u64().unwrap() + 450_000;
    let doc = ws.brr(["gc", "--keep-last", "0", "--max-size", &room.to_string(), "--json"]).success().json();
    assert!(doc["kept_bytes"].as_u64().unwrap() <= room, "{doc}");
    let kept: Vec<bool> = rel.iter().map(|r| recorded(&ws, &r.build)).collect();
    assert_eq!(kept, [false, false, true, true], "{doc}");
    verifies(&ws);
}

/// A build kept by an `--out-link` stays, however old.
#[test]
fn gc_keeps_what_an_out_link_points_at() {
    let (ws, builds) = released(4);
    set_app(&ws, 1);
    let link = ws.path().join("result");
    let mut cmd = ws.command();
    cmd.current_dir(ws.path()).args(["build", "--out-link", "result", "app"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    set_app(&ws, 4);
    ws.brr(["build"]).success();
    ws.brr(["gc", "--keep-last", "1"]).success();
    assert!(recorded(&ws, &builds[0].build), "the out-linked build was collected");
    assert!(!recorded(&ws, &builds[1].build), "an old build no root reaches stayed");
    assert_eq!(std::fs::read(link.join("f")).unwrap().len(), 300_000);
    ws.brr(["store", "verify"]).success();
}

/// gc in a loop while another process releases new builds: no release
/// fails, some collections happen between them, and the store verifies.
/// (A gc that finds the store in use is refused, exit 1, and tries again.)
#[test]
fn gc_in_a_loop_beside_releases_never_breaks_them() {
    let (ws, _) = released(1);
    let until = Instant::now() + Duration::from_secs(12);
    let releaser = {
        let path = ws.path().to_path_buf();
        let bin = BRR.to_owned();
        std::thread::spawn(move || {
            let mut done = 0;
            for v in 2.. {
                if Instant::now() > until {
                    break;
                }
                let builder = format!("yes v{v} | head -c 300000 > \"$OUT/f\"");
                let decl = format!(
                    "Service(\n    name: \"app\",\n    tools: [\"sh\", \"yes\", \"head\"],\n    builder: [\"sh\", \"-c\", {}],\n    \
                     outputs: [\"f\"],\n    processes: {{\"web\": Process(command: [\"sh\", \"-c\", \"exec sleep 600\"])}},\n)\n",
                    ron_str(&builder)
                );
                // Renamed into place: gc reads the declarations meanwhile.
                std::fs::write(path.join("p/app/brr.ron.new"), decl).unwrap();
                std::fs::rename(path.join("p/app/brr.ron.new"), path.join("p/app/brr.ron")).unwrap();
                let out = std::process::Command::new(&bin)
                    .arg("-C")
                    .arg(&path)
                    .args(["release", "--env", "staging"])
                    .env_remove("BRR_STORE")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "release v{v} failed beside gc:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                done += 1;
            }
            done
        })
    };
    let (mut collected, mut refused) = (0, 0);
    while Instant::now() < until {
        let run = ws.brr(["gc", "--keep-last", "1"]);
        match run.code {
            Some(0) => collected += 1,
            Some(1) if run.stderr.contains("in use") => refused += 1,
            other => panic!("gc exited with {other:?}:\n{}", run.stderr),
        }
    }
    let release_count = releaser.join().unwrap();
    assert!(release_count >= 3, "only {release_count} releases in the window");
    assert!(collected >= 1, "no gc ran between the releases ({refused} refused)");
    verifies(&ws);
    ws.brr(["gc", "--keep-last", "1"]).success();
    verifies(&ws);
}

/// After gc, the workspace's latest builds are still cache hits, also when
/// the latest use of a target was itself a cache hit (its history row
/// names no log; the action entry does).
#[test]
fn gc_keeps_the_latest_builds_cached() {
    let (ws, _) = released(2);
    ws.brr(["build"]).success();
    ws.brr(["gc", "--keep-last", "0"]).success();
    let again = ws.brr(["build", "--json"]).success();
    assert_eq!(again.targets()["app"].status, "cached", "gc dropped the action cache entry: {}", again.stdout);
    verifies(&ws);
}
