//! Loading workspaces: topological order, selection, and located errors.

use brr_graph::{GraphError, Workspace};

use crate::{lib, write_all};

fn ws(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Workspace, GraphError>) {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), files);
    let r = Workspace::load(dir.path());
    (dir, r)
}

const ROOT: (&str, &str) = ("brr.ron", "Workspace(packages: [\"p/*\"])");

#[test]
fn packages_come_in_dependency_order() {
    let (_d, r) = ws(&[
        ROOT,
        ("p/c/brr.ron", &lib("c", &["b"])),
        ("p/c/c.c", ""),
        ("p/a/brr.ron", &lib("a", &[])),
        ("p/a/a.c", ""),
        ("p/b/brr.ron", &lib("b", &["a"])),
        ("p/b/b.c", ""),
    ]);
    let w = r.unwrap();
    let names: Vec<_> = w.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(w.get("b").unwrap().inputs.keys().collect::<Vec<_>>(), ["p/b/b.c"]);
    let mask = w.select(&["b".to_owned()]).unwrap();
    assert_eq!(mask, [true, true, false]);
    assert!(matches!(w.select(&["zz".to_owned()]), Err(GraphError::UnknownTarget { .. })));
}

#[test]
fn a_cycle_is_named_whole() {
    let (_d, r) = ws(&[
        ROOT,
        ("p/a/brr.ron", &lib("a", &["b"])),
        ("p/a/a.c", ""),
        ("p/b/brr.ron", &lib("b", &["c"])),
        ("p/b/b.c", ""),
        ("p/c/brr.ron", &lib("c", &["a"])),
        ("p/c/c.c", ""),
    ]);
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "dependency cycle: a → b → c → a");
    assert!(e.is_user_error());
}

