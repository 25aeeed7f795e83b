//! Helpers for brr's tests: a temporary workspace built file by file or
//! copied from `fixtures/`, and running the `brr` binary against it.
//!
//! ```ignore
//! let ws = TestWorkspace::new(env!("CARGO_BIN_EXE_brr")).file("brr.ron", "Workspace(packages: [\"a\"])");
//! let run = ws.brr(["build", "--json"]).success();
//! ```
//!
//! # Missing servers and kernel features fail tests
//!
//! A test that needs something the machine may lack (nginx, BuildGrid,
//! namespaces, Landlock) asks [`require`] first. When it is missing the
//! test **fails**, saying how to get it (`scripts/test-deps.sh`, or which
//! kernel feature or sysctl), so that a run on an unprepared machine cannot
//! pass without testing anything. Setting [`ALLOW_SKIP_ENV`]
//! (`BRR_TEST_ALLOW_SKIP=1`) turns those failures into skips, each printing
//! a `note: skipped` line: for a quick local run only, never in CI.
//!
//! Where the servers are looked up, for tests and for proving the above:
//! `BRR_TEST_NGINX` (the nginx binary; default: `nginx` on `PATH`,
//! `/usr/sbin`, `/usr/local/sbin`), `BRR_BGD` (BuildGrid's `bgd`;
//! default: the one `scripts/test-deps.sh` installs under `target/`) and
//! `BRR_TEST_REDIS` (the `redis-server` BuildGrid's action cache runs on;
//! default: on `PATH`, `/usr/bin`, `/usr/local/bin`).

#![expect(clippy::missing_panics_doc, clippy::unwrap_used, reason = "test helpers panic with context on failure")]

mod execution;
mod file_server;
mod registry;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use execution::{BuildGridExecution, EXECUTION_HINT};
pub use file_server::{FETCH_FIXTURES_HINT, FileServer, fetch_fixtures_dir};
pub use registry::{REGISTRY_HINT, Registry};

/// The opt-out: when set to `1`, a test missing a server or kernel feature
/// is skipped (with a note on stderr) instead of failing. See the crate docs.
pub const ALLOW_SKIP_ENV: &str = "BRR_TEST_ALLOW_SKIP";

/// Whether the opt-out is on: [`ALLOW_SKIP_ENV`] set to exactly `1`.
pub fn skips_allowed() -> bool {
    allow_skip_value(std::env::var_os(ALLOW_SKIP_ENV).as_deref())
}

/// [`skips_allowed`] for a given value of the variable.
pub fn allow_skip_value(value: Option<&OsStr>) -> bool {
    value == Some(OsStr::new("1"))
}

/// The failure message of a test missing `what`: why it is missing
/// (`detail`) and how to get it (`hint`), then the opt-out.
pub fn unavailable_message(what: &str, detail: &str, hint: &str) -> String {
    format!(
        "{what} is unavailable: {detail}\nhint: {hint}\n\
         (to skip the tests that need it instead, set {ALLOW_SKIP_ENV}=1; never in CI)"
    )
}

/// The one check every test needing a server or kernel feature makes:
/// true when `available`; otherwise panics with [`unavailable_message`]
/// (the test fails), or, with [`ALLOW_SKIP_ENV`]`=1`, prints a note and
/// returns false (the caller returns: the test is skipped).
///
/// ```ignore
/// if !require(isolation.landlock(), "Landlock", "not enabled", "boot with lsm=…,landlock") { return; }
/// ```
#[track_caller]
pub fn require(available: bool, what: &str, detail: &str, hint: &str) -> bool {
    if available {
        return true;
    }
    let message = unavailable_message(what, detail, hint);
    assert!(skips_allowed(), "{message}");
    eprintln!("note: skipped ({ALLOW_SKIP_ENV}=1): {message}");
    false
}

/// How to install the test servers, for [`require`]'s hint.
pub const INSTALL_SERVERS_HINT: &str =
    "run `scripts/test-deps.sh` (as root for apt-get), which installs nginx, BuildGrid, Redis and PostgreSQL";

