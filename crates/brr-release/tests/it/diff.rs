//! `diff`: resolving sides and comparing builds file by file, configs and processes.

use brr_release::Secrets;
use brr_release::diff::{Change, SpecError, diff, resolve};

use crate::support::{TestResult, config, new_store, put_build, request};

#[test]
fn diff_lists_files_vars_secrets_and_commands() -> TestResult {
    let (_dir, store) = new_store();
    let a = put_build(
        &store,
        &[("bin/web", "#!/bin/sh\necho 1\n"), ("share/a.txt", "same"), ("share/old.txt", "gone soon")],
        Some(&["sh", "-c", "true"]),
    );
    let b = put_build(
        &store,
        &[("bin/web", "#!/bin/sh\necho 22\n"), ("share/a.txt", "same"), ("share/new.txt", "hello")],
        Some(&["sh", "-c", ":"]),
    );
    let s = Secrets::from_lookup(&["T".to_owned(), "U".to_owned()], |_| Some("v".into()))?;
    let r1 = brr_release::release(
        &store,
        &request("staging", a, config(&[("X", "1"), ("Y", "y")], &["T"])),
        &s,
        &mut |_| {},
    )?;
    brr_release::release(&store, &request("staging", b, config(&[("X", "2"), ("Z", "z")], &["U"])), &s, &mut |_| {})?;
    let d = diff(&store, resolve(&store, "staging@v1", None)?, resolve(&store, "staging", None)?)?;
    assert_eq!(d.a.release, r1.row.entry.release);
    let files: Vec<(&str, Change, Option<u64>, Option<u64>)> =
        d.files.iter().map(|f| (f.path.as_str(), f.change, f.old_size, f.new_size)).collect();
    assert_eq!(
        files,
        [
            ("bin/web", Change::Changed, Some(17), Some(18)),
            ("share/new.txt", Change::Added, None, Some(5)),
            ("share/old.txt", Change::Removed, Some(9), None),
        ]
    );
    let vars: Vec<(&str, Option<&str>, Option<&str>)> =
        d.vars.iter().map(|v| (v.name.as_str(), v.old.as_deref(), v.new.as_deref())).collect();
    assert_eq!(vars, [("X", Some("1"), Some("2")), ("Y", Some("y"), None), ("Z", None, Some("z"))]);
    assert_eq!(
        (d.secrets_added.as_slice(), d.secrets_removed.as_slice()),
        (&["U".to_owned()][..], &["T".to_owned()][..])
    );
    assert!(d.processes.is_empty());
    let rc = d.release_command.expect("the release command changed");
    assert_eq!((rc.old.expect("old")[2].as_str(), rc.new.expect("new")[2].as_str()), ("true", ":"));
    // A hash prefix resolves too, and a release diffed with itself is empty.
    let prefix = &r1.row.entry.release.to_string()[..10];
    assert!(diff(&store, resolve(&store, prefix, None)?, resolve(&store, "staging@v1", None)?)?.is_empty());
    Ok(())
}

#[test]
fn bad_sides_are_explained() {
    let (_dir, store) = new_store();
    let b = put_build(&store, &[("bin/web", "#!/bin/sh\n")], None);
    brr_release::release(&store, &request("staging", b, config(&[], &[])), &Secrets::default(), &mut |_| {})
        .expect("release");
    let mut other = request("staging", b, config(&[("A", "1")], &[]));
    other.service = "billing".into();
    brr_release::release(&store, &other, &Secrets::default(), &mut |_| {}).expect("release");
    assert!(matches!(resolve(&store, "production", None), Err(SpecError::UnknownEnv { .. })));
    assert!(matches!(resolve(&store, "staging", None), Err(SpecError::WhichService { .. })));
    assert!(matches!(resolve(&store, "staging@v7", Some("api")), Err(SpecError::NoVersion { version: 7, .. })));
    assert!(matches!(resolve(&store, "staging@seven", Some("api")), Err(SpecError::Malformed { .. })));
    let artifact_prefix = &b.to_string()[..12];
    assert!(matches!(resolve(&store, artifact_prefix, None), Err(SpecError::NotARelease { kind: "artifact", .. })));
    assert!(resolve(&store, "staging", Some("billing")).is_ok());
}

/// A process type whose readiness probe or restart policy changed is listed
/// setting by setting; its unchanged command is not.
#[test]
fn diff_lists_changed_process_settings() -> TestResult {
    use brr_hash::{Probe, Restart};
    let (_dir, store) = new_store();
    let a = put_build(&store, &[("bin/web", "#!/bin/sh\n")], None);
    let base: brr_hash::Artifact = store.get_object(a.0)?;
    let mut changed = base.clone();
    let web = changed.manifest.processes.get_mut("web").expect("a web process");
    web.ready = Some(Probe::Http { path: "/health".into() });
    web.restart = Some(Restart::Always);
    store.put_object(&changed)?;
    let cfg = config(&[], &[]);
    brr_release::release(&store, &request("staging", a, cfg.clone()), &Secrets::default(), &mut |_| {})?;
    brr_release::release(&store, &request("staging", changed.hash(), cfg), &Secrets::default(), &mut |_| {})?;
    let d = diff(&store, resolve(&store, "staging@v1", None)?, resolve(&store, "staging@v2", None)?)?;
    assert!(d.processes.is_empty(), "the command did not change: {:?}", d.processes);
    let settings: Vec<(&str, Option<&str>, Option<&str>)> =
        d.process_settings.iter().map(|c| (c.setting, c.old.as_deref(), c.new.as_deref())).collect();
    assert_eq!(settings, [("restart", None, Some("always")), ("ready", None, Some("http /health"))]);
    Ok(())
}
