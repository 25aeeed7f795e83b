//! BuildGrid as a remote executor: its SQL scheduler on a private
//! PostgreSQL cluster, both on 127.0.0.1, for the `remote_exec_…` tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{INSTALL_SERVERS_HINT, free_port, is_executable_file, require, terminate, wait_for_port};

/// How to get PostgreSQL and BuildGrid's database driver.
pub const EXECUTION_HINT: &str = "run `scripts/test-deps.sh` (as root for apt-get), which installs Debian's \
     `postgresql` and BuildGrid with its `database` extra under target/buildgrid-venv";

/// BuildGrid with Execution, Bots, CAS, ByteStream and ActionCache services
/// (`scripts/buildgrid/execution.yml.in`) on a free port of 127.0.0.1, its
/// scheduler in a PostgreSQL cluster of its own (initdb'd into a temporary
/// folder, as user `postgres` when running as root); logs `bgd.log` and
/// `postgres.log` there. Both stop on drop, BuildGrid first.
pub struct BuildGridExecution {
    child: Option<std::process::Child>,
    postgres: Option<Postgres>,
    dir: tempfile::TempDir,
    port: u16,
}

impl BuildGridExecution {
    /// Starts PostgreSQL, creates and migrates the `brr` database, then
    /// BuildGrid (at most about a minute in all). Without PostgreSQL or
    /// BuildGrid's `database` extra the test fails through [`require`]
    /// (with `BRR_TEST_ALLOW_SKIP=1`: `None`, skip).
    pub fn start() -> Option<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let venv = repo.join("target/buildgrid-venv/bin");
        let bgd = std::env::var_os("BRR_BGD").map_or_else(|| venv.join("bgd"), PathBuf::from);
        let python = bgd.with_file_name("python");
        let has_driver = is_executable_file(&bgd)
            && Command::new(&python)
                .args(["-c", "import psycopg2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let detail = format!("`{}` missing or without psycopg2 (the `database` extra)", bgd.display());
        if !require(has_driver, "BuildGrid with PostgreSQL support", &detail, INSTALL_SERVERS_HINT) {
            return None;
        }
        let pg_bin = postgres_bin();
        let detail = "no PostgreSQL server (`initdb`) in $BRR_TEST_PG_BIN or /usr/lib/postgresql/*/bin";
        if !require(pg_bin.is_some(), "PostgreSQL (BuildGrid's scheduler database)", detail, EXECUTION_HINT) {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("brr-bgexec-").tempdir().unwrap();
        let postgres = Postgres::start(&pg_bin.unwrap(), dir.path());
        let url = format!("postgresql+psycopg2://postgres@127.0.0.1:{}/brr", postgres.port);
        let migrate = Command::new(&bgd).args(["migrate", "apply", &url]).current_dir(dir.path()).output().unwrap();
        assert!(
            migrate.status.success(),
            "`bgd migrate apply` failed:\n{}{}",
            String::from_utf8_lossy(&migrate.stdout),
            String::from_utf8_lossy(&migrate.stderr)
        );
        let storage = dir.path().join("cas");
        std::fs::create_dir(&storage).unwrap();
        let template = std::fs::read_to_string(repo.join("scripts/buildgrid/execution.yml.in")).unwrap();
        let template = template
            .replace("@STORAGE@", &storage.display().to_string())
            .replace("@POSTGRES@", &postgres.port.to_string());
        let mut server = Self { child: None, postgres: Some(postgres), dir, port: 0 };
        for _ in 0..3 {
            server.port = free_port();
            let config = server.dir.path().join("bgd.yml");
            std::fs::write(&config, template.replace("@PORT@", &server.port.to_string())).unwrap();
            let log =
                std::fs::OpenOptions::new().create(true).append(true).open(server.dir.path().join("bgd.log")).unwrap();
            let mut child = Command::new(&bgd)
                .args(["server", "start", "-v"])
                .arg(&config)
                .current_dir(server.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bgd.display()));
            let ready = wait_for_port(&mut child, server.port, Duration::from_secs(60));
            server.child = Some(child);
            if ready {
                return Some(server);
            }
            server.stop_bgd();
            let log = server.log();
            if !log.contains("in use") && !log.contains("Failed to bind") {
                break;
            }
        }
        panic!("BuildGrid did not start:\n{}", server.log());
    }

    /// `grpc://127.0.0.1:PORT`, the default instance.
    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// BuildGrid's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgd.log")).unwrap_or_default()
    }

    fn stop_bgd(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for BuildGridExecution {
    fn drop(&mut self) {
        self.stop_bgd();
        drop(self.postgres.take());
    }
}

/// `$BRR_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` with
/// `initdb` (Debian keeps the server programs off `PATH`).
fn postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BRR_TEST_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| is_executable_file(&d.join("initdb")));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| is_executable_file(&bin.join("initdb")))
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL cluster in `DIR/pg`, trusting local connections, on a free
/// port of 127.0.0.1 with its socket in the same folder; `pg_ctl stop -m
/// immediate` on drop.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as_user: bool,
}

impl Postgres {
    fn start(bin: &Path, dir: &Path) -> Self {
        // PostgreSQL refuses to run as root: initdb and the server run as
        // `postgres`, which must reach the folder.
        let run_as_user = rustix::process::geteuid().is_root();
        let data = dir.join("pg");
        std::fs::create_dir(&data).unwrap();
        if run_as_user {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            let chown = Command::new("chown").args(["postgres:"]).arg(&data).status().unwrap();
            assert!(chown.success(), "chown postgres {} failed (is there a `postgres` user?)", data.display());
        }
        let pg = Self { bin: bin.to_owned(), data, port: 0, run_as_user };
        let out = pg
            .command("initdb")
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-D"])
            .arg(&pg.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut pg = pg;
        for _ in 0..3 {
            pg.port = free_port();
            let options = format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", pg.port, pg.data.display());
            let out = pg
                .command("pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&pg.data)
                .args(["-l"])
                .arg(pg.data.join("postgres.log"))
                .args(["-o", &options, "start"])
                .output()
                .unwrap();
            if out.status.success() {
                let created = pg
                    .command("createdb")
                    .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "brr"])
                    .output()
                    .unwrap();
                assert!(created.status.success(), "createdb failed:\n{}", String::from_utf8_lossy(&created.stderr));
                return pg;
            }
        }
        let log = std::fs::read_to_string(pg.data.join("postgres.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.run_as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole set-up comes up: PostgreSQL, the migration, BuildGrid's
    /// Execution service (a TCP connect to its port succeeds).
    #[test]
    fn remote_exec_buildgrid_execution_starts() {
        let Some(server) = BuildGridExecution::start() else { return };
        let addr = server.url().trim_start_matches("grpc://").to_owned();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        assert!(server.log().contains("Execution"), "{}", server.log());
    }
}
