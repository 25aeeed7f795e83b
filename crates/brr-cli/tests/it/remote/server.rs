//! A tiny Bazel HTTP cache on 127.0.0.1 that can misbehave on purpose:
//! answer every request late, refuse uploads over a size, and record what
//! it was sent (method, path, headers), for the fault-path tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header lines as sent, `Name: value`.
    pub headers: Vec<String>,
}

#[derive(Default)]
struct State {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    requests: Mutex<Vec<Request>>,
    /// Every answer waits this long first.
    delay: Mutex<Option<Duration>>,
    /// `PUT`s with a larger body are answered 507 (a full disk).
    max_put: Mutex<Option<usize>>,
    stopped: AtomicBool,
}

/// The server; stops accepting on drop.
pub struct FaultServer {
    addr: std::net::SocketAddr,
    state: Arc<State>,
}

impl FaultServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(&state, stream));
            }
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USERINFO@127.0.0.1:PORT`.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("http://{userinfo}@{}", self.addr)
    }

    /// Every answer from now on waits `delay` first.
    pub fn delay_every_answer(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = Some(delay);
    }

    /// Uploads over `bytes` are answered `507 Insufficient Storage`.
    pub fn refuse_puts_over(&self, bytes: usize) {
        *self.state.max_put.lock().unwrap() = Some(bytes);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The paths stored, `/ac/…` and `/cas/…`.
    pub fn stored(&self) -> Vec<String> {
        self.state.blobs.lock().unwrap().keys().cloned().collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers requests on one connection until it closes.
fn serve(state: &State, stream: TcpStream) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_owned();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.push(h);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        state.requests.lock().unwrap().push(Request { method: method.clone(), path: path.clone(), headers });
        let delay = *state.delay.lock().unwrap();
        if let Some(d) = delay {
            // Simulated slowness (not synchronisation).
            std::thread::sleep(d);
        }
        let (status, answer): (&str, Vec<u8>) = match method.as_str() {
            "GET" | "HEAD" => match state.blobs.lock().unwrap().get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", Vec::new()),
            },
            "PUT" if state.max_put.lock().unwrap().is_some_and(|m| body.len() > m) => {
                ("507 Insufficient Storage", Vec::new())
            }
            "PUT" => {
                state.blobs.lock().unwrap().insert(path, body);
                ("201 Created", Vec::new())
            }
            _ => ("405 Method Not Allowed", Vec::new()),
        };
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", answer.len());
        let mut reply = head.into_bytes();
        if method != "HEAD" {
            reply.extend_from_slice(&answer);
        }
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}
