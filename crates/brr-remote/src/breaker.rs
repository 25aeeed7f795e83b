//! A circuit breaker: a remote whose operations fail this many times in a
//! row is switched off for the rest of the run, so a server that went away
//! costs a few failed calls, not a wait per target. Remote caches and the
//! remote executor each keep one per server.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Failed operations in a row, and whether that (or anything else, such
/// as a used-up budget) switched the remote off.
#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    off: AtomicBool,
}

impl Breaker {
    /// Whether it was switched off in this run.
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::Relaxed)
    }

    /// Switches it off for the rest of the run.
    pub fn switch_off(&self) {
        self.off.store(true, Ordering::Relaxed);
    }

    /// An operation succeeded: the count of failures in a row starts again.
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Counts a failed operation; `Some(n)` when this one, the `n`th in a
    /// row and at least `limit`, switched it off (once per run: the caller
    /// warns then).
    pub fn failed(&self, limit: u32) -> Option<u32> {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        (n >= limit.max(1) && !self.off.swap(true, Ordering::Relaxed)).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_trips_once_after_the_limit_in_a_row() {
        let b = Breaker::default();
        assert_eq!(b.failed(3), None);
        b.succeeded();
        assert_eq!((b.failed(3), b.failed(3)), (None, None));
        assert!(!b.is_off());
        assert_eq!(b.failed(3), Some(3));
        assert!(b.is_off());
        assert_eq!(b.failed(3), None, "it warns once");
    }
}
