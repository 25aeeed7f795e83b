//! Failure paths of the remote cache, against a server that misbehaves on
//! purpose (slow, refusing uploads) or a real nginx: bounded waits, one
//! refused upload, credentials, read-only runners, exit codes.

use std::time::{Duration, Instant};

use brr_test_support::{NginxCache, Run, TestWorkspace, snapshot_files};

use super::server::FaultServer;
use super::{Key, cache, files, key};
use crate::{shop, workspace};

/// `brr build --json` in `ws` with extra environment variables.
fn build_env(ws: &TestWorkspace, url: &str, signing: Option<&Key>, env: &[(&str, &str)]) -> Run {
    let mut cmd = ws.command();
    cmd.args(["build", "--json"])
        .env("BRR_REMOTE_CACHE", url)
        .env_remove("BRR_TRUSTED_KEYS")
        .env_remove("BRR_SIGNING_KEY")
        .env_remove("BRR_CACHE_READ_ONLY");
    if let Some(k) = signing {
        cmd.env("BRR_SIGNING_KEY", &k.file).env("BRR_TRUSTED_KEYS", &k.public);
    }
    cmd.envs(env.iter().copied());
    Run::from(cmd.output().unwrap())
}

#[test]
fn a_slow_server_costs_at_most_the_budget_and_is_reported_once() {
    let budget = Duration::from_secs(1);
    let server = FaultServer::start();
    server.delay_every_answer(Duration::from_secs(5));
    let k = key("runner-a");

    let started = Instant::now();
    let plain = shop().brr(["build"]).success();
    let without = started.elapsed();
    assert!(plain.stderr.contains("3 built"), "{}", plain.stderr);

    let started = Instant::now();
    let budget_ms = format!("{}ms", budget.as_millis());
    let run = build_env(&shop(), &server.url(), Some(&k), &[("BRR_REMOTE_BUDGET", &budget_ms)]).success();
    let with = started.elapsed();
    eprintln!("shop without a remote: {without:?}; with a 5 s server and a {budget:?} budget: {with:?}");
    assert_eq!(run.count("built"), 3, "{}", run.stderr);
    // The budget, plus half a second of slack for this shared machine's noise.
    assert!(with <= without + budget + Duration::from_millis(500), "{with:?} vs {without:?}:\n{}", run.stderr);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("remote cache unavailable")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("budget of 1.0s"), "{}", warnings[0]);
    let stats = &run.json()["remote_cache"];
    // Switched off, the remote does not count misses it never answered.
    assert_eq!(stats["misses"].as_u64(), Some(0), "{stats:#}");
    assert_eq!(stats["hits"].as_u64(), Some(0), "{stats:#}");
    assert!(stats["wait_ms"].as_u64().unwrap() <= 1100, "{stats:#}");
    assert_eq!(stats["switched_off"].as_array().map(Vec::len), Some(1), "{stats:#}");
}

#[test]
fn one_refused_upload_does_not_switch_the_remote_off() {
    let server = FaultServer::start();
    // A full disk: the big blob is refused, the small ones are stored.
    server.refuse_puts_over(64 << 10);
    let k = key("runner-a");
    let big = "head -c 300000 /dev/zero | tr '\\0' x > \"$OUT/f\"";
    let ws = (0..4).fold(workspace().sh_lib("big", &[], &["head", "tr"], big), |ws, i| {
        ws.sh_lib(&format!("small{i}"), &["big"], &[], &format!("echo {i} > \"$OUT/f\""))
    });
    let run = build_env(&ws, &server.url(), Some(&k), &[("BRR_REMOTE_RETRIES", "0")]).success();
    assert_eq!(run.count("built"), 5, "{}", run.stderr);
    // The four small targets' entries are on the server.
    assert_eq!(server.stored().iter().filter(|p| p.starts_with("/ac/")).count(), 4, "{}", run.stderr);
    let stats = &run.json()["remote_cache"];
    assert_eq!(stats["pushed"].as_u64(), Some(4), "{stats:#}\n{}", run.stderr);
    assert_eq!(stats["switched_off"].as_array().map(Vec::len), Some(0), "{stats:#}");
    assert!(run.stderr.contains("507"), "the refusal is not reported:\n{}", run.stderr);
}

