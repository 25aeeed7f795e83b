//! A workspace's environments: loaded with it, checked against its packages,
//! merged per service, ordered for promotion, and seen again when edited.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use brr_graph::{GraphError, Workspace};
use brr_hash::Config;
use brr_store::Clock;

use crate::{lib, write_all};

/// A service declaration named `name`.
fn service(name: &str) -> String {
    lib(name, &[]).replacen("Library(", "Service(", 1)
}

const ENVS: &str = r#"Environments(
    promotion: ["staging", "qa", "production"],
    environments: {
        "staging": Environment(
            vars: {"LOG_LEVEL": "debug", "REGION": "eu"},
            secrets: ["SENTRY_DSN"],
            services: {
                "api": ServiceEnv(
                    vars: {"LOG_LEVEL": "trace", "DATABASE_PATH": "shop-staging.sqlite"},
                    secrets: ["SHOP_API_TOKEN", "SENTRY_DSN"],
                ),
            },
        ),
        "qa": Environment(),
        "production": Environment(
            vars: {"LOG_LEVEL": "info"},
            services: {"api": ServiceEnv(secrets: ["SHOP_API_TOKEN"])},
        ),
        "dev": Environment(),
    },
)
"#;

/// A workspace with services `api` and `billing` and library `lib`, plus `extra` files.
fn write_ws(root: &Path, extra: &[(&str, &str)]) {
    write_all(
        root,
        &[
            ("brr.ron", "Workspace(packages: [\"p/*\"])"),
            ("p/api/brr.ron", &service("api")),
            ("p/api/a.c", ""),
            ("p/billing/brr.ron", &service("billing")),
            ("p/billing/b.c", ""),
            ("p/lib/brr.ron", &lib("lib", &[])),
            ("p/lib/l.c", ""),
        ],
    );
    write_all(root, extra);
}

fn load(extra: &[(&str, &str)]) -> Result<Workspace, GraphError> {
    let dir = tempfile::tempdir().unwrap();
    write_ws(dir.path(), extra);
    Workspace::load(dir.path())
}

fn config(vars: &[(&str, &str)], secrets: &[&str]) -> Config {
    Config {
        vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>(),
    }
}

/// The located declaration error of a load, as `file:line:col message`.
fn decl_error(result: Result<Workspace, GraphError>) -> (String, Option<String>) {
    match result {
        Err(GraphError::Decl(e)) => (format!("{}:{}:{} {}", e.file.display(), e.line, e.col, e.message), e.help),
        Err(e) => panic!("not a declaration error: {e}"),
        Ok(_) => panic!("the load should have failed"),
    }
}

#[test]
fn without_the_file_there_are_no_environments() {
    let ws = load(&[]).unwrap();
    let envs = &ws.environments;
    assert!(envs.is_empty() && envs.names().next().is_none() && envs.promotion().is_empty());
    assert_eq!(envs.path(), None);
    assert!(!envs.contains("staging"));
    assert_eq!(envs.config("staging", "api"), None);
    assert!(!envs.promotes_to("staging", "production"));
}

#[test]
fn names_are_sorted_and_the_file_is_named() {
    let ws = load(&[("environments.ron", ENVS)]).unwrap();
    let envs = &ws.environments;
    assert_eq!(envs.names().collect::<Vec<_>>(), ["dev", "production", "qa", "staging"]);
    assert!(envs.contains("dev") && !envs.contains("prod"));
    assert_eq!(envs.promotion(), ["staging", "qa", "production"]);
    assert_eq!(envs.path(), Some(Path::new("environments.ron")));
    assert!(envs.source().unwrap().text.contains("\"qa\": Environment()"));
}

#[test]
fn a_service_gets_its_environment_config_under_its_own() {
    let ws = load(&[("environments.ron", ENVS)]).unwrap();
    let envs = &ws.environments;
    // The service's LOG_LEVEL wins; REGION comes from the environment;
    // secrets are the union (SENTRY_DSN given at both levels counts once).
    assert_eq!(
        envs.config("staging", "api"),
        Some(config(
            &[("DATABASE_PATH", "shop-staging.sqlite"), ("LOG_LEVEL", "trace"), ("REGION", "eu")],
            &["SENTRY_DSN", "SHOP_API_TOKEN"],
        ))
    );
    // No entry of its own: the environment's config alone.
    assert_eq!(
        envs.config("staging", "billing"),
        Some(config(&[("LOG_LEVEL", "debug"), ("REGION", "eu")], &["SENTRY_DSN"]))
    );
    assert_eq!(envs.config("production", "api"), Some(config(&[("LOG_LEVEL", "info")], &["SHOP_API_TOKEN"])));
    assert_eq!(envs.config("qa", "api"), Some(Config::default()));
    assert_eq!(envs.config("prod", "api"), None);
    // Each environment's config hashes differently: a promotion is a new release.
    let hashes: BTreeSet<_> = ["staging", "production", "qa"].map(|e| envs.config(e, "api").unwrap().hash()).into();
    assert_eq!(hashes.len(), 3);
}

