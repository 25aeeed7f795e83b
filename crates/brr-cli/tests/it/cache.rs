//! Caching: a second build runs no builder, hashes do not depend on where the
//! workspace or the store is, and keys follow file contents (with early cutoff).

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use brr_test_support::{snapshot_diff, snapshot_files, temp_dir};

use crate::{is_hash, shop};

const SHOP_C: &str = "libs/libshop/src/shop.c";

/// Replaces `from` (which must occur) by `to` in a workspace file.
fn edit(ws: &brr_test_support::TestWorkspace, rel: &str, from: &str, to: &str) {
    let text = ws.read(rel);
    assert!(text.contains(from), "`{from}` not in {rel}");
    ws.write(rel, &text.replacen(from, to, 1));
}

#[test]
fn second_build_is_all_cached_and_runs_no_builder() {
    let ws = shop();
    let first = ws.brr(["build", "--json"]).success();
    assert_eq!(first.count("built"), 3, "{}", first.stdout);
    let cas_before = snapshot_files(&ws.store().join("cas"));

    let second = ws.brr(["build", "--json"]).success();
    let (before, after) = (first.targets(), second.targets());
    assert_eq!(after.keys().collect::<Vec<_>>(), ["api", "billing", "libshop"]);
    for (name, t) in &after {
        assert_eq!(t.status, "cached", "{name}: {}", second.stdout);
        assert!(t.key.as_deref().is_some_and(is_hash) && t.artifact.as_deref().is_some_and(is_hash), "{t:?}");
        assert_eq!((&t.key, &t.artifact), (&before[name].key, &before[name].artifact), "{name}");
    }
    assert_eq!(second.count("built"), 0);
    // The progress line `building X` is printed right before a builder starts.
    assert!(!second.stderr.contains("building"), "a builder ran:\n{}", second.stderr);
    assert!(second.stderr.contains("3 targets: 0 built, 3 cached"), "{}", second.stderr);
    // No new object (log, output) entered the CAS either.
    let cas_after = snapshot_files(&ws.store().join("cas"));
    assert_eq!(snapshot_diff(&cas_before, &cas_after), Vec::<String>::new());
    // A no-op build adds nothing to the history: the last build of each
    // target is still the one that ran its builder.
    let log = ws.brr(["log", "libshop"]).success();
    assert!(log.stderr.contains("log of `libshop` (built,"), "{}", log.stderr);
}

#[test]
fn builder_runs_once_over_two_builds() {
    // Unsandboxed, a builder can leave a trace outside the store: count its runs.
    let trace = temp_dir();
    let runs = trace.path().join("runs");
    let script = format!("echo run >> '{}'; echo x > \"$OUT/f\"", runs.display());
    let ws = crate::workspace().sh_lib("counted", &[], &[], &script);
    let first = ws.brr(["build", "--no-sandbox", "--json"]).success();
    assert_eq!(first.targets()["counted"].status, "built");
    let second = ws.brr(["build", "--no-sandbox", "--json"]).success();
    assert_eq!(second.targets()["counted"].status, "cached");
    assert_eq!(fs_err::read_to_string(&runs).unwrap_or_default(), "run\n", "the builder ran again");
}

#[test]
fn hashes_do_not_depend_on_the_workspace_folder_or_the_store() {
    let (a, b) = (shop(), shop());
    assert_ne!(a.path(), b.path());
    let store_b = temp_dir();
    let store_b = store_b.path().join("store");
    let run_a = a.brr(["build", "--json"]).success();
    let run_b = b.brr(["--store", &*store_b.to_string_lossy(), "build", "--json"]).success();
    assert!(store_b.join("brr.db").is_file() && !b.store().exists(), "`--store` was not used");
    let (ta, tb) = (run_a.targets(), run_b.targets());
    assert_eq!(ta.len(), 3);
    for (name, t) in &ta {
        assert_eq!(t.status, "built", "{name}");
        assert_eq!(tb[name].status, "built", "{name}: the second store was not empty");
        assert_eq!(t.key, tb[name].key, "key of {name}");
        assert_eq!(t.artifact, tb[name].artifact, "artifact of {name}");
    }
}

#[test]
fn touching_files_without_changing_them_rebuilds_nothing() {
    let ws = shop();
    let before = ws.brr(["build", "--json"]).success().targets();
    let files = [SHOP_C, "libs/libshop/include/shop.h", "services/api/src/main.c", "services/billing/src/billing.c"];
    for when in [SystemTime::now(), SystemTime::now() + Duration::from_secs(24 * 3600)] {
        for rel in files {
            let path = ws.path().join(rel);
            let old = fs_err::metadata(&path).unwrap().modified().unwrap();
            File::options().write(true).open(&path).unwrap().set_modified(when).unwrap();
            assert_ne!(fs_err::metadata(&path).unwrap().modified().unwrap(), old, "mtime of {rel} unchanged");
        }
        let run = ws.brr(["build", "--json"]).success();
        assert_eq!(run.targets(), before.iter().map(|(n, t)| (n.clone(), cached(t))).collect());
    }
}

fn cached(t: &brr_test_support::Target) -> brr_test_support::Target {
    brr_test_support::Target { status: "cached".into(), ..t.clone() }
}

#[test]
fn comment_edit_rebuilds_libshop_to_the_same_artifact_and_stops_there() {
    let ws = shop();
    let before = ws.brr(["build", "--json"]).success().targets();
    edit(&ws, SHOP_C, "floating point would make totals drift", "floats would make totals drift");
    let after = ws.brr(["build", "--json"]).success().targets();
    let lib = &after["libshop"];
    assert_eq!(lib.status, "built");
    assert_ne!(lib.key, before["libshop"].key, "the source changed, so the key must");
    assert_eq!(lib.artifact, before["libshop"].artifact, "a comment must not change libshop.a");
    for name in ["api", "billing"] {
        assert_eq!(after[name], cached(&before[name]), "{name} must be cut off");
    }
}

#[test]
fn code_edit_changes_libshop_and_rebuilds_the_services() {
    let ws = shop();
    let before = ws.brr(["build", "--json"]).success().targets();
    edit(&ws, SHOP_C, "Welcome to the shop", "Welcome to our shop");
    let after = ws.brr(["build", "--json"]).success().targets();
    assert_ne!(after["libshop"].artifact, before["libshop"].artifact);
    for (name, t) in &after {
        assert_eq!(t.status, "built", "{name}");
        assert_ne!(t.key, before[name].key, "key of {name}");
    }
}

#[test]
fn sandboxes_elsewhere_give_the_same_artifacts_and_leave_nothing() {
    let (a, b) = (shop(), shop());
    let here = a.brr(["build", "--json"]).success();
    // Another folder (on another file system where /dev/shm is one): inputs
    // are copied there instead of hard-linked.
    let base = if Path::new("/dev/shm").is_dir() { tempfile::tempdir_in("/dev/shm") } else { tempfile::tempdir() };
    let base = base.unwrap();
    let there = b.brr_env("BRR_SANDBOX_DIR", base.path(), ["build", "--json"]).success();
    for (name, t) in there.targets() {
        assert_eq!(t.artifact, here.targets()[&name].artifact, "{name}");
    }
    let left: Vec<_> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| Path::new(n).extension().is_none_or(|x| x != "lock"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "sandboxes left behind");
}
