//! Parsing package and workspace files: the happy path and located errors.

use brr_schema::{
    DeclError, PackageDecl, ProcessDecl, ReadyDecl, RestartDecl, SourceFile, parse_package, parse_workspace,
};

const GOOD: &str = r#"Service(
    name: "api",
    inputs: ["src/*.c"],
    deps: ["libshop"],
    tools: ["cc"],
    builder: ["cc", "-o", "out"],
    env: {"CFLAGS": "-O2"},
    outputs: ["bin/api"],
    processes: {
        "web": Process(command: ["bin/api", "serve"]),
    },
    release: ["bin/api", "migrate"],
)
"#;

fn pkg(text: &str) -> Result<PackageDecl, Box<DeclError>> {
    parse_package(&SourceFile::new("services/api/brr.ron", text))
}

#[test]
fn parses_a_service() {
    let d = pkg(GOOD).unwrap();
    assert!(d.is_service());
    let b = d.body();
    assert_eq!(b.name, "api");
    assert_eq!(b.processes["web"].command, ["bin/api", "serve"]);
    assert_eq!(b.release.as_deref(), Some(&["bin/api".to_owned(), "migrate".to_owned()][..]));
}

#[test]
fn syntax_error_points_at_line_and_column() {
    let e = pkg("Library(\n    name: \"a\",\n    inputs: [\"x\"\n    oops\n)").unwrap_err();
    assert_eq!(e.file.to_str(), Some("services/api/brr.ron"));
    assert_eq!(e.line, 4, "{e}");
    assert!(e.to_string().starts_with("services/api/brr.ron:4:"), "{e}");
}

#[test]
fn unknown_field_is_named() {
    let e = pkg(&GOOD.replace("env:", "envv:")).unwrap_err();
    assert!(e.message.contains("envv"), "{e}");
    assert_eq!(e.line, 7);
}

#[test]
fn escaping_output_is_refused_at_its_line() {
    let e = pkg(&GOOD.replace("\"bin/api\"]", "\"../bin/api\"]")).unwrap_err();
    assert!(e.message.contains("`../bin/api` escapes"), "{e}");
    assert_eq!(e.line, 8);
}

#[test]
fn builder_must_be_a_tool_and_env_not_reserved() {
    let e = pkg(&GOOD.replace("tools: [\"cc\"]", "tools: [\"sh\"]")).unwrap_err();
    assert!(e.message.contains("builder program `cc`"), "{e}");
    let e = pkg(&GOOD.replace("\"CFLAGS\"", "\"PATH\"")).unwrap_err();
    assert!(e.message.contains("env `PATH`"), "{e}");
    assert_eq!(e.line, 7);
}

#[test]
fn host_inputs_must_be_absolute_without_dot_dot() {
    let with = |g: &str| GOOD.replace("tools: [\"cc\"]", &format!("tools: [\"cc\"],\n    host_inputs: [\"{g}\"]"));
    let e = pkg(&with("usr/include/**")).unwrap_err();
    assert!(e.message.contains("host input `usr/include/**` is not an absolute path"), "{e}");
    assert_eq!(e.line, 6);
    let e = pkg(&with("/usr/include/../lib/*.so")).unwrap_err();
    assert!(e.message.contains("contains `..`"), "{e}");
    assert_eq!(e.line, 6);
    assert_eq!(pkg(&with("/usr/include/**")).unwrap().body().host_inputs, ["/usr/include/**"]);
}

#[test]
fn library_cannot_have_processes() {
    let e = pkg(&GOOD.replace("Service(", "Library(")).unwrap_err();
    assert!(e.message.contains("declares process `web`"), "{e}");
}

#[test]
fn workspace_needs_packages() {
    let f = SourceFile::new("brr.ron", "Workspace(packages: [])");
    assert!(parse_workspace(&f).unwrap_err().message.contains("at least one"));
    let f = SourceFile::new("brr.ron", "Workspace(packages: [\"libs/*\"])");
    assert_eq!(parse_workspace(&f).unwrap().packages, ["libs/*"]);
}

#[test]
fn a_zero_timeout_is_refused_at_its_line_in_a_package_and_the_defaults() {
    let with = |limits: &str| GOOD.replace("    outputs:", &format!("    limits: {limits},\n    outputs:"));
    let e = pkg(&with("Limits(output_mib: 64,\n        timeout_s: Some(0))")).unwrap_err();
    assert!(e.message.contains("`limits.timeout_s` is `0`"), "{e}");
    assert_eq!(e.line, 9, "{e}");
    assert!(e.to_string().starts_with("services/api/brr.ron:9:"), "{e}");
    assert_eq!(pkg(&with("(timeout_s: 30)")).unwrap().body().limits.timeout_s, Some(30));
    assert_eq!(pkg(GOOD).unwrap().body().limits.timeout_s, None);

    let ws = |limits: &str| {
        SourceFile::new(
            "brr.ron",
            format!("Workspace(\n  packages: [\"p/*\"],\n  defaults: (\n    limits: {limits},\n  ),\n)"),
        )
    };
    let e = parse_workspace(&ws("(\n      timeout_s: Some(0),\n    )")).unwrap_err();
    assert!(e.message.contains("`limits.timeout_s` is `0`"), "{e}");
    assert_eq!((e.file.to_str(), e.line), (Some("brr.ron"), 5), "{e}");
    assert_eq!(parse_workspace(&ws("(timeout_s: 5)")).unwrap().defaults.limits.timeout_s, Some(5));
}

