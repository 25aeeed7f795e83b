//! End-to-end tests of the `brr` binary: real workspaces in temporary
//! folders, real builders, one module per concern.
#![expect(clippy::unwrap_used, reason = "a failing test panics, helpers included")]

mod cache;
mod confinement;
mod crash;
mod failures;
mod hostile;
mod inspect;
mod invalid;
mod json_schema;
mod remote;
mod sandbox;
mod snapshots;
mod store_repair;
mod verify;

use brr_test_support::TestWorkspace;

/// The `brr` binary under test.
const BRR: &str = env!("CARGO_BIN_EXE_brr");

/// A fresh copy of `fixtures/shop` (libshop, and the services api and billing on it).
fn shop() -> TestWorkspace {
    TestWorkspace::fixture(BRR, "shop")
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
