//! Times deleting and compaction on a store the size of the benchmark's
//! 10,000-action monorepo (100,000 source files): `cargo run -p brr-store
//! --example sweep_bench -- [ACTIONS] [KEEP_PERCENT]`. Prints how long
//! writing the store took (as builds do: batches of 32 actions, one commit
//! each), then a `collect` keeping KEEP_PERCENT of the artifacts, then a
//! `compact` with nothing to do, and, for comparison, a layout with one
//! file per object, where deleting is one unlink per object.

use std::time::Instant;

use brr_hash::{
    ActionKey, Artifact, ArtifactHash, Digest, EntryKind, Object, ObjectKind, ServiceManifest, Tree, TreeEntry,
    TreeHash,
};
use brr_store::{ActionRecord, Put, Store};

const FILES_PER_ACTION: usize = 10;
const BATCH: usize = 32;

/// The bytes of source file `f` of action `a`: 500 to 4,500 bytes.
fn source(a: usize, f: usize) -> Vec<u8> {
    let len = 500 + (a * 7919 + f * 104_729) % 4000;
    format!("action {a} file {f} ").bytes().cycle().take(len).collect()
}

fn tree_of(entries: Vec<(String, Digest, u64)>) -> Tree {
    let mut entries: Vec<TreeEntry> =
        entries.into_iter().map(|(name, hash, size)| TreeEntry { name, kind: EntryKind::File, hash, size }).collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Tree { entries }
}

#[expect(clippy::too_many_lines, reason = "a benchmark script, read top to bottom")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let actions: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let keep_percent: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))?;
    let root = dir.path().join("store");

    let started = Instant::now();
    let mut artifacts = Vec::with_capacity(actions);
    {
        let store = Store::open(&root)?;
        for chunk in (0..actions).collect::<Vec<_>>().chunks(BATCH) {
            let mut batches = Vec::with_capacity(chunk.len());
            for &a in chunk {
                let sources: Vec<Vec<u8>> = (0..FILES_PER_ACTION).map(|f| source(a, f)).collect();
                let src_tree = tree_of(
                    sources.iter().enumerate().map(|(f, b)| (format!("s{f}"), Digest::of(b), b.len() as u64)).collect(),
                );
                let key = ActionKey {
                    system: "x86_64-linux".into(),
                    builder: vec!["cc".into(), format!("{a}")],
                    env: std::collections::BTreeMap::new(),
                    outputs: std::collections::BTreeSet::new(),
                    tools: std::collections::BTreeMap::new(),
                    host_inputs: std::collections::BTreeMap::new(),
                    cpu: None,
                    package_dir: format!("p{a}"),
                    sources: TreeHash(src_tree.hash().0),
                    deps: std::collections::BTreeMap::new(),
                };
                let output = format!("output of {a} ").repeat(100).into_bytes();
                let out_tree = tree_of(vec![("out".into(), Digest::of(&output), output.len() as u64)]);
                let artifact = Artifact { outputs: TreeHash(out_tree.hash().0), manifest: ServiceManifest::default() };
                let log = format!("log of {a}\n").into_bytes();
                let encoded = [src_tree.encode(), key.encode(), out_tree.encode(), artifact.encode()];
                let mut puts: Vec<Put<'_>> =
                    sources.iter().map(|b| Put::Bytes { kind: ObjectKind::Blob, bytes: b }).collect();
                puts.push(Put::Bytes { kind: ObjectKind::Tree, bytes: &encoded[0] });
                puts.push(Put::Bytes { kind: ObjectKind::Action, bytes: &encoded[1] });
                puts.push(Put::Bytes { kind: ObjectKind::Blob, bytes: &output });
                puts.push(Put::Bytes { kind: ObjectKind::Tree, bytes: &encoded[2] });
                puts.push(Put::Bytes { kind: ObjectKind::Artifact, bytes: &encoded[3] });
                puts.push(Put::Bytes { kind: ObjectKind::Blob, bytes: &log });
                let placed = store.place_batch(&puts)?;
                let art = ArtifactHash(artifact.hash().0);
                artifacts.push((art, key.key()));
                let rec = ActionRecord {
                    key: key.key(),
                    artifact: art,
                    log: Some(Digest::of(&log)),
                    duration_ms: 1,
                    created_at: 0,
                    outputs: None,
                };
                batches.push((placed, Some(rec)));
            }
            for r in store.commit(&batches)? {
                r?;
            }
        }
    }
    let write = started.elapsed();
    let store = Store::open_exclusive(&root)?;
    let report = store.verify()?;
    println!(
        "store: {actions} actions, {} objects, {} MiB; writing it took {:.2} s",
        report.objects,
        report.bytes >> 20,
        write.as_secs_f64()
    );

    // What a gc keeps of an action: its artifact, and its key (so its sources).
    let keep: Vec<Digest> = artifacts.iter().step_by(100 / keep_percent.max(1)).flat_map(|(a, k)| [a.0, k.0]).collect();
    let t = Instant::now();
    let swept = store.collect(&keep)?;
    let collect = t.elapsed();
    println!(
        "collect keeping {} actions: {:.2} s ({:.2}x writing); kept {} objects, deleted {}, moved {} objects ({} MiB), packs {} -> {} MiB",
        keep.len() / 2,
        collect.as_secs_f64(),
        collect.as_secs_f64() / write.as_secs_f64(),
        swept.kept,
        swept.deleted,
        swept.moved,
        swept.moved_bytes >> 20,
        swept.pack_bytes_before >> 20,
        swept.pack_bytes_after >> 20
    );
    let t = Instant::now();
    let again = store.compact()?;
    println!("compact with nothing to do: {:.3} s (moved {})", t.elapsed().as_secs_f64(), again.moved);
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    drop(store);

    // The alternative: one file per object (as `cas/`), deleting = unlink.
    let files = dir.path().join("files");
    let per_object: Vec<Vec<u8>> =
        (0..actions).flat_map(|a| (0..FILES_PER_ACTION).map(move |f| source(a, f))).collect();
    let t = Instant::now();
    for bytes in &per_object {
        let d = Digest::of(bytes).to_hex();
        let shard = files.join(&d[..2]);
        std::fs::create_dir_all(&shard)?;
        std::fs::write(shard.join(&d[2..]), bytes)?;
    }
    rustix::fs::syncfs(std::fs::File::open(&files)?)?;
    let file_write = t.elapsed();
    let t = Instant::now();
    let mut unlinked = 0;
    for (i, bytes) in per_object.iter().enumerate() {
        if !(i / FILES_PER_ACTION).is_multiple_of(100 / keep_percent.max(1)) {
            let d = Digest::of(bytes).to_hex();
            std::fs::remove_file(files.join(&d[..2]).join(&d[2..]))?;
            unlinked += 1;
        }
    }
    rustix::fs::syncfs(std::fs::File::open(&files)?)?;
    let unlink = t.elapsed();
    println!(
        "one file per object ({} source files only): writing {:.2} s, unlinking {unlinked}: {:.2} s; collect/unlink {:.2}x",
        per_object.len(),
        file_write.as_secs_f64(),
        unlink.as_secs_f64(),
        collect.as_secs_f64() / unlink.as_secs_f64()
    );
    Ok(())
}
