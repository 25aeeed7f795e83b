//! A CI fleet sharing one cache: an entry that lost an object on the server,
//! or whose signature was damaged, is reported broken by `cache status` and
//! healed by the next runner that builds it, after which every runner gets
//! hits again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use brr_remote::entry::SignedEntry;
use brr_test_support::{BuildGridServer, NginxCache, Run, TestWorkspace};

use super::{Key, build, cache, files, key};
use crate::shop;

/// How the server's copy is damaged.
#[derive(Clone, Copy)]
enum Damage {
    /// One blob only libshop's entry names is deleted.
    DeleteObject,
    /// One byte of libshop's entry signature is flipped.
    FlipSignature,
}

/// Where a server keeps its files.
#[derive(Clone, Copy)]
enum Layout {
    /// nginx and `file://`: `ac/<id>`, `cas/<sha256>`.
    Http,
    /// BuildGrid's disk storage: `cas/objects/<2 hex>/<62 hex>`, entries among
    /// the blobs (brr keeps an entry's bytes in the CAS).
    BuildGrid,
}

impl Layout {
    fn entries(self, root: &Path) -> Vec<(PathBuf, SignedEntry)> {
        match self {
            Self::Http => files(&root.join("ac"))
                .into_iter()
                .map(|f| {
                    let e = SignedEntry::decode(&std::fs::read(&f).unwrap()).unwrap();
                    (f, e)
                })
                .collect(),
            Self::BuildGrid => files(root)
                .into_iter()
                .filter_map(|f| SignedEntry::decode(&std::fs::read(&f).ok()?).ok().map(|e| (f, e)))
                .collect(),
        }
    }

    fn blob(self, root: &Path, sha256: &str) -> PathBuf {
        match self {
            Self::Http => root.join("cas").join(sha256),
            Self::BuildGrid => root.join("cas/objects").join(&sha256[..2]).join(&sha256[2..]),
        }
    }
}

/// libshop's entry file on the server, and the blobs the other entries name.
fn libshop_entry(layout: Layout, root: &Path, lib_key: &str) -> (PathBuf, SignedEntry, HashSet<String>) {
    let mut lib = None;
    let mut others = HashSet::new();
    for (f, entry) in layout.entries(root) {
        if entry.body.key.0.to_string() == lib_key {
            lib = Some((f, entry));
        } else {
            others.extend(entry.body.objects.iter().map(|o| o.id.sha256_hex()));
            others.extend(entry.body.log.map(|l| l.sha256_hex()));
        }
    }
    let (file, entry) = lib.expect("no entry for libshop on the server");
    (file, entry, others)
}

fn remote_cache(run: &Run) -> serde_json::Value {
    run.json()["remote_cache"].clone()
}

/// Runner 1 pushes; the server's copy is damaged; runner 3 sees it broken;
/// runner 2 rebuilds that one target and heals it; runner 3 then gets 100% hits.
fn fleet_heals(url: &str, (layout, root): (Layout, &Path), damage: Damage, why: &str) {
    let (k1, k2) = (key("runner-1"), key("runner-2"));
    let trusted: [&Key; 2] = [&k1, &k2];
    let run1 = build(&shop(), url, Some(&k1), &trusted).success();
    assert_eq!(run1.count("built"), 3, "{}", run1.stderr);
    let lib_key = run1.targets()["libshop"].key.clone().unwrap();

    let (entry_file, entry, others) = libshop_entry(layout, root, &lib_key);
    match damage {
        Damage::DeleteObject => {
            let victim = entry.body.objects.iter().map(|o| o.id.sha256_hex()).find(|h| !others.contains(h)).unwrap();
            let path = layout.blob(root, &victim);
            std::fs::remove_file(&path).unwrap();
        }
        Damage::FlipSignature => {
            let mut bytes = std::fs::read(&entry_file).unwrap();
            *bytes.last_mut().unwrap() ^= 1;
            std::fs::write(&entry_file, bytes).unwrap();
        }
    }

    // Runner 3 asks first: present but broken, and why; exit 1.
    let r3 = shop();
    let status = cache(&r3, url, None, &trusted, &["status", "--json"]).code(1).json();
    let broken = status["remotes"][0]["broken"].as_array().unwrap().clone();
    assert_eq!(broken.len(), 1, "{status:#}");
    assert_eq!(broken[0]["target"], "libshop");
    assert!(broken[0]["reason"].as_str().unwrap().contains(why), "{status:#}");

    // Runner 2 rebuilds libshop only and heals the entry.
    let run2 = build(&shop(), url, Some(&k2), &trusted).success();
    let t2 = run2.targets();
    assert_eq!(t2["libshop"].status, "built", "{}", run2.stderr);
    assert_eq!(t2["libshop"].artifact, run1.targets()["libshop"].artifact, "shop is reproducible");
    for name in ["api", "billing"] {
        assert_eq!(t2[name].status, "cached", "{name}: {}", run2.stderr);
    }
    assert!(remote_cache(&run2)["healed"].as_u64() >= Some(1), "{}", run2.stdout);
    if let Damage::FlipSignature = damage {
        let (_, healed, _) = libshop_entry(layout, root, &lib_key);
        assert_eq!(healed.body.signer, "runner-2", "the broken entry was not replaced");
    }

    // Runner 3: every target from the cache, no builder.
    let status = cache(&r3, url, None, &trusted, &["status", "--json"]).success().json();
    assert_eq!(status["remotes"][0]["broken"].as_array().map(Vec::len), Some(0), "{status:#}");
    let run3 = build(&r3, url, None, &trusted).success();
    assert!(!run3.stderr.contains("building"), "runner 3 ran a builder:\n{}", run3.stderr);
    assert!(run3.targets().values().all(|t| t.status == "cached"), "{}", run3.stdout);
    let summary = remote_cache(&run3);
    assert_eq!((summary["hits"].as_u64(), summary["misses"].as_u64()), (Some(3), Some(0)), "{summary:#}");
}

