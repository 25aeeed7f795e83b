//! `brr worker`: see brr-worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::Failure;

/// Serves until SIGTERM or SIGINT, then finishes the leases it holds.
pub fn run(server: String, instance: String, slots: usize, work_dir: Option<PathBuf>) -> Result<(), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let temp = tempfile::Builder::new().prefix("brr-worker-").tempdir()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let options = brr_worker::Options {
        server,
        instance,
        slots,
        work_dir: work_dir.unwrap_or_else(|| temp.path().to_path_buf()),
        name: format!("{host}-{}", std::process::id()),
    };
    brr_worker::serve(&options, &stop)?;
    Ok(())
}
