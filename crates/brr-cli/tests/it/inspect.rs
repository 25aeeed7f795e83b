//! Reading the store and the graph: `show`, `graph` and `plan`.

use crate::{is_hash, shop};

/// Every object name in a store's `cas/` (shard folder + file name).
fn object_names(store: &std::path::Path) -> Vec<String> {
    brr_test_support::snapshot_files(&store.join("cas")).into_keys().map(|k| k.replace('/', "")).collect()
}

#[test]
fn show_finds_an_artifact_by_an_8_character_prefix() {
    let ws = shop();
    let built = ws.brr(["build", "--json"]).success().targets();
    let artifact = built["libshop"].artifact.clone().unwrap();
    let prefix = &artifact[..8];

    let plain = ws.brr(["show", prefix]).success();
    assert!(plain.stdout.starts_with(&format!("artifact {artifact}\n")), "{}", plain.stdout);

    let json = ws.brr(["show", prefix, "--json"]).success().json();
    assert_eq!(json["kind"], "artifact");
    assert_eq!(json["hash"], artifact.as_str());
    // Its outputs tree can be shown in turn, and lists what libshop declared.
    let tree = json["object"]["outputs"].as_str().unwrap().to_owned();
    assert!(is_hash(&tree), "{json}");
    let listing = ws.brr(["show", &tree[..8]]).success();
    let names: Vec<&str> = listing.stdout.lines().filter_map(|l| l.split_whitespace().last()).collect();
    assert_eq!(names, ["include", "lib"], "{}", listing.stdout);
}

#[test]
fn show_rejects_short_and_unknown_prefixes() {
    let ws = shop();
    let artifact = ws.brr(["build", "--json"]).success().targets()["api"].artifact.clone().unwrap();
    let short = ws.brr(["show", &artifact[..7]]).code(2);
    assert!(short.stderr.contains("too short"), "{}", short.stderr);
    let names = object_names(&ws.store());
    let unknown = ["00000000", "ffffffff", "12345678", "abcdef01"]
        .into_iter()
        .find(|p| !names.iter().any(|n| n.starts_with(p)))
        .expect("some prefix is free");
    let run = ws.brr(["show", unknown]).code(2);
    assert!(run.stderr.contains(&format!("no object in the store starts with `{unknown}`")), "{}", run.stderr);
    ws.brr(["show", unknown, "--json"]).code(2);
}

#[test]
fn graph_json_lists_the_targets_and_their_deps() {
    let json = shop().brr(["graph", "--format", "json"]).success().json();
    let mut targets: Vec<(String, String, Vec<String>)> = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let deps = t["deps"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
            (t["name"].as_str().unwrap().to_owned(), t["kind"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    targets.sort();
    let lib = || vec!["libshop".to_owned()];
    assert_eq!(
        targets,
        [
            ("api".into(), "service".into(), lib()),
            ("billing".into(), "service".into(), lib()),
            ("libshop".into(), "library".into(), vec![]),
        ]
    );
}

#[test]
fn graph_dot_has_an_edge_per_dependency() {
    let dot = shop().brr(["graph", "--format", "dot"]).success().stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    let edges: Vec<&str> = dot.lines().map(str::trim).filter(|l| l.contains("->")).collect();
    assert_eq!(edges, ["\"billing\" -> \"libshop\";", "\"api\" -> \"libshop\";"], "{dot}");
}

#[test]
fn plan_says_cached_after_a_build_and_build_for_an_edited_service() {
    let ws = shop();
    let before = ws.brr(["plan", "--json"]).success();
    assert_eq!(before.count("build"), 3, "{}", before.stdout);
    let built = ws.brr(["build", "--json"]).success().targets();

    let plan = ws.brr(["plan", "--json"]).success().targets();
    for (name, t) in &plan {
        assert_eq!(t.status, "cached", "{name}");
        assert_eq!((&t.key, &t.artifact), (&built[name].key, &built[name].artifact), "{name}");
    }

    let main = "services/api/src/main.c";
    ws.write(main, &(ws.read(main) + "/* edited */\n"));
    let plan = ws.brr(["plan", "--json"]).success().targets();
    let status: Vec<(&str, &str)> = plan.iter().map(|(n, t)| (n.as_str(), t.status.as_str())).collect();
    assert_eq!(status, [("api", "build"), ("billing", "cached"), ("libshop", "cached")]);
    assert_ne!(plan["api"].key, built["api"].key);
    // A plan builds nothing: the build after it still has api to build.
    let run = ws.brr(["build", "--json"]).success();
    assert_eq!(run.targets()["api"].status, "built");
    assert_eq!(run.count("built"), 1);
}
