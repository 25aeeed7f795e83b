//! End-to-end tests of the `brr` binary: real workspaces in temporary
//! folders, real builders, one module per concern.
#![expect(clippy::unwrap_used, reason = "a failing test panics, helpers included")]

mod build_path;
mod cache;
mod closures;
mod confinement;
mod crash;
mod defaults;
mod failures;
mod fetch;
mod gc;
mod hostile;
mod image;
mod inspect;
mod invalid;
mod jobs;
mod json_schema;
mod outputs;
mod proctypes;
mod push;
mod release;
mod remote;
mod remote_exec;
mod run;
mod sandbox;
mod snapshots;
mod store_repair;
mod third_party;
mod timeout;
mod usability;
mod verify;

use brr_test_support::TestWorkspace;

/// The `brr` binary under test.
const BRR: &str = env!("CARGO_BIN_EXE_brr");

/// A fresh copy of `fixtures/shop` (libshop, and the services api and billing on it).
fn shop() -> TestWorkspace {
    TestWorkspace::fixture(BRR, "shop")
}

/// A shared `file://` cache with a signing key this side trusts: runners
/// that push to it and pull from it.
struct FileRemote {
    dir: tempfile::TempDir,
    public: String,
}

impl FileRemote {
    fn new() -> Self {
        let dir = brr_test_support::temp_dir();
        let key = dir.path().join("key");
        let run = workspace().brr(["key", "generate", "-o", key.to_str().unwrap(), "--name", "ci"]).success();
        Self { public: run.stdout.trim().to_owned(), dir }
    }

    /// `brr ARGS` in `ws` with this remote, trusting and signing with its key.
    fn brr(&self, ws: &TestWorkspace, args: &[&str]) -> brr_test_support::Run {
        let mut cmd = self.command(ws);
        brr_test_support::Run::from(cmd.args(args).output().unwrap())
    }

    /// `brr -C WS` with this remote, for more settings.
    fn command(&self, ws: &TestWorkspace) -> std::process::Command {
        let mut cmd = ws.command();
        cmd.env("BRR_REMOTE_CACHE", format!("file://{}", self.dir.path().display()))
            .env("BRR_TRUSTED_KEYS", &self.public)
            .env("BRR_SIGNING_KEY", self.dir.path().join("key"))
            .env_remove("BRR_CACHE_READ_ONLY");
        cmd
    }
}

/// An empty workspace folder.
fn workspace() -> TestWorkspace {
    TestWorkspace::new(BRR)
}

/// True for 64 lowercase hex characters.
fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True when brr ran `run`'s builders in namespaces; otherwise the test
/// fails saying how to enable them (or, with `BRR_TEST_ALLOW_SKIP=1`, this
/// is false and the test returns: skipped).
#[track_caller]
fn require_namespaces(run: &brr_test_support::Run) -> bool {
    let detail = format!("brr runs builders without namespaces here:\n{}", run.stderr);
    brr_test_support::require(!run.namespaces_unavailable(), "namespaces", &detail, brr_test_support::NAMESPACES_HINT)
}
