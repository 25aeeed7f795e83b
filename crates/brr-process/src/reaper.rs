//! Where builders get no PID namespace (the kernel refuses namespaces),
//! brr stands in for the namespace's end: it becomes a child subreaper, so
//! every process a builder leaves behind (a `setsid` daemon, a double fork)
//! is reparented to brr instead of to init, and when a builder exits brr
//! kills and reaps each such orphan.
//!
//! An orphan is a child of brr that is neither a builder still running (they
//! are registered in [`LIVE`] while they run) nor in brr's own process group
//! (where the children brr starts itself, such as `diffoscope`, stay; every
//! builder starts a group of its own). Listing brr's children means reading
//! `/proc/*/stat`: costly, but only in this fallback.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, Once};

use rustix::process::{Pid, Signal};

use crate::spawn::Spawned;

/// Processes brr started and has not waited for yet, which are never taken
/// for orphans: builders started without a PID namespace, and every
/// [`Command`](crate::Command) (a supervised service is brr's child in a
/// group of its own, just like an orphan).
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Makes brr a child subreaper, once: processes that leave their parent
/// (a double fork and `setsid`) are reparented to brr, not to init.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Any pid turns the attribute on.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    });
}

fn live() -> MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a builder through `start` and registers it, with no reaping in
/// between (so a builder being started is never taken for an orphan).
pub(super) fn start(start: impl FnOnce() -> std::io::Result<Spawned>) -> std::io::Result<Spawned> {
    become_subreaper();
    spare(start, |started| started.pid.as_raw_nonzero().get().unsigned_abs())
}

/// Starts a process through `start` and registers its `pid` as live (under
/// the lock, so no scan runs in between), until [`unspare`].
pub(super) fn spare<T>(start: impl FnOnce() -> std::io::Result<T>, pid: impl FnOnce(&T) -> u32) -> std::io::Result<T> {
    let mut live = live();
    let started = start()?;
    if let Ok(pid) = i32::try_from(pid(&started)) {
        live.insert(pid);
    }
    Ok(started)
}

/// Unregisters a process [`spare`] registered, once it has been reaped.
pub(super) fn unspare(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        live().remove(&pid);
    }
}

/// Called once the builder `pid` has been waited for: unregisters it, then
/// kills and reaps every orphan until none is left.
pub(super) fn finished(pid: Pid) {
    let mut live = live();
    live.remove(&pid.as_raw_nonzero().get());
    kill_orphans_of(&live);
}

/// Kills and reaps every orphan brr holds as subreaper (its children that
/// it did not start and wait for itself, outside its own process group),
/// until none is left: what a supervisor's processes left behind.
pub fn kill_orphans() {
    kill_orphans_of(&live());
}

fn kill_orphans_of(live: &BTreeSet<i32>) {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let my_group = rustix::process::getpgrp().as_raw_nonzero().get();
    // Each kill can orphan the victim's own children: go on until a scan
    // finds none (bounded, against a fork bomb outrunning it).
    for _ in 0..1000 {
        let orphans: Vec<i32> =
            children(me).into_iter().filter(|(p, g)| !live.contains(p) && *g != my_group).map(|(p, _)| p).collect();
        if orphans.is_empty() {
            return;
        }
        for p in orphans {
            let Some(pid) = Pid::from_raw(p) else { continue };
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }
}

/// brr's children as (pid, process group), from `/proc/*/stat`.
fn children(parent: i32) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parens.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(1);
            let ppid: i32 = fields.next()?.parse().ok()?;
            let pgrp: i32 = fields.next()?.parse().ok()?;
            (ppid == parent).then_some((pid, pgrp))
        })
        .collect()
}
