//! Reproducibility: `verify` flags each known-bad corpus case with the right
//! file and passes the reproducible ones; `why` and `plan` name what changed.

use std::collections::BTreeSet;
use std::path::Path;

use brr_test_support::{TestWorkspace, fixtures_dir};

use crate::{BRR, shop};

/// Cases this machine cannot vary, with the reason.
fn unvaryable(case: &str, stderr: &str) -> Option<&'static str> {
    match case {
        "bad-hostname" if stderr.contains("without namespaces") => Some("no UTS namespace"),
        "good-build-path" if stderr.contains("without namespaces") => Some("no fixed build path without namespaces"),
        "bad-listing-order" if !Path::new("/dev/shm").is_dir() => Some("no second file system to stage on"),
        "bad-parallelism" if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2 => {
            Some("a single CPU")
        }
        _ => None,
    }
}

#[test]
fn corpus_flags_every_bad_case_with_its_file_and_no_good_one() {
    let ws = TestWorkspace::fixture(BRR, "reproducibility");
    let run = ws.brr(["verify", "--json"]).code(1);
    let report = run.json();
    let targets = report["targets"].as_array().unwrap();
    let cases: Vec<_> =
        std::fs::read_dir(fixtures_dir().join("reproducibility/cases")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(cases.len() >= 10, "the corpus shrank");
    let mut bad = 0;
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_owned();
        let expect = std::fs::read_to_string(case.join("expect")).unwrap();
        let t = targets.iter().find(|t| t["name"] == name.as_str()).unwrap_or_else(|| panic!("{name} not verified"));
        if let Some(why) = unvaryable(&name, &run.stderr) {
            eprintln!("note: {name} not checked here: {why}");
            continue;
        }
        let differing: BTreeSet<&str> =
            t["differences"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
        let mut lines = expect.lines();
        let verdict = lines.next().unwrap_or_default();
        // `cause: CONDITION` lines: what verify must name as (one of) the causes.
        let named: Vec<&str> = lines.filter_map(|l| l.strip_prefix("cause: ")).collect();
        if let Some(file) = verdict.strip_prefix("differs: ") {
            bad += 1;
            assert_eq!(t["reproducible"], false, "{name} should be flagged: {t:#}");
            assert_eq!(differing, BTreeSet::from([file]), "{name} must name exactly `{file}`: {t:#}");
            let d = &t["differences"][0];
            assert!(d["diff"].is_string() || d["first_difference_offset"].is_u64(), "{name}: no detail: {d:#}");
            let found: Vec<&str> =
                t["causes"].as_array().unwrap().iter().map(|c| c["condition"].as_str().unwrap()).collect();
            assert!(!found.is_empty(), "{name}: no cause named: {t:#}");
            for cause in named {
                assert!(found.contains(&cause), "{name}: `{cause}` not named as a cause: {t:#}");
            }
        } else {
            assert_eq!(verdict, "reproducible", "{name}: bad expect file");
            assert_eq!(t["reproducible"], true, "{name} should be reproducible: {t:#}");
            assert_eq!(t["causes"].as_array().map(Vec::len), Some(0), "{name}: {t:#}");
        }
    }
    assert!(bad >= 5, "too few bad cases were checked");

    // The results are recorded; the report summarizes them.
    let summary = ws.brr(["verify", "--report", "--json"]).success().json();
    assert_eq!(summary["verified"].as_u64(), Some(targets.len() as u64));
    let reproducible = targets.iter().filter(|t| t["reproducible"] == true).count() as u64;
    assert_eq!(summary["reproducible"].as_u64(), Some(reproducible));
}

#[test]
fn shop_is_reproducible_and_a_text_difference_shows_a_diff() {
    let ws = shop();
    let run = ws.brr(["verify", "--rounds", "3", "--json"]).success();
    let targets = run.json()["targets"].as_array().unwrap().clone();
    assert_eq!(targets.len(), 3);
    for t in &targets {
        assert_eq!(t["reproducible"], true, "{t:#}");
        assert_eq!(t["rounds"].as_array().unwrap().len(), 3);
    }
    // Make billing embed the time: verify now fails, says where and why.
    let decl = ws.read("services/billing/brr.ron");
    let decl = decl.replacen("outputs: [", "outputs: [\"when\", ", 1);
    let decl = decl.replacen("tools: [", "tools: [\"date\", ", 1);
    let decl = decl.replacen("builder: [\"sh\", \"-c\", \"", "builder: [\"sh\", \"-c\", \"date +%s%N > $OUT/when; ", 1);
    ws.write("services/billing/brr.ron", &decl);
    let run = ws.brr(["verify", "billing"]).code(1);
    assert!(run.stdout.contains("NOT reproducible  billing"), "{}", run.stdout);
    assert!(run.stdout.contains("changed `when`"), "{}", run.stdout);
    assert!(run.stdout.contains("--- first round"), "{}", run.stdout);
    assert!(run.stdout.contains("cause: differs in every run (time or randomness)"), "{}", run.stdout);
}

#[test]
fn plan_and_why_name_the_changed_file_and_env_value() {
    let ws = shop();
    ws.brr(["build"]).success();
    let main_c = "services/api/src/main.c";
    ws.write(main_c, &format!("{}\n/* edited */\n", ws.read(main_c)));

    let plan = ws.brr(["plan", "--json"]).success().json();
    for t in plan["targets"].as_array().unwrap() {
        let expected = if t["name"] == "api" { "build" } else { "cached" };
        assert_eq!(t["status"], expected, "{t:#}");
    }
    let api = plan["targets"].as_array().unwrap().iter().find(|t| t["name"] == "api").unwrap().clone();
    assert_eq!(api["reason"], "`services/api/src/main.c` changed");
    let why = ws.brr(["why", "api"]).success();
    assert!(why.stdout.contains("`services/api/src/main.c` changed"), "{}", why.stdout);
    assert!(why.stdout.contains("file     services/api/src/main.c"), "{}", why.stdout);

    let decl = "services/billing/brr.ron";
    ws.write(decl, &ws.read(decl).replacen("\"-O2 ", "\"-O3 ", 1));
    let why = ws.brr(["why", "billing", "--json"]).success().json();
    assert_eq!(why["status"], "build");
    let messages: Vec<&str> =
        why["changes"].as_array().unwrap().iter().map(|c| c["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["env `CFLAGS`: `-O2 -Wall -Wextra` → `-O3 -Wall -Wextra`"]);

    // A cached target says which build it reuses.
    let why = ws.brr(["why", "libshop", "--json"]).success().json();
    assert_eq!(why["status"], "cached");
    assert!(why["reuses"]["artifact"].is_string(), "{why:#}");
}

#[test]
fn a_comment_in_the_library_is_explained_down_the_graph() {
    let ws = shop();
    ws.brr(["build"]).success();
    let shop_c = "libs/libshop/src/shop.c";
    ws.write(shop_c, &format!("/* only a comment */\n{}", ws.read(shop_c)));
    let plan = ws.brr(["plan", "--json"]).success().json();
    let reasons: Vec<(String, String)> = plan["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert!(reasons.contains(&("libshop".into(), "`libs/libshop/src/shop.c` changed".into())), "{reasons:?}");
    assert!(reasons.contains(&("api".into(), "dependency `libshop` will be rebuilt".into())), "{reasons:?}");
    // After the build, early cutoff: the services were cached, and why says so.
    ws.brr(["build"]).success();
    let why = ws.brr(["why", "api", "--json"]).success().json();
    assert_eq!(why["status"], "cached", "{why:#}");
}