#[test]
fn credentials_are_sent_and_never_shown_or_stored() {
    let server = FaultServer::start();
    let k = key("runner-a");
    let url = server.url_with("ghp_SECRET123");
    let env = [("BRR_REMOTE_TOKEN", "tok_SECRET456"), ("BRR_REMOTE_HEADERS", "X-Api-Key: key_SECRET789")];
    let ws = shop();
    let mut out = String::new();
    let mut record = |run: &Run| {
        out.push_str(&run.stdout);
        out.push_str(&run.stderr);
    };
    let run = build_env(&ws, &url, Some(&k), &env).success();
    assert!(run.stderr.contains("3 pushed"), "{}", run.stderr);
    record(&run);
    for args in
        [&["cache", "status"][..], &["cache", "push", "--json"], &["cache", "pull"], &["cache", "status", "--json"]]
    {
        let mut cmd = ws.command();
        cmd.args(args)
            .env("BRR_REMOTE_CACHE", &url)
            .env("BRR_SIGNING_KEY", &k.file)
            .env("BRR_TRUSTED_KEYS", &k.public)
            .envs(env);
        record(&Run::from(cmd.output().unwrap()));
    }
    // A server that is down: the error messages name the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://ghp_SECRET123@{}", closed.local_addr().unwrap());
    drop(closed);
    let run = build_env(&shop(), &down, Some(&k), &env).success();
    assert!(run.stderr.contains("http://***@127.0.0.1"), "{}", run.stderr);
    record(&run);
    record(&cache(&ws, &down, Some(&k), &[&k], &["push"]));
    assert!(!out.contains("SECRET"), "a credential was printed:\n{out}");
    for (path, bytes) in snapshot_files(&ws.store()) {
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"), "a credential is stored in {path}");
    }
    // They were sent: the token (it replaces the URL's user info) and the header.
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.headers
                .iter()
                .any(|h| h == "authorization: Bearer tok_SECRET456" || h == "Authorization: Bearer tok_SECRET456"),
            "{r:?}"
        );
        assert!(r.headers.iter().any(|h| h.eq_ignore_ascii_case("x-api-key: key_SECRET789")), "{r:?}");
    }
}

#[test]
fn basic_auth_from_the_url_is_sent_and_hidden() {
    let server = FaultServer::start();
    let url = server.url_with("ci:pw_SECRET");
    let run = build_env(&workspace().sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\""), &url, None, &[]).success();
    assert!(!run.stderr.contains("SECRET") && !run.stdout.contains("SECRET"), "{}", run.stderr);
    // base64("ci:pw_SECRET")
    let basic = "Basic Y2k6cHdfU0VDUkVU";
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.headers.iter().any(|h| h.ends_with(basic))), "{requests:?}");
}

#[test]
fn read_only_understands_yes_and_fails_closed() {
    let Some(nginx) = NginxCache::start() else { return };
    let k = key("runner-a");
    for value in ["TRUE", "yes", "on", "Y", "maybe"] {
        let ws = workspace().sh_lib("one", &[], &[], &format!("echo {value} > \"$OUT/f\""));
        let run = build_env(&ws, &nginx.url(), Some(&k), &[("BRR_CACHE_READ_ONLY", value)]).success();
        assert!(run.stderr.contains("0 pushed"), "{value}: {}", run.stderr);
        assert!(files(&nginx.root()).is_empty(), "BRR_CACHE_READ_ONLY={value} wrote to the cache");
        if value == "maybe" {
            assert!(run.stderr.contains("taken as yes"), "{}", run.stderr);
        }
    }
    // A clear no pushes.
    let ws = workspace().sh_lib("one", &[], &[], "echo no > \"$OUT/f\"");
    let run = build_env(&ws, &nginx.url(), Some(&k), &[("BRR_CACHE_READ_ONLY", "off")]).success();
    assert!(run.stderr.contains("1 pushed"), "{}", run.stderr);
}

#[test]
fn a_url_declared_read_only_and_given_again_stays_read_only() {
    let Some(nginx) = NginxCache::start() else { return };
    let k = key("runner-a");
    let ws = workspace().sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\"").file(
        "brr.ron",
        &format!("Workspace(packages: [\"p/*\"], remotes: [Remote(url: \"{}/\", read_only: true)])\n", nginx.url()),
    );
    let run = build_env(&ws, &nginx.url(), Some(&k), &[]).success();
    assert!(run.stderr.contains("0 pushed"), "{}", run.stderr);
    assert!(files(&nginx.root()).is_empty(), "the read-only remote was written to");
    let status = cache(&ws, &nginx.url(), None, &[&k], &["status", "--json"]).json();
    assert_eq!(status["remotes"].as_array().map(Vec::len), Some(1), "{status:#}");
}

#[test]
fn cache_commands_exit_non_zero_when_unreachable_or_missing() {
    let k = key("runner-a");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let ws = workspace().sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\"");
    ws.brr(["build"]).success();
    let status = cache(&ws, &down, None, &[&k], &["status", "--json"]).code(1).json();
    assert_eq!(status["remotes"][0]["reachable"], false, "{status:#}");
    cache(&ws, &down, Some(&k), &[&k], &["push"]).code(1);
    let fresh = workspace().sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\"");
    cache(&fresh, &down, None, &[&k], &["pull"]).code(1);

    // Reachable, but the entry is missing: status and pull fail, push fixes it.
    let dir = brr_test_support::temp_dir();
    let url = format!("file://{}", dir.path().display());
    let status = cache(&ws, &url, None, &[&k], &["status", "--json"]).code(1).json();
    assert_eq!(status["remotes"][0]["missing"][0], "one", "{status:#}");
    cache(&fresh, &url, None, &[&k], &["pull"]).code(1);
    cache(&ws, &url, Some(&k), &[&k], &["push"]).success();
    cache(&ws, &url, None, &[&k], &["status"]).success();
    cache(&fresh, &url, None, &[&k], &["pull"]).success();
    // A target not built here cannot be pushed.
    let other = workspace().sh_lib("two", &[], &[], "echo 2 > \"$OUT/f\"");
    cache(&other, &url, Some(&k), &[&k], &["push"]).code(1);
}