/// A service whose process types are given as `processes`.
fn service(processes: &str) -> String {
    GOOD.replace("        \"web\": Process(command: [\"bin/api\", \"serve\"]),\n", processes)
}

#[test]
fn process_settings_parse_and_default_to_undeclared() {
    let d = pkg(&service(
        r#"        "web": Process(command: ["bin/api"], restart: "always", grace_s: 3, ready: Http(path: "/health")),
        "worker": Process(command: ["bin/work"], restart: "never", ready: None),
        "cron": Process(command: ["bin/cron"], restart: "on-failure", ready: Command(["sh", "-c", "test -e up"])),
        "admin": Process(command: ["bin/admin"], ready: Tcp, grace_s: 0),
        "plain": Process(command: ["bin/plain"]),
"#,
    ))
    .unwrap();
    let p = &d.body().processes;
    assert_eq!(p["web"].restart, Some(RestartDecl::Always));
    assert_eq!(p["web"].grace_s, Some(3));
    assert_eq!(p["web"].ready, Some(ReadyDecl::Http { path: "/health".into() }));
    assert_eq!(p["worker"].restart, Some(RestartDecl::Never));
    // Written `None` is the probe "none", not "not declared".
    assert_eq!(p["worker"].ready, Some(ReadyDecl::None));
    assert_eq!(p["cron"].restart, Some(RestartDecl::OnFailure));
    assert_eq!(p["cron"].ready, Some(ReadyDecl::Command(vec!["sh".into(), "-c".into(), "test -e up".into()])));
    assert_eq!((p["admin"].ready.clone(), p["admin"].grace_s), (Some(ReadyDecl::Tcp), Some(0)));
    assert_eq!(p["plain"], ProcessDecl::command(vec!["bin/plain".into()]));
}

#[test]
fn process_setting_mistakes_point_at_their_line() {
    let e = pkg(&service("        \"web\": Process(command: [\"a\"],\n            restart: \"sometimes\"),\n"))
        .unwrap_err();
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("unknown restart policy `sometimes`"), "{e}");
    let e = pkg(&service("        \"web\": Process(command: [\"a\"],\n            grace: 3),\n")).unwrap_err();
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("grace"), "{e}");
    let e = pkg(&service("        \"web\": Process(command: [\"a\"], grace_s: -1),\n")).unwrap_err();
    assert_eq!(e.line, 10, "{e}");
    let e = pkg(&service("        \"web\": Process(command: [\"a\"], ready: Http(path: \"/ok\")),\n        \"w\": Process(command: [\"a\"],\n  ready: Http(path: \"health\")),\n")).unwrap_err();
    assert_eq!((e.line, e.col), (12, 21), "{e}");
    assert!(e.message.contains("process `w` has an invalid readiness path `health`"), "{e}");
    let e = pkg(&service("        \"web\": Process(command: [\"a\"], ready: Command([])),\n")).unwrap_err();
    assert!(e.message.contains("empty readiness command"), "{e}");
    assert_eq!(e.line, 10, "{e}");
    let e = pkg(&service("        \"web\": Process(command: [\"a\"], ready: Udp),\n")).unwrap_err();
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn parses_fetches_and_the_file_name_of_their_url() {
    let hash = "827f406086e7d01e721cedefdfd2ed92548fd61512577bd9fc074cfe53ce40fe";
    let url = "https://files.example/p/six-1.16.0%2Blocal-py3-none-any.whl?sig=1#x";
    let d = pkg(&format!("Fetch(name: \"six\", url: \"{url}\", hash: \"{hash}\")")).unwrap();
    let f = d.fetch().unwrap();
    assert_eq!((f.hash.as_str(), f.url.as_deref()), (hash, Some(url)));
    assert_eq!(brr_schema::url_file_name(url), Some("six-1.16.0%2Blocal-py3-none-any.whl"));
    for bad in ["file:///etc/passwd", "https://host", "https://host/", "https://host/a/..", "ftp://h/x.whl"] {
        assert_eq!(brr_schema::url_file_name(bad), None, "{bad}");
    }
    let body = d.body();
    assert!(!d.is_service() && body.outputs.is_empty() && body.builder.is_empty());

    let cmd = format!("Fetch(name: \"c\", command: [\"sh\", \"get.sh\"], tools: [\"sh\"], hash: \"{hash}\")");
    assert_eq!(pkg(&cmd).unwrap().body().builder, ["sh", "get.sh"]);
    let neither = pkg(&format!("Fetch(name: \"n\", hash: \"{hash}\")")).unwrap_err();
    assert!(neither.message.contains("needs a `url` or a `command`"), "{neither}");
    let upper = pkg(&format!("Fetch(name: \"u\", url: \"{url}\", hash: \"{}\")", hash.to_uppercase())).unwrap_err();
    assert!(upper.message.contains("is not 64 lowercase hex characters"), "{upper}");
}
