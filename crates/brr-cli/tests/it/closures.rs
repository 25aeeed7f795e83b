//! Toolchain closures, host inputs and `-march=native` in the build key:
//! a changed library, `cc1` or header outside the workspace is a rebuild,
//! and `plan`/`why` name the file.

use std::path::Path;
use std::process::Command;

use brr_test_support::{ron_str, temp_dir};

use crate::workspace;

/// Whether a C compiler runs here; the test fails with a hint otherwise.
fn require_cc() -> bool {
    let ok = Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success());
    brr_test_support::require(ok, "a C compiler (`cc`)", "`cc --version` failed", "run `scripts/test-deps.sh`")
}

fn cc(args: &[&str]) {
    let out = Command::new("cc").args(args).output().unwrap();
    assert!(out.status.success(), "cc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `dir/lib/libfoo.so` whose `foo()` returns `value`.
fn build_libfoo(dir: &Path, value: u32) {
    let src = dir.join(format!("foo{value}.c"));
    fs_err::write(&src, format!("int foo(void) {{ return {value}; }}\n")).unwrap();
    let lib = dir.join("lib/libfoo.so");
    // A new file, as a package upgrade writes it (the tool keeps its bytes).
    let tmp = dir.join("lib/libfoo.so.new");
    cc(&["-shared", "-fPIC", "-o", tmp.to_str().unwrap(), src.to_str().unwrap()]);
    fs_err::rename(&tmp, &lib).unwrap();
}

/// `PATH` with `dir/bin` first.
fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn a_library_the_tool_loads_is_in_the_key_and_why_names_it() {
    if !require_cc() {
        return;
    }
    let tool = temp_dir();
    let dir = tool.path();
    fs_err::create_dir_all(dir.join("lib")).unwrap();
    fs_err::create_dir_all(dir.join("bin")).unwrap();
    build_libfoo(dir, 1);
    let main = dir.join("main.c");
    fs_err::write(&main, "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"%d\\n\", foo()); }\n").unwrap();
    let bin = dir.join("bin/footool");
    let lib = dir.join("lib");
    // `$ORIGIN`: the loader finds the library next to the tool, wherever it is.
    cc(&[
        "-o",
        bin.to_str().unwrap(),
        main.to_str().unwrap(),
        "-L",
        lib.to_str().unwrap(),
        "-lfoo",
        "-Wl,-rpath,$ORIGIN/../lib",
    ]);
    let tool_bytes = fs_err::read(&bin).unwrap();
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"use\"])").file(
        "use/brr.ron",
        "Library(name: \"use\", tools: [\"sh\", \"footool\"], builder: [\"sh\", \"-c\", \"footool > $OUT/f\"], \
         outputs: [\"f\"])",
    );
    let path = path_with(dir);
    let first = ws.brr_env("PATH", &path, ["build", "--json"]).success();
    assert_eq!(first.targets()["use"].status, "built");
    let libfoo = fs_err::canonicalize(dir.join("lib/libfoo.so")).unwrap().display().to_string();
    let why = ws.brr_env("PATH", &path, ["why", "use", "--json"]).success().json();
    let tools = why["inputs"]["tools"].as_array().unwrap();
    let footool = tools.iter().find(|t| t["name"] == "footool").unwrap();
    let closure: Vec<&str> =
        footool["closure"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(closure.contains(&libfoo.as_str()), "{closure:?}");
    assert!(closure.iter().any(|p| p.contains("libc.so")), "libc is in the closure: {closure:?}");
    assert!(closure.iter().any(|p| p.contains("ld-linux")), "the loader is in the closure: {closure:?}");
    let plan = ws.brr_env("PATH", &path, ["plan"]).success();
    assert!(plan.stdout.contains("cached  use"), "{}", plan.stdout);

    build_libfoo(dir, 2);
    assert_eq!(fs_err::read(&bin).unwrap(), tool_bytes, "the tool's own bytes did not change");
    let plan = ws.brr_env("PATH", &path, ["plan"]).success();
    let named = format!("tool `footool`: `{libfoo}` changed");
    assert!(plan.stdout.contains("build   use") && plan.stdout.contains(&named), "{}", plan.stdout);
    let why = ws.brr_env("PATH", &path, ["why", "use"]).success();
    assert!(why.stdout.contains(&named), "{}", why.stdout);
    let second = ws.brr_env("PATH", &path, ["build", "--json"]).success();
    assert_eq!(second.targets()["use"].status, "built");
    assert_ne!(second.targets()["use"].key, first.targets()["use"].key);
    assert_ne!(second.targets()["use"].artifact, first.targets()["use"].artifact, "footool now prints 2");
    // Discovered once: a no-op finds it cached again.
    let third = ws.brr_env("PATH", &path, ["build", "--json"]).success();
    assert_eq!(third.targets()["use"].status, "cached");
}

#[test]
fn the_cc1_a_compiler_driver_runs_is_in_the_key() {
    let tool = temp_dir();
    let dir = tool.path();
    fs_err::create_dir_all(dir.join("bin")).unwrap();
    fs_err::create_dir_all(dir.join("libexec")).unwrap();
    let cc1 = dir.join("libexec/cc1");
    // A driver that answers like gcc and runs "its" cc1.
    let asked = dir.join("asked.log");
    let driver = format!(
        "#!/bin/sh\ncase \"$1\" in -print-*) echo \"$1\" >> '{asked}' ;; esac\ncase \"$1\" in\n-print-prog-name=cc1) echo '{cc1}' ;;\n-print-prog-name=*) echo \"${{1#*=}}\" ;;\n\
         -print-file-name=*) echo \"${{1#*=}}\" ;;\n*) exec '{cc1}' ;;\nesac\n",
        cc1 = cc1.display(),
        asked = asked.display()
    );
    let write_exe = |p: &Path, text: &str| {
        let tmp = p.with_extension("new");
        fs_err::write(&tmp, text).unwrap();
        fs_err::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fs_err::rename(&tmp, p).unwrap();
    };
    write_exe(&dir.join("bin/cc"), &driver);
    write_exe(&cc1, "#!/bin/sh\necho cc1 version 1\n");
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"c\"])").file(
        "c/brr.ron",
        "Library(name: \"c\", tools: [\"sh\", \"cc\"], builder: [\"sh\", \"-c\", \"cc > $OUT/f\"], outputs: [\"f\"])",
    );
    let path = path_with(dir);
    let first = ws.brr_env("PATH", &path, ["build", "--json"]).success();
    assert_eq!(first.targets()["c"].status, "built");
    let why = ws.brr_env("PATH", &path, ["why", "c"]).success();
    let cc1_real = fs_err::canonicalize(&cc1).unwrap().display().to_string();
    assert!(why.stdout.contains(&cc1_real), "cc1 is listed in the closure: {}", why.stdout);
    // The driver was asked once, on the first run; later runs reuse the
    // saved closure while its files keep their stat fields.
    let questions = fs_err::read_to_string(&asked).unwrap().lines().count();
    assert_eq!(questions, 7, "six programs and the LTO plugin");
    assert_eq!(ws.brr_env("PATH", &path, ["build", "--json"]).success().targets()["c"].status, "cached");
    assert_eq!(fs_err::read_to_string(&asked).unwrap().lines().count(), questions, "a no-op asked the driver");

    write_exe(&cc1, "#!/bin/sh\necho cc1 version 2\n");
    let named = format!("tool `cc`: `{cc1_real}` changed");
    let plan = ws.brr_env("PATH", &path, ["plan"]).success();
    assert!(plan.stdout.contains("build   c") && plan.stdout.contains(&named), "{}", plan.stdout);
    let why = ws.brr_env("PATH", &path, ["why", "c"]).success();
    assert!(why.stdout.contains(&named), "{}", why.stdout);
    let second = ws.brr_env("PATH", &path, ["build", "--json"]).success();
    assert_eq!(second.targets()["c"].status, "built");
    assert_ne!(second.targets()["c"].key, first.targets()["c"].key);
    assert_eq!(fs_err::read_to_string(&asked).unwrap().lines().count(), 2 * questions, "asked again once");
}

#[test]
fn the_real_cc_closure_holds_cc1_and_libc() {
    if !require_cc() {
        return;
    }
    let ws = workspace()
        .file("brr.ron", "Workspace(packages: [\"c\"])")
        .file("c/brr.ron", "Library(name: \"c\", tools: [\"cc\"], builder: [\"cc\", \"-o\", \"x\"], outputs: [\"x\"])");
    let why = ws.brr(["why", "c", "--json"]).success().json();
    let closure: Vec<String> = why["inputs"]["tools"][0]["closure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(closure.iter().any(|p| p.ends_with("/cc1")), "{closure:?}");
    assert!(closure.iter().any(|p| p.ends_with("/collect2")), "{closure:?}");
    assert!(closure.iter().any(|p| p.contains("/libc.so")), "{closure:?}");
}

#[test]
fn a_declared_host_header_is_in_the_key() {
    let host = temp_dir();
    let inc = host.path().join("include");
    fs_err::create_dir_all(inc.join("sub")).unwrap();
    fs_err::write(inc.join("foo.h"), "#define FOO 1\n").unwrap();
    fs_err::write(inc.join("sub/bar.h"), "#define BAR 1\n").unwrap();
    let header = fs_err::canonicalize(inc.join("foo.h")).unwrap();
    let glob = format!("{}/**/*.h", fs_err::canonicalize(&inc).unwrap().display());
    let decl = |glob: &str| {
        format!(
            "Library(\n    name: \"h\",\n    tools: [\"sh\", \"cat\"],\n    host_inputs: [{}],\n    \
             builder: [\"sh\", \"-c\", {}],\n    outputs: [\"f\"],\n)\n",
            ron_str(glob),
            ron_str(&format!("cat '{}' > $OUT/f", header.display()))
        )
    };
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"h\"])").file("h/brr.ron", &decl(&glob));
    let first = ws.brr(["build", "--json"]).success();
    assert_eq!(first.targets()["h"].status, "built");
    let why = ws.brr(["why", "h", "--json"]).success().json();
    let host_inputs = why["inputs"]["host_inputs"].as_object().unwrap();
    assert_eq!(host_inputs.len(), 2, "both headers, `**` crossing folders: {host_inputs:?}");
    assert!(ws.brr(["plan"]).success().stdout.contains("cached  h"));

    fs_err::write(&header, "#define FOO 2\n").unwrap();
    let plan = ws.brr(["plan"]).success();
    let named = format!("host input `{}` changed", header.display());
    assert!(plan.stdout.contains("build   h") && plan.stdout.contains(&named), "{}", plan.stdout);
    let second = ws.brr(["build", "--json"]).success();
    assert_eq!(second.targets()["h"].status, "built");
    assert_ne!(second.targets()["h"].artifact, first.targets()["h"].artifact);

    // A glob that matches nothing: the manifest, its line and the glob.
    let none = format!("{}/*.hpp", inc.display());
    ws.write("h/brr.ron", &decl(&none));
    let run = ws.brr(["plan"]).code(2);
    assert!(run.stderr.contains(&format!("host input glob `{none}` matches no file")), "{}", run.stderr);
    assert!(run.stderr.contains("h/brr.ron:4"), "{}", run.stderr);
}

#[test]
fn host_inputs_in_the_workspace_defaults_are_every_packages() {
    let host = temp_dir();
    let header = host.path().join("common.h");
    fs_err::write(&header, "#define V 1\n").unwrap();
    let header = fs_err::canonicalize(&header).unwrap();
    let root = |glob: &str| {
        format!(
            "Workspace(\n    packages: [\"a\", \"b\"],\n    defaults: (\n        host_inputs: [{}],\n    ),\n)\n",
            ron_str(glob)
        )
    };
    let lib = |name: &str| {
        format!(
            "Library(name: \"{name}\", tools: [\"sh\", \"cat\"], builder: [\"sh\", \"-c\", {}], outputs: [\"f\"])",
            ron_str(&format!("cat '{}' > $OUT/f", header.display()))
        )
    };
    let glob = format!("{}/*.h", header.parent().unwrap().display());
    let ws = workspace().file("brr.ron", &root(&glob)).file("a/brr.ron", &lib("a")).file("b/brr.ron", &lib("b"));
    assert_eq!(ws.brr(["build", "--json"]).success().count("built"), 2);
    fs_err::write(&header, "#define V 2\n").unwrap();
    let plan = ws.brr(["plan"]).success();
    let named = format!("host input `{}` changed", header.display());
    assert!(plan.stdout.contains("build   a") && plan.stdout.contains("build   b"), "{}", plan.stdout);
    assert!(plan.stdout.contains(&named), "{}", plan.stdout);
    // An inherited glob that matches nothing is located in the root file.
    let none = format!("{}/*.hpp", header.parent().unwrap().display());
    ws.write("brr.ron", &root(&none));
    let run = ws.brr(["plan"]).code(2);
    assert!(run.stderr.contains(&format!("host input glob `{none}` matches no file")), "{}", run.stderr);
    assert!(run.stderr.contains("brr.ron:4") && !run.stderr.contains("a/brr.ron"), "{}", run.stderr);
    // And a relative one is refused there too.
    ws.write("brr.ron", &root("include/*.h"));
    let run = ws.brr(["plan"]).code(2);
    assert!(run.stderr.contains("is not an absolute path") && run.stderr.contains("brr.ron:4"), "{}", run.stderr);
}

#[test]
fn march_native_puts_this_cpu_in_the_key_and_plan_says_so() {
    let decl = |cflags: &str| {
        format!(
            "Library(name: \"n\", tools: [\"sh\"], env: {{\"CFLAGS\": {}}}, builder: [\"sh\", \"-c\", \"echo $CFLAGS > \
             $OUT/f\"], outputs: [\"f\"])",
            ron_str(cflags)
        )
    };
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"n\"])").file("n/brr.ron", &decl("-O2 -march=native"));
    let plan = ws.brr(["plan"]).success();
    assert!(plan.stdout.contains("note: the key includes this machine's CPU: "), "{}", plan.stdout);
    assert!(plan.stdout.contains("because `CFLAGS` has `-march=native`"), "{}", plan.stdout);
    let why = ws.brr(["why", "n", "--json"]).success().json();
    let cpu = &why["inputs"]["cpu"];
    assert!(cpu["identity"].as_str().unwrap().contains("flags: "), "{cpu}");
    assert_eq!(cpu["because"], "`CFLAGS` has `-march=native`");
    let key = why["key"].as_str().unwrap().to_owned();
    assert_eq!(ws.brr(["build", "--json"]).success().targets()["n"].key.as_deref(), Some(key.as_str()));
    let shown = ws.brr(["show", &key, "--json"]).success().json();
    assert_eq!(shown["object"]["cpu"], cpu["identity"], "{shown}");

    ws.write("n/brr.ron", &decl("-O2"));
    let plan = ws.brr(["plan"]).success();
    assert!(!plan.stdout.contains("CPU"), "{}", plan.stdout);
    let why = ws.brr(["why", "n", "--json"]).success().json();
    assert!(why["inputs"]["cpu"].is_null());
}

