//! Sharing builds through real cache servers: runner A builds and pushes,
//! runner B (another checkout, an empty store) builds nothing; entries that
//! are unsigned, untrusted or whose blobs were tampered with are refused and
//! B builds locally; a server that is down or dies never fails a build.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use brr_remote::entry::SignedEntry;
use brr_test_support::{BuildGridServer, NginxCache, Run, TestWorkspace, temp_dir};

use crate::{shop, workspace};

mod faults;
mod fleet;
mod server;
mod stats;

/// A signing key: its file and its public key.
struct Key {
    file: PathBuf,
    public: String,
    _dir: tempfile::TempDir,
}

fn key(name: &str) -> Key {
    let dir = temp_dir();
    let file = dir.path().join("key");
    let run = workspace().brr(["key", "generate", "-o", file.to_str().unwrap(), "--name", name]).success();
    Key { file, public: run.stdout.trim().to_owned(), _dir: dir }
}

/// `brr build --json` with a remote, trusting `trusted`, signing with `signing`.
fn build(ws: &TestWorkspace, url: &str, signing: Option<&Key>, trusted: &[&Key]) -> Run {
    let mut cmd = ws.command();
    cmd.args(["build", "--json"])
        .env("BRR_REMOTE_CACHE", url)
        .env("BRR_TRUSTED_KEYS", trusted.iter().map(|k| k.public.as_str()).collect::<Vec<_>>().join(","))
        .env_remove("BRR_SIGNING_KEY")
        .env_remove("BRR_CACHE_READ_ONLY");
    if let Some(k) = signing {
        cmd.env("BRR_SIGNING_KEY", &k.file);
    }
    Run::from(cmd.output().unwrap())
}

/// A builds the shop and pushes; B, elsewhere with an empty store, gets
/// every target from the cache with the same hashes and runs no builder.
fn share_through(url: &str) {
    let a_key = key("runner-a");
    let a = shop();
    let run_a = build(&a, url, Some(&a_key), &[&a_key]).success();
    assert_eq!(run_a.count("built"), 3, "{}", run_a.stderr);
    assert!(run_a.stderr.contains("3 pushed"), "{}", run_a.stderr);

    let b = shop();
    assert_ne!(a.path(), b.path());
    // `plan` knows the remote has what B can already name.
    let mut cmd = b.command();
    cmd.args(["plan", "--json"]).env("BRR_REMOTE_CACHE", url).env("BRR_TRUSTED_KEYS", &a_key.public);
    let plan = Run::from(cmd.output().unwrap()).success().json();
    let lib = plan["targets"].as_array().unwrap().iter().find(|t| t["name"] == "libshop").unwrap().clone();
    assert_eq!(lib["status"], "remote", "{plan:#}");
    assert_eq!(lib["artifact"].as_str(), run_a.targets()["libshop"].artifact.as_deref(), "{plan:#}");
    let run_b = build(&b, url, None, &[&a_key]).success();
    assert!(!run_b.stderr.contains("building"), "runner B ran a builder:\n{}", run_b.stderr);
    let (ta, tb) = (run_a.targets(), run_b.targets());
    for (name, t) in &tb {
        assert_eq!(t.status, "cached", "{name}: {}", run_b.stdout);
        assert_eq!((&t.key, &t.artifact), (&ta[name].key, &ta[name].artifact), "{name}");
    }
    let json = run_b.json();
    assert!(json["targets"].as_array().unwrap().iter().all(|t| t["remote"] == true), "{json:#}");
    assert!(run_b.stderr.contains("3 hits"), "{}", run_b.stderr);
    b.brr(["store", "verify"]).success();
}

#[test]
fn nginx_shares_builds_between_runners() {
    let Some(nginx) = NginxCache::start() else { return };
    share_through(&nginx.url());
}

