//! An artifact's closure: every referenced object once, references first.

use std::collections::HashSet;

use brr_hash::fs::snapshot;
use brr_hash::{Artifact, ArtifactHash, Digest, Object, ObjectKind, ServiceManifest, Tree};

use crate::support::{TestResult, new_store, write_file};

#[test]
fn closure_holds_each_referenced_object_once_after_what_it_references() -> TestResult {
    let (dir, store) = new_store()?;
    let src = dir.path().join("src");
    // `same` twice (once per folder); folders `a` and `b` differ.
    write_file(&src, "a/x.txt", b"same", 0o644)?;
    write_file(&src, "a/y.txt", b"y", 0o644)?;
    write_file(&src, "b/x.txt", b"same", 0o644)?;
    write_file(&src, "top.txt", b"top", 0o644)?;
    let names = ["a", "b", "top.txt"].map(str::to_owned);
    let outputs = store.put_snapshot(&snapshot(&src, &names)?)?;
    let artifact = ArtifactHash(store.put_object(&Artifact { outputs, manifest: ServiceManifest::default() })?);
    let log = store.put_bytes(ObjectKind::Blob, b"the log")?;

    let closure = store.closure(artifact, Some(log))?;
    let kinds: Vec<ObjectKind> = closure.iter().map(|(k, _)| *k).collect();
    let digests: Vec<Digest> = closure.iter().map(|(_, b)| Digest::of(b)).collect();
    // Three blobs, three trees (a, b, the root), the artifact, the log.
    let mut expected = vec![ObjectKind::Blob; 3];
    expected.extend([ObjectKind::Tree; 3]);
    expected.extend([ObjectKind::Artifact, ObjectKind::Blob]);
    assert_eq!(kinds, expected);
    assert_eq!(digests.iter().collect::<HashSet<_>>().len(), digests.len(), "an object twice");
    let blobs: HashSet<Digest> = digests[..3].iter().copied().collect();
    assert_eq!(blobs, [b"same".as_slice(), b"y", b"top"].into_iter().map(Digest::of).collect());
    assert_eq!(digests[5], outputs.0, "the outputs tree is the last tree");
    assert_eq!(digests[6], artifact.0);
    assert_eq!(digests[7], log);
    // Every tree's entries come before it.
    for (at, (kind, bytes)) in closure.iter().enumerate() {
        if *kind == ObjectKind::Tree {
            for e in &Tree::decode(bytes)?.entries {
                assert!(digests[..at].contains(&e.hash), "`{}` after its tree", e.name);
            }
        }
    }
    // No log, no log object.
    assert_eq!(store.closure(artifact, None)?.len(), closure.len() - 1);
    Ok(())
}
