//! Helpers for brr's tests: a temporary workspace built file by file or
//! copied from `fixtures/`, and running the `brr` binary against it.
//!
//! ```ignore
//! let ws = TestWorkspace::new(env!("CARGO_BIN_EXE_brr")).file("brr.ron", "Workspace(packages: [\"a\"])");
//! let run = ws.brr(["build", "--json"]).success();
//! ```

#![expect(clippy::missing_panics_doc, clippy::unwrap_used, reason = "test helpers panic with context on failure")]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A workspace in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct TestWorkspace {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl TestWorkspace {
    /// An empty workspace; `bin` is the `brr` binary (`env!("CARGO_BIN_EXE_brr")`).
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        let dir = tempfile::Builder::new().prefix("brr-test-").tempdir().unwrap();
        Self { dir, bin: bin.into() }
    }

    /// A copy of `fixtures/<name>` (without any `.brr` store left in it).
    pub fn fixture(bin: impl Into<PathBuf>, name: &str) -> Self {
        let ws = Self::new(bin);
        copy_tree(&fixtures_dir().join(name), ws.path());
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default store folder, `<workspace>/.brr`.
    pub fn store(&self) -> PathBuf {
        self.path().join(".brr")
    }

    /// Adds package `p/<name>` (creating a root `brr.ron` over `p/*` if there
    /// is none): a library whose builder is `sh -c SCRIPT` and whose one
    /// output is the file `f`. `sh` is always among its tools.
    #[must_use]
    pub fn sh_lib(self, name: &str, deps: &[&str], tools: &[&str], script: &str) -> Self {
        if !self.path().join("brr.ron").exists() {
            self.write("brr.ron", "Workspace(packages: [\"p/*\"])\n");
        }
        let decl = sh_library(name, deps, tools, script);
        self.file(&format!("p/{name}/brr.ron"), &decl)
    }

    /// Writes a file (parents created).
    #[must_use]
    pub fn file(self, rel: &str, contents: &str) -> Self {
        self.write(rel, contents);
        self
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let p = self.path().join(rel);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, contents).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs_err::read_to_string(self.path().join(rel)).unwrap()
    }

    /// Runs `brr -C <workspace> ARGS` with a clean, predictable environment.
    pub fn brr<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args);
        Run::from(cmd.output().unwrap())
    }

    /// Like [`TestWorkspace::brr`], with one more environment variable.
    pub fn brr_env<I, S>(&self, key: &str, value: impl AsRef<OsStr>, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.env(key, value).args(args);
        Run::from(cmd.output().unwrap())
    }

    /// The command `brr -C <workspace>`, for tests that spawn it themselves.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-C").arg(self.path()).env("NO_COLOR", "1").env_remove("BRR_STORE");
        cmd
    }
}

/// A fresh temporary folder, removed on drop (scratch space outside any workspace).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("brr-scratch-").tempdir().unwrap()
}

/// A RON string literal (quoted) holding `s`.
pub fn ron_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `Library(...)` declaration named `name` whose builder is `sh -c SCRIPT`
/// and whose one output is the file `f`; `sh` is added to `tools`.
pub fn sh_library(name: &str, deps: &[&str], tools: &[&str], script: &str) -> String {
    let list = |xs: &[&str]| xs.iter().map(|x| ron_str(x)).collect::<Vec<_>>().join(", ");
    let mut all_tools = vec!["sh"];
    all_tools.extend(tools.iter().filter(|t| **t != "sh"));
    format!(
        "Library(\n    name: {},\n    deps: [{}],\n    tools: [{}],\n    builder: [\"sh\", \"-c\", {}],\n    outputs: [\"f\"],\n)\n",
        ron_str(name),
        list(deps),
        list(&all_tools),
        ron_str(script)
    )
}

/// A `PATH` whose first folder holds the real `python3` binary (not a version
/// manager's shell shim, which cannot run with only declared tools), followed
/// by the current `PATH`; `None` when there is no `python3`.
pub fn path_with_real_python3() -> Option<OsString> {
    let out = Command::new("python3")
        .args(["-c", "import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let mut dirs = vec![dir];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).ok()
}

/// Every file below `dir` (relative path → bytes): compare two of them to
/// prove a store folder was left untouched.
pub fn snapshot_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().map(Result::unwrap) {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.insert(rel, fs_err::read(e.path()).unwrap());
        }
    }
    out
}

/// What differs between two [`snapshot_files`], one line per path.
pub fn snapshot_diff(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut diff = Vec::new();
    for (path, bytes) in before {
        match after.get(path) {
            None => diff.push(format!("removed {path}")),
            Some(b) if b != bytes => diff.push(format!("changed {path} ({} → {} bytes)", bytes.len(), b.len())),
            Some(_) => {}
        }
    }
    diff.extend(after.keys().filter(|p| !before.contains_key(*p)).map(|p| format!("added {p}")));
    diff
}

/// Names of the sandbox folders and locks (`build-*`) in a store's `tmp/`.
pub fn sandbox_leftovers(store: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store.join("tmp")) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("build-"))
        .collect();
    names.sort();
    names
}

/// Copies a folder tree, keeping executable bits and skipping `.brr` stores.
pub fn copy_tree(from: &Path, to: &Path) {
    let walker = walkdir::WalkDir::new(from).into_iter().filter_entry(|e| e.file_name() != ".brr");
    for e in walker.map(Result::unwrap) {
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            fs_err::create_dir_all(&dest).unwrap();
        } else if e.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            fs_err::copy(e.path(), &dest).unwrap();
            let mode = e.metadata().unwrap().permissions().mode();
            fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
        }
    }
}

/// One entry of `targets[]` in `brr build --json` or `brr plan --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: Option<String>,
    pub artifact: Option<String>,
    pub status: String,
}

/// The result of running brr.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit code 0. Returns the run for further checks; ignoring it
    /// is fine, the assertion is the point.
    #[track_caller]
    #[expect(clippy::return_self_not_must_use, reason = "a bare `.success()` is a complete assertion")]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "brr failed\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a given exit code; see [`Run::success`].
    #[track_caller]
    #[expect(clippy::return_self_not_must_use, reason = "a bare `.code(n)` is a complete assertion")]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// `targets[]` of a `--json` build or plan, by name.
    #[track_caller]
    pub fn targets(&self) -> BTreeMap<String, Target> {
        let json = self.json();
        let list = json["targets"].as_array().unwrap_or_else(|| panic!("no `targets` array in:\n{}", self.stdout));
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        list.iter()
            .map(|t| {
                let name = text(&t["name"]).unwrap_or_else(|| panic!("target without a name: {t}"));
                let status = text(&t["status"]).unwrap_or_else(|| panic!("target without a status: {t}"));
                (name, Target { key: text(&t["key"]), artifact: text(&t["artifact"]), status })
            })
            .collect()
    }

    /// How many `targets[]` have this status.
    #[track_caller]
    pub fn count(&self, status: &str) -> usize {
        self.targets().values().filter(|t| t.status == status).count()
    }

    /// Whether brr said that builders run without namespaces (no sandbox).
    pub fn namespaces_unavailable(&self) -> bool {
        self.stderr.contains("warning: builds run without namespaces")
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}
