//! A store holding hand-made service builds.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use brr_hash::{Artifact, ArtifactHash, Config, LedgerAction, ProcessSpec, ServiceManifest};
use brr_release::Request;
use brr_store::Store;
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn new_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("open store");
    (dir, store)
}

/// Stores a build whose outputs are `files` (path → content; a content
/// starting with `#!` is made executable) and whose release command is
/// `release`.
pub fn put_build(store: &Store, files: &[(&str, &str)], release: Option<&[&str]>) -> ArtifactHash {
    let src = tempfile::tempdir().expect("temp dir");
    let mut names = std::collections::BTreeSet::new();
    for (path, content) in files {
        let p = src.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        if content.starts_with("#!") {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        names.insert(path.split('/').next().unwrap_or(path).to_owned());
    }
    let names: Vec<String> = names.into_iter().collect();
    let snap = brr_hash::fs::snapshot(src.path(), &names).expect("snapshot");
    let outputs = store.put_snapshot(&snap).expect("put outputs");
    let manifest = ServiceManifest {
        processes: BTreeMap::from([("web".into(), ProcessSpec::command(vec!["bin/web".into()]))]),
        release: release.map(|r| r.iter().map(|s| (*s).to_owned()).collect()),
    };
    let artifact = Artifact { outputs, manifest };
    store.put_object(&artifact).expect("put artifact");
    artifact.hash()
}

pub fn config(vars: &[(&str, &str)], secrets: &[&str]) -> Config {
    Config {
        vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
    }
}

pub fn request(env: &str, build: ArtifactHash, config: Config) -> Request {
    Request {
        env: env.into(),
        service: "api".into(),
        build,
        config,
        action: LedgerAction::Release,
        source: None,
        actor: "tester".into(),
        note: None,
    }
}

/// Every file below `root` (following no links), read as bytes.
pub fn all_files(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), std::fs::read(e.path()).expect("read")));
            }
        }
    }
    out
}
