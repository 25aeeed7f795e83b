//! A missing test server fails the tests that need it, saying how to install it, unless skips are allowed.

use std::process::Command;

use brr_test_support::ALLOW_SKIP_ENV;

/// Runs the one test `name` of this binary (a re-execution of it) with the
/// environment `env` and without the opt-out unless `allow_skip`: whether
/// it passed, and everything it printed.
fn run_test(name: &str, env: (&str, &str), allow_skip: bool) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(env.0, env.1).env_remove(ALLOW_SKIP_ENV);
    if allow_skip {
        cmd.env(ALLOW_SKIP_ENV, "1");
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The filter matched the test: it ran (and was not filtered out).
    assert!(text.contains("running 1 test"), "`{name}` did not run:\n{text}");
    (out.status.success(), text)
}

/// A server's test fails when the server is missing, naming it and the
/// install script; with the opt-out it passes with a note instead.
fn check_missing_server(test: &str, env: (&str, &str), server: &str) {
    let (passed, output) = run_test(test, env, false);
    assert!(!passed, "`{test}` passed without {server}:\n{output}");
    for needle in [server, "is unavailable", "scripts/test-deps.sh", env.1, ALLOW_SKIP_ENV] {
        assert!(output.contains(needle), "the failure does not mention `{needle}`:\n{output}");
    }
    let (passed, output) = run_test(test, env, true);
    assert!(passed, "`{test}` failed with {ALLOW_SKIP_ENV}=1:\n{output}");
    assert!(output.contains(&format!("note: skipped ({ALLOW_SKIP_ENV}=1): {server}")), "no skip note:\n{output}");
}

#[test]
fn a_missing_nginx_fails_its_tests() {
    check_missing_server(
        "backends::http_backend_returns_tampered_bytes_as_they_are",
        ("BRR_TEST_NGINX", "/nonexistent/nginx"),
        "nginx",
    );
}

#[test]
fn a_missing_buildgrid_fails_its_tests() {
    check_missing_server("grpc::grpc_backend_meets_the_contract", ("BRR_BGD", "/nonexistent/bgd"), "BuildGrid");
}
