//! A service's `Procfile`: merged into its process types and manifest,
//! refused where it conflicts, and seen again by the saved load when edited.

use std::path::Path;
use std::time::Duration;

use brr_graph::{GraphError, Workspace, service_manifest};
use brr_hash::ProcessSpec;
use brr_store::Clock;

use crate::{lib, write_all};

/// A service `api` declaring `processes` (RON map entries).
fn api(processes: &str) -> String {
    lib("api", &[])
        .replacen("Library(", "Service(", 1)
        .replace("    outputs:", &format!("    processes: {{{processes}}},\n    outputs:"))
}

fn write_ws(root: &Path, extra: &[(&str, &str)]) {
    write_all(
        root,
        &[
            ("brr.ron", "Workspace(packages: [\"p/*\"])"),
            ("p/api/brr.ron", &api("\"web\": Process(command: [\"bin/web\"], restart: \"always\")")),
            ("p/api/a.c", ""),
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

/// `file:line:col message` and help of a declaration error.
fn decl_error(result: Result<Workspace, GraphError>) -> (String, Option<String>) {
    match result {
        Err(GraphError::Decl(e)) => (format!("{}:{}:{} {}", e.file.display(), e.line, e.col, e.message), e.help),
        Err(e) => panic!("not a declaration error: {e}"),
        Ok(_) => panic!("the load should have failed"),
    }
}

fn sh(command: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), command.into()]
}

#[test]
fn procfile_types_join_the_declared_ones_in_the_manifest() {
    let ws = load(&[("p/api/Procfile", "# jobs\nworker: bin/work --queue default\n\nclock: bin/clock\n")]).unwrap();
    let api = ws.get("api").unwrap();
    assert_eq!(api.procfile.as_deref(), Some(Path::new("p/api/Procfile")));
    let manifest = service_manifest(api);
    let names: Vec<&str> = manifest.processes.keys().map(String::as_str).collect();
    assert_eq!(names, ["clock", "web", "worker"]);
    assert_eq!(manifest.processes["worker"], ProcessSpec::command(sh("bin/work --queue default")));
    assert_eq!(manifest.processes["web"].restart, Some(brr_hash::Restart::Always), "declared settings are carried");
    // The Procfile is not an input: the build key does not see it.
    assert!(!api.inputs.keys().any(|k| k.ends_with("Procfile")));
    let without = load(&[]).unwrap();
    assert_eq!(without.get("api").unwrap().procfile, None);
    assert_eq!(service_manifest(without.get("api").unwrap()).processes.len(), 1);
}

#[test]
fn procfile_mistakes_name_the_file_and_line() {
    let (at, help) = decl_error(load(&[("p/api/Procfile", "worker: bin/work\n\n  web: bin/other\n")]));
    assert_eq!(at, "p/api/Procfile:3:3 process type `web` is declared in both `p/api/brr.ron` and `p/api/Procfile`");
    assert_eq!(help.as_deref(), Some("`p/api/brr.ron:7:17` declares it too; keep one"));
    let (at, _) = decl_error(load(&[("p/api/Procfile", "worker: bin/work\nbroken line\n")]));
    assert_eq!(at, "p/api/Procfile:2:1 a Procfile line must be `name: command`");
    let (at, help) = decl_error(load(&[("p/lib/Procfile", "worker: bin/work\n")]));
    assert_eq!(at, "p/lib/Procfile:1:1 library `lib` has a `Procfile`");
    assert!(help.unwrap().contains("p/lib/brr.ron"));
}

#[test]
fn the_saved_load_sees_a_procfile_created_edited_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, cache) = (dir.path().join("ws"), dir.path().join("cache"));
    write_ws(&root, &[]);
    // A clock past the racy margin of every change made so far.
    let settled = Clock::ahead(Duration::from_nanos(brr_store::RACY_MARGIN_NS.unsigned_abs()) + Duration::from_secs(1));
    let load = || Workspace::load_cached(&root, &cache, settled).unwrap();
    let worker = |ws: &Workspace| ws.get("api").unwrap().processes.get("worker").map(|p| p.command.clone());
    assert!(!load().from_snapshot);
    assert!(load().from_snapshot);

    write_all(&root, &[("p/api/Procfile", "worker: bin/work\n")]);
    let ws = load();
    assert!(!ws.from_snapshot, "a new Procfile was not seen");
    assert_eq!(worker(&ws), Some(sh("bin/work")));
    let ws = load();
    assert!(ws.from_snapshot);
    assert_eq!(worker(&ws), Some(sh("bin/work")), "the saved load keeps the Procfile's types");
    assert_eq!(ws.get("api").unwrap().procfile.as_deref(), Some(Path::new("p/api/Procfile")));

    // Edited in place: only the file's own stat fields change.
    std::fs::write(root.join("p/api/Procfile"), "worker: bin/work --fast\n").unwrap();
    let ws = load();
    assert!(!ws.from_snapshot, "an edit of the Procfile was not seen");
    assert_eq!(worker(&ws), Some(sh("bin/work --fast")));
    assert!(load().from_snapshot);

    std::fs::remove_file(root.join("p/api/Procfile")).unwrap();
    let ws = load();
    assert!(!ws.from_snapshot, "a removed Procfile was not seen");
    assert_eq!(worker(&ws), None);
}
