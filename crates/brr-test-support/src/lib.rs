//! Helpers for brr's tests: a temporary workspace built file by file or
//! copied from `fixtures/`, and running the `brr` binary against it.
//!
//! ```ignore
//! let ws = TestWorkspace::new(env!("CARGO_BIN_EXE_brr")).file("brr.ron", "Workspace(packages: [\"a\"])");
//! let run = ws.brr(["build", "--json"]).success();
//! ```

#![expect(clippy::missing_panics_doc, clippy::unwrap_used, reason = "test helpers panic with context on failure")]

use std::ffi::OsStr;
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

    /// A copy of `fixtures/<name>`.
    pub fn fixture(bin: impl Into<PathBuf>, name: &str) -> Self {
        let ws = Self::new(bin);
        copy_tree(&fixtures_dir().join(name), ws.path());
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
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

    /// The command `brr -C <workspace>`, for tests that spawn it themselves.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-C").arg(self.path()).env("NO_COLOR", "1").env_remove("BRR_STORE");
        cmd
    }
}

/// Copies a folder tree, keeping executable bits.
pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).into_iter().map(Result::unwrap) {
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
    /// Asserts exit code 0.
    #[track_caller]
    #[must_use]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "brr failed\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a given exit code.
    #[track_caller]
    #[must_use]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}
