//! `Fetch(...)` packages: downloads pinned by hash through a mirror on
//! 127.0.0.1, fetched once, refused on a wrong hash without storing
//! anything; every other builder without network.

use brr_test_support::{
    FETCH_FIXTURES_HINT, FileServer, NAMESPACES_HINT, Run, TestWorkspace, fetch_fixtures_dir, path_with_real_python3,
    require,
};

use crate::{BRR, FileRemote};

const SIX: &str = "six-1.16.0-py2.py3-none-any.whl";
const IDNA: &str = "idna-3.7-py3-none-any.whl";
const SIX_HASH: &str = "827f406086e7d01e721cedefdfd2ed92548fd61512577bd9fc074cfe53ce40fe";

/// The wheels `scripts/test-deps.sh` downloaded, served on 127.0.0.1;
/// `None` (after `require`) when they are missing.
fn wheel_mirror() -> Option<FileServer> {
    let dir = fetch_fixtures_dir();
    let missing: Vec<&str> = [SIX, IDNA].into_iter().filter(|f| !dir.join(f).is_file()).collect();
    let detail = format!("{} missing in target/fetch-fixtures/", missing.join(", "));
    require(missing.is_empty(), "the PyPI wheels of the fetch tests", &detail, FETCH_FIXTURES_HINT)
        .then(|| FileServer::start(&dir))
}

/// `brr ARGS` with the mirror and a PATH whose `python3` is a real binary.
fn brr(ws: &TestWorkspace, mirror: Option<&FileServer>, args: &[&str]) -> Run {
    with_mirror(ws.command(), mirror, args)
}

fn with_mirror(mut cmd: std::process::Command, mirror: Option<&FileServer>, args: &[&str]) -> Run {
    cmd.env("PATH", path_with_real_python3().expect("python3"));
    match mirror {
        Some(m) => cmd.env("BRR_FETCH_MIRROR", m.url()),
        None => cmd.env_remove("BRR_FETCH_MIRROR"),
    };
    Run::from(cmd.args(args).output().unwrap())
}

/// Objects and bytes in the store, after checking it.
fn store_objects(ws: &TestWorkspace) -> (u64, u64) {
    let doc = ws.brr(["store", "verify", "--json"]).success().json();
    assert_eq!(doc["ok"], true, "{doc}");
    (doc["objects"].as_u64().unwrap(), doc["bytes"].as_u64().unwrap())
}

fn set_file(ws: &TestWorkspace, rel: &str, from: &str, to: &str) {
    let text = ws.read(rel);
    assert!(text.contains(from), "{rel} has no `{from}`");
    ws.write(rel, &text.replace(from, to));
}