#[test]
fn buildgrid_shares_builds_between_runners() {
    let Some(grid) = BuildGridServer::start() else { return };
    share_through(&grid.url());
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// B trusts `trusted` and must build everything itself, saying why.
fn builds_locally(url: &str, trusted: &[&Key], why: &str, reference: &Run) -> Run {
    let b = shop();
    let run = build(&b, url, None, trusted).success();
    assert_eq!(run.count("built"), 3, "B should have built locally:\n{}", run.stderr);
    assert!(run.stderr.contains(why), "no `{why}` note:\n{}", run.stderr);
    // Refused, yet reproducible: the local build gives the same artifacts.
    let (mine, theirs) = (run.targets(), reference.targets());
    assert!(mine.iter().all(|(n, t)| t.artifact == theirs[n].artifact));
    b.brr(["store", "verify"]).success();
    run
}

#[test]
fn untrusted_unsigned_and_tampered_entries_are_refused() {
    let Some(nginx) = NginxCache::start() else { return };
    let url = nginx.url();
    let (a_key, other) = (key("runner-a"), key("someone-else"));
    let a = shop();
    let pushed = build(&a, &url, Some(&a_key), &[&a_key]).success();

    // Signed by a key B does not trust: one note for the three targets.
    let run = builds_locally(&url, &[&other], "not trusted", &pushed);
    assert_eq!(run.stderr.matches("not trusted").count(), 1, "{}", run.stderr);

    // A blob replaced on the server (same name, other bytes).
    let cas = files(&nginx.root().join("cas"));
    assert!(!cas.is_empty());
    let originals: Vec<Vec<u8>> = cas.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for f in &cas {
        std::fs::write(f, b"tampered bytes").unwrap();
    }
    builds_locally(&url, &[&a_key], "arrived with other bytes", &pushed);
    for (f, bytes) in cas.iter().zip(&originals) {
        std::fs::write(f, bytes).unwrap();
    }

    // The entries stripped of their signatures.
    for f in files(&nginx.root().join("ac")) {
        let mut entry = SignedEntry::decode(&std::fs::read(&f).unwrap()).unwrap();
        entry.signature.clear();
        std::fs::write(&f, entry.encode()).unwrap();
    }
    builds_locally(&url, &[&a_key], "not signed", &pushed);
}

/// Libraries that each take a while, so a server can die mid-build.
fn slow_workspace() -> TestWorkspace {
    (0..4).fold(workspace(), |ws, i| {
        ws.sh_lib(&format!("slow{i}"), &[], &["sleep"], &format!("sleep 0.4; echo {i} > \"$OUT/f\""))
    })
}

#[test]
fn a_server_that_is_down_or_dies_never_fails_a_build() {
    let a_key = key("runner-a");
    // Down from the start: one warning, then a normal local build.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = build(&slow_workspace(), &url, Some(&a_key), &[&a_key]).success();
    assert_eq!(run.count("built"), 4, "{}", run.stderr);
    assert_eq!(run.stderr.matches("remote cache unavailable").count(), 1, "{}", run.stderr);

    // Killed in the middle of a build.
    let Some(nginx) = NginxCache::start() else { return };
    let ws = slow_workspace();
    let mut cmd = ws.command();
    cmd.args(["build", "-j", "1"])
        .env("BRR_REMOTE_CACHE", nginx.url())
        .env("BRR_TRUSTED_KEYS", &a_key.public)
        .env("BRR_SIGNING_KEY", &a_key.file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("brr ended before building anything:\n{seen}")).unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.trim_start().starts_with("built ") {
            break;
        }
    }
    nginx.stop();
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the build failed after the server died:\n{seen}");
    assert!(seen.contains("4 built"), "{seen}");
}

/// `cache` with the remote and keys given by the environment.
fn cache(ws: &TestWorkspace, url: &str, signing: Option<&Key>, trusted: &[&Key], args: &[&str]) -> Run {
    let mut cmd = ws.command();
    cmd.arg("cache")
        .args(args)
        .env("BRR_REMOTE_CACHE", url)
        .env("BRR_TRUSTED_KEYS", trusted.iter().map(|k| k.public.as_str()).collect::<Vec<_>>().join(","))
        .env_remove("BRR_SIGNING_KEY");
    if let Some(k) = signing {
        cmd.env("BRR_SIGNING_KEY", &k.file);
    }
    Run::from(cmd.output().unwrap())
}

#[test]
fn cache_pull_push_status_and_read_only_runners() {
    let Some(nginx) = NginxCache::start() else { return };
    let url = nginx.url();
    let a_key = key("runner-a");

    // A read-only runner with a key pushes nothing.
    let ro = shop();
    let mut cmd = ro.command();
    cmd.args(["build", "--json"])
        .env("BRR_REMOTE_CACHE", &url)
        .env("BRR_SIGNING_KEY", &a_key.file)
        .env("BRR_CACHE_READ_ONLY", "1");
    let run = Run::from(cmd.output().unwrap()).success();
    assert!(run.stderr.contains("0 pushed"), "{}", run.stderr);
    assert!(files(&nginx.root()).is_empty(), "a read-only runner wrote to the cache");
    // Nor can it push explicitly.
    cache(&ro, &url, None, &[], &["push"]).code(2);

    // `cache push` after a plain build, then B pulls without building.
    let a = shop();
    a.brr(["build"]).success();
    let pushed = cache(&a, &url, Some(&a_key), &[&a_key], &["push", "--json"]).success().json();
    assert_eq!(pushed["entries_pushed"].as_u64(), Some(3), "{pushed:#}");
    assert!(pushed["bytes_up"].as_u64().unwrap() > 0);

    let b = shop();
    let status = cache(&b, &url, None, &[&a_key], &["status", "--json"]).success().json();
    // Before pulling, B knows only the library's key (the services' keys
    // depend on its artifact).
    assert_eq!(status["remotes"][0]["reachable"], true, "{status:#}");
    let pulled = cache(&b, &url, None, &[&a_key], &["pull", "--json"]).success().json();
    assert_eq!(pulled["targets"]["libshop"], "pulled", "{pulled:#}");
    assert_eq!(pulled["targets"]["api"], "pulled", "{pulled:#}");
    assert_eq!(pulled["targets"]["billing"], "pulled", "{pulled:#}");
    assert!(pulled["bytes_down"].as_u64().unwrap() > 0);
    let run = b.brr(["build", "--json"]).success();
    assert_eq!(run.count("cached"), 3, "{}", run.stdout);
    let status = cache(&b, &url, None, &[&a_key], &["status", "--json"]).success().json();
    assert_eq!(status["remotes"][0]["hits"].as_u64(), Some(3), "{status:#}");
    assert_eq!(status["remotes"][0]["conflicts"].as_array().map(Vec::len), Some(0));
}

