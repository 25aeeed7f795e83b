//! What a hostile builder cannot do: leave a process behind that poisons a
//! later build, or read files outside its sandbox and declared tools. As
//! root and as an ordinary user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use brr_test_support::{Run, TestWorkspace, sh_library, temp_dir};

use crate::{require_namespaces, workspace};

/// A workspace where `aaa`'s builder leaves a `setsid` daemon (and a plain
/// background job, and a double fork) rewriting its `$OUT/f` for a few
/// seconds, and `zzz`, built next in the same sandbox under `-j 1`, writes
/// its own `$OUT/f` and waits. `marker` names the daemons' command lines.
/// The daemons wait a second first (so `aaa`'s own output is clean even on
/// a busy machine), then write for three seconds while `zzz` runs. They
/// use only shell builtins and `sleep`, which `zzz` declares
/// too: `zzz`'s sandbox has only its own tools.
fn daemon_workspace(marker: &str, evil: bool) -> TestWorkspace {
    let daemon = format!(
        "o=\"$OUT\"; i=0; sleep 1; while [ $i -lt 60 ]; do echo EVIL-{marker} > \"$o/f\"; i=$((i+1)); sleep 0.05; done"
    );
    let script = if evil {
        format!(
            "echo a > \"$OUT/f\"; setsid sh -c '{daemon}' >/dev/null 2>&1 & \
             sh -c '{daemon}' >/dev/null 2>&1 & \
             (sh -c '{daemon}' >/dev/null 2>&1 &) ; sleep 0.05"
        )
    } else {
        "echo a > \"$OUT/f\"".to_owned()
    };
    workspace().sh_lib("aaa", &[], &["setsid", "sleep"], &script).sh_lib(
        "zzz",
        &["aaa"],
        &["sleep"],
        "echo z > \"$OUT/f\"; sleep 2.5",
    )
}