#[test]
fn pyshop_builds_on_wheels_fetched_once_and_keyed_on_their_hash_alone() {
    let Some(mirror) = wheel_mirror() else { return };
    let ws = TestWorkspace::fixture(BRR, "pyshop");
    let run = brr(&ws, Some(&mirror), &["build", "--json"]).success();
    assert_eq!(run.count("built"), 3, "{}", run.stdout);
    assert_eq!((mirror.hits(SIX), mirror.hits(IDNA)), (1, 1));
    // The service imported both wheels at build time, without network.
    let selftest = brr(&ws, None, &["cat", "greeter", "selftest.txt"]).success().stdout;
    assert_eq!(selftest, "hello xn--bcher-kva.example (six 1.16.0)\n");
    assert!(brr(&ws, None, &["cat", "six-whl", SIX]).success().stdout.starts_with("PK"), "the wheel, a zip");

    // Fetched once per store: nothing is asked again.
    let again = brr(&ws, Some(&mirror), &["build", "--json"]).success();
    assert_eq!(again.count("cached"), 3, "{}", again.stdout);
    assert_eq!(mirror.total_hits(), 2);

    // Another URL for the same files is the same key: a cache hit, no request.
    let six = "deps/six/brr.ron";
    set_file(&ws, six, "https://files.pythonhosted.org/packages/d9/5a", "https://mirror.invalid/pypi");
    let moved = brr(&ws, None, &["build", "--json"]).success();
    assert_eq!(moved.count("cached"), 3, "{}", moved.stdout);
    assert_eq!(mirror.total_hits(), 2);

    // `graph` and `why` know the kind.
    let graph = ws.brr(["graph", "--format", "json"]).success().json();
    let kinds: Vec<(&str, &str)> = graph["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("six-whl", "fetch")) && kinds.contains(&("greeter", "service")), "{kinds:?}");
    let why = brr(&ws, None, &["why", "six-whl"]).success().stdout;
    assert!(why.contains(&format!("fetch {SIX_HASH}")), "{why}");
}

#[test]
fn a_fetch_is_shared_through_a_remote_cache_and_not_fetched_again() {
    let Some(mirror) = wheel_mirror() else { return };
    let remote = FileRemote::new();
    let first = TestWorkspace::fixture(BRR, "pyshop");
    let run = with_mirror(remote.command(&first), Some(&mirror), &["build", "--json"]).success();
    assert_eq!(run.count("built"), 3, "{}", run.stdout);
    let second = TestWorkspace::fixture(BRR, "pyshop");
    let run = with_mirror(remote.command(&second), Some(&mirror), &["build", "--json"]).success();
    assert_eq!(run.count("cached"), 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!((mirror.hits(SIX), mirror.hits(IDNA)), (1, 1), "the second runner pulled the wheels");
    assert!(brr(&second, None, &["cat", "six-whl", SIX]).success().stdout.starts_with("PK"));
}

#[test]
fn a_hash_changed_by_one_character_fails_naming_both_hashes_and_stores_nothing() {
    let Some(mirror) = wheel_mirror() else { return };
    let ws = TestWorkspace::fixture(BRR, "pyshop");
    brr(&ws, Some(&mirror), &["build", "idna-whl"]).success();
    let before = store_objects(&ws);
    let wrong = format!("9{}", &SIX_HASH[1..]);
    set_file(&ws, "deps/six/brr.ron", SIX_HASH, &wrong);
    let run = brr(&ws, Some(&mirror), &["build", "greeter"]).code(1);
    assert_eq!(mirror.hits(SIX), 1, "the wheel was downloaded and refused");
    for needle in [
        "fetched files do not have the pinned hash (deps/six/brr.ron:5:5)",
        &format!("expected `{wrong}`"),
        &format!("actual `{SIX_HASH}`"),
        "nothing was stored",
    ] {
        assert!(run.stderr.contains(needle), "no `{needle}` in:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("greeter"), "the dependent is skipped:\n{}", run.stderr);
    assert_eq!(store_objects(&ws), before, "a refused fetch stores nothing");
    assert!(brr_test_support::sandbox_leftovers(&ws.store()).is_empty());
}

#[test]
fn only_fetches_have_the_network_and_commands_may_fetch() {
    let Some(mirror) = wheel_mirror() else { return };
    let get = |dest: &str| {
        format!(
            "import os, urllib.request\ntry:\n    urllib.request.urlretrieve('{}/{SIX}', os.path.join(os.environ['OUT'], '{dest}'))\nexcept OSError as e:\n    open(os.path.join(os.environ['OUT'], '{dest}'), 'w').write('no network')\n",
            mirror.url()
        )
    };
    let ws = TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("p/lib/get.py", &get("got"))
        .file(
            "p/lib/brr.ron",
            r#"Library(name: "lib", inputs: ["get.py"], tools: ["python3"], builder: ["python3", "get.py"], outputs: ["got"])"#,
        )
        .file(
            "p/six/brr.ron",
            &format!(
                r#"Fetch(name: "six", command: ["python3", "-c", {:?}], tools: ["python3"], hash: "{SIX_HASH}")"#,
                get(SIX)
            ),
        );
    let run = brr(&ws, None, &["build", "--json"]).success();
    if !require(!run.namespaces_unavailable(), "namespaces", "builds run without them", NAMESPACES_HINT) {
        return;
    }
    assert_eq!(run.count("built"), 2, "{}", run.stdout);
    assert_eq!(brr(&ws, None, &["cat", "lib", "got"]).success().stdout, "no network");
    assert_eq!(mirror.hits(SIX), 1, "only the fetch command reached the server");
}

#[test]
fn fetch_urls_and_mirrors_are_http_only() {
    let Some(mirror) = wheel_mirror() else { return };
    let ws = TestWorkspace::new(BRR)
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("p/f/brr.ron", &format!("Fetch(name: \"f\", url: \"file:///etc/passwd\", hash: \"{SIX_HASH}\")\n"));
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("fetch url `file:///etc/passwd` is not an http(s) URL"), "{}", run.stderr);
    assert!(!ws.store().exists(), "a declaration mistake writes nothing");

    // A local file through the mirror, or through a redirect: refused.
    ws.write(
        "p/f/brr.ron",
        &format!("Fetch(name: \"f\", url: \"https://example.invalid/{SIX}\", hash: \"{SIX_HASH}\")\n"),
    );
    let mut cmd = ws.command();
    let run = Run::from(cmd.env("BRR_FETCH_MIRROR", "file:///").arg("build").output().unwrap()).code(1);
    assert!(run.stderr.contains("BRR_FETCH_MIRROR `file:///` is not an http(s) URL"), "{}", run.stderr);
    let redirect = format!("{}/redirect/file:///etc", mirror.url());
    let mut cmd = ws.command();
    let run = Run::from(cmd.env("BRR_FETCH_MIRROR", &redirect).arg("build").output().unwrap()).code(1);
    assert!(run.stderr.contains("cannot fetch"), "{}", run.stderr);
    assert_eq!(mirror.hits(&format!("redirect/file:///etc/{SIX}")), 1);
    assert_eq!(store_objects(&ws).0, 0, "{}", run.stderr);

    // The download is bounded by the output limit.
    ws.write(
        "p/f/brr.ron",
        &format!(
            "Fetch(name: \"f\", url: \"https://example.invalid/{SIX}\", hash: \"{SIX_HASH}\", \
             limits: Limits(output_mib: 0))\n"
        ),
    );
    let run = brr(&ws, Some(&mirror), &["build"]).code(1);
    assert!(run.stderr.contains("is over the output limit of 0 MiB"), "{}", run.stderr);
    assert_eq!(store_objects(&ws).0, 0, "{}", run.stderr);
}
