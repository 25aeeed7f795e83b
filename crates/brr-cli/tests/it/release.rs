//! The release stage end to end: release, promote, rollback, the ledger's
//! integrity, secrets, bad input and `kill -9`, on real stores and processes.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use brr_test_support::{Run, TestWorkspace, ron_str};
use serde_json::Value;

use crate::{BRR, shop};

const TOKEN: &str = "tok-9d1e44c2-secret";

const ENVIRONMENTS: &str = r#"Environments(
    promotion: ["staging", "production"],
    environments: {
        "staging": Environment(vars: {"GREETING": "hi"}, services: {"api": ServiceEnv(secrets: ["TOKEN"])}),
        "production": Environment(vars: {"GREETING": "hello"}, services: {"api": ServiceEnv(secrets: ["TOKEN"])}),
    },
)
"#;

/// A workspace with one service, `api`, whose build writes `body` and whose
/// release command is `sh -c release`.
fn service_workspace(body: &str, release: &str) -> TestWorkspace {
    let ws = TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("environments.ron", ENVIRONMENTS);
    set_service(&ws, body, release);
    ws
}

fn set_service(ws: &TestWorkspace, body: &str, release: &str) {
    let builder = format!("echo {body} > \"$OUT/f\"");
    ws.write(
        "p/api/brr.ron",
        &format!(
            "Service(\n    name: \"api\",\n    tools: [\"sh\"],\n    builder: [\"sh\", \"-c\", {}],\n    outputs: [\"f\"],\n    \
             processes: {{\"web\": Process(command: [\"sh\", \"-c\", \"cat f\"])}},\n    release: [\"sh\", \"-c\", {}],\n)\n",
            ron_str(&builder),
            ron_str(release)
        ),
    );
}

/// `brr ARGS` with the secret set.
fn brr(ws: &TestWorkspace, args: &[&str]) -> Run {
    ws.brr_env("TOKEN", TOKEN, args)
}

/// `releases[]` of a `--json` document.
fn releases(run: &Run) -> Vec<Value> {
    run.json()["releases"].as_array().unwrap_or_else(|| panic!("no releases in {}", run.stdout)).clone()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("no `{name}` in {v}"))
}

fn sql(ws: &TestWorkspace) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.store().join("brr.db")).unwrap()
}

fn count(ws: &TestWorkspace, table: &str) -> i64 {
    sql(ws).query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

/// The must-show of promotion: same build, another config and release, and
/// no builder runs, even after a source file changed.
#[test]
fn promote_keeps_the_build_and_never_builds() {
    let ws = shop();
    let staged = releases(&ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "--env", "staging", "--json"]).success());
    let api = |list: &[Value]| list.iter().find(|r| r["service"] == "api").cloned().unwrap();
    let staging_api = api(&staged);
    assert_eq!(field(&staging_api, "status"), "succeeded");
    let builds_before = count(&ws, "builds");
    ws.write("services/api/src/main.c", &(ws.read("services/api/src/main.c") + "\nint edited_after_release;\n"));
    let run =
        ws.brr_env("SHOP_API_TOKEN", TOKEN, ["promote", "--from", "staging", "--to", "production", "--json"]).success();
    let prod_api = api(&releases(&run));
    assert_eq!(field(&prod_api, "action"), "promote");
    assert_eq!(field(&prod_api, "build"), field(&staging_api, "build"), "the build hash is kept exactly");
    assert_ne!(field(&prod_api, "config"), field(&staging_api, "config"));
    assert_ne!(field(&prod_api, "release"), field(&staging_api, "release"));
    assert_eq!(count(&ws, "builds"), builds_before, "no build was recorded during the promotion");
    assert!(!run.stderr.contains("building"), "{}", run.stderr);
    // The edit is real: a build now would rebuild api.
    let plan = ws.brr(["plan", "api", "--json"]).success();
    assert_eq!(plan.targets()["api"].status, "build", "{}", plan.stdout);
    // Promoting again is a no-op that appends nothing.
    let entries = count(&ws, "ledger");
    let again = ws.brr_env("SHOP_API_TOKEN", TOKEN, ["promote", "--from", "staging", "--to", "production", "--json"]);
    assert!(releases(&again.success()).iter().all(|r| r["noop"] == true));
    assert_eq!(count(&ws, "ledger"), entries);
    // production's history records where each release came from.
    let history = releases(&ws.brr(["releases", "--env", "production", "api", "--json"]).success());
    assert_eq!((field(&history[0], "source_env"), history[0]["source_version"].as_u64()), ("staging", Some(1)));
    assert_eq!(history[0]["current"], true);
}