#[test]
fn promotion_goes_to_any_later_environment_only() {
    let ws = load(&[("environments.ron", ENVS)]).unwrap();
    let envs = &ws.environments;
    assert!(envs.promotes_to("staging", "qa"));
    assert!(envs.promotes_to("staging", "production"), "a later one, not only the next");
    assert!(envs.promotes_to("qa", "production"));
    assert!(!envs.promotes_to("production", "staging"));
    assert!(!envs.promotes_to("qa", "staging"));
    assert!(!envs.promotes_to("staging", "staging"));
    // `dev` is declared but outside the promotion order; `nope` is unknown.
    assert!(!envs.promotes_to("dev", "production") && !envs.promotes_to("staging", "dev"));
    assert!(!envs.promotes_to("nope", "production"));
}

#[test]
fn only_services_of_the_workspace_are_configured() {
    let unknown = ENVS.replacen("\"api\": ServiceEnv(secrets", "\"apii\": ServiceEnv(secrets", 1);
    let (at, help) = decl_error(load(&[("environments.ron", &unknown)]));
    assert_eq!(at, "environments.ron:17:24 environment `production` configures unknown service `apii`");
    assert_eq!(help.as_deref(), Some("services of this workspace: api, billing"));

    let library = ENVS.replacen("\"api\": ServiceEnv(\n", "\"lib\": ServiceEnv(\n", 1);
    let (at, help) = decl_error(load(&[("environments.ron", &library)]));
    assert_eq!(
        at,
        "environments.ron:8:17 environment `staging` configures `lib`, a library: only services are released"
    );
    assert_eq!(help.as_deref(), Some("services of this workspace: api, billing"));
}

#[test]
fn mistakes_of_the_file_alone_stop_the_load() {
    let (at, _) = decl_error(load(&[("environments.ron", &ENVS.replacen("\"qa\"", "\"QA\"", 1))]));
    assert_eq!(at, "environments.ron:2:28 unknown environment `QA` in the promotion order");
    let (at, _) = decl_error(load(&[("environments.ron", "Environments(environments: {\"a\": Environment(x: 1)})")]));
    assert!(at.starts_with("environments.ron:1:46 ") && at.contains("`x`"), "{at}");
    // Not UTF-8: named like any declaration.
    let dir = tempfile::tempdir().unwrap();
    write_ws(dir.path(), &[]);
    std::fs::write(dir.path().join("environments.ron"), b"Environments(\xff)").unwrap();
    let e = Workspace::load(dir.path()).unwrap_err();
    assert!(matches!(&e, GraphError::NotUtf8 { path } if path == Path::new("environments.ron")), "{e}");
}

#[test]
fn the_saved_load_sees_environments_created_edited_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, cache) = (dir.path().join("ws"), dir.path().join("cache"));
    write_ws(&root, &[]);
    // A clock past the racy margin of every change made so far.
    let settled = Clock::ahead(Duration::from_nanos(brr_store::RACY_MARGIN_NS.unsigned_abs()) + Duration::from_secs(1));
    let load = || Workspace::load_cached(&root, &cache, settled).unwrap();
    assert!(!load().from_snapshot);
    let ws = load();
    assert!(ws.from_snapshot && ws.environments.is_empty());

    // Created where there was none (no folder listing that is stamped changes).
    write_all(&root, &[("environments.ron", ENVS)]);
    let ws = load();
    assert!(!ws.from_snapshot, "a new environments.ron was not seen");
    assert!(ws.environments.contains("qa"));
    let ws = load();
    assert!(ws.from_snapshot);
    assert_eq!(
        ws.environments.config("staging", "api"),
        Workspace::load(&root).unwrap().environments.config("staging", "api")
    );
    assert_eq!(ws.environments.path(), Some(Path::new("environments.ron")));

    // Edited in place.
    std::fs::write(root.join("environments.ron"), ENVS.replace("\"trace\"", "\"warn\"")).unwrap();
    let ws = load();
    assert!(!ws.from_snapshot, "an edit of environments.ron was not seen");
    assert_eq!(ws.environments.config("staging", "api").unwrap().vars["LOG_LEVEL"], "warn");
    let ws = load();
    assert!(ws.from_snapshot);
    assert_eq!(ws.environments.config("staging", "api").unwrap().vars["LOG_LEVEL"], "warn");

    // Broken: the error is reported, not a saved load.
    std::fs::write(root.join("environments.ron"), ENVS.replace("\"qa\"", "\"QA\"")).unwrap();
    assert!(matches!(Workspace::load_cached(&root, &cache, settled), Err(GraphError::Decl(_))));

    // Removed.
    std::fs::remove_file(root.join("environments.ron")).unwrap();
    let ws = load();
    assert!(!ws.from_snapshot && ws.environments.is_empty());
}

#[test]
fn the_shop_fixture_declares_staging_and_production() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/shop");
    let ws = Workspace::load(&shop).unwrap();
    let envs = &ws.environments;
    assert_eq!(envs.promotion(), ["staging", "production"]);
    assert!(envs.promotes_to("staging", "production"));
    let (staging, production) = (envs.config("staging", "api").unwrap(), envs.config("production", "api").unwrap());
    assert_eq!(staging.secrets, production.secrets);
    assert_eq!(staging.secrets.iter().collect::<Vec<_>>(), ["SHOP_API_TOKEN"]);
    for (config, db) in [(&staging, "shop-staging.sqlite"), (&production, "shop-production.sqlite")] {
        assert_eq!(config.vars["DATABASE_PATH"], db);
    }
    assert_ne!(staging.vars["LOG_LEVEL"], production.vars["LOG_LEVEL"]);
    assert!(!envs.config("staging", "billing").unwrap().vars.contains_key("DATABASE_PATH"));
}
