//! Parsing `environments.ron`: the happy path, and each mistake located at
//! the file:line:column of the value at fault, in the right environment.

use brr_schema::{DeclError, EnvironmentsDecl, SourceFile, parse_environments, service_span};

const GOOD: &str = r#"// Environments a release can go to, in promotion order.
Environments(
    promotion: ["staging", "production"],
    environments: {
        "staging": Environment(
            vars: {"LOG_LEVEL": "debug"},
            secrets: [],
            services: {
                "api": ServiceEnv(
                    vars: {"DATABASE_PATH": "shop-staging.sqlite"},
                    secrets: ["SHOP_API_TOKEN"],
                ),
            },
        ),
        "production": Environment(
            vars: {"LOG_LEVEL": "info"},
            secrets: ["SENTRY_DSN"],
            services: {
                "api": ServiceEnv(
                    vars: {"DATABASE_PATH": "shop-production.sqlite"},
                    secrets: ["SHOP_API_TOKEN"],
                ),
            },
        ),
        "dev": Environment(),
    },
)
"#;

fn parse(text: &str) -> Result<EnvironmentsDecl, Box<DeclError>> {
    parse_environments(&SourceFile::new("environments.ron", text))
}

/// The error of `text`, as `line:col message` and the text its span covers.
fn error(text: &str) -> (String, String) {
    let e = parse(text).expect_err("the declaration should be refused");
    let span = e.span.expect("a snippet is shown");
    assert!(e.to_string().starts_with(&format!("environments.ron:{}:{}: ", e.line, e.col)), "{e}");
    (format!("{}:{} {}", e.line, e.col, e.message), text[span.offset()..span.offset() + span.len()].to_owned())
}

/// `GOOD` with the `n`th (from 1) occurrence of `from` replaced.
fn good_with(from: &str, n: usize, to: &str) -> String {
    let (i, _) = GOOD.match_indices(from).nth(n - 1).expect("the text to replace is in GOOD");
    format!("{}{to}{}", &GOOD[..i], &GOOD[i + from.len()..])
}

#[test]
fn parses_environments_with_defaults() {
    let d = parse(GOOD).unwrap();
    assert_eq!(d.promotion, ["staging", "production"]);
    assert_eq!(d.environments.keys().collect::<Vec<_>>(), ["dev", "production", "staging"]);
    let api = &d.environments["production"].services["api"];
    assert_eq!(api.vars["DATABASE_PATH"], "shop-production.sqlite");
    assert_eq!(api.secrets, ["SHOP_API_TOKEN"]);
    assert_eq!(d.environments["dev"], brr_schema::EnvironmentDecl::default());

    let bare = parse("Environments(environments: {})").unwrap();
    assert!(bare.promotion.is_empty() && bare.environments.is_empty());
}

#[test]
fn syntax_unknown_fields_and_missing_environments_are_located() {
    let e = parse(&good_with("secrets: [\"SENTRY_DSN\"],", 1, "secrets: [\"SENTRY_DSN\"")).unwrap_err();
    assert_eq!((e.line, e.file.to_str()), (18, Some("environments.ron")), "{e}");

    let (at, _) = error(&good_with("secrets: []", 1, "secret: []"));
    assert!(at.starts_with("7:13 ") && at.contains("secret"), "{at}");
    let (at, _) = error("Environments(promotion: [])");
    assert!(at.contains("environments"), "{at}");
    let (at, _) = error(&good_with("Environment(", 1, "Environmnt("));
    assert!(at.starts_with("5:20 "), "{at}");
}

#[test]
fn a_key_given_twice_is_refused() {
    let (at, span) = error(&good_with("\"dev\"", 1, "\"staging\""));
    assert_eq!((at.as_str(), span.as_str()), ("25:9 key `staging` is given twice", "\"staging\""));
    let (at, span) =
        error(&good_with("{\"LOG_LEVEL\": \"info\"}", 1, "{\"LOG_LEVEL\": \"info\", \"LOG_LEVEL\": \"warn\"}"));
    assert_eq!((at.as_str(), span.as_str()), ("16:41 key `LOG_LEVEL` is given twice", "\"LOG_LEVEL\""));
}

#[test]
fn environment_names_are_lowercase() {
    let (at, span) = error(&good_with("\"dev\"", 1, "\"Dev\""));
    assert_eq!((at.as_str(), span.as_str()), ("25:9 invalid environment name `Dev`", "\"Dev\""));
    assert!(error(&good_with("\"dev\"", 1, "\"1dev\"")).0.contains("`1dev`"));
    assert!(error(&good_with("\"dev\"", 1, "\"\"")).0.contains("invalid environment name ``"));
}