#[test]
fn unknown_dependency_points_at_its_line() {
    let (_d, r) = ws(&[ROOT, ("p/a/brr.ron", &lib("a", &["nope"])), ("p/a/a.c", "")]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert_eq!(e.file.to_str(), Some("p/a/brr.ron"));
    assert_eq!((e.line, e.message.as_str()), (4, "unknown dependency `nope`"));
}

#[test]
fn duplicate_names_name_both_files() {
    let (_d, r) =
        ws(&[ROOT, ("p/a/brr.ron", &lib("x", &[])), ("p/a/a.c", ""), ("p/b/brr.ron", &lib("x", &[])), ("p/b/b.c", "")]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert_eq!(e.file.to_str(), Some("p/b/brr.ron"));
    assert!(e.message.contains("already used by `p/a/brr.ron`"), "{}", e.message);
    assert_eq!(e.line, 2);
}

#[test]
fn globs_that_match_nothing_are_errors() {
    let (_d, r) = ws(&[ROOT, ("p/a/brr.ron", &lib("a", &[]))]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert!(e.message.contains("input glob `*.c` matches no file"), "{}", e.message);
    assert_eq!(e.line, 3);

    let (_d, r) =
        ws(&[("brr.ron", "Workspace(packages: [\"p/*\", \"q/*\"])"), ("p/a/brr.ron", &lib("a", &[])), ("p/a/a.c", "")]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert!(e.message.contains("package glob `q/*` matches no folder"), "{}", e.message);
    assert_eq!((e.file.to_str(), e.line), (Some("brr.ron"), 1));
}

#[test]
fn nested_package_files_belong_to_the_nested_package() {
    let (_d, r) = ws(&[
        ("brr.ron", "Workspace(packages: [\"p\", \"p/inner\"])"),
        ("p/brr.ron", &lib("outer", &[]).replace("\"*.c\"", "\"**/*.c\"")),
        ("p/o.c", ""),
        ("p/inner/brr.ron", &lib("inner", &[])),
        ("p/inner/i.c", ""),
    ]);
    let w = r.unwrap();
    assert_eq!(w.get("outer").unwrap().inputs.keys().collect::<Vec<_>>(), ["p/o.c"]);
    assert_eq!(w.get("inner").unwrap().inputs.keys().collect::<Vec<_>>(), ["p/inner/i.c"]);
}

#[test]
fn no_workspace_file_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Workspace::load(dir.path()).unwrap_err();
    assert!(matches!(e, GraphError::NoWorkspace { .. }) && e.is_user_error());
}

/// The inputs `globs` select in a package `p` holding `files`.
fn selected(globs: &str, files: &[&str]) -> Vec<String> {
    let decl = lib("p", &[]).replace("\"*.c\"", globs);
    let mut all = vec![("brr.ron", "Workspace(packages: [\"p\"])"), ("p/brr.ron", decl.as_str())];
    all.extend(files.iter().map(|f| (*f, "")));
    let (_d, r) = ws(&all);
    r.unwrap().get("p").unwrap().inputs.keys().cloned().collect()
}

#[test]
fn a_star_stays_within_one_folder() {
    let files = ["p/x.c", "p/sub/y.c", "p/sub/deep/z.c", "p/src/a.c", "p/src/lib/b.c"];
    assert_eq!(selected("\"*.c\"", &files), ["p/x.c"]);
    assert_eq!(selected("\"src/*.c\"", &files), ["p/src/a.c"]);
    assert_eq!(selected("\"*/*.c\"", &files), ["p/src/a.c", "p/sub/y.c"]);
    // `?` does not match `/` either: this glob selects nothing, an error.
    let decl = lib("p", &[]).replace("\"*.c\"", "\"sub?y.c\"");
    let (_d, r) = ws(&[("brr.ron", "Workspace(packages: [\"p\"])"), ("p/brr.ron", &decl), ("p/sub/y.c", "")]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert!(e.message.contains("`sub?y.c` matches no file"), "{}", e.message);
}

#[test]
fn a_double_star_crosses_folders() {
    let files = ["p/x.c", "p/sub/y.c", "p/sub/deep/z.c", "p/src/a.c", "p/src/lib/b.c", "p/src/lib/b.h"];
    assert_eq!(selected("\"**/*.c\"", &files), ["p/src/a.c", "p/src/lib/b.c", "p/sub/deep/z.c", "p/sub/y.c", "p/x.c"]);
    assert_eq!(selected("\"src/**\"", &files), ["p/src/a.c", "p/src/lib/b.c", "p/src/lib/b.h"]);
    assert_eq!(selected("\"sub/**/*.c\"", &files), ["p/sub/deep/z.c", "p/sub/y.c"]);
}

#[test]
fn a_package_glob_star_stays_within_one_folder() {
    let (_d, r) = ws(&[
        ("brr.ron", "Workspace(packages: [\"libs/*\"])"),
        ("libs/a/brr.ron", &lib("a", &[])),
        ("libs/a/a.c", ""),
        ("libs/a/v2/brr.ron", &lib("a2", &[])),
        ("libs/a/v2/a.c", ""),
    ]);
    let w = r.unwrap();
    assert!(
        w.get("a").is_some() && w.get("a2").is_none(),
        "{:?}",
        w.packages.iter().map(|p| &p.name).collect::<Vec<_>>()
    );
}

/// `//` globs are relative to the workspace root: a flat `src/` shared by
/// packages, with no symlinks; `*` still stays within one folder.
#[test]
fn workspace_relative_inputs_reach_the_root_and_no_further() {
    let files = ["src/a.c", "src/sub/b.c", "p/own.c"];
    assert_eq!(selected("\"//src/*.c\", \"*.c\"", &files), ["p/own.c", "src/a.c"]);
    assert_eq!(selected("\"//src/**/*.c\"", &files), ["src/a.c", "src/sub/b.c"]);
    // Never outside the workspace.
    let decl = lib("p", &[]).replace("\"*.c\"", "\"//../secret.c\"");
    let (_d, r) = ws(&[("brr.ron", "Workspace(packages: [\"p\"])"), ("p/brr.ron", &decl)]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert!(e.message.contains("reaches outside"), "{}", e.message);
    // A `//` glob that matches nothing says where it looked.
    let decl = lib("p", &[]).replace("\"*.c\"", "\"//nowhere/*.c\"");
    let (_d, r) = ws(&[("brr.ron", "Workspace(packages: [\"p\"])"), ("p/brr.ron", &decl)]);
    let GraphError::Decl(e) = r.unwrap_err() else { panic!("not a declaration error") };
    assert!(e.message.contains("matches no file in the workspace"), "{}", e.message);
}