#[test]
fn nginx_fleet_heals_a_deleted_object() {
    let Some(nginx) = NginxCache::start() else { return };
    fleet_heals(&nginx.url(), (Layout::Http, &nginx.root()), Damage::DeleteObject, "lacks");
    // The blob is back on the server.
    assert!(!files(&nginx.root().join("cas")).is_empty());
}

#[test]
fn file_fleet_heals_a_flipped_signature() {
    let dir = brr_test_support::temp_dir();
    let url = format!("file://{}", dir.path().display());
    fleet_heals(&url, (Layout::Http, dir.path()), Damage::FlipSignature, "does not verify");
}

#[test]
fn file_fleet_heals_a_deleted_object() {
    let dir = brr_test_support::temp_dir();
    fleet_heals(&format!("file://{}", dir.path().display()), (Layout::Http, dir.path()), Damage::DeleteObject, "lacks");
}

#[test]
fn buildgrid_fleet_heals_a_deleted_object() {
    let Some(grid) = BuildGridServer::start() else { return };
    fleet_heals(&grid.url(), (Layout::BuildGrid, &grid.storage()), Damage::DeleteObject, "lacks");
}

/// `cache push` heals too: a runner that built earlier pushes explicitly.
#[test]
fn cache_push_reuploads_what_the_remote_lost() {
    let dir = brr_test_support::temp_dir();
    let url = format!("file://{}", dir.path().display());
    let k1 = key("runner-1");
    let ws: TestWorkspace = shop();
    build(&ws, &url, Some(&k1), &[&k1]).success();
    let blobs = files(&dir.path().join("cas"));
    for f in &blobs {
        std::fs::remove_file(f).unwrap();
    }
    cache(&ws, &url, None, &[&k1], &["status"]).code(1);
    let pushed = cache(&ws, &url, Some(&k1), &[&k1], &["push", "--json"]).success().json();
    assert_eq!(pushed["healed"].as_u64(), Some(3), "{pushed:#}");
    assert_eq!(files(&dir.path().join("cas")).len(), blobs.len(), "not every blob was uploaded again");
    cache(&ws, &url, None, &[&k1], &["status"]).success();
}

/// BuildGrid keeps its action cache in Redis (`scripts/buildgrid/config.yml.in`),
/// so a restart of BuildGrid loses no entry: runner 1 pushes, BuildGrid
/// restarts, and runner 2, with an empty store, gets every target from the
/// cache and runs no builder. (With the in-memory `!lru-action-cache` runner 2
/// missed everything and rebuilt.)
#[test]
fn buildgrid_keeps_entries_across_a_restart() {
    let Some(mut grid) = BuildGridServer::start() else { return };
    let (k1, k2) = (key("runner-1"), key("runner-2"));
    let trusted: [&Key; 2] = [&k1, &k2];
    let run1 = build(&shop(), &grid.url(), Some(&k1), &trusted).success();
    assert_eq!(run1.count("built"), 3, "{}", run1.stderr);
    assert!(run1.stderr.contains("3 pushed"), "{}", run1.stderr);

    let url = grid.url();
    grid.restart();
    assert_eq!(grid.url(), url, "BuildGrid moved to another port");

    let run2 = build(&shop(), &url, Some(&k2), &trusted).success();
    let log = || format!("{}\nBuildGrid:\n{}\nRedis:\n{}", run2.stderr, grid.log(), grid.redis_log());
    assert!(!run2.stderr.contains("building"), "runner 2 ran a builder:\n{}", log());
    let (t1, t2) = (run1.targets(), run2.targets());
    for (name, t) in &t2 {
        assert_eq!(t.status, "cached", "{name}: {}", log());
        assert_eq!(t.artifact, t1[name].artifact, "{name}");
    }
    let summary = remote_cache(&run2);
    assert_eq!((summary["hits"].as_u64(), summary["misses"].as_u64()), (Some(3), Some(0)), "{summary:#}\n{}", log());
}

/// Without `redis-server`, the BuildGrid tests fail, naming Redis and the
/// install script; with the opt-out they are skipped with a note.
#[test]
fn a_missing_redis_fails_the_buildgrid_tests() {
    use brr_test_support::ALLOW_SKIP_ENV;
    let test = "remote::fleet::buildgrid_keeps_entries_across_a_restart";
    let missing = "/nonexistent/redis-server";
    let run = |allow_skip: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("BRR_TEST_REDIS", missing)
            .env_remove(ALLOW_SKIP_ENV);
        if allow_skip {
            cmd.env(ALLOW_SKIP_ENV, "1");
        }
        let out = cmd.output().unwrap();
        let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(output.contains("running 1 test"), "`{test}` did not run:\n{output}");
        (out.status.success(), output)
    };
    let (passed, output) = run(false);
    assert!(!passed, "`{test}` passed without Redis:\n{output}");
    for needle in ["Redis", "is unavailable", "scripts/test-deps.sh", missing, ALLOW_SKIP_ENV] {
        assert!(output.contains(needle), "the failure does not mention `{needle}`:\n{output}");
    }
    let (passed, output) = run(true);
    assert!(passed, "`{test}` failed with {ALLOW_SKIP_ENV}=1:\n{output}");
    assert!(output.contains(&format!("note: skipped ({ALLOW_SKIP_ENV}=1): Redis")), "no skip note:\n{output}");
}
