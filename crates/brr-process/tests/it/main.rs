//! Integration tests of brr-process: real builder processes in the sandbox.

mod basics;
mod build_path;
mod cgroup;
mod command;
mod isolation;
mod parallel;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::ExitStatus;

use brr_process::{self as sandbox, SandboxSpec};
use brr_test_support::{LANDLOCK_HINT, NAMESPACES_HINT};

/// A spec running `program` with `args` in `cwd`, which is also writable.
fn spec(program: &str, args: &[&str], cwd: &Path) -> SandboxSpec {
    SandboxSpec {
        program: program.into(),
        args: args.iter().map(ToString::to_string).collect(),
        env: Vec::new(),
        cwd: cwd.to_path_buf(),
        writable: vec![cwd.to_path_buf()],
        readable: Vec::new(),
        hostname: None,
        umask: sandbox::DEFAULT_UMASK,
        cpus: None,
        net_slot: None,
        host_network: false,
        limits: None,
        build_dir: None,
        inherit_fds: Vec::new(),
    }
}

/// A spec running `script` with `/bin/sh -c` in `cwd`.
fn sh(script: &str, cwd: &Path) -> SandboxSpec {
    spec("/bin/sh", &["-c", script], cwd)
}

/// Runs `spec` and returns its exit status and its log.
fn run(spec: &SandboxSpec, isolate: bool) -> (ExitStatus, String) {
    let mut log = tempfile::tempfile().expect("create the log");
    let status = sandbox::run(spec, &log, isolate).expect("run the builder");
    (status, read_back(&mut log))
}

/// The whole of `file`, from its start.
fn read_back(file: &mut File) -> String {
    file.seek(SeekFrom::Start(0)).expect("rewind the log");
    let mut text = String::new();
    file.read_to_string(&mut text).expect("read the log");
    text
}

/// Kernel features an isolation test needs.
#[derive(Clone, Copy)]
enum Needs {
    Namespaces,
    Landlock,
    /// Either: the network is cut off by a namespace or by Landlock.
    NetworkIsolation,
    /// Builders see their folder at the fixed build path.
    FixedPath,
}

/// True when the sandbox gives what the test `needs`; otherwise the test
/// fails saying how to enable it (or, with `BRR_TEST_ALLOW_SKIP=1`, this
/// is false and the test returns: skipped).
#[track_caller]
fn require(needs: Needs) -> bool {
    let isolation = sandbox::isolation();
    let (available, what, hint) = match needs {
        Needs::Namespaces => (isolation.namespaces(), "namespaces", NAMESPACES_HINT),
        Needs::Landlock => (isolation.landlock(), "Landlock", LANDLOCK_HINT),
        Needs::NetworkIsolation => (
            isolation.namespaces() || isolation.landlock(),
            "network isolation (namespaces or Landlock)",
            NAMESPACES_HINT,
        ),
        Needs::FixedPath => (isolation.fixed_path(), "the fixed build path (a mount namespace)", NAMESPACES_HINT),
    };
    brr_test_support::require(available, what, &format!("the sandbox probe found {isolation:?}"), hint)
}
