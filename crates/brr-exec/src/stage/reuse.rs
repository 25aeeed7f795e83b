//! Handing an emptied sandbox to the next build of the same run ([`Reuse`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::remove::{open_dir_at, remove_tree};
use super::{FIXED_DIRS, Sandbox, skeleton};

/// Emptied sandboxes waiting for the next build, while reuse is on.
static IDLE: Mutex<Vec<Sandbox>> = Mutex::new(Vec::new());

/// How many [`Reuse`] guards live.
static REUSE: AtomicU64 = AtomicU64::new(0);

/// While one lives, a finished build's sandbox is emptied and kept for the
/// next build instead of removed: its fixed folders and tool links are not
/// made and removed again for every build, name by name, which costs more
/// kernel time than the small copies staged in them. It is kept
/// only when emptying leaves it exactly as brr made it
/// (`Sandbox::as_made`), else removed, so each build still starts in a
/// sandbox holding only its own inputs and tools. The last guard to go
/// removes the kept sandboxes.
#[derive(Debug)]
pub struct Reuse(());

impl Reuse {
    pub fn begin() -> Self {
        REUSE.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Reuse {
    fn drop(&mut self) {
        if REUSE.fetch_sub(1, Ordering::SeqCst) == 1 {
            let idle = std::mem::take(&mut *IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for mut sb in idle {
                let _ = remove_tree(&sb.root);
                sb.root = PathBuf::new();
            }
        }
    }
}

/// A kept sandbox below `tmp`, if one is idle.
pub(super) fn take_idle(tmp: &Path) -> Option<Sandbox> {
    let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = idle.iter().position(|sb| sb.base == tmp)?;
    Some(idle.swap_remove(at))
}

impl Sandbox {
    /// Empties this sandbox and keeps it for the next build, when reuse is
    /// on and it is as brr made it; whether it was kept (its fields are
    /// then taken and it must not be removed).
    pub(super) fn keep(&mut self) -> bool {
        if REUSE.load(Ordering::SeqCst) > 0 && self.empty().is_ok() && self.as_made().unwrap_or(false) {
            let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Checked under the lock: the last `Reuse` guard empties `IDLE`
            // under it too, so nothing is kept after it is gone.
            if REUSE.load(Ordering::SeqCst) > 0 {
                idle.push(Sandbox {
                    root: std::mem::take(&mut self.root),
                    base: std::mem::take(&mut self.base),
                    made_dirs: HashSet::new(),
                    made_files: Vec::new(),
                    tools: std::mem::take(&mut self.tools),
                    fixed: std::mem::take(&mut self.fixed),
                });
                return true;
            }
        }
        false
    }

    /// Whether an emptied sandbox is as brr made it: the root holds just the
    /// fixed folders, `src/` nothing and `tools/` just its links, each still
    /// the same file with the same mode (a builder without Landlock may have
    /// added, replaced or `chmod`ed any of them).
    fn as_made(&self) -> rustix::io::Result<bool> {
        let names = |dir: &Path| -> rustix::io::Result<Vec<std::ffi::CString>> {
            let mut entries = rustix::fs::Dir::new(open_dir_at(rustix::fs::CWD, dir)?)?;
            let mut names = Vec::new();
            while let Some(entry) = entries.read() {
                let name = entry?.file_name().to_owned();
                if name.as_bytes() != b"." && name.as_bytes() != b".." {
                    names.push(name);
                }
            }
            Ok(names)
        };
        let mut root = names(&self.root)?;
        root.sort_unstable();
        let mut fixed: Vec<&[u8]> = FIXED_DIRS.iter().map(|d| d.as_bytes()).collect();
        fixed.sort_unstable();
        if !root.iter().map(std::ffi::CString::as_bytes).eq(fixed) || !names(&self.src())?.is_empty() {
            return Ok(false);
        }
        let tools = names(&self.tools())?;
        if tools.len() != self.tools.len()
            || !tools.iter().all(|n| n.to_str().is_ok_and(|n| self.tools.contains_key(n)))
        {
            return Ok(false);
        }
        for (rel, &(ino, mode)) in skeleton().zip(&self.fixed) {
            let st = rustix::fs::lstat(self.root.join(rel))?;
            if st.st_ino != ino || st.st_mode != mode {
                return Ok(false);
            }
        }
        for (name, &(_, ino)) in &self.tools {
            if rustix::fs::lstat(self.tools().join(name))?.st_ino != ino {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
