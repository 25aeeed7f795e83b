//! Every field of every object enters its hash: changing any one changes it.
//!
//! Two guards keep the lists below complete. Each test names every field of
//! its struct in a pattern without `..`, so a new field fails to compile
//! until it is listed; and [`assert_each_change_changes_the_hash`] fails
//! unless the changes cover exactly the fields serde encodes.

use std::collections::{BTreeSet, HashMap};

use brr_hash::{
    ActionKey, Artifact, ArtifactHash, Config, ConfigHash, Digest, EntryHash, EntryKind, LedgerAction, LedgerEntry,
    Probe, ProcessSpec, PromotionSource, Release, ReleaseHash, ReleaseStatus, Restart, ServiceManifest, Tree,
    TreeEntry,
};
use serde::Serialize;

use crate::samples;

/// One changed copy of a value: which field was changed, and how.
struct Change<T> {
    field: &'static str,
    how: &'static str,
    value: T,
}

/// `base` with `edit` applied.
fn change<T: Clone>(base: &T, field: &'static str, how: &'static str, edit: impl FnOnce(&mut T)) -> Change<T> {
    let mut value = base.clone();
    edit(&mut value);
    Change { field, how, value }
}

/// The names of the fields serde encodes for a struct.
fn serialized_fields<T: Serialize>(value: &T) -> BTreeSet<String> {
    match serde_json::to_value(value).expect("plain data serializes") {
        serde_json::Value::Object(fields) => fields.keys().cloned().collect(),
        other => panic!("expected a struct, got {other}"),
    }
}

/// Every change gives a hash unlike the base's and unlike every other
/// change's, and the changes touch exactly `fields`.
#[track_caller]
fn assert_each_change_changes_the_hash<T>(
    base: &T,
    fields: &BTreeSet<String>,
    changes: &[Change<T>],
    hash: impl Fn(&T) -> Digest,
) {
    let covered: BTreeSet<String> = changes.iter().map(|c| c.field.to_owned()).collect();
    assert_eq!(&covered, fields, "every field is changed at least once, and only fields");
    let mut seen = HashMap::from([(hash(base), "the unchanged value".to_owned())]);
    for c in changes {
        let name = format!("{} ({})", c.field, c.how);
        if let Some(earlier) = seen.insert(hash(&c.value), name.clone()) {
            panic!("changing {name} gives the same hash as {earlier}");
        }
    }
}

/// The plain file of the sample tree.
fn file(t: &mut Tree) -> &mut TreeEntry {
    &mut t.entries[3]
}

