//! The store-wide lock: `<root>/lock`, held with `flock` by every open
//! [`Store`](crate::Store) for its whole life.
//!
//! Ordinary work (builds, fetches, reads, `verify`, `repair`) holds it
//! shared, so any number of processes and `Store`s work side by side. An
//! operation that deletes bytes (pack compaction, garbage collection) holds
//! it exclusive, so that while it runs no other process can read a pack at a
//! recorded offset, hold a placed file it has not recorded yet (an orphan it
//! is about to adopt), or append to a pack.
//!
//! `flock` locks belong to the open file description: two `Store`s in one
//! process exclude each other like two processes do, and the kernel releases
//! the lock when the holder exits, however it dies (`kill -9` included). The
//! file is opened close-on-exec, so builders started by a store's owner do
//! not inherit the lock.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::StoreError;
use crate::error::IoContext;

/// Name of the lock file inside a store folder.
pub(crate) const LOCK_FILE: &str = "lock";

/// How a store is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Ordinary work: shared with every other shared holder.
    Shared,
    /// Deleting: nobody else may have the store open.
    Exclusive,
}

/// What opening does when the lock is held in a conflicting way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Waits until the conflicting holders close the store.
    Block,
    /// Fails at once with [`StoreError::InUse`].
    NoWait,
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
    access: Access,
}

impl StoreLock {
    /// Takes the lock of the store at `root` (creating the lock file).
    pub(crate) fn acquire(root: &Path, access: Access, wait: Wait) -> Result<Self, StoreError> {
        let path = root.join(LOCK_FILE);
        let file = File::options().read(true).write(true).create(true).truncate(false).open(&path).at(&path)?;
        let taken = match (access, wait) {
            (Access::Shared, Wait::Block) => file.lock_shared().map_err(TryLockError::Error),
            (Access::Exclusive, Wait::Block) => file.lock().map_err(TryLockError::Error),
            (Access::Shared, Wait::NoWait) => file.try_lock_shared(),
            (Access::Exclusive, Wait::NoWait) => file.try_lock(),
        };
        match taken {
            Ok(()) => Ok(Self { _file: file, access }),
            Err(TryLockError::WouldBlock) => Err(StoreError::InUse { path: root.to_path_buf(), wanted: access }),
            Err(TryLockError::Error(e)) => Err(e).at(&path),
        }
    }

    pub(crate) fn access(&self) -> Access {
        self.access
    }
}