/// How to get namespaces for builders, for [`require`]'s hint.
pub const NAMESPACES_HINT: &str = "brr needs unprivileged user namespaces: \
     `sysctl -w kernel.unprivileged_userns_clone=1` (Debian), `user.max_user_namespaces` above 0, \
     `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu ≥ 23.10); in a container, \
     a seccomp profile that allows `unshare` and `clone` with namespace flags";

/// How to get Landlock, for [`require`]'s hint.
pub const LANDLOCK_HINT: &str = "a kernel ≥ 5.13 built with CONFIG_SECURITY_LANDLOCK=y and `landlock` among \
     its LSMs (`cat /sys/kernel/security/lsm`; else add it to the `lsm=` boot parameter)";

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

    /// Runs `brr -C <workspace> ARGS` as an ordinary user: as root, as
    /// `nobody` (65534), to whom the workspace is given first; otherwise as
    /// the current user, who is one already.
    pub fn brr_as_user<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if !rustix::process::geteuid().is_root() {
            return self.brr(args);
        }
        let chown = Command::new("chown").args(["-R", "65534:65534"]).arg(self.path()).status().unwrap();
        assert!(chown.success(), "chown of the workspace failed");
        let as_nobody = || {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            cmd
        };
        // A checkout below a private folder (root's home) is out of nobody's
        // reach: run a copy of the binary from the workspace then.
        let reachable = as_nobody().arg("test").arg("-x").arg(&self.bin).status().is_ok_and(|s| s.success());
        let bin = if reachable {
            self.bin.clone()
        } else {
            let copy = self.path().join(".brr-bin");
            fs_err::copy(&self.bin, &copy).unwrap();
            copy
        };
        let mut cmd = as_nobody();
        cmd.arg(&bin)
            .arg("-C")
            .arg(self.path())
            .env("NO_COLOR", "1")
            .env("HOME", "/nonexistent")
            .env_remove("BRR_STORE")
            .args(args);
        Run::from(cmd.output().expect("setpriv (util-linux) runs brr as another user"))
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
    sh_library_with(name, deps, tools, script, "")
}

