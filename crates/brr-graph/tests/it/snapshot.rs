//! The saved workspace load: reused only while nothing a load reads has
//! changed, and never different from a full load.

use std::path::Path;
use std::time::Duration;

use brr_graph::Workspace;
use brr_store::Clock;

use crate::{lib, write_all};

/// What a load decided, in a comparable form.
fn summary(ws: &Workspace) -> Vec<String> {
    ws.packages
        .iter()
        .map(|p| {
            let deps: Vec<&str> = p.deps.iter().map(|&d| ws.packages[d].name.as_str()).collect();
            let inputs: Vec<String> = p.inputs.iter().map(|(rel, abs)| format!("{rel}={}", abs.display())).collect();
            format!("{} {} {:?} deps={deps:?} inputs={inputs:?} text={}", p.name, p.dir, p.kind, p.source.text)
        })
        .collect()
}

/// Loads through the cache, a full load saved as of `clock`'s time, and
/// checks the result against a full load.
fn load_at(root: &Path, cache: &Path, clock: Clock) -> Workspace {
    let ws = Workspace::load_cached(root, cache, clock).unwrap();
    assert_eq!(summary(&ws), summary(&Workspace::load(root).unwrap()), "a cached load differs from a full one");
    ws
}

/// [`load_at`] a clock past the racy margin of every change made so far:
/// a save is trusted as if the margin had elapsed (no sleeping it out).
fn load(root: &Path, cache: &Path) -> Workspace {
    let settled = Duration::from_nanos(brr_store::RACY_MARGIN_NS.unsigned_abs()) + Duration::from_secs(1);
    load_at(root, cache, Clock::ahead(settled))
}

#[test]
fn a_saved_load_is_reused_until_a_listing_or_a_declaration_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (root, cache) = (dir.path().join("ws"), dir.path().join("cache"));
    write_all(
        &root,
        &[
            ("brr.ron", "Workspace(packages: [\"p/*\"])"),
            ("p/a/brr.ron", &lib("a", &[])),
            ("p/a/a.c", "int a;"),
            // `**`: its sources are in a subfolder.
            ("p/b/brr.ron", &lib("b", &["a"]).replace("\"*.c\"", "\"**/*.c\"")),
            ("p/b/src/b.c", "int b;"),
        ],
    );
    assert!(!load(&root, &cache).from_snapshot, "nothing saved yet");
    assert!(load(&root, &cache).from_snapshot, "nothing changed");

    // A new file deep in a package: only that folder's listing changes.
    write_all(&root, &[("p/b/src/new.c", "int n;")]);
    // Saved as of a time too close to the change to trust the save (a
    // clock behind the system's, so however slowly this test runs).
    let racy = Clock::behind(Duration::from_secs(60));
    let ws = load_at(&root, &cache, racy);
    assert!(!ws.from_snapshot);
    assert!(ws.get("b").unwrap().inputs.contains_key("p/b/src/new.c"));
    assert!(!load_at(&root, &cache, racy).from_snapshot, "a racily recent listing was trusted");
    // Saved as of a time past the margin: trusted.
    assert!(!load(&root, &cache).from_snapshot);
    assert!(load(&root, &cache).from_snapshot);

    // A declaration rewritten in place (no listing changes).
    std::fs::write(root.join("p/b/brr.ron"), lib("b", &[]).replace("\"*.c\"", "\"**/*.c\"")).unwrap();
    let ws = load(&root, &cache);
    assert!(!ws.from_snapshot);
    assert!(ws.get("b").unwrap().deps.is_empty());

    // A package removed, another added.
    std::fs::remove_dir_all(root.join("p/a")).unwrap();
    write_all(&root, &[("p/c/brr.ron", &lib("c", &["b"])), ("p/c/c.c", "int c;")]);
    let ws = load(&root, &cache);
    assert!(ws.get("a").is_none() && ws.get("c").is_some());
}

#[test]
fn a_damaged_or_foreign_save_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (root, cache) = (dir.path().join("ws"), dir.path().join("cache"));
    write_all(
        &root,
        &[("brr.ron", "Workspace(packages: [\"p/*\"])"), ("p/a/brr.ron", &lib("a", &[])), ("p/a/a.c", "x")],
    );
    load(&root, &cache);
    assert!(load(&root, &cache).from_snapshot);
    let saved: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(saved.len(), 1, "one file per workspace: {saved:?}");

    // One flipped byte: the checksum catches it and the load is a full one.
    let mut bytes = std::fs::read(&saved[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&saved[0], &bytes).unwrap();
    assert!(!load(&root, &cache).from_snapshot);
    assert!(load(&root, &cache).from_snapshot, "the full load saved a good copy again");

    // Truncated, or empty.
    for len in [bytes.len() / 3, 0] {
        std::fs::write(&saved[0], &bytes[..len]).unwrap();
        assert!(!load(&root, &cache).from_snapshot);
    }

    // Another workspace with the same cache folder gets its own file.
    let other = dir.path().join("other");
    write_all(
        &other,
        &[("brr.ron", "Workspace(packages: [\"q/*\"])"), ("q/z/brr.ron", &lib("z", &[])), ("q/z/z.c", "")],
    );
    let ws = load(&other, &cache);
    assert!(!ws.from_snapshot && ws.get("z").is_some());
    assert!(load(&root, &cache).get("a").is_some());
}

/// A file added to a folder only a `//` input glob reaches is seen by the
/// next load: that folder is stamped like the package folders.
#[test]
fn a_saved_load_sees_files_added_below_a_workspace_input() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let decl = crate::lib("p", &[]).replace("\"*.c\"", "\"//shared/*.c\"");
    crate::write_all(
        dir.path(),
        &[("brr.ron", "Workspace(packages: [\"p\"])"), ("p/brr.ron", &decl), ("shared/a.c", "")],
    );
    let first = load(dir.path(), cache.path());
    assert_eq!(first.get("p").unwrap().inputs.keys().collect::<Vec<_>>(), ["shared/a.c"]);
    crate::write_all(dir.path(), &[("shared/b.c", "")]);
    let second = load(dir.path(), cache.path());
    assert_eq!(second.get("p").unwrap().inputs.keys().collect::<Vec<_>>(), ["shared/a.c", "shared/b.c"]);
}
