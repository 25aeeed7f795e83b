//! Making releases: the release folder, the release phase, secrets, `current`.

use std::os::unix::fs::PermissionsExt;

use brr_hash::{LedgerAction, ReleaseStatus};
use brr_release::folder::{current_link, release_dir};
use brr_release::{ReleaseError, Secrets};

use crate::support::{TestResult, all_files, config, new_store, put_build, request};

const SECRET: &str = "s3cr3t-value-7f1c";

fn secrets() -> Secrets {
    Secrets::from_lookup(&["TOKEN".to_owned()], |_| Some(SECRET.to_owned())).expect("secrets")
}

/// A release command that reads its config and its secret, and writes to
/// the environment's data folder.
const MIGRATE: &str = "#!/bin/sh
echo \"migrating $DATABASE in $BRR_ENV for $BRR_SERVICE\"
echo \"token is $TOKEN\" >&2
echo applied > \"$BRR_DATA_DIR/$DATABASE\"
";

#[test]
fn a_release_runs_its_phase_in_a_read_only_folder_and_becomes_current() -> TestResult {
    let (dir, store) = new_store();
    let build = put_build(&store, &[("bin/web", "#!/bin/sh\n"), ("migrate.sh", MIGRATE)], Some(&["./migrate.sh"]));
    let cfg = config(&[("DATABASE", "shop.db")], &["TOKEN"]);
    let mut lines = Vec::new();
    let released = brr_release::release(&store, &request("staging", build, cfg.clone()), &secrets(), &mut |l| {
        lines.push(l.to_owned());
    })?;
    assert_eq!(released.phase.status, ReleaseStatus::Succeeded, "{lines:?}");
    assert_eq!(released.row.entry.version, 1);
    assert_eq!(released.row.entry.release, brr_hash::Release { build, config: cfg.hash() }.hash());
    assert!(lines.contains(&"migrating shop.db in staging for api".to_owned()), "{lines:?}");
    assert!(lines.contains(&"token is [secret TOKEN]".to_owned()), "the shown line is masked: {lines:?}");
    // The data folder took the write; the release folder is read-only.
    let data = store.root().join("envs/staging/data/shop.db");
    assert_eq!(std::fs::read_to_string(data)?, "applied\n");
    let folder = release_dir(&store, released.row.entry.release);
    for (path, _) in all_files(&folder) {
        let mode = std::fs::metadata(&path)?.permissions().mode();
        assert_eq!(mode & 0o222, 0, "`{}` is writable", path.display());
    }
    assert_eq!(std::fs::metadata(&folder)?.permissions().mode() & 0o222, 0);
    let env_file = std::fs::read_to_string(folder.join(".env"))?;
    assert!(env_file.contains("DATABASE=\"shop.db\"\n") && env_file.contains("TOKEN"), "{env_file}");
    // `current` points at the folder.
    let link = current_link(&store, "staging", "api");
    assert_eq!(std::fs::canonicalize(&link)?, std::fs::canonicalize(&folder)?);
    // The log is stored, masked; the secret's value is in no file at all.
    let log = store.get(released.row.log.expect("a log").0)?;
    assert!(String::from_utf8(log)?.contains("token is [secret TOKEN]"));
    drop(store);
    for (path, bytes) in all_files(dir.path()) {
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the secret's value is in `{}`", path.display());
    }
    Ok(())
}

#[test]
fn a_failed_release_phase_is_recorded_and_never_current() -> TestResult {
    let (_dir, store) = new_store();
    let good = put_build(&store, &[("bin/web", "#!/bin/sh\n")], Some(&["sh", "-c", "echo ok"]));
    let bad = put_build(&store, &[("bin/web", "#!/bin/sh\necho 2\n")], Some(&["sh", "-c", "echo boom >&2; exit 3"]));
    let cfg = config(&[], &[]);
    let v1 = brr_release::release(&store, &request("staging", good, cfg.clone()), &Secrets::default(), &mut |_| {})?;
    let v2 = brr_release::release(&store, &request("staging", bad, cfg), &Secrets::default(), &mut |_| {})?;
    assert_eq!(v2.phase.status, ReleaseStatus::Failed);
    assert_eq!(v2.phase.summary, "exited with 3");
    assert_eq!(v2.row.entry.version, 2);
    let current = store.ledger_current("staging", "api")?.expect("a current release");
    assert_eq!(current.entry.version, 1);
    let link = std::fs::read_link(current_link(&store, "staging", "api"))?;
    assert!(link.ends_with(v1.row.entry.release.to_string()), "{}", link.display());
    assert_eq!(String::from_utf8(store.get(v2.row.log.expect("log").0)?)?, "boom\n");
    // Promotion refuses a source whose newest entry failed.
    let err = brr_release::promotion_source(&store, "staging", "api").expect_err("refused");
    assert!(matches!(err, ReleaseError::SourceFailed { version: 2, .. }), "{err}");
    Ok(())
}