#[test]
fn two_runners_with_different_bytes_for_one_key_are_reported() {
    let Some(nginx) = NginxCache::start() else { return };
    let url = nginx.url();
    let (a_key, c_key, d_key) = (key("runner-a"), key("runner-c"), key("runner-d"));
    // Not reproducible: the output is random.
    let make = || workspace().sh_lib("dice", &[], &["od"], "od -An -N8 -tx1 /dev/urandom > \"$OUT/f\"");
    let signer = || {
        let entries = files(&nginx.root().join("ac"));
        assert_eq!(entries.len(), 1);
        SignedEntry::decode(&std::fs::read(&entries[0]).unwrap()).unwrap().body.signer
    };
    let a = make();
    build(&a, &url, Some(&a_key), &[&a_key]).success();
    // C does not trust A, so it builds itself, and pushes other bytes.
    let c = make();
    let run = build(&c, &url, Some(&c_key), &[&c_key]).success();
    assert_eq!(run.count("built"), 1);
    assert!(run.stderr.contains("not reproducible"), "{}", run.stderr);
    assert!(run.stderr.contains("`runner-a`"), "{}", run.stderr);
    assert_eq!(run.json()["remote_cache"]["conflicts"].as_u64(), Some(1), "{}", run.stdout);
    // The first writer's entry is kept.
    assert_eq!(signer(), "runner-a");
    // C recorded the conflict in its store: `cache status` lists it, exit 1.
    let status = cache(&c, &url, None, &[&c_key], &["status", "--json"]).code(1).json();
    let recorded = status["recorded_conflicts"].as_array().unwrap().clone();
    assert_eq!(recorded.len(), 1, "{status:#}");
    assert_eq!(recorded[0]["target"], "dice");
    assert_eq!(recorded[0]["signer"], "runner-a");
    let report = c.brr(["verify", "--report", "--json"]).success().json();
    assert_eq!(report["cache_conflicts"].as_array().map(Vec::len), Some(1), "{report:#}");
    // Trusting A as well, C sees the conflict on the remote itself.
    let status = cache(&c, &url, None, &[&a_key, &c_key], &["status", "--json"]).code(1).json();
    let conflicts = status["remotes"][0]["conflicts"].as_array().unwrap().clone();
    assert_eq!(conflicts.len(), 1, "{status:#}");
    assert_eq!(conflicts[0]["target"], "dice");
    assert_eq!(conflicts[0]["signer"], "runner-a");

    // CI can gate on it: the flag or the variable make the build exit 1.
    let d = make();
    let mut cmd = d.command();
    cmd.args(["build", "--fail-on-conflict"])
        .env("BRR_REMOTE_CACHE", &url)
        .env("BRR_TRUSTED_KEYS", &d_key.public)
        .env("BRR_SIGNING_KEY", &d_key.file);
    let run = Run::from(cmd.output().unwrap()).code(1);
    assert!(run.stderr.contains("not reproducible"), "{}", run.stderr);
    let d = make();
    let mut cmd = d.command();
    cmd.args(["build"])
        .env("BRR_REMOTE_CACHE", &url)
        .env("BRR_TRUSTED_KEYS", &d_key.public)
        .env("BRR_SIGNING_KEY", &d_key.file)
        .env("BRR_FAIL_ON_CONFLICT", "yes");
    Run::from(cmd.output().unwrap()).code(1);
    assert_eq!(signer(), "runner-a");
    // Unless told to replace it.
    let d = make();
    let mut cmd = d.command();
    cmd.args(["build"])
        .env("BRR_REMOTE_CACHE", &url)
        .env("BRR_TRUSTED_KEYS", &d_key.public)
        .env("BRR_SIGNING_KEY", &d_key.file)
        .env("BRR_CACHE_ON_CONFLICT", "replace");
    let run = Run::from(cmd.output().unwrap()).success();
    assert!(run.stderr.contains("replaced their entry"), "{}", run.stderr);
    assert_eq!(signer(), "runner-d");
}
