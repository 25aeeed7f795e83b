//! `$BRR_JOBS` and the jobserver: every builder sees the build's `-j`, builders and their own sub-jobs (`make`) together stay within it, and none of it enters the build key.

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

/// A Makefile of eight one-job recipes; each records how many were running
/// when it started (markers in `$DIR/active`, counted into `$DIR/counts`),
/// and the default target copies the counts to `$OUT/counts`.
const MAKEFILE: &str = "JOBS := j1 j2 j3 j4 j5 j6 j7 j8
all: $(JOBS)
\tcat $(DIR)/counts > $(OUT)/counts
$(JOBS):
\t@mkdir -p $(DIR)/active
\t@mkdir $(DIR)/active/$(NAME)$@ && ls $(DIR)/active | wc -l >> $(DIR)/counts && sleep 0.3 && rmdir $(DIR)/active/$(NAME)$@
.PHONY: all $(JOBS)
";

const MAKE_TOOLS: &str = r#""make", "sh", "mkdir", "ls", "wc", "sleep", "rmdir", "cat""#;

/// A package `name` whose builder is `make` (no `-j`: the jobserver's
/// `MAKEFLAGS` carries it) on [`MAKEFILE`], counting in `dir` (`$TMPDIR`
/// when `None`).
fn make_package(name: &str, dir: Option<&std::path::Path>, deps: &[&str]) -> String {
    let dir = dir.map_or_else(|| "$(TMPDIR)".to_owned(), |d| d.display().to_string());
    let deps = deps.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", ");
    format!(
        "Library(\n    name: \"{name}\",\n    inputs: [\"Makefile\"],\n    deps: [{deps}],\n    tools: [{MAKE_TOOLS}],\n    \
         builder: [\"make\"],\n    env: {{\"DIR\": \"{dir}\", \"NAME\": \"{name}\"}},\n    outputs: [\"counts\"],\n)\n"
    )
}

/// GNU make on `PATH`, or the test fails saying how to get it.
fn have_make() -> bool {
    let found = brr_graph::which("make", &std::env::var_os("PATH").unwrap_or_default()).ok().flatten().is_some();
    brr_test_support::require(
        found,
        "GNU make",
        "`make` is not on PATH",
        "run `scripts/test-deps.sh` (apt-get install make)",
    )
}

/// The most recipes any one recorded running at once.
fn max_running(counts: &str) -> usize {
    let all: Vec<usize> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(all.len(), 8, "every recipe records a count:\n{counts}");
    all.into_iter().max().unwrap()
}

fn make_workspace(packages: &[(&str, String)]) -> brr_test_support::TestWorkspace {
    let mut ws = workspace().file("brr.ron", "Workspace(packages: [\"p/*\"])\n");
    for (name, decl) in packages {
        ws = ws.file(&format!("p/{name}/brr.ron"), decl).file(&format!("p/{name}/Makefile"), MAKEFILE);
    }
    ws
}

#[test]
fn a_make_builder_runs_as_many_jobs_as_brr_allows_and_no_more() {
    if !have_make() {
        return;
    }
    let mut keys = Vec::new();
    for (jobs, expected) in [("2", 2), ("1", 1), ("3", 3)] {
        let ws = make_workspace(&[("m", make_package("m", None, &[]))]);
        let built = ws.brr(["build", "-j", jobs, "--json"]).success();
        keys.push(built.targets()["m"].key.clone().unwrap());
        let counts = ws.brr(["cat", "m", "counts"]).success().stdout;
        assert_eq!(max_running(&counts), expected, "make under -j {jobs}:\n{counts}");
    }
    // The jobserver's variables differ per run: they stay out of the key.
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

#[test]
fn two_make_builders_at_once_share_the_job_count() {
    if !have_make() {
        return;
    }
    // Both count in one folder outside their sandboxes, which only an
    // unsandboxed build may write: hence `--no-sandbox`.
    let shared = brr_test_support::temp_dir();
    let ws = make_workspace(&[
        ("a", make_package("a", Some(shared.path()), &[])),
        ("b", make_package("b", Some(shared.path()), &[])),
    ]);
    ws.brr(["build", "-j", "2", "--no-sandbox"]).success();
    let counts = std::fs::read_to_string(shared.path().join("counts")).unwrap();
    let all: Vec<usize> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(all.len(), 16, "every recipe of both builders records a count:\n{counts}");
    assert_eq!(all.iter().max(), Some(&2), "two make builders under -j 2:\n{counts}");
}

#[test]
fn tokens_a_builder_takes_and_never_returns_come_back() {
    if !have_make() {
        return;
    }
    // `greedy` takes a token through the jobserver's FIFO (inside the
    // sandbox) and exits holding it; `m`, built after it, must still get
    // both jobs of `-j 2`.
    let greedy =
        brr_test_support::sh_library("greedy", &[], &["head"], "head -c 1 \"${CARGO_MAKEFLAGS##*fifo:}\" > $OUT/f");
    let ws = make_workspace(&[("m", make_package("m", None, &["greedy"]))]).file("p/greedy/brr.ron", &greedy);
    ws.brr(["build", "-j", "2"]).success();
    assert_eq!(ws.brr(["cat", "greedy", "f"]).success().stdout, "+", "greedy took no token");
    let counts = ws.brr(["cat", "m", "counts"]).success().stdout;
    assert_eq!(max_running(&counts), 2, "the token greedy kept was not restored:\n{counts}");
}

#[test]
fn a_package_keeps_its_own_makeflags_with_the_jobservers_after_them() {
    let script = "echo \"$MAKEFLAGS\"; echo \"$CARGO_MAKEFLAGS\"; echo -n x > $OUT/f";
    let ws = workspace().file(
        "p/a/brr.ron",
        &brr_test_support::sh_library_with("a", &[], &[], script, "env: {\"MAKEFLAGS\": \"-s\"},"),
    );
    ws.write("brr.ron", "Workspace(packages: [\"p/*\"])\n");
    ws.brr(["build", "-j", "2"]).success();
    let log = ws.brr(["log", "a"]).success().stdout;
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("-s -j --jobserver-fds=") && lines[0].contains(" --jobserver-auth="), "{log}");
    assert!(lines[1].starts_with("-j --jobserver-auth=fifo:"), "{log}");
}
