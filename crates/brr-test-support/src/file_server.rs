//! A file server on 127.0.0.1 for fetch tests: serves the files of one
//! folder by name (`GET /<name>`), counts the requests for each, and answers
//! `/redirect/<url>` with a redirect to `<url>`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where `scripts/test-deps.sh` puts the files it downloads from package
/// registries for the fetch tests (`pip download`).
pub fn fetch_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fetch-fixtures")
}

/// How to get [`fetch_fixtures_dir`]'s files, for [`crate::require`]'s hint.
pub const FETCH_FIXTURES_HINT: &str =
    "run `scripts/test-deps.sh`, which downloads them with `pip download` into target/fetch-fixtures/";

/// The server; it stops when the test process ends (its thread only accepts).
#[derive(Debug)]
pub struct FileServer {
    port: u16,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl FileServer {
    /// Serves the files of `dir` on an ephemeral port of 127.0.0.1.
    pub fn start(dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let (dir, counted) = (dir.to_path_buf(), Arc::clone(&hits));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, counted) = (dir.clone(), Arc::clone(&counted));
                std::thread::spawn(move || serve(stream, &dir, &counted));
            }
        });
        Self { port, hits }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests asked for `/<path>`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests of every path.
    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

fn serve(mut stream: TcpStream, dir: &Path, hits: &Mutex<BTreeMap<String, usize>>) {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Headers are read and ignored.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let response = if let Some(to) = path.strip_prefix("redirect/") {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    } else {
        let file = (!path.contains('/') && !path.starts_with('.')).then(|| dir.join(&path));
        match file.and_then(|f| std::fs::read(f).ok()) {
            Some(body) => {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                    .into_bytes();
                r.extend(body);
                r
            }
            None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        }
    };
    let _ = stream.write_all(&response);
}
