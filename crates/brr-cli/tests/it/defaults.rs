//! Workspace defaults: packages inherit env, tools and limits from the root `brr.ron`, override them, and `why` says where each came from.

use crate::workspace;

const SCRIPT: &str = "echo \"cflags=$CFLAGS opt=$OPT\"; echo -n x > $OUT/f";

fn package(fields: &str) -> String {
    format!(
        "Library(\n    name: \"a\",\n    builder: [\"sh\", \"-c\", {}],\n    outputs: [\"f\"],\n    {fields}\n)\n",
        brr_test_support::ron_str(SCRIPT)
    )
}

fn key_of(ws: &brr_test_support::TestWorkspace) -> String {
    ws.brr(["build", "--json"]).success().targets()["a"].key.clone().unwrap()
}

#[test]
fn moving_settings_into_the_defaults_changes_no_key() {
    let flags = "-O2 -pipe -fstack-protector-strong -D_FORTIFY_SOURCE=2";
    let own = workspace()
        .file("brr.ron", "Workspace(packages: [\"p/*\"])\n")
        .file("p/a/brr.ron", &package(&format!("tools: [\"sh\"],\n    env: {{\"CFLAGS\": \"{flags}\"}},")));
    let moved = workspace()
        .file(
            "brr.ron",
            &format!(
                "Workspace(\n    packages: [\"p/*\"],\n    defaults: (\n        env: {{\"CFLAGS\": \"{flags}\"}},\n        \
                 tools: [\"sh\"],\n    ),\n)\n"
            ),
        )
        .file("p/a/brr.ron", &package(""));
    assert_eq!(key_of(&own), key_of(&moved), "moving CFLAGS and the tools into the defaults changed the key");
    assert_eq!(moved.brr(["log", "a"]).success().stdout, format!("cflags={flags} opt=\n"));

    // Changing the default changes the key, and `why` names the variable.
    let edited = moved.read("brr.ron").replace("-O2", "-O3");
    moved.write("brr.ron", &edited);
    let why = moved.brr(["why", "a"]).success().stdout;
    assert!(why.contains("env `CFLAGS`"), "{why}");
    assert!(why.contains("(workspace defaults, brr.ron:4)"), "{why}");
}

#[test]
fn a_package_overrides_defaults_per_variable_tool_list_and_limit() {
    let ws = workspace()
        .file(
            "brr.ron",
            "Workspace(\n    packages: [\"p/*\"],\n    defaults: (\n        env: {\"CFLAGS\": \"-O2\", \"OPT\": \"1\"},\n        \
             tools: [\"sh\", \"cat\"],\n        limits: (processes: 400, output_mib: 64),\n    ),\n)\n",
        )
        .file("p/a/brr.ron", &package("tools: [\"sh\", \"ls\"],\n    env: {\"OPT\": \"2\"},\n    limits: Limits(processes: 500),"));
    ws.brr(["build"]).success();
    assert_eq!(ws.brr(["log", "a"]).success().stdout, "cflags=-O2 opt=2\n");
    let why = ws.brr(["why", "a", "--json"]).success().json();
    let origins = &why["inputs"]["origins"];
    let origin = |kind: &str, name: &str| {
        let o = &origins[kind][name];
        (o["from"].as_str().unwrap().to_owned(), o["file"].as_str().unwrap().to_owned(), o["line"].as_u64().unwrap())
    };
    assert_eq!(origin("env", "CFLAGS"), ("workspace_defaults".into(), "brr.ron".into(), 4));
    assert_eq!(origin("env", "OPT"), ("package".into(), "p/a/brr.ron".into(), 6));
    assert_eq!(origins["env"]["OPT"]["overrides_default"], true);
    // Tools: the union, each from where it was declared.
    assert_eq!(origin("tools", "cat"), ("workspace_defaults".into(), "brr.ron".into(), 5));
    assert_eq!(origin("tools", "ls"), ("package".into(), "p/a/brr.ron".into(), 5));
    assert_eq!(origins["tools"]["sh"]["from"], "package");
    let tools: Vec<&str> =
        why["inputs"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["cat", "ls", "sh"]);
    // Limits: per field.
    assert_eq!(origin("limits", "processes"), ("package".into(), "p/a/brr.ron".into(), 7));
    assert_eq!(origin("limits", "output_mib"), ("workspace_defaults".into(), "brr.ron".into(), 6));
    assert!(origins["limits"].get("memory_mib").is_none(), "{origins}");
}

#[test]
fn an_inherited_tool_may_be_the_builder() {
    let ws = workspace()
        .file("brr.ron", "Workspace(packages: [\"p/*\"], defaults: (tools: [\"sh\"]))\n")
        .file("p/a/brr.ron", &package(""));
    ws.brr(["build"]).success();
    // Without the default, the same package is refused.
    ws.write("brr.ron", "Workspace(packages: [\"p/*\"])\n");
    let run = ws.brr(["build"]).code(2);
    assert!(run.stderr.contains("builder program `sh` is not a declared tool"), "{}", run.stderr);
}

#[test]
fn mistakes_in_the_defaults_name_the_root_file_and_line() {
    let cases = [
        ("env: {\"OK\": \"1\", \"BRR_JOBS\": \"9\"}", "brr.ron:3:", "env `BRR_JOBS` is set by brr"),
        ("env: {\"A B\": \"1\"}", "brr.ron:3:", "invalid env name `A B`"),
        ("tools: [\"sh\", \"sh\"]", "brr.ron:3:", "tool `sh` is declared twice"),
        ("tools: [\"/bin/sh\"]", "brr.ron:3:", "tool `/bin/sh` must be a program name"),
        ("limits: (cpus: 2)", "brr.ron:3:", "cpus"),
        ("colour: \"red\"", "brr.ron:3:", "colour"),
    ];
    for (field, at, message) in cases {
        let ws = workspace()
            .file("brr.ron", &format!("Workspace(\n    packages: [\"p/*\"],\n    defaults: ({field}),\n)\n"))
            .file("p/a/brr.ron", &package("tools: [\"sh\"],"));
        let run = ws.brr(["build"]).code(2);
        assert!(run.stderr.contains(at) && run.stderr.contains(message), "{field}:\n{}", run.stderr);
    }
}
