//! `$BRR_JOBS`: every builder sees the build's `-j`, which stays out of the build key.

use crate::workspace;

const SCRIPT: &str = "echo jobs=$BRR_JOBS; echo -n x > $OUT/f";

#[test]
fn builders_see_the_job_count_and_keys_do_not() {
    let one = workspace().sh_lib("a", &[], &[], SCRIPT);
    let two = workspace().sh_lib("a", &[], &[], SCRIPT);
    let k1 = one.brr(["build", "-j", "1", "--json"]).success().targets()["a"].key.clone().unwrap();
    let k2 = two.brr(["build", "-j", "2", "--json"]).success().targets()["a"].key.clone().unwrap();
    assert_eq!(k1, k2, "-j changed the build key");
    assert_eq!(one.brr(["log", "a"]).success().stdout, "jobs=1\n");
    assert_eq!(two.brr(["log", "a"]).success().stdout, "jobs=2\n");
    // Same store, other -j: a cache hit.
    let again = one.brr(["build", "-j", "2", "--json"]).success().targets();
    assert_eq!(again["a"].status, "cached");
}

#[test]
fn a_declaration_may_not_set_brr_jobs() {
    let ws = workspace().file(
        "p/a/brr.ron",
        &brr_test_support::sh_library_with("a", &[], &[], "echo -n x > $OUT/f", "env: {\"BRR_JOBS\": \"64\"},"),
    );
    ws.write("brr.ron", "Workspace(packages: [\"p/*\"])\n");
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("BRR_JOBS"), "{}", run.stderr);
}
