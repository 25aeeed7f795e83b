//! The release phase: a service's release command (migrations and the like),
//! run in the release folder before the release may become current.
//!
//! The command runs on the host, not in the build sandbox: migrations reach
//! databases over the network and write to the environment's data folder.
//! Its environment is exactly: `PATH`, `HOME`, `USER` and `LANG` from brr's
//! own, the config's vars, the secrets' values, and `BRR_ENV`,
//! `BRR_SERVICE`, `BRR_RELEASE`, `BRR_BUILD`, `BRR_DATA_DIR`. Its stdout and
//! stderr go to one pipe that brr reads: each line is shown with secret
//! values masked, and the whole output, masked again, is stored as a blob
//! (the release's log). Processes it leaves behind are killed with it (it
//! runs in its own process group).

use std::io::{BufRead, BufReader};
use std::path::Path;

use brr_hash::{ArtifactHash, BlobHash, Config, ObjectKind, ReleaseHash, ReleaseStatus};
use brr_store::Store;

use crate::{ReleaseError, Secrets};

/// Output kept per release phase; the rest is dropped with a note.
const LOG_MAX: usize = 16 << 20;

/// Host variables the release command (and `brr run`'s processes) keep.
pub const HOST_VARS: [&str; 4] = ["PATH", "HOME", "USER", "LANG"];

/// What the release command runs against.
pub struct Phase<'a> {
    pub env: &'a str,
    pub service: &'a str,
    pub release: ReleaseHash,
    pub build: ArtifactHash,
    /// The materialized release folder: the working directory.
    pub dir: &'a Path,
    pub data_dir: &'a Path,
    /// The service's release command; `None`: nothing to run.
    pub command: Option<&'a [String]>,
    pub config: &'a Config,
    pub secrets: &'a Secrets,
}

/// How the release phase went.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub status: ReleaseStatus,
    /// The stored, masked output; `None` when there was no command.
    pub log: Option<BlobHash>,
    /// `exited with 0`, `killed by signal 9`, `` `x` not found ``…
    pub summary: String,
}

impl Phase<'_> {
    /// Runs the release command, handing each output line (masked) to
    /// `on_line`, and stores its output.
    pub fn run(&self, store: &Store, on_line: &mut dyn FnMut(&str)) -> Result<PhaseOutcome, ReleaseError> {
        let Some(argv) = self.command.filter(|a| !a.is_empty()) else {
            let summary = "no release command".to_owned();
            return Ok(PhaseOutcome { status: ReleaseStatus::Succeeded, log: None, summary });
        };
        let mut log = Vec::new();
        let (status, summary) = match self.spawn(argv) {
            Ok(child) => self.collect(child, &mut log, on_line)?,
            Err(reason) => {
                log.extend_from_slice(format!("brr: {reason}\n").as_bytes());
                on_line(&format!("brr: {reason}"));
                (ReleaseStatus::Failed, reason)
            }
        };
        let text = self.secrets.mask(&String::from_utf8_lossy(&log));
        let log = BlobHash(store.put_bytes(ObjectKind::Blob, text.as_bytes())?);
        Ok(PhaseOutcome { status, log: Some(log), summary })
    }

    /// Starts the release command: a program with a `/` is taken from the
    /// release folder (its working directory), others are found on `PATH`
    /// (by [`brr_process::Command`]).
    fn spawn(&self, argv: &[String]) -> Result<(brr_process::Child, std::io::PipeReader), String> {
        let program = &argv[0];
        if program.contains('/') && !self.dir.join(program).is_file() {
            return Err(format!("`{program}` is not in the release"));
        }
        let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let writer2 = writer.try_clone().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let as_file = |w: std::io::PipeWriter| std::fs::File::from(std::os::fd::OwnedFd::from(w));
        let mut cmd = brr_process::Command::new(program)
            .args(&argv[1..])
            .cwd(self.dir)
            .env_clear()
            .stdout(brr_process::Output::File(as_file(writer)))
            .stderr(brr_process::Output::File(as_file(writer2)))
            .own_process_group(true)
            .death_signal(Some(brr_process::Signal::Kill));
        for name in HOST_VARS {
            if let Some(v) = std::env::var_os(name) {
                cmd = cmd.env(name, v);
            }
        }
        let child = cmd
            .envs(&self.config.vars)
            .envs(self.secrets.iter())
            .env("BRR_ENV", self.env)
            .env("BRR_SERVICE", self.service)
            .env("BRR_RELEASE", self.release.to_string())
            .env("BRR_BUILD", self.build.to_string())
            .env("BRR_DATA_DIR", self.data_dir)
            .spawn()
            .map_err(|e| match e {
                brr_process::ProcessError::NotOnPath { .. } => format!("release command `{program}` is not on PATH"),
                e => format!("cannot start `{program}`: {}", brr_process::error_chain(&e)),
            })?;
        // The command consumed the pipe's write ends: the reader sees the end
        // of the output once the command's processes are gone.
        Ok((child, reader))
    }

    /// Reads the output until the command exits; its process group is
    /// killed when it is reaped, so nothing it started outlives it.
    fn collect(
        &self,
        (mut child, reader): (brr_process::Child, std::io::PipeReader),
        log: &mut Vec<u8>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(ReleaseStatus, String), ReleaseError> {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reading = std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut truncated = false;
        let mut take = |line: Vec<u8>, log: &mut Vec<u8>| {
            let text = String::from_utf8_lossy(&line);
            on_line(&self.secrets.mask(text.trim_end_matches('\n')));
            if log.len() + line.len() <= LOG_MAX {
                log.extend_from_slice(&line);
            } else if !truncated {
                truncated = true;
                log.extend_from_slice(b"brr: [output beyond 16 MiB not kept]\n");
            }
        };
        let wait_error = |e: brr_process::ProcessError| ReleaseError::Io {
            path: self.dir.to_path_buf(),
            source: std::io::Error::other(brr_process::error_chain(&e)),
        };
        // Lines are shown while the command runs.
        let status = loop {
            while let Ok(line) = rx.try_recv() {
                take(line, log);
            }
            if let Some(status) = child.wait_timeout(std::time::Duration::from_millis(50)).map_err(wait_error)? {
                break status;
            }
        };
        // The group is gone, so the pipe's write ends are closed.
        let _ = reading.join();
        while let Ok(line) = rx.try_recv() {
            take(line, log);
        }
        let outcome = if status.success() { ReleaseStatus::Succeeded } else { ReleaseStatus::Failed };
        Ok((outcome, status.to_string()))
    }
}
