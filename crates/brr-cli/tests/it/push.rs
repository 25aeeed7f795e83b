//! `brr push`: a release's image into Debian's Distribution registry on
//! 127.0.0.1, uploading only the blobs the registry lacks.

use std::process::Command;

use brr_test_support::{Registry, TestWorkspace};
use serde_json::Value;

use crate::shop;

const TOKEN: &str = "tok-push-81f3a9d0-secret";

fn push(ws: &TestWorkspace, service: &str, reference: &str) -> Value {
    crate::json_schema::valid("push", &ws.brr(["push", "staging", reference, "--service", service, "--json"]).success())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

/// Blob uploads the registry has completed, from its access log.
fn blob_puts(registry: &Registry) -> usize {
    registry.log().lines().filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/")).count()
}

#[test]
fn push_uploads_only_missing_blobs() {
    let Some(registry) = Registry::start() else { return };
    let ws = shop();
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "--env", "staging"]).success();
    let host = registry.host();

    let first = push(&ws, "api", &format!("{host}/shop/api:v1"));
    let digest = first["manifest_digest"].as_str().unwrap().to_owned();
    assert_eq!(first["reference"], format!("{host}/shop/api@{digest}").as_str());
    // libshop's layer, api's layer, the config.
    assert_eq!((strings(&first["uploaded"]).len(), strings(&first["present"]).len()), (3, 0), "{first}");
    assert_eq!(blob_puts(&registry), 3, "{}", registry.log());

    // The same image under another tag: nothing to upload.
    let again = push(&ws, "api", &format!("{host}/shop/api:v1-again"));
    assert_eq!(again["manifest_digest"], digest.as_str());
    assert!(strings(&again["uploaded"]).is_empty(), "{again}");
    assert_eq!(blob_puts(&registry), 3);

    // A config change: only the new config blob goes up; the layers are shared.
    let envs =
        ws.read("environments.ron").replace(r#"vars: {"LOG_LEVEL": "debug"}"#, r#"vars: {"LOG_LEVEL": "trace"}"#);
    ws.write("environments.ron", &envs);
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    let changed = push(&ws, "api", &format!("{host}/shop/api:v2"));
    assert_ne!(changed["manifest_digest"], digest.as_str());
    assert_eq!(strings(&changed["present"]), strings(&first["uploaded"])[..2], "the layers were there: {changed}");
    assert_eq!(strings(&changed["uploaded"]).len(), 1, "{changed}");
    assert_eq!(blob_puts(&registry), 4, "{}", registry.log());

    // A second service on libshop: libshop's layer is mounted from
    // `shop/api` (where this store pushed it), not uploaded again; only
    // billing's own layer and config go up.
    let billing = push(&ws, "billing", &format!("{host}/shop/billing:v1"));
    assert_eq!(strings(&billing["mounted"]), strings(&first["uploaded"])[..1], "libshop's layer: {billing}");
    assert!(strings(&billing["present"]).is_empty(), "{billing}");
    assert_eq!(strings(&billing["uploaded"]).len(), 2, "{billing}");
    assert_eq!(blob_puts(&registry), 6, "{}", registry.log());

    // The registry serves what was pushed, by tag, under the same digest.
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{host}/shop/api:v1"))
        .output();
    let Ok(inspect) = inspect else {
        brr_test_support::require(false, "skopeo", "not installed", brr_test_support::REGISTRY_HINT);
        return;
    };
    assert!(inspect.status.success(), "skopeo: {}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert!(!registry.log().contains(TOKEN));
}