#[test]
fn every_action_key_field_enters_the_key() {
    let base = samples::action_key();
    let ActionKey {
        system: _,
        builder: _,
        env: _,
        outputs: _,
        tools: _,
        host_inputs: _,
        cpu: _,
        package_dir: _,
        sources: _,
        deps: _,
    } = &base;
    let changes = [
        change(&base, "system", "another platform", |k| k.system = "aarch64-linux".into()),
        change(&base, "builder", "an argument changed", |k| k.builder[2].push_str(" -g")),
        change(&base, "builder", "an argument added", |k| k.builder.push("extra".into())),
        change(&base, "builder", "two arguments swapped", |k| k.builder.swap(0, 1)),
        change(&base, "builder", "two arguments joined", |k| k.builder = vec!["sh -c".into(), k.builder[2].clone()]),
        change(&base, "env", "a value changed", |k| assert!(k.env.insert("MODE".into(), "debug".into()).is_some())),
        change(&base, "env", "a variable added", |k| assert!(k.env.insert("EXTRA".into(), "1".into()).is_none())),
        change(&base, "env", "a variable removed", |k| assert!(k.env.remove("CFLAGS").is_some())),
        change(&base, "env", "a variable renamed", |k| {
            let v = k.env.remove("MODE").unwrap();
            k.env.insert("PROFILE".into(), v);
        }),
        change(&base, "outputs", "an output added", |k| assert!(k.outputs.insert("lib".into()))),
        change(&base, "outputs", "an output removed", |k| assert!(k.outputs.remove("share"))),
        change(&base, "tools", "a tool upgraded", |k| {
            let cc = k.tools.get_mut("cc").unwrap();
            assert!(cc.files.insert("/usr/bin/gcc".into(), Digest::of(b"cc binary, newer")).is_some());
        }),
        change(&base, "tools", "a compiler's cc1 changed, the driver the same", |k| {
            let cc = k.tools.get_mut("cc").unwrap();
            assert!(cc.files.insert("/usr/lib/gcc/x86_64-linux-gnu/12/cc1".into(), Digest::of(b"cc1, new")).is_some());
        }),
        change(&base, "tools", "a library of a tool moved", |k| {
            let cc = k.tools.get_mut("cc").unwrap();
            let libc = cc.files.remove("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
            cc.files.insert("/usr/lib/x86_64-linux-gnu/libc.so.6".into(), libc);
        }),
        change(&base, "tools", "a tool added", |k| {
            assert!(k.tools.insert("ld".into(), samples::closure(&[("/usr/bin/ld", b"ld binary")])).is_none());
        }),
        change(&base, "tools", "a tool removed", |k| assert!(k.tools.remove("sh").is_some())),
        change(&base, "host_inputs", "a host header changed", |k| {
            assert!(k.host_inputs.insert("/usr/include/zlib.h".into(), Digest::of(b"zlib.h, new")).is_some());
        }),
        change(&base, "host_inputs", "a host file added", |k| {
            assert!(k.host_inputs.insert("/usr/include/zconf.h".into(), Digest::of(b"zconf.h")).is_none());
        }),
        change(&base, "cpu", "another CPU model", |k| k.cpu = Some("model name: Other CPU; flags: fpu sse2".into())),
        change(&base, "cpu", "no CPU", |k| k.cpu = None),
        change(&base, "package_dir", "another folder", |k| k.package_dir = "services/other".into()),
        change(&base, "sources", "another source tree", |k| k.sources = samples::bin_tree().hash()),
        change(&base, "deps", "a dependency rebuilt differently", |k| {
            assert!(k.deps.insert("zlib".into(), ArtifactHash(Digest::of(b"zlib artifact, patched"))).is_some());
        }),
        change(&base, "deps", "a dependency added", |k| {
            assert!(k.deps.insert("ssl".into(), ArtifactHash(Digest::of(b"ssl artifact"))).is_none());
        }),
        change(&base, "deps", "a dependency removed", |k| assert!(k.deps.remove("libc").is_some())),
        change(&base, "deps", "a dependency renamed", |k| {
            let v = k.deps.remove("libc").unwrap();
            k.deps.insert("musl".into(), v);
        }),
    ];
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, |k| k.key().0);
}

#[test]
fn every_tree_entry_field_enters_the_tree_hash() {
    let base = samples::tree();
    let Tree { entries: _ } = &base;
    let TreeEntry { name: _, kind: _, hash: _, size: _ } = &base.entries[3];
    let mut changes = vec![
        change(&base, "entries", "an entry removed", |t| drop(t.entries.remove(1))),
        change(&base, "entries", "an entry added", |t| {
            t.entries.push(TreeEntry { name: "z".into(), ..t.entries[3].clone() });
        }),
        change(&base, "name", "a file renamed", |t| file(t).name = "readme.md".into()),
        change(&base, "hash", "a file's content changed", |t| file(t).hash = Digest::of(b"hello!\n")),
        change(&base, "size", "a file's size changed", |t| file(t).size += 1),
        change(&base, "size", "a folder's size changed", |t| t.entries[0].size += 1),
        change(&base, "hash", "a symlink's target changed", |t| t.entries[2].hash = Digest::of(b"bin/other")),
    ];
    // Each entry, turned into each other kind, with its hash and size kept.
    for kind in samples::all_entry_kinds() {
        let how = match kind {
            EntryKind::File => "into a file",
            EntryKind::Executable => "into an executable",
            EntryKind::Symlink => "into a symlink",
            EntryKind::Dir => "into a folder",
        };
        for entry in 0..base.entries.len() {
            if base.entries[entry].kind != kind {
                changes.push(change(&base, "kind", how, |t| t.entries[entry].kind = kind));
            }
        }
    }
    // The tree itself serializes one field, `entries`; its entries the rest.
    let fields = serialized_fields(&base).into_iter().chain(serialized_fields(&base.entries[0])).collect();
    assert_each_change_changes_the_hash(&base, &fields, &changes, |t| t.hash().0);
}

