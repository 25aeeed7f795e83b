//! Debian's `docker-registry` (the CNCF Distribution registry) on 127.0.0.1
//! with a temporary storage folder, for the image push tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{find_program, free_port, require, terminate, wait_for_port};

/// How to install the registry, for [`require`]'s hint.
pub const REGISTRY_HINT: &str =
    "run `scripts/test-deps.sh` as root: it installs Debian's `docker-registry` with apt-get";

/// A running registry, stopped on drop. Its log (access log included)
/// records every request, so tests can count uploads.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    /// Starts one: `docker-registry` on `PATH` or in `/usr/bin`. Without it,
    /// the test fails through [`require`] (or returns `None`: skip).
    pub fn start() -> Option<Self> {
        let Some(bin) = find_program("docker-registry", &["/usr/bin"]) else {
            require(false, "docker-registry (the Distribution registry)", "not installed", REGISTRY_HINT);
            return None;
        };
        let mut last_log = String::new();
        // A free port can be taken between choosing and binding it: retry then.
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("brr-registry-").tempdir().unwrap();
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            );
            std::fs::write(dir.path().join("config.yml"), config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
            let mut registry = Self { child: Some(child), dir, port };
            if wait_for_port(registry.child.as_mut().unwrap(), port, Duration::from_secs(10)) {
                return Some(registry);
            }
            registry.kill();
            last_log = registry.log();
            if !last_log.contains("address already in use") {
                break;
            }
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// `127.0.0.1:PORT`, as an image reference's host.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's storage folder.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}
