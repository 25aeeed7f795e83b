//! `verify`: rebuilds under the varied conditions find what depends on them, and only that.

use std::collections::BTreeMap;
use std::sync::Mutex;

use brr_graph::{Inputs, Workspace};
use brr_test_support::sh_library;
use brr_verify::compare::ChangeKind;
use brr_verify::conditions::Condition;
use brr_verify::{Progress, TargetReport, VerifyOptions, verify};

/// A round started: target, round, rounds.
type Started = (String, u32, u32);

/// Records every round started.
#[derive(Default)]
struct Rounds(Mutex<Vec<Started>>);

impl Progress for Rounds {
    fn round_started(&self, target: &str, round: u32, rounds: u32) {
        self.0.lock().unwrap().push((target.to_owned(), round, rounds));
    }
}

/// Verifies every package of a workspace of `(name, tools, script)`
/// libraries over `rounds` rounds, without namespaces; reports by name.
fn verify_all(libs: &[(&str, &[&str], &str)], rounds: u32) -> (BTreeMap<String, TargetReport>, Vec<Started>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("brr.ron"), "Workspace(packages: [\"p/*\"])").unwrap();
    for (name, tools, script) in libs {
        let folder = dir.path().join("p").join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("brr.ron"), sh_library(name, &[], tools, script)).unwrap();
    }
    let ws = Workspace::load(dir.path()).unwrap();
    let store = brr_store::Store::open(&dir.path().join(".brr")).unwrap();
    let mask = vec![true; ws.packages.len()];
    let inputs = Inputs::hash(&ws, &store, &mask).unwrap();
    let targets: Vec<usize> = (0..ws.packages.len()).collect();
    let progress = Rounds::default();
    let opts = VerifyOptions { rounds, isolate: false };
    let reports = verify(&ws, &inputs, &store, &targets, &BTreeMap::new(), &opts, &progress).unwrap();
    let mut seen = progress.0.into_inner().unwrap();
    seen.sort();
    (reports.into_iter().map(|r| (r.name.clone(), r)).collect(), seen)
}

#[test]
fn only_outputs_that_depend_on_the_conditions_differ() {
    let (reports, progress) = verify_all(
        &[
            ("steady", &[], "echo same > \"$OUT/f\""),
            // The clock (rounds start in later seconds) and the umask vary.
            ("clock", &["date"], "date +%s > \"$OUT/f\""),
            ("umask", &[], "umask > \"$OUT/f\""),
        ],
        3,
    );
    let expected: Vec<Started> =
        ["clock", "steady", "umask"].iter().flat_map(|t| (1..=3).map(move |r| ((*t).to_owned(), r, 3))).collect();
    assert_eq!(progress, expected, "every round of every target ran");

    let steady = &reports["steady"];
    assert!(steady.reproducible, "{steady:?}");
    assert_eq!(steady.rounds.len(), 3);
    assert!(steady.rounds.iter().all(|r| r.outputs.is_some() && r.failure.is_none()), "{steady:?}");
    assert!(steady.rounds[0].varied.is_empty());
    assert!(steady.rounds[1].varied.contains(&"umask 077".to_owned()), "{:?}", steady.rounds[1].varied);
    assert!(steady.rounds[2].varied.contains(&"umask 002".to_owned()), "{:?}", steady.rounds[2].varied);
    assert!(steady.differences.is_empty());

    for name in ["clock", "umask"] {
        let report = &reports[name];
        assert!(!report.reproducible, "{name}: {report:?}");
        let rounds: Vec<u32> = report.differences.iter().map(|d| d.round).collect();
        assert_eq!(rounds, [2, 3], "{name}: each varied round differs from round 1");
        for d in &report.differences {
            assert_eq!((d.difference.path.as_str(), d.difference.change), ("f", ChangeKind::Changed));
            assert!(d.difference.diff.as_deref().is_some_and(|t| t.contains("+++ other round")), "{d:?}");
        }
    }
    // Each names its cause, found by varying one condition at a time.
    let causes = |name: &str| reports[name].causes.iter().map(|c| c.condition).collect::<Vec<_>>();
    assert_eq!(causes("clock"), [Condition::EveryRun], "{:?}", reports["clock"]);
    assert_eq!(causes("umask"), [Condition::Umask], "{:?}", reports["umask"]);
    assert_eq!(reports["umask"].causes[0].message, "differs when the umask changes");
    assert!(causes("steady").is_empty());
    let umask = &reports["umask"].differences;
    assert!(umask[0].difference.diff.as_deref().unwrap().contains("+0077"), "{umask:?}");
}

#[test]
fn a_round_that_fails_makes_the_target_not_reproducible() {
    // Fails only under the first varied round's umask.
    let script = "[ \"$(umask)\" = 0077 ] && exit 1; echo ok > \"$OUT/f\"";
    let (reports, _) = verify_all(&[("flaky", &[], script)], 2);
    let report = &reports["flaky"];
    assert!(!report.reproducible, "{report:?}");
    assert!(report.rounds[0].outputs.is_some());
    assert!(report.rounds[1].outputs.is_none() && report.rounds[1].failure.is_some(), "{report:?}");
    assert!(report.differences.is_empty(), "a failed round has no outputs to compare");
}

#[test]
fn without_the_sandbox_a_build_that_embeds_its_folder_differs_in_every_run_and_says_why() {
    // Unsandboxed, the builder sees its host folder, which is new for every build.
    let (reports, _) = verify_all(&[("path", &[], "pwd > \"$OUT/f\"")], 2);
    let report = &reports["path"];
    assert!(!report.reproducible, "{report:?}");
    let causes: Vec<Condition> = report.causes.iter().map(|c| c.condition).collect();
    assert_eq!(causes, [Condition::EveryRun], "{report:?}");
    assert!(report.causes[0].message.contains("the build path"), "{report:?}");
}
