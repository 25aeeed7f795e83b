//! The crate layering of `crates/README.md` holds: each crate depends only on
//! crates of lower layers, and test support only as a dev-dependency.

use std::process::Command;

/// Lowest layer first.
const LAYERS: &[&str] = &[
    "brr-hash",
    "brr-schema",
    "brr-process",
    "brr-store",
    "brr-release",
    "brr-image",
    "brr-run",
    "brr-remote",
    "brr-worker",
    "brr-graph",
    "brr-exec",
    "brr-verify",
    "brr-cli",
];

#[test]
fn crates_depend_only_on_lower_layers() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut checked = 0;
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        let layer = LAYERS.iter().position(|l| *l == name);
        for dep in pkg["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if !dep_name.starts_with("brr-") {
                continue;
            }
            checked += 1;
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name == "brr-test-support" {
                assert!(is_dev, "`{name}` may use brr-test-support only as a dev-dependency");
                continue;
            }
            let dep_layer = LAYERS.iter().position(|l| *l == dep_name);
            let (Some(l), Some(d)) = (layer, dep_layer) else {
                panic!("`{name}` → `{dep_name}`: add both to LAYERS and crates/README.md");
            };
            assert!(d < l, "`{name}` must not depend on `{dep_name}` (a layer at or above it)");
        }
    }
    assert!(checked >= 8, "only {checked} internal dependencies seen: is the metadata right?");
}

#[test]
fn every_crate_is_listed_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let dir = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    for e in dir {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let name = e.file_name().into_string().unwrap();
            assert!(readme.contains(&format!("`{name}`")), "crates/README.md does not describe `{name}`");
        }
    }
}