#[test]
fn every_artifact_field_enters_the_build_hash() {
    let base = samples::artifact();
    let Artifact { outputs: _, manifest: _ } = &base;
    let changes = [
        change(&base, "outputs", "other outputs", |a| a.outputs = samples::bin_tree().hash()),
        change(&base, "manifest", "no manifest (a library)", |a| a.manifest = ServiceManifest::default()),
        change(&base, "manifest", "no release command", |a| a.manifest.release = None),
    ];
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, |a| a.hash().0);
}

/// Changing a process or the release command changes the build hash (and,
/// since the manifest is not part of the action key, not the build key).
#[test]
fn every_manifest_field_enters_the_build_hash() {
    let base = samples::manifest();
    let ServiceManifest { processes: _, release: _ } = &base;
    let changes = [
        change(&base, "processes", "a process added", |m| {
            m.processes.insert("cron".into(), ProcessSpec::command(vec!["bin/app".into(), "cron".into()]));
        }),
        change(&base, "processes", "a process removed", |m| assert!(m.processes.remove("worker").is_some())),
        change(&base, "processes", "a process renamed", |m| {
            let p = m.processes.remove("worker").unwrap();
            m.processes.insert("jobs".into(), p);
        }),
        change(&base, "processes", "two processes' commands swapped", |m| {
            let web = m.processes["web"].command.clone();
            let worker = m.processes["worker"].command.clone();
            m.processes.get_mut("web").unwrap().command = worker;
            m.processes.get_mut("worker").unwrap().command = web;
        }),
        change(&base, "release", "another release command", |m| m.release = Some(vec!["bin/app".into()])),
        change(&base, "release", "an empty release command", |m| m.release = Some(Vec::new())),
        change(&base, "release", "no release command", |m| m.release = None),
    ];
    let outputs = samples::tree().hash();
    let build_hash = |m: &ServiceManifest| Artifact { outputs, manifest: m.clone() }.hash().0;
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, build_hash);
}

/// Each field of a process type (its command and every supervision
/// setting: they decide what runs) enters the build hash, and so does each
/// way of leaving a setting to the default.
#[test]
fn every_process_field_enters_the_build_hash() {
    let base = samples::web();
    let ProcessSpec { command: _, restart: _, grace_s: _, ready: _ } = &base;
    let probe = |p: Probe| move |s: &mut ProcessSpec| s.ready = Some(p);
    let argv = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let changes = [
        change(&base, "command", "an argument changed", |s| s.command[3] = "9090".into()),
        change(&base, "command", "an argument added", |s| s.command.push("--verbose".into())),
        change(&base, "command", "emptied", |s| s.command.clear()),
        change(&base, "restart", "never", |s| s.restart = Some(Restart::Never)),
        change(&base, "restart", "on failure", |s| s.restart = Some(Restart::OnFailure)),
        change(&base, "restart", "the default", |s| s.restart = None),
        change(&base, "grace_s", "a second longer", |s| s.grace_s = Some(31)),
        change(&base, "grace_s", "none at all", |s| s.grace_s = Some(0)),
        change(&base, "grace_s", "the default", |s| s.grace_s = None),
        change(&base, "ready", "another path", probe(Probe::Http { path: "/ready".into() })),
        change(&base, "ready", "a TCP probe", probe(Probe::Tcp)),
        change(&base, "ready", "no probe", probe(Probe::None)),
        change(&base, "ready", "a command", probe(Probe::Command(argv(&["bin/app", "ping"])))),
        change(&base, "ready", "another command", probe(Probe::Command(argv(&["bin/app", "ping", "-q"])))),
        change(&base, "ready", "an empty command", probe(Probe::Command(Vec::new()))),
        change(&base, "ready", "the default", |s| s.ready = None),
    ];
    // Every probe and policy is among the values above; the matches have no
    // wildcard, so a new one fails to compile until it is listed and covered.
    let mut kinds = BTreeSet::new();
    for spec in changes.iter().map(|c| &c.value).chain([&base]) {
        kinds.insert(match &spec.ready {
            Some(Probe::None) => "none",
            Some(Probe::Tcp) => "tcp",
            Some(Probe::Http { .. }) => "http",
            Some(Probe::Command(_)) => "command",
            None => "default probe",
        });
        kinds.insert(match spec.restart {
            Some(Restart::Never) => "never",
            Some(Restart::OnFailure) => "on-failure",
            Some(Restart::Always) => "always",
            None => "default policy",
        });
    }
    assert_eq!(kinds.len(), 9, "every probe and policy is covered: {kinds:?}");
    let outputs = samples::tree().hash();
    let build_hash = |p: &ProcessSpec| {
        let mut manifest = samples::manifest();
        manifest.processes.insert("web".into(), p.clone());
        Artifact { outputs, manifest }.hash().0
    };
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, build_hash);
}

