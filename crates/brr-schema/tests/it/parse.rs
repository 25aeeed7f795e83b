//! Parsing package and workspace files: the happy path and located errors.

use brr_schema::{DeclError, PackageDecl, SourceFile, parse_package, parse_workspace};

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
