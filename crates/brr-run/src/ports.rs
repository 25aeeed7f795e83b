//! `PORT` for each process instance, and the router's public ports.
//!
//! Ports are taken from [`PORT_BASE`] (foreman's 5000) upwards: the first
//! port that no unfinished run of this store holds (`run_processes`), that
//! this run has not handed out, and that can be bound on 127.0.0.1 right
//! now. Two runs of one store therefore never share a port; a program
//! outside brr that binds one between the check and the process's own bind
//! makes that process fail to start, and it is restarted on another.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// The first port handed out.
pub const PORT_BASE: u16 = 5000;

/// Hands out ports for one run.
#[derive(Debug)]
pub struct Ports {
    next: u16,
    taken: BTreeSet<u16>,
}

impl Ports {
    /// Starts at `base`, skipping `in_use` (other runs' ports).
    pub fn new(base: u16, in_use: impl IntoIterator<Item = u16>) -> Self {
        Self { next: base, taken: in_use.into_iter().collect() }
    }

    /// The next free port, with its listener still bound (for the router);
    /// `None` when no port up to 65535 is free.
    pub fn listener(&mut self) -> Option<(u16, TcpListener)> {
        while self.next != 0 {
            let port = self.next;
            self.next = self.next.checked_add(1).unwrap_or(0);
            if !self.taken.insert(port) {
                continue;
            }
            if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                return Some((port, listener));
            }
        }
        None
    }

    /// The next free port, for a process to bind itself.
    pub fn port(&mut self) -> Option<u16> {
        self.listener().map(|(port, _)| port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_ports_in_use_and_bound() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let busy = held.local_addr().expect("addr").port();
        let mut ports = Ports::new(busy, [busy.wrapping_add(1)]);
        let first = ports.port().expect("a port");
        assert!(first != busy && first != busy.wrapping_add(1), "{first}");
        assert_ne!(ports.port(), Some(first), "never the same port twice");
    }
}