#[test]
fn every_config_field_enters_the_config_hash() {
    let base = samples::config();
    let Config { vars: _, secrets: _ } = &base;
    let changes = [
        change(&base, "vars", "a value changed", |c| {
            assert!(c.vars.insert("LOG_LEVEL".into(), "debug".into()).is_some());
        }),
        change(&base, "vars", "a var added", |c| assert!(c.vars.insert("PORT".into(), "80".into()).is_none())),
        change(&base, "vars", "a var removed", |c| assert!(c.vars.remove("LOG_LEVEL").is_some())),
        change(&base, "vars", "a var renamed", |c| {
            let v = c.vars.remove("LOG_LEVEL").unwrap();
            c.vars.insert("LEVEL".into(), v);
        }),
        change(&base, "secrets", "a secret added", |c| assert!(c.secrets.insert("STRIPE_KEY".into()))),
        change(&base, "secrets", "a secret removed", |c| assert!(c.secrets.remove("API_TOKEN"))),
        change(&base, "secrets", "a var turned into a secret", |c| {
            c.vars.remove("LOG_LEVEL");
            c.secrets.insert("LOG_LEVEL".into());
        }),
    ];
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, |c| c.hash().0);
}

#[test]
fn every_release_field_enters_the_release_hash() {
    let base = samples::release();
    let Release { build: _, config: _ } = &base;
    let changes = [
        change(&base, "build", "another build", |r| r.build = samples::library_artifact().hash()),
        change(&base, "config", "another config", |r| r.config = Config::default().hash()),
        change(&base, "build", "build and config swapped", |r| {
            *r = Release { build: ArtifactHash(r.config.0), config: ConfigHash(r.build.0) };
        }),
    ];
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, |r| r.hash().0);
}

#[test]
fn every_ledger_entry_field_enters_the_chain() {
    let base = samples::ledger_entry();
    let LedgerEntry {
        previous: _,
        env: _,
        service: _,
        version: _,
        release: _,
        action: _,
        status: _,
        actor: _,
        time_ms: _,
        note: _,
        source: _,
    } = &base;
    let PromotionSource { env: _, version: _ } = base.source.as_ref().unwrap();
    let changes = [
        change(&base, "previous", "another previous entry", |e| e.previous = Some(EntryHash(Digest::of(b"other")))),
        change(&base, "previous", "no previous entry", |e| e.previous = None),
        change(&base, "env", "another environment", |e| e.env = "staging".into()),
        change(&base, "service", "another service", |e| e.service = "billing".into()),
        change(&base, "version", "another version", |e| e.version += 1),
        change(&base, "release", "another release", |e| e.release = ReleaseHash(Digest::of(b"other release"))),
        change(&base, "action", "a release", |e| e.action = LedgerAction::Release),
        change(&base, "action", "a rollback", |e| e.action = LedgerAction::Rollback),
        change(&base, "status", "failed", |e| e.status = ReleaseStatus::Failed),
        change(&base, "actor", "another actor", |e| e.actor = "mallory".into()),
        change(&base, "time_ms", "a millisecond later", |e| e.time_ms += 1),
        change(&base, "note", "another note", |e| e.note = Some("ship it!".into())),
        change(&base, "note", "no note", |e| e.note = None),
        change(&base, "source", "another source environment", |e| {
            e.source.as_mut().unwrap().env = "qa".into();
        }),
        change(&base, "source", "another source version", |e| e.source.as_mut().unwrap().version = 8),
        change(&base, "source", "no source", |e| e.source = None),
    ];
    assert_each_change_changes_the_hash(&base, &serialized_fields(&base), &changes, |e| e.hash().0);
}
