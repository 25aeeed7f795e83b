//! Real `--json` output of every reporting command validates against its
//! schema in `schemas/output/`, with a small validator for the keywords the
//! generated schemas use (an unknown keyword fails the test).

use std::path::PathBuf;

use brr_test_support::Run;
use serde_json::{Map, Value};

use crate::{FileRemote, is_hash, shop, workspace};

/// The schema `schemas/output/{name}.schema.json`.
fn schema(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../schemas/output/{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every way `value` breaks `schema` (empty when it is valid).
fn errors(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, value, "$", &mut out);
    out
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("unknown type `{other}`"),
    }
}

/// Checks `v` at `at` against `s`, pushing one message per violation.
#[expect(clippy::too_many_lines, reason = "one arm per keyword reads best in one place")]
fn check(root: &Value, s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = s.as_object() else {
        if s == &Value::Bool(false) {
            out.push(format!("{at}: not allowed"));
        }
        return;
    };
    for (k, kw) in s {
        match k.as_str() {
            // Annotations; `format` gives integer widths, whose sign `minimum` checks.
            "$schema" | "title" | "description" | "$defs" | "uniqueItems" | "format" => {}
            "$ref" => {
                let name = kw.as_str().and_then(|r| r.strip_prefix("#/$defs/")).expect("a local $ref");
                check(root, &root["$defs"][name], v, at, out);
            }
            "type" => {
                let ok = match kw {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                    _ => panic!("bad `type` {kw}"),
                };
                if !ok {
                    out.push(format!("{at}: {v} is not of type {kw}"));
                }
            }
            "const" => {
                if v != kw {
                    out.push(format!("{at}: {v} is not {kw}"));
                }
            }
            "enum" => {
                if !kw.as_array().unwrap().contains(v) {
                    out.push(format!("{at}: {v} is not one of {kw}"));
                }
            }
            "pattern" => {
                assert_eq!(kw, "^[0-9a-f]{64}$", "only the hash pattern is known to this validator");
                if v.as_str().is_some_and(|t| !is_hash(t)) {
                    out.push(format!("{at}: {v} is not a hash"));
                }
            }
            "minimum" => {
                if v.as_f64().is_some_and(|n| n < kw.as_f64().unwrap()) {
                    out.push(format!("{at}: {v} is below {kw}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for key in kw.as_array().unwrap() {
                        if !o.contains_key(key.as_str().unwrap()) {
                            out.push(format!("{at}: missing `{}`", key.as_str().unwrap()));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (key, sub) in kw.as_object().unwrap() {
                        if let Some(x) = o.get(key) {
                            check(root, sub, x, &format!("{at}.{key}"), out);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = s.get("properties").and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
                    for (key, x) in o.iter().filter(|(key, _)| !known.contains_key(*key)) {
                        check(root, kw, x, &format!("{at}.{key}"), out);
                    }
                }
            }
            "items" => {
                let skip = s.get("prefixItems").and_then(Value::as_array).map_or(0, Vec::len);
                for (i, x) in v.as_array().into_iter().flatten().enumerate().skip(skip) {
                    check(root, kw, x, &format!("{at}[{i}]"), out);
                }
            }
            "prefixItems" => {
                for (i, (sub, x)) in kw.as_array().unwrap().iter().zip(v.as_array().into_iter().flatten()).enumerate() {
                    check(root, sub, x, &format!("{at}[{i}]"), out);
                }
            }
            "minItems" | "maxItems" => {
                if let Some(a) = v.as_array() {
                    let n = kw.as_u64().unwrap();
                    let len = a.len() as u64;
                    if (k == "minItems" && len < n) || (k == "maxItems" && len > n) {
                        out.push(format!("{at}: {len} items breaks {k} {n}"));
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let passing =
                    kw.as_array().unwrap().iter().filter(|sub| errors_under(root, sub, v, at).is_empty()).count();
                let ok = if k == "oneOf" { passing == 1 } else { passing >= 1 };
                if !ok {
                    out.push(format!("{at}: {passing} of the {k} alternatives match {v}"));
                }
            }
            other => panic!("keyword `{other}` unknown to this validator: teach it"),
        }
    }
}

fn errors_under(root: &Value, s: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    check(root, s, v, at, &mut out);
    out
}

/// Asserts that the run succeeded with `code` and that its stdout is valid
/// against `schemas/output/{name}.schema.json`; returns the document.
#[track_caller]
pub(crate) fn valid(name: &str, run: &Run) -> Value {
    let doc = run.json();
    let errs = errors(&schema(name), &doc);
    assert!(errs.is_empty(), "{name}: the output breaks its schema:\n{}\n--- stdout\n{}", errs.join("\n"), run.stdout);
    doc
}

#[test]
fn the_validator_rejects_documents_that_break_the_schema() {
    let build = schema("build");
    let hash = "a".repeat(64);
    let good = serde_json::json!({ "targets": [{
        "name": "a", "key": hash, "artifact": null, "status": "failed", "remote": false, "reason": "exit 1", "log": null,
    }], "remote_cache": null, "remote_exec": null});
    assert_eq!(errors(&build, &good), Vec::<String>::new());
    let broken = [
        ("/targets/0/name", Value::Null),
        ("/targets/0/status", Value::from("done")),
        ("/targets/0/key", Value::from("abc")),
        ("/targets/0/remote", Value::from(1)),
    ];
    for (pointer, value) in broken {
        let mut doc = good.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        assert!(!errors(&build, &doc).is_empty(), "{pointer} broken, yet valid: {doc}");
    }
    let mut missing = good.clone();
    missing["targets"][0].as_object_mut().unwrap().remove("artifact");
    assert!(!errors(&build, &missing).is_empty(), "`artifact` missing, yet valid");
    // `show`: `kind` picks the shape of `object`.
    let show = schema("show");
    let tree = serde_json::json!({ "hash": hash, "kind": "tree", "object": { "entries": [] } });
    assert_eq!(errors(&show, &tree), Vec::<String>::new());
    let blob_as_tree = serde_json::json!({ "hash": hash, "kind": "blob", "object": { "entries": [] } });
    assert!(!errors(&show, &blob_as_tree).is_empty(), "a tree passed as a blob");
}

#[test]
fn build_plan_why_graph_show_hash_and_store_verify_match_their_schemas() {
    let ws = shop();
    let build = valid("build", &ws.brr(["build", "--json"]).success());
    let api = build["targets"].as_array().unwrap().iter().find(|t| t["name"] == "api").unwrap().clone();
    valid("build", &ws.brr(["build", "--json"]).success());
    valid("plan", &ws.brr(["plan", "--json"]).success());
    let why = valid("why", &ws.brr(["why", "api", "--json"]).success());
    valid("graph", &ws.brr(["graph", "--format", "json"]).success());

    // Every kind of object: the artifact, its key, its output tree, a log.
    let artifact = api["artifact"].as_str().unwrap();
    let shown = valid("show", &ws.brr(["show", artifact, "--json"]).success());
    assert_eq!(shown["kind"], "artifact");
    let shown_key = valid("show", &ws.brr(["show", api["key"].as_str().unwrap(), "--json"]).success());
    assert_eq!(shown_key["kind"], "action");
    let tree = valid("show", &ws.brr(["show", shown["object"]["outputs"].as_str().unwrap(), "--json"]).success());
    assert_eq!(tree["kind"], "tree");
    let log = why["reuses"]["log"].as_str().unwrap();
    assert_eq!(valid("show", &ws.brr(["show", log, "--json"]).success())["kind"], "blob");

    let dir = ws.path().to_str().unwrap().to_owned();
    let file = ws.path().join("brr.ron").to_str().unwrap().to_owned();
    valid("hash", &ws.brr(["hash", &dir, &file, "--json"]).success());
    let verified = valid("store-verify", &ws.brr(["store", "verify", "--json"]).success());
    assert!(verified.get("repaired").is_none(), "{verified}");
    let repaired = valid("store-verify", &ws.brr(["store", "verify", "--repair", "--json"]).success());
    assert!(repaired["repaired"].is_object(), "{repaired}");
    let compacted = valid("store-compact", &ws.brr(["store", "compact", "--json"]).success());
    assert!(compacted["packs_after"].as_u64().unwrap() >= 1, "{compacted}");

    // A change since the previous build gives `why` its `previous` and `changes`.
    let c = ws.read("libs/libshop/src/shop.c");
    ws.write("libs/libshop/src/shop.c", &format!("{c}\n/* changed */\n"));
    valid("plan", &ws.brr(["plan", "--json"]).success());
    let why = valid("why", &ws.brr(["why", "api", "--json"]).success());
    assert!(!why["changes"].as_array().unwrap().is_empty() && why["previous"].is_object(), "{why}");
}

#[test]
fn failed_and_skipped_builds_match_the_build_schema() {
    let ws = workspace().sh_lib("bad", &[], &[], "exit 3").sh_lib("after", &["bad"], &[], "echo x > \"$OUT/f\"");
    let doc = valid("build", &ws.brr(["build", "--no-sandbox", "--json"]).code(1));
    let statuses: Vec<_> = doc["targets"].as_array().unwrap().iter().map(|t| t["status"].clone()).collect();
    assert_eq!(statuses, ["failed", "skipped"], "{doc}");
}

#[test]
fn verify_and_its_report_match_their_schemas() {
    let ws = workspace().sh_lib("same", &[], &[], "echo x > \"$OUT/f\"");
    valid("verify", &ws.brr(["verify", "--rounds", "2", "--no-sandbox", "--json"]).success());
    let report = valid("verify-report", &ws.brr(["verify", "--report", "--json"]).success());
    assert_eq!(report["verified"], 1, "{report}");
}

#[test]
fn cache_status_push_and_pull_match_their_schemas() {
    let remote = FileRemote::new();
    let ws = workspace().sh_lib("a", &[], &[], "echo hello > \"$OUT/f\"");
    ws.brr(["build", "--no-sandbox"]).success();
    // Missing on the remote: exit 1, still one valid document.
    let status = valid("cache-status", &remote.brr(&ws, &["cache", "status", "--json"]).code(1));
    assert_eq!(status["remotes"][0]["misses"], 1, "{status}");
    valid("cache-push", &remote.brr(&ws, &["cache", "push", "--json"]).success());
    valid("cache-status", &remote.brr(&ws, &["cache", "status", "--json"]).success());
    let other = workspace().sh_lib("a", &[], &[], "echo hello > \"$OUT/f\"");
    let pulled = valid("cache-pull", &remote.brr(&other, &["cache", "pull", "--json"]).success());
    assert_eq!(pulled["targets"]["a"], "pulled", "{pulled}");
}

#[test]
fn release_stage_documents_match_their_schemas() {
    let ws = shop();
    let token = |args: &[&str]| ws.brr_env("SHOP_API_TOKEN", "t0k3n", args);
    let staged = valid("release", &token(&["release", "--env", "staging", "--json"]).success());
    valid("release", &token(&["promote", "--from", "staging", "--to", "production", "--json"]).success());
    let noop = valid("release", &token(&["promote", "--from", "staging", "--to", "production", "--json"]).success());
    assert!(noop["releases"].as_array().unwrap().iter().all(|r| r["noop"] == true), "{noop}");
    valid("release", &token(&["up", "staging", "--no-run", "--json"]).success());
    ws.write("services/api/src/main.c", &(ws.read("services/api/src/main.c") + "\nint changed;\n"));
    valid("release", &token(&["release", "api", "--env", "staging", "--json"]).success());
    let rolled = valid("release", &token(&["rollback", "--env", "staging", "api", "--json"]).success());
    assert_eq!(rolled["releases"][0]["action"], "rollback", "{rolled}");
    let history = valid("releases", &ws.brr(["releases", "--env", "production", "--json"]).success());
    assert_eq!(history["releases"][0]["action"], "promote", "{history}");
    let api = staged["releases"].as_array().unwrap().iter().find(|r| r["service"] == "api").unwrap().clone();
    let diff = valid("diff", &ws.brr(["diff", "staging", "production", "-s", "api", "--json"]).success());
    assert_eq!(diff["a"]["release"], api["release"], "{diff}");
    valid("ledger-verify", &ws.brr(["ledger", "verify", "--json"]).success());
    // Configs and releases are objects `show` decodes.
    let release = valid("show", &ws.brr(["show", api["release"].as_str().unwrap(), "--json"]).success());
    assert_eq!(release["kind"], "release");
    let config = valid("show", &ws.brr(["show", api["config"].as_str().unwrap(), "--json"]).success());
    assert_eq!(config["object"]["secrets"][0], "SHOP_API_TOKEN", "{config}");
    // The store's lifecycle: stats, export and import, gc.
    valid("store-stats", &ws.brr(["store", "stats", "--json"]).success());
    let file = ws.path().join("api.brrx");
    let file = file.to_str().unwrap();
    valid("export", &ws.brr(["export", api["release"].as_str().unwrap(), "-o", file, "--json"]).success());
    valid("import", &ws.brr(["import", file, "--json"]).success());
    valid("gc", &ws.brr(["gc", "--dry-run", "--json"]).success());
    valid("gc", &ws.brr(["gc", "--keep-last", "0", "--json"]).success());
}
