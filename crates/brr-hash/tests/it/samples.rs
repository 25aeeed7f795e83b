//! Hand-built objects shared by the tests: every field set, every entry kind present.

use std::collections::{BTreeMap, BTreeSet};

use brr_hash::{
    ActionKey, Artifact, ArtifactHash, Config, Digest, EntryHash, EntryKind, LedgerAction, LedgerEntry, Probe,
    ProcessSpec, PromotionSource, Release, ReleaseStatus, Restart, ServiceManifest, ToolClosure, Tree, TreeEntry,
};

/// Bytes of the sample files, with the sizes the entries below claim.
pub const README: &[u8] = b"hello\n";
pub const TOOL: &[u8] = b"#!/bin/sh\necho tool\n";
pub const LINK_TARGET: &str = "bin/tool";

/// Every [`EntryKind`], in declaration order. The `match` has no wildcard,
/// so a new kind fails to compile here until it is chained in, and then the
/// tests that walk this list cover it.
pub fn all_entry_kinds() -> Vec<EntryKind> {
    let next = |&kind: &EntryKind| match kind {
        EntryKind::File => Some(EntryKind::Executable),
        EntryKind::Executable => Some(EntryKind::Symlink),
        EntryKind::Symlink => Some(EntryKind::Dir),
        EntryKind::Dir => None,
    };
    std::iter::successors(Some(EntryKind::File), next).collect()
}

fn entry(name: &str, kind: EntryKind, hash: Digest, size: u64) -> TreeEntry {
    TreeEntry { name: name.to_owned(), kind, hash, size }
}

/// `bin/` holding one executable.
pub fn bin_tree() -> Tree {
    Tree { entries: vec![entry("tool", EntryKind::Executable, Digest::of(TOOL), TOOL.len() as u64)] }
}

/// One directory level with each entry kind: a folder (with its size, the sum
/// of the files below it), an empty folder, a symlink (hash and size of its
/// target path) and a plain file. Sorted by name, as the design requires.
pub fn tree() -> Tree {
    Tree {
        entries: vec![
            entry("bin", EntryKind::Dir, bin_tree().hash().0, TOOL.len() as u64),
            entry("empty", EntryKind::Dir, Tree::default().hash().0, 0),
            entry("latest", EntryKind::Symlink, Digest::of(LINK_TARGET.as_bytes()), LINK_TARGET.len() as u64),
            entry("readme.txt", EntryKind::File, Digest::of(README), README.len() as u64),
        ],
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// An action key with every field set and every map holding two entries.
pub fn action_key() -> ActionKey {
    ActionKey {
        system: "x86_64-linux".into(),
        builder: strings(&["sh", "-c", "cc -o $OUT/bin/app main.c"]),
        env: BTreeMap::from([("CFLAGS".into(), "-O2".into()), ("MODE".into(), "release".into())]),
        outputs: BTreeSet::from(["bin".into(), "share".into()]),
        tools: BTreeMap::from([("cc".into(), cc_closure()), ("sh".into(), closure(&[("/bin/sh", b"sh binary")]))]),
        host_inputs: BTreeMap::from([
            ("/usr/include/stdio.h".into(), Digest::of(b"stdio.h")),
            ("/usr/include/zlib.h".into(), Digest::of(b"zlib.h")),
        ]),
        cpu: Some("model name: Some CPU; flags: fpu sse2 avx2".into()),
        package_dir: "services/app".into(),
        sources: tree().hash(),
        deps: BTreeMap::from([
            ("libc".into(), ArtifactHash(Digest::of(b"libc artifact"))),
            ("zlib".into(), ArtifactHash(Digest::of(b"zlib artifact"))),
        ]),
    }
}

/// A tool closure of the given (path, bytes).
pub fn closure(files: &[(&str, &[u8])]) -> ToolClosure {
    ToolClosure { files: files.iter().map(|(p, b)| ((*p).to_owned(), Digest::of(b))).collect() }
}

/// A compiler driver's closure: the driver, the loader, libc and `cc1`.
pub fn cc_closure() -> ToolClosure {
    closure(&[
        ("/usr/bin/gcc", b"cc binary"),
        ("/lib64/ld-linux-x86-64.so.2", b"loader"),
        ("/lib/x86_64-linux-gnu/libc.so.6", b"libc"),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", b"cc1"),
    ])
}

/// A process type with every setting declared: `web` of [`manifest`].
pub fn web() -> ProcessSpec {
    ProcessSpec {
        command: strings(&["bin/app", "serve", "--port", "8080"]),
        restart: Some(Restart::Always),
        grace_s: Some(30),
        ready: Some(Probe::Http { path: "/health".into() }),
    }
}

/// A service manifest with two process types (one with every setting
/// declared, one with a command only) and a release command.
pub fn manifest() -> ServiceManifest {
    ServiceManifest {
        processes: BTreeMap::from([
            ("web".into(), web()),
            ("worker".into(), ProcessSpec::command(strings(&["bin/app", "work"]))),
        ]),
        release: Some(strings(&["bin/app", "migrate"])),
    }
}

/// A service's artifact: the sample tree as outputs, and [`manifest`].
pub fn artifact() -> Artifact {
    Artifact { outputs: tree().hash(), manifest: manifest() }
}

/// A library's artifact: outputs only, an empty manifest.
pub fn library_artifact() -> Artifact {
    Artifact { outputs: bin_tree().hash(), manifest: ServiceManifest::default() }
}

/// A config with two vars and two secret names.
pub fn config() -> Config {
    Config {
        vars: BTreeMap::from([("DATABASE_PATH".into(), "shop.sqlite".into()), ("LOG_LEVEL".into(), "info".into())]),
        secrets: BTreeSet::from(["API_TOKEN".into(), "SMTP_PASSWORD".into()]),
    }
}

/// The sample artifact released with the sample config.
pub fn release() -> Release {
    Release { build: artifact().hash(), config: config().hash() }
}

/// A promotion with every optional field set.
pub fn ledger_entry() -> LedgerEntry {
    LedgerEntry {
        previous: Some(EntryHash(Digest::of(b"previous entry"))),
        env: "production".into(),
        service: "api".into(),
        version: 42,
        release: release().hash(),
        action: LedgerAction::Promote,
        status: ReleaseStatus::Succeeded,
        actor: "ci".into(),
        time_ms: 1_796_688_000_000,
        note: Some("ship it".into()),
        source: Some(PromotionSource { env: "staging".into(), version: 7 }),
    }
}

/// The first entry of an environment: no previous entry, no note, no source.
pub fn first_ledger_entry() -> LedgerEntry {
    LedgerEntry {
        previous: None,
        env: "staging".into(),
        service: "api".into(),
        version: 1,
        release: release().hash(),
        action: LedgerAction::Release,
        status: ReleaseStatus::Failed,
        actor: "alice".into(),
        time_ms: 0,
        note: None,
        source: None,
    }
}