#[test]
fn a_missing_release_program_fails_the_phase() -> TestResult {
    let (_dir, store) = new_store();
    let build = put_build(&store, &[("bin/web", "#!/bin/sh\n")], Some(&["no-such-program-brr"]));
    let r =
        brr_release::release(&store, &request("staging", build, config(&[], &[])), &Secrets::default(), &mut |_| {})?;
    assert_eq!(r.phase.status, ReleaseStatus::Failed);
    assert!(r.phase.summary.contains("`no-such-program-brr` is not on PATH"), "{}", r.phase.summary);
    assert!(store.ledger_current("staging", "api")?.is_none());
    assert!(std::fs::symlink_metadata(current_link(&store, "staging", "api")).is_err(), "no current link");
    Ok(())
}

/// What the release command leaves running in its process group is killed
/// with it, so nothing outlives the release phase.
#[test]
fn processes_left_by_the_release_command_are_killed() -> TestResult {
    let (_dir, store) = new_store();
    let cmd = ["sh", "-c", "sleep 600 & echo $! > \"$BRR_DATA_DIR/pid\"; echo started"];
    let build = put_build(&store, &[("bin/web", "#!/bin/sh\n")], Some(&cmd));
    let r =
        brr_release::release(&store, &request("staging", build, config(&[], &[])), &Secrets::default(), &mut |_| {})?;
    assert_eq!(r.phase.status, ReleaseStatus::Succeeded);
    let pid = std::fs::read_to_string(store.root().join("envs/staging/data/pid"))?;
    let proc_dir = format!("/proc/{}", pid.trim());
    // Killed and reaped by init (or still a zombie for a moment): not running.
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()).unwrap_or("gone");
    assert!(state == "gone" || state == "Z", "the background `sleep` still runs (state {state})");
    Ok(())
}

#[test]
fn rollback_goes_to_the_previous_succeeded_release() -> TestResult {
    let (_dir, store) = new_store();
    let cfg = config(&[], &[]);
    let builds: Vec<_> =
        (0..3).map(|i| put_build(&store, &[("bin/web", &format!("#!/bin/sh\necho {i}\n"))], None)).collect();
    let fail = put_build(&store, &[("bin/web", "#!/bin/sh\n")], Some(&["false"]));
    let mut rows = Vec::new();
    for b in [builds[0], builds[1], fail, builds[2]] {
        rows.push(
            brr_release::release(&store, &request("staging", b, cfg.clone()), &Secrets::default(), &mut |_| {})?.row,
        );
    }
    let (current, target) = brr_release::rollback_target(&store, "staging", "api", None)?;
    assert_eq!((current.entry.version, target.entry.version), (4, 2), "v3 failed, so v2 is the previous good one");
    let mut req = request("staging", target.build, store.get_object(target.config.0)?);
    req.action = LedgerAction::Rollback;
    let back = brr_release::release(&store, &req, &Secrets::default(), &mut |_| {})?;
    assert_eq!(back.row.entry.version, 5);
    assert_eq!(back.row.entry.release, rows[1].entry.release);
    assert_eq!(store.ledger_current("staging", "api")?.map(|r| r.entry.version), Some(5));
    // Explicit targets: missing, failed, or already current are refused.
    let err = brr_release::rollback_target(&store, "staging", "api", Some(9)).expect_err("no v9");
    assert!(matches!(err, ReleaseError::NoSuchVersion { latest: 5, .. }), "{err}");
    let err = brr_release::rollback_target(&store, "staging", "api", Some(3)).expect_err("v3 failed");
    assert!(matches!(err, ReleaseError::RollbackToFailed { .. }), "{err}");
    let err = brr_release::rollback_target(&store, "staging", "api", Some(2)).expect_err("v2 is current");
    assert!(matches!(err, ReleaseError::AlreadyCurrent { .. }), "{err}");
    assert!(store.ledger_verify()?.is_ok());
    Ok(())
}