/// Processes whose command line holds `marker`.
fn alive(marker: &str) -> String {
    let out = Command::new("pgrep").args(["-a", "-f", marker]).output().expect("pgrep (procps) is needed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_daemons_die(as_user: bool) {
    let marker = format!("daemon{}x{}", std::process::id(), u8::from(as_user));
    let build = |ws: &TestWorkspace| -> Run {
        let args = ["build", "-j", "1", "--json"];
        if as_user { ws.brr_as_user(args) } else { ws.brr(args) }
    };
    let evil = daemon_workspace(&marker, true);
    let run = build(&evil);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.success();
    let leftover = alive(&marker);
    let clean = build(&daemon_workspace(&marker, false)).success();
    assert_eq!(run.targets()["aaa"].artifact, clean.targets()["aaa"].artifact);
    assert_eq!(
        run.targets()["zzz"].artifact,
        clean.targets()["zzz"].artifact,
        "`zzz` was poisoned by a daemon of `aaa`"
    );
    assert!(leftover.is_empty(), "processes of `aaa` outlived its build:\n{leftover}");
}

#[test]
fn processes_a_builder_leaves_die_with_its_build() {
    check_daemons_die(false);
}

#[test]
fn processes_a_builder_leaves_die_with_its_build_as_an_ordinary_user() {
    check_daemons_die(true);
}

/// Files a builder must not read: a private key in a home-like folder,
/// another package's source, the store's database, `/tmp`, `/etc/shadow`.
/// Each read is tried and the outcome written to the output.
fn check_reads_confined(as_user: bool) {
    let home = temp_dir();
    let key = home.path().join(".ssh/id_ed25519");
    fs_err::create_dir_all(key.parent().unwrap()).unwrap();
    fs_err::write(&key, "PRIVATE KEY").unwrap();
    if as_user && rustix::process::geteuid().is_root() {
        let status = Command::new("chown").args(["-R", "65534:65534"]).arg(home.path()).status().unwrap();
        assert!(status.success());
    }
    fs_err::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let ws = workspace().sh_lib("other", &[], &[], "echo other > \"$OUT/f\"").file("p/other/secret.c", "SECRET");
    let targets = [
        key.display().to_string(),
        ws.path().join("p/other/secret.c").display().to_string(),
        ws.store().join("brr.db").display().to_string(),
        "/etc/shadow".to_owned(),
    ];
    let probes: Vec<String> = targets
        .iter()
        .map(|t| {
            format!("if cat '{t}' >/dev/null 2>&1; then echo 'read {t}'; else echo 'denied {t}'; fi >> \"$OUT/f\"; ")
        })
        .collect();
    let mut script = format!(": > \"$OUT/f\"; {}", probes.concat());
    script.push_str("if ls /tmp >/dev/null 2>&1; then echo 'read /tmp'; else echo 'denied /tmp'; fi >> \"$OUT/f\"; ");
    script.push_str("ls /proc | grep -c '^[0-9]' >> \"$OUT/f\"; cat \"$OUT/f\" >&2");
    let ws = ws.sh_lib("reader", &["other"], &["cat", "ls", "grep"], &script);
    let decl = sh_library("reader", &["other"], &["cat", "ls", "grep"], &format!("{script}; true"));
    let build = |args: &[&str]| if as_user { ws.brr_as_user(args) } else { ws.brr(args) };

    let run = build(&["build", "reader"]);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.success();
    let log = build(&["log", "reader"]).success().stdout;
    for t in targets.iter().map(String::as_str).chain(["/tmp"]) {
        if t == "/etc/shadow" && as_user {
            continue; // unreadable for an ordinary user anyway
        }
        assert!(log.contains(&format!("denied {t}")), "the builder could read `{t}`:\n{log}\n{}", run.stderr);
    }
    // Its own /proc shows the build's processes only (sh, ls, grep).
    let procs: Vec<&str> = log.lines().filter(|l| l.chars().all(|c| c.is_ascii_digit())).collect();
    assert!(procs.iter().all(|n| n.parse::<u32>().is_ok_and(|n| (1..10).contains(&n))), "{log}");

    // Unsandboxed, the same builder (a new key) reads them: the checks above
    // can fail.
    fs_err::write(ws.path().join("p/reader/brr.ron"), decl).unwrap();
    build(&["build", "reader", "--no-sandbox"]).success();
    let log = build(&["log", "reader"]).success().stdout;
    assert!(log.contains(&format!("read {}", targets[0])), "{log}");
    assert!(log.contains(&format!("read {}", targets[1])), "{log}");
}

#[test]
fn builders_read_only_their_sandbox_tools_and_system_folders() {
    check_reads_confined(false);
}

#[test]
fn builders_read_only_their_sandbox_tools_and_system_folders_as_an_ordinary_user() {
    check_reads_confined(true);
}

/// A package `name` whose builder runs `script` under `limits`.
fn limited(name: &str, tools: &[&str], script: &str, limits: &str) -> String {
    brr_test_support::sh_library_with(name, &[], tools, script, &format!("limits: Limits({limits}),"))
}

/// Each limit stops a build that exceeds it, with a message naming it; the
/// same build under a higher limit succeeds, so each check can fail.
#[test]
fn builds_over_a_limit_fail_naming_it() {
    let cases = [
        (
            "file",
            vec!["head"],
            "head -c 3000000 /dev/zero > \"$OUT/f\"",
            "output_mib",
            "1",
            "64",
            "output limit of 1 MiB",
        ),
        (
            "total",
            vec!["head", "mkdir"],
            "mkdir \"$OUT/f\"; for i in 1 2 3; do head -c 700000 /dev/zero > \"$OUT/f/$i\"; done",
            "output_mib",
            "1",
            "64",
            "the outputs hold 3 MiB, over the output limit of 1 MiB",
        ),
        (
            "procs",
            vec!["sleep"],
            "i=0; while [ $i -lt 400 ]; do sleep 1 & i=$((i+1)); done; wait; echo ok > \"$OUT/f\"",
            "processes",
            "300",
            "1000",
            "limit of 300 processes",
        ),
        (
            "mem",
            vec!["awk"],
            "awk 'BEGIN { s = \"xxxxxxxx\"; while (length(s) < 200000000) s = s s; print length(s) }' > \"$OUT/f\"",
            "memory_mib",
            "64",
            "2048",
            "memory limit of 64 MiB per process",
        ),
    ];
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"p/*\"])");
    for (name, tools, script, field, low, _, _) in &cases {
        ws.write(&format!("p/{name}/brr.ron"), &limited(name, tools, script, &format!("{field}: {low}")));
    }
    let run = ws.brr(["build", "--json"]);
    if !require_namespaces(&run) {
        return;
    }
    let run = run.code(1);
    for (name, .., message) in &cases {
        assert_eq!(run.targets()[*name].status, "failed", "{name}");
        assert!(
            run.stderr.contains(message),
            "`{name}` failed without naming its limit (`{message}`):\n{}",
            run.stderr
        );
    }
    for (name, tools, script, field, _, high, _) in &cases {
        ws.write(&format!("p/{name}/brr.ron"), &limited(name, tools, script, &format!("{field}: {high}")));
    }
    ws.brr(["build"]).success();
}

/// Where the kernel refuses namespaces (made so here by running brr in a
/// user namespace whose `max_user_namespaces` is 0), brr reaps what a
/// builder leaves behind as its subreaper: no daemon outlives its build.
#[test]
fn without_namespaces_brr_reaps_what_a_builder_leaves_behind() {
    // The daemons are `sleep`s, resolved before the sandbox (and its tools)
    // goes away; the odd duration names them for pgrep.
    let marker = format!("sleep 29.{}", std::process::id());
    let script = format!(
        "setsid {marker} >/dev/null 2>&1 & ({marker} >/dev/null 2>&1 &); {marker} >/dev/null 2>&1 & echo a > \"$OUT/f\""
    );
    let ws = workspace().sh_lib("aaa", &[], &["setsid", "sleep"], &script);
    let out = Command::new("unshare")
        .args(["-r", "sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\""])
        .arg(crate::BRR)
        .arg("-C")
        .arg(ws.path())
        .args(["build", "--json"])
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) runs brr without user namespaces");
    let run = Run::from(out);
    assert!(run.namespaces_unavailable(), "brr still made namespaces: {}", run.stderr);
    run.success();
    let leftover = alive(&marker);
    assert!(leftover.is_empty(), "processes of `aaa` outlived its build:\n{leftover}");
}