#[test]
fn a_failed_release_phase_never_becomes_current() {
    let ws = service_workspace("one", "echo migrated");
    let v1 = releases(&brr(&ws, &["release", "--env", "staging", "--json"]).success());
    set_service(&ws, "one", "echo 'migration 7 failed' >&2; exit 3");
    let run = brr(&ws, &["release", "--env", "staging", "--json"]).code(1);
    let v2 = releases(&run);
    assert_eq!((field(&v2[0], "status"), v2[0]["version"].as_u64()), ("failed", Some(2)));
    assert!(run.stderr.contains("api[release] | migration 7 failed"), "{}", run.stderr);
    let history = releases(&ws.brr(["releases", "--env", "staging", "--json"]).success());
    let current: Vec<u64> =
        history.iter().filter(|r| r["current"] == true).filter_map(|r| r["version"].as_u64()).collect();
    assert_eq!(current, [1], "v1 stays current");
    // `staging` resolves to v1 in a diff; the release command is what changed.
    let diff = ws.brr(["diff", "staging", "staging@v2", "--json"]).success().json();
    assert_eq!(diff["a"]["label"], "staging@v1");
    assert_eq!(diff["a"]["release"].as_str(), Some(field(&v1[0], "release")));
    assert!(diff["release_command"]["new"][2].as_str().unwrap().contains("exit 3"), "{diff}");
    // Its output is kept by release hash.
    let log = ws.brr(["log", "--release", &field(&v2[0], "release")[..12]]).success();
    assert_eq!(log.stdout, "migration 7 failed\n");
}

#[test]
fn rollback_appends_and_the_ledger_is_tamper_evident() {
    let ws = service_workspace("one", "true");
    let v1 = releases(&brr(&ws, &["release", "--env", "staging", "--json"]).success());
    set_service(&ws, "two", "true");
    brr(&ws, &["release", "--env", "staging", "-m", "second", "--json"]).success();
    let run = brr(&ws, &["rollback", "--env", "staging", "api", "--json"]).success();
    let v3 = releases(&run);
    assert_eq!((field(&v3[0], "action"), v3[0]["version"].as_u64()), ("rollback", Some(3)));
    assert_eq!(field(&v3[0], "release"), field(&v1[0], "release"));
    assert!(run.stderr.contains("to undo: brr rollback --env staging api --to v2"), "{}", run.stderr);
    ws.brr(["ledger", "verify"]).success();

    let conn = sql(&ws);
    let update = conn.execute("UPDATE ledger SET note = 'edited' WHERE version = 2", []).unwrap_err().to_string();
    assert!(update.contains("append-only"), "{update}");
    let delete = conn.execute("DELETE FROM ledger WHERE version = 1", []).unwrap_err().to_string();
    assert!(delete.contains("append-only"), "{delete}");
    ws.brr(["ledger", "verify"]).success();

    // With the triggers dropped, an edit is caught at the edited row.
    conn.execute_batch(
        "DROP TRIGGER ledger_append_only_update;
         UPDATE ledger SET note = 'approved by nobody' WHERE version = 2;",
    )
    .unwrap();
    let verify = ws.brr(["ledger", "verify", "--json"]).code(1).json();
    assert_eq!(verify["ok"], false);
    let broken = &verify["broken"][0];
    assert_eq!(
        (broken["env"].as_str(), broken["service"].as_str(), broken["version"].as_u64()),
        (Some("staging"), Some("api"), Some(2))
    );
    assert!(broken["reason"].as_str().unwrap().contains("edited"), "{verify}");
    let text = ws.brr(["ledger", "verify"]).code(1);
    assert!(text.stdout.contains("broken: `staging` at v2 of `api`"), "{}", text.stdout);
}

