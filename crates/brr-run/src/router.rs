//! The router: one stable port per web process type, forwarding each
//! connection to a ready instance of the current release (Heroku's router).
//!
//! Processes listen on ports of their own (`PORT`); clients use the
//! router's. A switch to a new release changes the router's backends only
//! once the new instances answer, and the old instances are stopped only
//! once no connection through the router uses them, so no request is lost
//! while a release is replaced.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Forwards connections from one public port to the current backends.
#[derive(Debug)]
pub struct Router {
    port: u16,
    state: Mutex<State>,
    next: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Ports of ready instances of the current release.
    backends: Vec<u16>,
    /// Connections open through the router, by backend port.
    active: HashMap<u16, usize>,
}

impl Router {
    /// Starts forwarding connections accepted on `listener`.
    pub fn start(port: u16, listener: TcpListener) -> Arc<Self> {
        let router =
            Arc::new(Self { port, state: Mutex::default(), next: AtomicUsize::new(0), stop: AtomicBool::new(false) });
        let accepting = Arc::clone(&router);
        std::thread::spawn(move || accepting.accept_loop(&listener));
        router
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a ready backend.
    pub fn add(&self, port: u16) {
        let mut s = self.state();
        if !s.backends.contains(&port) {
            s.backends.push(port);
        }
    }

    /// Replaces every backend at once (a switch).
    pub fn set(&self, ports: Vec<u16>) {
        self.state().backends = ports;
    }

    /// Takes a backend out: no new connection goes to it.
    pub fn remove(&self, port: u16) {
        self.state().backends.retain(|p| *p != port);
    }

    pub fn backends(&self) -> Vec<u16> {
        self.state().backends.clone()
    }

    /// Connections through the router still open to `port`.
    pub fn active(&self, port: u16) -> usize {
        self.state().active.get(&port).copied().unwrap_or(0)
    }

    /// Stops accepting; open connections finish on their own.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked `accept`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }

    fn accept_loop(self: &Arc<Self>, listener: &TcpListener) {
        for conn in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = conn else { continue };
            let router = Arc::clone(self);
            std::thread::spawn(move || router.forward(client));
        }
    }

    /// Connects `client` to a backend (trying each once, round robin) and
    /// copies both ways until both sides are done.
    fn forward(&self, client: TcpStream) {
        let backends = self.backends();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut chosen = None;
        for i in 0..backends.len() {
            let port = backends[(start + i) % backends.len()];
            if let Ok(stream) = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(2))
            {
                chosen = Some((port, stream));
                break;
            }
        }
        let Some((port, backend)) = chosen else {
            // No backend: the client sees the connection closed.
            return;
        };
        *self.state().active.entry(port).or_default() += 1;
        let _ = client.set_nodelay(true);
        let _ = backend.set_nodelay(true);
        if let (Ok(c2), Ok(b2)) = (client.try_clone(), backend.try_clone()) {
            let upstream = std::thread::spawn(move || pipe(c2, b2));
            pipe(backend, client);
            let _ = upstream.join();
        }
        if let Some(n) = self.state().active.get_mut(&port) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing half.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0_u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