#[test]
fn shared_blobs_are_uploaded_once_per_run() {
    let server = FaultServer::start();
    let k = key("runner-a");
    // Every target's output is the empty file.
    let ws = (0..6).fold(workspace(), |ws, i| ws.sh_lib(&format!("empty{i}"), &[], &[], ": > \"$OUT/f\""));
    let run = build_env(&ws, &server.url(), Some(&k), &[]).success();
    assert!(run.stderr.contains("6 pushed"), "{}", run.stderr);
    let mut puts: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/cas/"))
        .map(|r| r.path)
        .collect();
    let all = puts.len();
    puts.sort();
    puts.dedup();
    assert_eq!(all, puts.len(), "a blob was uploaded twice in one run");
}

#[test]
fn limits_are_read_from_brr_ron_and_the_environment_and_checked() {
    let server = FaultServer::start();
    server.delay_every_answer(Duration::from_secs(5));
    let decl = "Workspace(packages: [\"p/*\"], remote_cache: RemoteCache(budget: \"300ms\", retries: 0))\n";
    let ws = workspace().sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\"").file("brr.ron", decl);
    let run = build_env(&ws, &server.url(), None, &[]).success();
    assert!(run.stderr.contains("budget of 0.3s"), "{}", run.stderr);
    // The environment wins over brr.ron.
    let ws = workspace().sh_lib("one", &[], &[], "echo 2 > \"$OUT/f\"").file("brr.ron", decl);
    let run = build_env(&ws, &server.url(), None, &[("BRR_REMOTE_BUDGET", "0.2s")]).success();
    assert!(run.stderr.contains("budget of 0.2s"), "{}", run.stderr);
    // Malformed values are user errors naming where they are.
    let bad = workspace()
        .sh_lib("one", &[], &[], "echo 1 > \"$OUT/f\"")
        .file("brr.ron", "Workspace(packages: [\"p/*\"], remote_cache: RemoteCache(budget: \"soon\"))\n");
    let run = bad.brr(["build"]).code(2);
    assert!(run.stderr.contains("invalid duration `soon`"), "{}", run.stderr);
    let run = build_env(&ws, &server.url(), None, &[("BRR_REMOTE_TIMEOUT", "fast")]).code(2);
    assert!(run.stderr.contains("BRR_REMOTE_TIMEOUT"), "{}", run.stderr);
    let run = build_env(&ws, &server.url(), None, &[("BRR_CACHE_ON_CONFLICT", "merge")]).code(2);
    assert!(run.stderr.contains("keep-first"), "{}", run.stderr);
}

#[test]
fn grpc_remotes_take_tokens_and_never_show_them() {
    let Some(grid) = brr_test_support::BuildGridServer::start() else { return };
    let k = key("runner-a");
    let env = [("BRR_REMOTE_TOKEN", "tok_SECRET456"), ("BRR_REMOTE_HEADERS", "x-team=key_SECRET789")];
    let run = build_env(&shop(), &grid.url(), Some(&k), &env).success();
    assert!(run.stderr.contains("3 pushed"), "{}", run.stderr);
    let run = build_env(&shop(), &grid.url(), Some(&k), &env).success();
    assert_eq!(run.json()["remote_cache"]["hits"].as_u64(), Some(3), "{}", run.stderr);
    assert!(!run.stderr.contains("SECRET") && !run.stdout.contains("SECRET"), "{}", run.stderr);
    // A header gRPC cannot carry is a user error that does not show its value.
    let run = build_env(&shop(), &grid.url(), Some(&k), &[("BRR_REMOTE_HEADERS", "bad header: v_SECRET")]).code(2);
    assert!(run.stderr.contains("bad header") && !run.stderr.contains("SECRET"), "{}", run.stderr);
    let run = build_env(&shop(), &grid.url(), Some(&k), &[("BRR_REMOTE_HEADERS", "no-separator_SECRET")]).code(2);
    assert!(run.stderr.contains("item 1") && !run.stderr.contains("SECRET"), "{}", run.stderr);
}

#[test]
fn s3_shares_builds_between_runners_and_hides_the_secret() {
    let Some(moto) = brr_test_support::MotoServer::start() else { return };
    let k = key("runner-a");
    let aws =
        [("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "aws_SECRET"), ("AWS_REGION", "eu-west-1")];
    let url = moto.url("ci");
    let run = build_env(&shop(), &url, Some(&k), &aws).success();
    assert!(run.stderr.contains("3 pushed"), "{}", run.stderr);
    let run = build_env(&shop(), &url, Some(&k), &aws).success();
    assert!(!run.stderr.contains("building"), "{}", run.stderr);
    assert_eq!(run.json()["remote_cache"]["hits"].as_u64(), Some(3), "{}", run.stderr);
    assert!(!run.stderr.contains("SECRET"), "{}", run.stderr);
    // Without credentials the remote is skipped with a reason.
    let run = build_env(&shop(), &url, Some(&k), &[]).success();
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.stderr);
}