#[test]
fn concurrent_releases_get_consecutive_versions() {
    // Overlapping release phases: each holds the other up for a moment.
    let ws = service_workspace("one", "sleep 0.3; echo done");
    ws.brr(["build"]).success();
    let spawn = || {
        let mut cmd = ws.command();
        cmd.env("TOKEN", TOKEN)
            .args(["release", "--env", "staging", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let children = [spawn(), spawn(), spawn()];
    let versions: BTreeSet<u64> = children
        .into_iter()
        .map(|c| Run::from(c.wait_with_output().unwrap()).success())
        .map(|run| releases(&run)[0]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, BTreeSet::from([1, 2, 3]));
    ws.brr(["ledger", "verify"]).success();
}

#[test]
fn a_secret_value_is_stored_nowhere() {
    let ws = service_workspace("one", "echo \"token=$TOKEN\"; echo \"$TOKEN\" >&2; env | grep TOKEN");
    let run = brr(&ws, &["up", "staging", "--no-run", "--json"]).success();
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN), "{}", run.stderr);
    assert!(run.stderr.contains("api[release] | token=[secret TOKEN]"), "{}", run.stderr);
    let release = field(&releases(&run)[0], "release").to_owned();
    let log = ws.brr(["log", "--release", &release]).success();
    assert!(log.stdout.contains("TOKEN=[secret TOKEN]"), "{}", log.stdout);
    let env_file = std::fs::read_to_string(ws.store().join("releases").join(&release).join(".env")).unwrap();
    assert!(env_file.contains("GREETING=\"hi\"") && env_file.contains("TOKEN"), "{env_file}");
    for (path, bytes) in brr_test_support::snapshot_files(ws.path()) {
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the secret's value is in `{path}`");
    }
}

/// Every mistake exits 2, names what is wrong, and changes neither the
/// ledger nor the store's objects.
#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let ws = service_workspace("one", "true");
    brr(&ws, &["release", "--env", "staging"]).success();
    let state = |ws: &TestWorkspace| {
        let objects = count(ws, "objects");
        let ledger = count(ws, "ledger");
        let folders: Vec<String> = std::fs::read_dir(ws.store().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        (objects, ledger, folders)
    };
    let before = state(&ws);
    let cases: [(&[&str], bool, &str); 8] = [
        (&["release", "--env", "qa"], true, "unknown environment `qa`"),
        (&["release", "nope", "--env", "staging"], true, "unknown service `nope`"),
        (&["release", "--env", "staging"], false, "secret `TOKEN` is not set"),
        (&["rollback", "--env", "staging", "api", "--to", "v9"], true, "no v9 of `api`"),
        (&["rollback", "--env", "staging", "api"], true, "no earlier succeeded release"),
        (&["promote", "--from", "production", "--to", "staging"], true, "does not come after `production`"),
        (&["releases", "--env", "production"], true, "`production` has no releases"),
        (&["diff", "staging", "qa"], true, "no environment `qa`"),
    ];
    for (args, with_secret, message) in cases {
        let run = if with_secret { brr(&ws, args) } else { ws.brr(args) };
        let run = run.code(2);
        assert!(run.stderr.contains(message), "`brr {}`: {}", args.join(" "), run.stderr);
        assert_eq!(state(&ws), before, "`brr {}` changed the store", args.join(" "));
    }
    // A library is not a service.
    ws.write("p/lib/brr.ron", &brr_test_support::sh_library("lib", &[], &[], "echo > \"$OUT/f\""));
    let run = brr(&ws, &["release", "lib", "--env", "staging"]).code(2);
    assert!(run.stderr.contains("`lib` is a library"), "{}", run.stderr);
    assert_eq!(state(&ws), before);
}

/// `kill -9` at any moment of a release: the ledger verifies, and `current`
/// names the ledger's current release, old or new.
#[test]
fn kill_9_during_a_release_leaves_a_verifiable_ledger() {
    let ws = service_workspace("one", "sleep 0.2");
    brr(&ws, &["release", "--env", "staging"]).success();
    let current_release = |ws: &TestWorkspace| {
        let history = releases(&ws.brr(["releases", "--env", "staging", "--json"]).success());
        let current = history.iter().find(|r| r["current"] == true).expect("a current release");
        (field(current, "release").to_owned(), history.len())
    };
    for (i, delay_ms) in [0_u64, 5, 20, 60, 120, 200, 300, 450].into_iter().enumerate() {
        let (before, entries) = current_release(&ws);
        set_service(&ws, &format!("build{i}"), "sleep 0.2");
        let mut cmd = ws.command();
        cmd.env("TOKEN", TOKEN).args(["release", "--env", "staging"]).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        ws.brr(["ledger", "verify"]).success();
        let (after, entries_after) = current_release(&ws);
        match entries_after - entries {
            0 => assert_eq!(after, before, "no entry appended, yet the current release changed"),
            1 => {}
            n => panic!("one release appended {n} entries"),
        }
        // `current` names the old or the new release, and a whole folder;
        // it may lag the ledger only until the next release heals it.
        let link = std::fs::read_link(ws.store().join("envs/staging/api/current")).unwrap();
        let target = link.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(target == before || target == after, "`current` names {target}, neither {before} nor {after}");
        assert!(
            ws.store().join("envs/staging/api").join(&link).join(".env").is_file(),
            "`current` names a partial folder"
        );
    }
    // The next release heals the link and still verifies.
    let run = brr(&ws, &["release", "--env", "staging", "--json"]).success();
    let link = std::fs::read_link(ws.store().join("envs/staging/api/current")).unwrap();
    assert!(link.ends_with(field(&releases(&run)[0], "release")));
    ws.brr(["ledger", "verify"]).success();
    ws.brr(["store", "verify"]).success();
}