#[test]
fn a_driver_that_never_answers_fails_the_run_and_is_killed() {
    let tool = temp_dir();
    let dir = tool.path();
    fs_err::create_dir_all(dir.join("bin")).unwrap();
    // A marker unique to this test, to find what the driver left running.
    let marker = format!("{}", 86_400 + std::process::id());
    let driver = format!("#!/bin/sh\ncase \"$1\" in -print-*) exec sleep {marker} ;; esac\n");
    let cc = dir.join("bin/cc");
    fs_err::write(&cc, driver).unwrap();
    fs_err::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ws = workspace().file("brr.ron", "Workspace(packages: [\"c\"])").file(
        "c/brr.ron",
        "Library(name: \"c\", tools: [\"sh\", \"cc\"], builder: [\"sh\", \"-c\", \"cc > $OUT/f\"], outputs: [\"f\"])",
    );
    let run = ws.brr_env("PATH", path_with(dir), ["plan"]);
    assert!(run.code.is_some_and(|c| c != 0), "{run:?}");
    assert!(
        run.stderr.contains("tool `cc`")
            && run.stderr.contains("did not answer `-print-prog-name=")
            && run.stderr.contains("30 s"),
        "{}",
        run.stderr
    );
    let left = std::process::Command::new("pgrep").args(["-f", &format!("sleep {marker}")]).output().unwrap();
    assert!(left.stdout.is_empty(), "the driver's process was left running: {}", String::from_utf8_lossy(&left.stdout));
}
