//! Readiness probes, tried by an instance's thread between its checks of
//! the process: a TCP connect, an HTTP GET, or a command. None of them
//! blocks the thread for long: TCP and HTTP give up after a short timeout,
//! and a command probe runs alongside, polled, and is killed when its try
//! takes too long, so a stop request or the process's exit is noticed at
//! once whatever the probe does.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use brr_hash::Probe;
use brr_process::{Child, Command, Output, Signal};

/// How long one try of a command probe may take before it is killed and
/// counts as "not ready".
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TCP connect, or an HTTP request's answer, is waited for.
const NET_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest status line read from an HTTP answer.
const STATUS_LINE_MAX: u64 = 1024;

/// The probing of one started process, until it passes.
pub(crate) struct Prober<'a> {
    probe: &'a Probe,
    port: u16,
    next: Instant,
    /// A command probe's current try, and when it started.
    running: Option<(Child, Instant)>,
}

impl<'a> Prober<'a> {
    pub(crate) fn new(probe: &'a Probe, port: u16) -> Self {
        Self { probe, port, next: Instant::now(), running: None }
    }

    /// Whether it is ready now; tries the probe when its interval is up.
    /// `dir` and `env` are the process's (for a command probe).
    pub(crate) fn poll(&mut self, dir: &Path, env: &[(String, String)]) -> bool {
        if let Some((child, started)) = &mut self.running {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.running = None;
                    return status.success();
                }
                Ok(None) if started.elapsed() < COMMAND_TIMEOUT => return false,
                // Too long, or it cannot be waited for: this try failed.
                Ok(None) | Err(_) => {
                    let _ = child.terminate(Duration::ZERO);
                    self.running = None;
                    return false;
                }
            }
        }
        if Instant::now() < self.next {
            return false;
        }
        let (ready, interval) = match self.probe {
            Probe::None => (true, Duration::ZERO),
            Probe::Tcp => (tcp_accepts(self.port), Duration::from_millis(10)),
            Probe::Http { path } => (http_ok(self.port, path), Duration::from_millis(50)),
            Probe::Command(argv) => {
                self.running = start_command(argv, dir, env).map(|c| (c, Instant::now()));
                (false, Duration::from_millis(100))
            }
        };
        self.next = Instant::now() + interval;
        ready
    }
}

impl Drop for Prober<'_> {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.running.take() {
            let _ = child.terminate(Duration::ZERO);
        }
    }
}

fn local(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// `127.0.0.1:port` accepts a TCP connection.
pub(crate) fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&local(port), NET_TIMEOUT).is_ok()
}

/// `GET path` on `127.0.0.1:port` answers with a 2xx status (HTTP/1.0, so
/// the server closes the connection; only the status line is read).
pub(crate) fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&local(port), NET_TIMEOUT) else { return false };
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: brr-probe\r\n\r\n");
    if stream.set_read_timeout(Some(NET_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(NET_TIMEOUT)).is_err()
        || stream.write_all(request.as_bytes()).is_err()
    {
        return false;
    }
    let mut head = Vec::new();
    let mut limited = stream.take(STATUS_LINE_MAX);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\n") {
        match limited.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    is_2xx(&head)
}

/// A status line `HTTP/1.x 2NN …`.
fn is_2xx(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let version_ok = words.next().is_some_and(|v| v.starts_with("HTTP/"));
    let code = words.next().unwrap_or("");
    version_ok && code.len() == 3 && code.starts_with('2') && code.bytes().all(|b| b.is_ascii_digit())
}

/// Starts one try of a command probe in the release folder, with the
/// process's environment and no output.
fn start_command(argv: &[String], dir: &Path, env: &[(String, String)]) -> Option<Child> {
    let (program, rest) = argv.split_first()?;
    let program = if program.contains('/') { dir.join(program) } else { program.into() };
    Command::new(program)
        .args(rest)
        .cwd(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Output::Null)
        .stderr(Output::Null)
        .own_process_group(true)
        .death_signal(Some(Signal::Kill))
        .spawn()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::{http_ok, is_2xx, tcp_accepts};

    /// A server on a free port answering each request with `status`, and
    /// the request lines it got.
    fn serve(statuses: &'static [&'static str]) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for status in statuses {
                let (mut stream, _) = listener.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).unwrap();
                requests.push(line.trim_end().to_owned());
                stream.write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).unwrap();
            }
            requests
        });
        (port, thread)
    }

    #[test]
    fn http_probe_passes_on_2xx_only() {
        let (port, server) = serve(&["503 Service Unavailable", "404 Not Found", "200 OK"]);
        assert!(!http_ok(port, "/health"));
        assert!(!http_ok(port, "/health"));
        assert!(http_ok(port, "/health"));
        assert_eq!(server.join().unwrap(), ["GET /health HTTP/1.0"; 3]);
        // Nothing listens there any more.
        assert!(!http_ok(port, "/health") && !tcp_accepts(port));
    }

    #[test]
    fn only_2xx_status_lines_pass() {
        assert!(is_2xx(b"HTTP/1.0 200 OK\r\n"));
        assert!(is_2xx(b"HTTP/1.1 204 No Content\r\n"));
        assert!(!is_2xx(b"HTTP/1.0 301 Moved\r\n"));
        assert!(!is_2xx(b"HTTP/1.0 503 Busy\r\n"));
        assert!(!is_2xx(b"SSH-2.0-OpenSSH 200\r\n"));
        assert!(!is_2xx(b"HTTP/1.0 2000 OK\r\n"));
        assert!(!is_2xx(b""));
    }
}