#[test]
fn var_and_secret_names_are_checked_where_they_are() {
    // The second `DATABASE_PATH`: production's, not staging's.
    let (at, span) = error(&good_with("DATABASE_PATH", 2, "DATABASE-PATH"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        (
            "20:28 invalid variable name `DATABASE-PATH` in service `api` in environment `production`",
            "\"DATABASE-PATH\""
        )
    );
    let (at, span) = error(&good_with("\"LOG_LEVEL\": \"info\"", 1, "\"LOG LEVEL\": \"info\""));
    assert_eq!(
        (at.as_str(), span.as_str()),
        ("16:20 invalid variable name `LOG LEVEL` in environment `production`", "\"LOG LEVEL\"")
    );
    let (at, span) = error(&good_with("SENTRY_DSN", 1, "9SENTRY"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        ("17:23 invalid secret name `9SENTRY` in environment `production`", "\"9SENTRY\"")
    );
}

#[test]
fn a_var_value_cannot_hold_nul() {
    let (at, span) = error(&good_with("shop-production.sqlite", 1, "shop\\u{0}.sqlite"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        (
            "20:45 variable `DATABASE_PATH` of service `api` in environment `production` holds a NUL byte",
            "\"shop\\u{0}.sqlite\""
        )
    );
}

#[test]
fn a_secret_is_listed_once() {
    let (at, span) = error(&good_with("[\"SHOP_API_TOKEN\"]", 1, "[\"SHOP_API_TOKEN\", \"SHOP_API_TOKEN\"]"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        (
            "11:49 secret `SHOP_API_TOKEN` is listed twice in service `api` in environment `staging`",
            "\"SHOP_API_TOKEN\""
        )
    );
}

#[test]
fn a_name_is_a_var_or_a_secret_after_merging() {
    // In one environment's own lists.
    let (at, span) = error(&good_with("secrets: []", 1, "secrets: [\"LOG_LEVEL\"]"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        ("7:23 `LOG_LEVEL` is both a variable and a secret of environment `staging`", "\"LOG_LEVEL\"")
    );
    // A service's secret against the environment's var.
    let (at, span) = error(&good_with("[\"SHOP_API_TOKEN\"]", 2, "[\"LOG_LEVEL\"]"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        (
            "21:31 `LOG_LEVEL` is both a variable and a secret of service `api` in environment `production`",
            "\"LOG_LEVEL\""
        )
    );
    // A service's var against the environment's secret.
    let (at, span) = error(&good_with("DATABASE_PATH", 2, "SENTRY_DSN"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        (
            "20:28 `SENTRY_DSN` is both a variable and a secret of service `api` in environment `production`",
            "\"SENTRY_DSN\""
        )
    );
    // A service's var against its own secret.
    let (at, _) = error(&good_with("DATABASE_PATH", 1, "SHOP_API_TOKEN"));
    assert!(at.starts_with("10:28 `SHOP_API_TOKEN` is both"), "{at}");
    // The same name in different environments is fine.
    let text = good_with("secrets: []", 1, "secrets: [\"SENTRY_DSN\"]");
    parse(&text).unwrap();
}

#[test]
fn promotion_names_declared_environments_once() {
    let (at, span) = error(&good_with("\"production\"]", 1, "\"prod\"]"));
    assert_eq!((at.as_str(), span.as_str()), ("3:28 unknown environment `prod` in the promotion order", "\"prod\""));
    let e = parse(&good_with("\"production\"]", 1, "\"prod\"]")).unwrap_err();
    assert_eq!(e.help.as_deref(), Some("declared environments: dev, production, staging"));

    let (at, span) = error(&good_with("\"production\"]", 1, "\"production\", \"staging\"]"));
    assert_eq!(
        (at.as_str(), span.as_str()),
        ("3:42 environment `staging` appears twice in the promotion order", "\"staging\"")
    );
    let e = parse("Environments(promotion: [\"a\"], environments: {})").unwrap_err();
    assert_eq!(e.help.as_deref(), Some("no environment is declared"));
}

#[test]
fn a_service_is_located_in_its_environment() {
    let file = SourceFile::new("environments.ron", GOOD);
    let span = service_span(&file, "production", "api");
    assert_eq!(file.line_col(span.offset()), (19, 17));
    assert_eq!(file.line_col(service_span(&file, "staging", "api").offset()), (9, 17));
}
