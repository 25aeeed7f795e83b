//! A damaged store: found by `store verify`, named when a build reads it,
//! repaired by `store verify --repair` or by a build writing it again.

use brr_test_support::TestWorkspace;

use crate::{FileRemote, workspace};

/// `a` writes `hello`; `b` copies it from its dependency.
fn two_step() -> TestWorkspace {
    workspace().sh_lib("a", &[], &[], "echo hello > \"$OUT/f\"").sh_lib(
        "b",
        &["a"],
        &["cat"],
        "cat \"$DEPS/a/f\" > \"$OUT/f\"",
    )
}

fn db(ws: &TestWorkspace) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.store().join("brr.db")).unwrap()
}

/// Overwrites the first byte of packed object `hash` in `ws`'s store.
fn damage_packed(ws: &TestWorkspace, hash: brr_hash::Digest) {
    let (name, offset): (String, i64) = db(ws)
        .query_row(
            "SELECT p.name, o.pack_offset FROM objects o JOIN packs p ON p.id = o.pack WHERE o.hash = ?1",
            [hash.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let pack = std::fs::OpenOptions::new().write(true).open(ws.store().join("packs").join(name)).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&pack, b"J", u64::try_from(offset).unwrap()).unwrap();
}

fn artifacts(run: &brr_test_support::Run) -> Vec<(String, String)> {
    run.targets().into_iter().map(|(n, t)| (n, t.artifact.unwrap())).collect()
}

#[test]
fn damaged_action_cache_outputs_are_found_and_repaired_and_the_next_build_gives_the_same_artifacts() {
    let ws = two_step();
    let first = artifacts(&ws.brr(["build", "--json", "--no-sandbox"]).success());
    // Garbage where the output tree's hash was, in every entry.
    db(&ws).execute("UPDATE action_cache SET outputs = ?1", [[0x5a_u8; 32]]).unwrap();
    ws.brr(["build", "--no-sandbox"]).code(70);
    let verify = ws.brr(["store", "verify"]).code(1);
    assert!(verify.stdout.contains("action cache entry"), "{}", verify.stdout);
    assert!(verify.stderr.contains("hint: run `brr store verify --repair`"), "{}", verify.stderr);

    let repair = ws.brr(["store", "verify", "--repair", "--json"]).success();
    let doc = repair.json();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["repaired"]["action_cache"], 2, "{doc}");
    assert_eq!(doc["repaired"]["objects"], 0, "{doc}");
    ws.brr(["store", "verify"]).success();
    let again = ws.brr(["build", "--json", "--no-sandbox"]).success();
    assert_eq!(again.count("built"), 2, "{}", again.stdout);
    assert_eq!(artifacts(&again), first);
}

#[test]
fn a_corrupt_object_is_named_with_a_hint_and_rebuilding_it_replaces_the_bad_copy() {
    let ws = two_step();
    ws.brr(["build", "--no-sandbox"]).success();
    let hello = brr_hash::Digest::of(b"hello\n");
    damage_packed(&ws, hello);

    // `b` rebuilds, staging `a`'s output: the read names the object.
    ws.write(
        "p/b/brr.ron",
        &brr_test_support::sh_library("b", &["a"], &["cat"], "cat \"$DEPS/a/f\" > \"$OUT/f\"; true"),
    );
    let run = ws.brr(["build", "--no-sandbox"]).code(70);
    assert!(run.stderr.contains(&hello.to_hex()), "{}", run.stderr);
    assert!(run.stderr.contains("hint: run `brr store verify --repair`"), "{}", run.stderr);

    // `a` rebuilt (another command, the same output) writes the object again.
    ws.write("p/a/brr.ron", &brr_test_support::sh_library("a", &[], &[], "true; echo hello > \"$OUT/f\""));
    let run = ws.brr(["build", "--json", "--no-sandbox"]).success();
    assert_eq!(run.count("built"), 2, "{}", run.stdout);
    ws.brr(["store", "verify"]).success();
    ws.brr(["log", "b"]).success();
}

#[test]
fn a_stray_file_written_into_the_store_does_not_make_it_foreign() {
    let ws = workspace()
        // $DEPS/../../.. is the store (sandboxes pinned to its tmp/ below).
        .sh_lib("stray", &[], &[], "echo x > \"$DEPS/../../../escape\" && echo ok > \"$OUT/f\"");
    let sandboxes = ws.store().join("tmp");
    ws.brr_env("BRR_SANDBOX_DIR", &sandboxes, ["build", "--no-sandbox"]).success();
    assert!(ws.store().join("escape").exists(), "the builder did not write into the store: the test can fail");
    ws.brr(["build"]).success();
    ws.brr(["store", "verify"]).success();
}

#[test]
fn a_fetch_replaces_a_damaged_copy_of_an_object_it_brings() {
    let remote = FileRemote::new();
    // Runner A builds `a` and pushes it.
    let a = workspace().sh_lib("a", &[], &[], "echo hello > \"$OUT/f\"");
    remote.brr(&a, &["build", "--no-sandbox"]).success();

    // Runner B holds the same bytes from a build of its own, damaged.
    let b = workspace().sh_lib("other", &[], &[], "echo hello > \"$OUT/f\"");
    b.brr(["build", "--no-sandbox"]).success();
    let hello = brr_hash::Digest::of(b"hello\n");
    damage_packed(&b, hello);
    assert_eq!(b.brr(["store", "verify"]).code, Some(1), "the damage was not seen");

    // B pulls `a`: the damaged object is fetched again and replaced.
    b.write("p/a/brr.ron", &brr_test_support::sh_library("a", &[], &[], "echo hello > \"$OUT/f\""));
    let run = remote.brr(&b, &["build", "a", "--json", "--no-sandbox"]).success();
    assert_eq!(run.targets()["a"].status, "cached", "{}", run.stderr);
    b.brr(["store", "verify"]).success();
}
