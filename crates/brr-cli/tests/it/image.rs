//! `brr image`: a release as an OCI image, the same from any store, with no
//! secret in it, that skopeo and umoci accept.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use brr_test_support::{TestWorkspace, require};
use serde_json::Value;

use crate::shop;

const TOKEN: &str = "tok-image-5b0c7f1e-secret";
const TOOLS_HINT: &str = "run `scripts/test-deps.sh` as root: it installs Debian's `skopeo` and `umoci` with apt-get";

/// A copy of the shop with `api` released to staging.
fn released_shop() -> TestWorkspace {
    let ws = shop();
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    ws
}

/// `brr image staging` of `ws` into `out`, as JSON (checked against its schema).
fn image(ws: &TestWorkspace, out: &Path, format: &str) -> Value {
    let out = out.to_str().unwrap();
    crate::json_schema::valid(
        "image",
        &ws.brr(["image", "staging", "--service", "api", "-o", out, "--format", format, "--json"]).success(),
    )
}

fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("no `{name}` in {v}")).to_owned()
}

/// Every blob of an OCI layout, by file name.
fn blobs(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn an_image_is_a_function_of_the_release_and_holds_no_secret() {
    let (a, b) = (released_shop(), released_shop());
    let out = brr_test_support::temp_dir();
    let (dir_a, dir_b) = (out.path().join("a"), out.path().join("b"));
    let (img_a, img_b) = (image(&a, &dir_a, "oci-layout"), image(&b, &dir_b, "oci-layout"));
    assert_eq!(field(&img_a, "release"), field(&img_b, "release"));
    assert_eq!(field(&img_a, "manifest_digest"), field(&img_b, "manifest_digest"), "same release, two stores");
    assert_eq!(blobs(&dir_a), blobs(&dir_b));
    // An archive is as reproducible as the layout it holds.
    let (tar_a, tar_b) = (out.path().join("a.tar"), out.path().join("b.tar"));
    image(&a, &tar_a, "oci-archive");
    image(&b, &tar_b, "oci-archive");
    assert_eq!(std::fs::read(&tar_a).unwrap(), std::fs::read(&tar_b).unwrap());

    // Each blob is named by its SHA-256, and none holds the secret's value.
    for (name, bytes) in blobs(&dir_a) {
        let digest = brr_image::OciDigest::of(&bytes).hex().to_owned();
        assert_eq!(name, digest, "blob named by another digest");
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the secret's value is in blob {name}");
    }
    let config = std::fs::read(dir_a.join("blobs/sha256").join(&field(&img_a, "config_digest")[7..])).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["config"]["Labels"]["org.brr.secrets"], "SHOP_API_TOKEN", "{config}");
    assert_eq!(config["config"]["Labels"]["org.brr.release"], field(&img_a, "release").as_str());
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/bin/api", "serve"]));
    let env: Vec<&str> = config["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(env, ["DATABASE_PATH=shop-staging.sqlite", "LOG_LEVEL=debug"]);

    // Mistakes exit 2 and say what to do.
    let o = out.path().join("x").to_str().unwrap().to_owned();
    let run = a.brr(["image", "staging", "-s", "api", "--process", "cron", "-o", &o]).code(2);
    assert!(run.stderr.contains("no process type `cron`") && run.stderr.contains("web, worker"), "{}", run.stderr);
    let run = a.brr(["push", "staging", "api:v1", "-s", "api"]).code(2);
    assert!(run.stderr.contains("names no registry host"), "{}", run.stderr);

    // A changed config var: a new config (and manifest), the same layers.
    let envs = b.read("environments.ron").replace(r#"vars: {"LOG_LEVEL": "debug"}"#, r#"vars: {"LOG_LEVEL": "trace"}"#);
    b.write("environments.ron", &envs);
    b.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    let img_c = image(&b, &out.path().join("c"), "oci-layout");
    assert_ne!(field(&img_c, "release"), field(&img_a, "release"));
    assert_eq!(field(&img_c, "build"), field(&img_a, "build"));
    assert_ne!(field(&img_c, "config_digest"), field(&img_a, "config_digest"));
    assert_ne!(field(&img_c, "manifest_digest"), field(&img_a, "manifest_digest"));
    assert_eq!(img_c["layers"], img_a["layers"]);
}

#[test]
fn skopeo_and_umoci_accept_the_image() {
    let tools = have("skopeo") && have("umoci");
    if !require(tools, "skopeo and umoci", "not installed", TOOLS_HINT) {
        return;
    }
    let ws = released_shop();
    let out = brr_test_support::temp_dir();
    let layout = out.path().join("oci");
    let img = image(&ws, &layout, "oci-layout");

    let inspect =
        Command::new("skopeo").arg("inspect").arg(format!("oci:{}:latest", layout.display())).output().unwrap();
    assert!(inspect.status.success(), "skopeo: {}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], field(&img, "manifest_digest").as_str());
    assert_eq!(inspect["Layers"], img["layers"]);

    let bundle = out.path().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(unpack.status.success(), "umoci: {}", String::from_utf8_lossy(&unpack.stderr));
    let binary: PathBuf = bundle.join("rootfs/app/bin/api");
    let release = field(&img, "release");
    let released = ws.store().join("releases").join(&release).join("bin/api");
    assert_eq!(std::fs::read(&binary).unwrap(), std::fs::read(released).unwrap(), "the service binary at /app/bin/api");
    assert_eq!(std::fs::metadata(&binary).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(!bundle.join("rootfs/app/.env").exists(), "the config is in Env, not in a layer");
    let runtime: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"], serde_json::json!(["/app/bin/api", "serve"]));
    assert_eq!(runtime["process"]["cwd"], "/app");
}