/// [`sh_library`] with more fields (`"limits: Limits(processes: 300),"`).
pub fn sh_library_with(name: &str, deps: &[&str], tools: &[&str], script: &str, fields: &str) -> String {
    let list = |xs: &[&str]| xs.iter().map(|x| ron_str(x)).collect::<Vec<_>>().join(", ");
    let mut all_tools = vec!["sh"];
    all_tools.extend(tools.iter().filter(|t| **t != "sh"));
    let fields = if fields.is_empty() { String::new() } else { format!("    {fields}\n") };
    format!(
        "Library(\n    name: {},\n    deps: [{}],\n    tools: [{}],\n    builder: [\"sh\", \"-c\", {}],\n    outputs: [\"f\"],\n{fields})\n",
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
        // A finished brr's lock file is left for the next run to remove.
        .filter(|n| n.starts_with("build-") && Path::new(n).extension().is_none_or(|x| x != "lock"))
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

/// An nginx serving the Bazel HTTP cache protocol (`GET`/`PUT`/`HEAD` on
/// `/cas/<hex>` and `/ac/<hex>`) on 127.0.0.1, from a temporary folder, for
/// remote-cache tests. It runs in the foreground as a child of the test with
/// its own config, pid, logs and temp files, and is stopped on drop.
pub struct NginxCache {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl NginxCache {
    /// Starts one: `$BRR_TEST_NGINX`, or `nginx` on `PATH`, `/usr/sbin` or
    /// `/usr/local/sbin`. Without it, the test fails through [`require`]
    /// (or, with [`ALLOW_SKIP_ENV`]`=1`, this returns `None`: skip the test).
    pub fn start() -> Option<Self> {
        let (bin, detail) = if let Some(bin) = std::env::var_os("BRR_TEST_NGINX") {
            let bin = PathBuf::from(bin);
            let detail = format!("`BRR_TEST_NGINX={}` is not an executable file", bin.display());
            (Some(bin).filter(|p| is_executable_file(p)), detail)
        } else {
            let found = find_program("nginx", &["/usr/sbin", "/usr/local/sbin"]);
            (found, "no `nginx` on PATH, in /usr/sbin or in /usr/local/sbin".to_owned())
        };
        let Some(bin) = bin else {
            require(false, "nginx (the HTTP cache server)", &detail, INSTALL_SERVERS_HINT);
            return None; // skipped: `require` panics unless skips are allowed
        };
        // A free port can be taken between choosing and binding it: retry then.
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut server = Self::spawn(&bin);
            if server.wait_ready() {
                return Some(server);
            }
            server.kill();
            last_log = server.logs();
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start:\n{last_log}");
    }

    /// Writes a config in a new folder and starts nginx on a free port.
    fn spawn(bin: &Path) -> Self {
        let dir = tempfile::Builder::new().prefix("brr-nginx-").tempdir().unwrap();
        for sub in ["store", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::write(dir.path().join("nginx.conf"), nginx_config(bin, dir.path(), port)).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-e", "stderr"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
        Self { child: Some(child), dir, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The folder nginx serves: blobs are `cas/<hex>`, entries `ac/<hex>`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Stops the server (SIGTERM, then waits for it to exit).
    pub fn stop(mut self) {
        self.kill();
    }

    /// Polls until the port accepts connections (at most 10 s); `false` if
    /// nginx exited or never listened.
    fn wait_ready(&mut self) -> bool {
        wait_for_port(self.child.as_mut().unwrap(), self.port, std::time::Duration::from_secs(10))
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("--- stderr\n{}--- error.log\n{}", read("stderr.log"), read("error.log"))
    }

    /// SIGTERM (nginx's fast shutdown, which also ends its worker), then
    /// waits up to 10 s before SIGKILL.
    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for NginxCache {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `name` on `PATH` or in one of `extra` folders (`/usr/sbin` is often not on
/// an ordinary user's `PATH`).
fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The config: everything nginx writes stays in `dir`; the temp folder for
/// request bodies is on the same filesystem as the store (PUT renames it in).
fn nginx_config(bin: &Path, dir: &Path, port: u16) -> String {
    use std::fmt::Write as _;
    let d = dir.display();
    // As root, nginx switches its worker to `nobody`, who cannot write here.
    let user = if rustix::process::geteuid().is_root() { "user root;\n" } else { "" };
    // Each module nginx was built with has a compiled-in temp path (Debian:
    // under /var/lib/nginx); point them all here.
    let built = Command::new(bin).arg("-V").output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    let built = built.unwrap_or_default();
    let mut temp_paths = String::new();
    for m in ["proxy", "fastcgi", "uwsgi", "scgi"] {
        if !built.contains(&format!("--without-http_{m}_module")) {
            writeln!(temp_paths, "    {m}_temp_path \"{d}/tmp/{m}\";").unwrap();
        }
    }
    format!(
        r#"daemon off;
{user}worker_processes 1;
pid "{d}/nginx.pid";
lock_file "{d}/nginx.lock";
error_log "{d}/error.log";
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    client_body_temp_path "{d}/tmp/body";
{temp_paths}    client_max_body_size 0;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root "{d}/store";
        location ~ "^/(ac|cas)/[0-9a-f]{{64}}$" {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"#
    )
}

/// A BuildGrid server (a Remote Execution API cache: CAS and ByteStream on
/// disk, the action cache in a Redis server of its own) on 127.0.0.1, for
/// the gRPC remote-cache tests. It runs from `scripts/buildgrid/config.yml.in`
/// with a free port and a temporary storage folder, logs to `bgd.log` there,
/// and is stopped on drop, Redis after it. [`BuildGridServer::restart`]
/// restarts BuildGrid alone, on the same port, storage and Redis.
pub struct BuildGridServer {
    child: Option<std::process::Child>,
    bgd: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    redis: RedisServer,
}

impl BuildGridServer {
    /// Starts one, waiting (at most 30 s) until it accepts connections.
    /// `bgd` is `$BRR_BGD` or the one `scripts/buildgrid/setup.sh` installs
    /// under `target/buildgrid-venv`; `redis-server` is `$BRR_TEST_REDIS`,
    /// or on `PATH`, in `/usr/bin` or `/usr/local/bin`. Without either, the
    /// test fails through [`require`] (or, with [`ALLOW_SKIP_ENV`]`=1`,
    /// this returns `None`: skip the test).
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Like [`BuildGridServer::start`], serving TLS (`grpcs://`) with the
    /// PEM files `cert` (the chain) and `key`.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<Self> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Option<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let bgd = std::env::var_os("BRR_BGD").map_or_else(|| repo.join("target/buildgrid-venv/bin/bgd"), PathBuf::from);
        let detail = format!("`{}` is not an executable file", bgd.display());
        if !require(
            is_executable_file(&bgd),
            "BuildGrid (the Remote Execution API server)",
            &detail,
            INSTALL_SERVERS_HINT,
        ) {
            return None;
        }
        let redis = RedisServer::start()?;
        let mut template = std::fs::read_to_string(repo.join("scripts/buildgrid/config.yml.in")).unwrap();
        if let Some((cert, key)) = tls {
            let plain = "    insecure-mode: true\n";
            assert!(template.contains(plain), "config.yml.in no longer has `{}`", plain.trim());
            let credentials = format!(
                "    insecure-mode: false\n    credentials:\n      tls-server-key: \"{}\"\n      tls-server-cert: \"{}\"\n",
                key.canonicalize().unwrap().display(),
                cert.canonicalize().unwrap().display()
            );
            template = template.replace(plain, &credentials);
        }
        let dir = tempfile::Builder::new().prefix("brr-buildgrid-").tempdir().unwrap();
        let storage = dir.path().join("cas");
        std::fs::create_dir(&storage).unwrap();
        let template = template
            .replace("@STORAGE@", &storage.display().to_string())
            .replace("@REDIS_PORT@", &redis.port.to_string());
        let mut server = Self { child: None, bgd, dir, port: 0, tls: tls.is_some(), redis };
        // A free port can be taken between choosing and binding it: retry then.
        for _ in 0..3 {
            server.port = free_port();
            std::fs::write(server.config_path(), template.replace("@PORT@", &server.port.to_string())).unwrap();
            if server.launch() {
                return Some(server);
            }
            let log = server.log();
            if !log.contains("in use") && !log.contains("Failed to bind") {
                break;
            }
        }
        panic!("BuildGrid did not start:\n{}", server.log());
    }

    /// Stops BuildGrid (SIGTERM, as dropping it does) and starts it again
    /// with the same config: the same port, storage folder and Redis.
    /// Waits (at most 30 s) until it accepts connections again.
    pub fn restart(&mut self) {
        self.stop_now();
        assert!(self.launch(), "BuildGrid did not start again:\n{}", self.log());
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("bgd.yml")
    }

    /// Starts `bgd` on the written config, appending to `bgd.log`, and
    /// polls until the port accepts connections; `false` (and stopped) if
    /// `bgd` exited or 30 s passed.
    fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("bgd.log")).unwrap();
        let mut child = Command::new(&self.bgd)
            .args(["server", "start", "-v"])
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.bgd.display()));
        let ready = wait_for_port(&mut child, self.port, std::time::Duration::from_secs(30));
        self.child = Some(child);
        if !ready {
            self.stop_now();
        }
        ready
    }

    /// `grpc://127.0.0.1:PORT` (`grpcs://` with TLS), the default instance.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls { "grpcs" } else { "grpc" }, self.port)
    }

    /// The `!disk-storage` folder: BuildGrid keeps a blob in
    /// `cas/objects/<first two hex digits>/<the other 62>`.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("cas")
    }

    /// The server's log so far (of every start, with [`Self::restart`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgd.log")).unwrap_or_default()
    }

    /// The log of its Redis server so far.
    pub fn redis_log(&self) -> String {
        self.redis.log()
    }

    /// Stops the server now (as dropping it does).
    pub fn stop(mut self) {
        self.stop_now();
    }

    /// SIGTERM (BuildGrid shuts down in about 3 s), then SIGKILL after 10 s.
    fn stop_now(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for BuildGridServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A Redis server on 127.0.0.1 for [`BuildGridServer`]'s action cache:
/// `redis-server` with no persistence (it outlives each BuildGrid start of
/// a test, not the test), its files and `redis.log` in a temporary folder;
/// stopped on drop.
struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// `$BRR_TEST_REDIS`, or `redis-server` on `PATH`, in `/usr/bin` or
    /// `/usr/local/bin`; `None` when missing and skips are allowed.
    fn start() -> Option<Self> {
        let (bin, detail) = if let Some(bin) = std::env::var_os("BRR_TEST_REDIS") {
            let bin = PathBuf::from(bin);
            let detail = format!("`BRR_TEST_REDIS={}` is not an executable file", bin.display());
            (Some(bin).filter(|p| is_executable_file(p)), detail)
        } else {
            let found = find_program("redis-server", &["/usr/bin", "/usr/local/bin"]);
            (found, "no `redis-server` on PATH, in /usr/bin or in /usr/local/bin".to_owned())
        };
        let Some(bin) = bin else {
            require(false, "Redis (BuildGrid's action cache)", &detail, INSTALL_SERVERS_HINT);
            return None; // skipped: `require` panics unless skips are allowed
        };
        let dir = tempfile::Builder::new().prefix("brr-redis-").tempdir().unwrap();
        // A free port can be taken between choosing and binding it: retry then.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .current_dir(dir.path())
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
            if wait_for_port(&mut child, port, std::time::Duration::from_secs(30)) {
                return Some(Self { child: Some(child), port, dir });
            }
            terminate(child);
            if !std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default().contains("in use") {
                break;
            }
        }
        panic!("Redis did not start:\n{}", std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

/// A port that was free a moment ago (a server may still lose it to
/// another process before binding it: callers retry).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls until `port` on 127.0.0.1 accepts connections; `false` if `child`
/// exited first or `within` passed. (Readiness, not synchronisation: a
/// server gives no other sign that it listens.)
fn wait_for_port(child: &mut std::process::Child, port: u16, within: std::time::Duration) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// SIGTERM, then SIGKILL if the process has not exited within 10 s.
fn terminate(mut child: std::process::Child) {
    let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An S3 server (moto's, from PyPI: `python3 -m moto.server`) on 127.0.0.1
/// with one bucket, for the S3 remote-cache tests; stopped on drop. moto
/// keeps objects in memory and accepts any credentials.
pub struct MotoServer {
    child: Option<std::process::Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// The bucket every server has.
    pub const BUCKET: &str = "brr-cache";

    /// Starts one (`$BRR_TEST_PYTHON`, the venv `scripts/test-deps.sh` makes
    /// under `target/moto-venv`, or `python3`, with the `moto[server]`
    /// package), waiting at most 30 s, and makes [`Self::BUCKET`]. Without
    /// moto, the test fails through [`require`] (or returns `None`: skipped).
    pub fn start() -> Option<Self> {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/python3");
        let python = std::env::var_os("BRR_TEST_PYTHON")
            .or_else(|| is_executable_file(&venv).then(|| venv.into_os_string()))
            .unwrap_or_else(|| "python3".into());
        let has_moto = Command::new(&python)
            .args(["-c", "import moto.server"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let detail = format!("`{} -c 'import moto.server'` failed", Path::new(&python).display());
        if !require(has_moto, "moto (an S3 server)", &detail, INSTALL_SERVERS_HINT) {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("brr-moto-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let ready = wait_for_port(&mut child, port, std::time::Duration::from_secs(30));
        let server = Self { child: Some(child), port, _dir: dir };
        assert!(ready, "moto did not start");
        // Create the bucket (moto does not check signatures by default).
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!(
            "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Self::BUCKET
        );
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "moto refused the bucket:\n{answer}");
        Some(server)
    }

    /// `s3+http://127.0.0.1:PORT/BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3+http://127.0.0.1:{}/{}/{prefix}", self.port, Self::BUCKET)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}
