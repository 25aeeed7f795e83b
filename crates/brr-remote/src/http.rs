//! The Bazel HTTP cache protocol (`http://` and `https://` remotes): nginx
//! with WebDAV `PUT`, bazel-remote, and others.
//!
//! | operation | request | success | absent |
//! |---|---|---|---|
//! | get a blob | `GET {base}/cas/<sha256 hex>` | 200 | 404 |
//! | store a blob | `PUT {base}/cas/<sha256 hex>` | 200, 201, 204 | — |
//! | is it there | `HEAD {base}/cas/<sha256 hex>` | 200 | 404 |
//! | get / store an entry | `GET` / `PUT {base}/ac/<hex of action_id(key)>` | as above | 404 |
//!
//! Entries are brr's signed entries, not Bazel `ActionResult` messages:
//! bazel-remote must run with `--disable_http_ac_validation`.
//!
//! Every request is bounded ([`Timeouts`]): a remote that hangs costs
//! seconds, not a build. Transport failures and timeouts are
//! [`RemoteError::Unavailable`], and so are server errors (5xx: the server
//! is there but cannot answer now, so the caller may try again); any other
//! status than the ones above is [`RemoteError::Refused`] with the status.
//! [`Backend::cap_requests`] lowers every later request's limit to what is
//! left of the run's remote budget. `missing_blobs` sends `HEAD`s
//! in parallel on a small pool of its own (the requests wait on the network,
//! not the CPU). Credentials may be given as `http://user:password@host/`
//! (sent as HTTP Basic authentication; messages show `http://***@host/`),
//! and any headers ([`HttpBackend::with_headers`]: a bearer token, an API
//! key) are sent with every request and never shown. Proxies follow
//! the usual `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` variables. `https://`
//! uses rustls with the Mozilla root certificates (webpki-roots).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use brr_hash::BuildKey;
use rayon::prelude::*;

use crate::{Backend, BlobId, RemoteError, action_id, check_header, hex, redact_url};

/// Blobs at least this big get [`Timeouts::transfer`] instead of [`Timeouts::request`].
pub const LARGE_BLOB: u64 = 1 << 20;

/// How many `HEAD` requests `missing_blobs` keeps in flight.
const PARALLEL_HEADS: usize = 16;

/// Upper bound on the size of an entry a server may send back.
const MAX_ENTRY: u64 = 256 << 20;

/// Time limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP, and TLS for `https://`).
    pub connect: Duration,
    /// A whole request without a big body: `HEAD`, entries, small blobs.
    pub request: Duration,
    /// A whole request moving a blob of [`LARGE_BLOB`] bytes or more.
    pub transfer: Duration,
}

impl Default for Timeouts {
    /// 2 s to connect, 5 s per small request, 30 s per big blob.
    fn default() -> Self {
        Self { connect: Duration::from_secs(2), request: Duration::from_secs(5), transfer: Duration::from_secs(30) }
    }
}

/// An `http://` or `https://` remote.
pub struct HttpBackend {
    /// The URL as given, with any password hidden: for messages.
    url: String,
    /// Scheme, host, port and path prefix, without credentials or a trailing `/`.
    base: String,
    /// `Basic …` when the URL carries credentials.
    authorization: Option<String>,
    /// Extra headers sent with every request (values are secrets).
    headers: Vec<(String, String)>,
    /// Presigns every request's URL instead of `base` (an S3 bucket).
    #[cfg(feature = "s3")]
    presigner: Option<crate::s3::Presigner>,
    timeouts: Timeouts,
    /// [`Backend::cap_requests`]: no request gets longer than this (ns).
    cap_nanos: AtomicU64,
    agent: ureq::Agent,
    /// For `missing_blobs`; made on first use. `None` if threads could not
    /// be started: then the global pool is used.
    heads: OnceLock<Option<rayon::ThreadPool>>,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend").field("url", &self.url).field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl HttpBackend {
    /// The remote at `url` (`http://host[:port][/prefix]`, `https://…`).
    /// Does not connect.
    pub fn new(url: &str, timeouts: Timeouts) -> Result<Self, RemoteError> {
        let bad = || RemoteError::Url { url: redact_url(url) };
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() || path.contains(['?', '#']) {
            return Err(bad());
        }
        let base = format!("{scheme}://{host}{}", path.trim_end_matches('/'));
        base.parse::<ureq::http::Uri>().map_err(|_| bad())?;
        let authorization = userinfo.map(|u| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u)));
        let shown = redact_url(url);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .max_idle_connections_per_host(PARALLEL_HEADS)
            .user_agent(concat!("brr/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            url: shown,
            base,
            authorization,
            headers: Vec::new(),
            #[cfg(feature = "s3")]
            presigner: None,
            timeouts,
            cap_nanos: AtomicU64::new(u64::MAX),
            agent,
            heads: OnceLock::new(),
        })
    }

    /// Also sends `headers` with every request (`Authorization: Bearer …`,
    /// `X-Api-Key: …`). An `Authorization` header replaces the URL's
    /// credentials. Errors name a malformed header, never its value.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> Result<Self, RemoteError> {
        for (name, value) in headers {
            check_header(name, value)?;
            if name.eq_ignore_ascii_case("authorization") {
                self.authorization = Some(value.clone());
            } else {
                self.headers.push((name.clone(), value.clone()));
            }
        }
        Ok(self)
    }

    fn timeout_for(&self, size: u64) -> Duration {
        let t = if size >= LARGE_BLOB { self.timeouts.transfer } else { self.timeouts.request };
        t.min(Duration::from_nanos(self.cap_nanos.load(Ordering::Relaxed)))
    }

    /// Sends every request to the URL `presigner` signs (see `s3.rs`);
    /// messages show `url` (credentials hidden) instead of the endpoint.
    #[cfg(feature = "s3")]
    pub fn presign_with(&mut self, presigner: crate::s3::Presigner, url: &str) {
        self.presigner = Some(presigner);
        self.url = redact_url(url);
    }

    /// The presigner, for an S3 bucket.
    #[cfg(feature = "s3")]
    pub fn presigner(&self) -> Option<&crate::s3::Presigner> {
        self.presigner.as_ref()
    }

    /// Where a `method` request of `path` (below the base) goes: a presigned
    /// URL for an S3 bucket. A secret: never in a message.
    fn target(&self, method: &str, path: &str) -> String {
        #[cfg(feature = "s3")]
        if let Some(presigner) = &self.presigner {
            return presigner.url(method, path);
        }
        #[cfg(not(feature = "s3"))]
        let _ = method;
        format!("{}{path}", self.base)
    }

    /// Adds the credentials and extra headers to a request.
    fn authorize<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
    }

    fn unavailable(&self, what: &str, e: &ureq::Error) -> RemoteError {
        let message = match e {
            ureq::Error::Timeout(_) => format!("{what} timed out"),
            e => format!("{what} failed: {}", without_queries(&e.to_string())),
        };
        RemoteError::Unavailable { remote: self.url.clone(), message }
    }

    /// A status other than success or 404: a server error (5xx) may pass,
    /// anything else is a refusal.
    fn refused(&self, what: &str, status: ureq::http::StatusCode) -> RemoteError {
        if status.is_server_error() {
            return RemoteError::Unavailable { remote: self.url.clone(), message: format!("{what} answered {status}") };
        }
        RemoteError::Refused { remote: self.url.clone(), what: format!("`{what}`"), message: status.to_string() }
    }

    /// `GET`: the body, `None` on 404.
    fn get(&self, path: &str, limit: u64, timeout: Duration) -> Result<Option<Vec<u8>>, RemoteError> {
        let what = format!("GET {path}");
        let request =
            self.authorize(self.agent.get(self.target("GET", path)).config().timeout_global(Some(timeout)).build());
        let mut response = request.call().map_err(|e| self.unavailable(&what, &e))?;
        match response.status().as_u16() {
            200 => match response.body_mut().with_config().limit(limit).read_to_vec() {
                Ok(bytes) => Ok(Some(bytes)),
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    Err(RemoteError::Corrupt { remote: self.url.clone(), blob: path.to_owned() })
                }
                Err(e) => Err(self.unavailable(&what, &e)),
            },
            404 => Ok(None),
            _ => Err(self.refused(&what, response.status())),
        }
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let what = format!("PUT {path}");
        let timeout = self.timeout_for(bytes.len() as u64);
        let request = self.authorize(
            self.agent
                .put(self.target("PUT", path))
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("Content-Type", "application/octet-stream"),
        );
        let response = request.send(bytes).map_err(|e| self.unavailable(&what, &e))?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.refused(&what, response.status())),
        }
    }

    /// `HEAD`: whether the blob is there with its size (when the server says
    /// the size; a different one counts as absent, so it is uploaded again).
    fn has(&self, id: &BlobId) -> Result<bool, RemoteError> {
        let path = format!("/cas/{}", id.sha256_hex());
        let what = format!("HEAD {path}");
        let request = self.authorize(
            self.agent.head(self.target("HEAD", &path)).config().timeout_global(Some(self.timeout_for(0))).build(),
        );
        let response = request.call().map_err(|e| self.unavailable(&what, &e))?;
        match response.status().as_u16() {
            200 => {
                let size = response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                Ok(size.is_none_or(|s| s == id.size))
            }
            404 => Ok(false),
            _ => Err(self.refused(&what, response.status())),
        }
    }
}

/// `message` with the query of any URL in it hidden: an error may quote the
/// request's URL, and a presigned one carries its signature and maybe a
/// session token there.
fn without_queries(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('?') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl Backend for HttpBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get_blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>, RemoteError> {
        // A body longer than the blob is refused as corrupt without reading it all.
        self.get(&format!("/cas/{}", id.sha256_hex()), id.size, self.timeout_for(id.size))
    }

    fn put_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<(), RemoteError> {
        self.put(&format!("/cas/{}", id.sha256_hex()), bytes)
    }

    fn missing_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>, RemoteError> {
        let check = || ids.par_iter().map(|id| self.has(id)).collect::<Result<Vec<bool>, _>>();
        let present = match ids.len() {
            0 => Vec::new(),
            1 => vec![self.has(&ids[0])?],
            _ => {
                let pool = self.heads.get_or_init(|| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(PARALLEL_HEADS)
                        .thread_name(|i| format!("brr-http-head-{i}"))
                        .build()
                        .ok()
                });
                match pool {
                    Some(pool) => pool.install(check)?,
                    None => check()?,
                }
            }
        };
        Ok(ids.iter().zip(present).filter(|(_, p)| !p).map(|(id, _)| *id).collect())
    }

    fn get_entry(&self, key: BuildKey) -> Result<Option<Vec<u8>>, RemoteError> {
        self.get(&format!("/ac/{}", hex(&action_id(key))), MAX_ENTRY, self.timeout_for(0))
    }

    fn put_entry(&self, key: BuildKey, entry: &[u8]) -> Result<(), RemoteError> {
        self.put(&format!("/ac/{}", hex(&action_id(key))), entry)
    }

    fn cap_requests(&self, within: Duration) {
        let nanos = u64::try_from(within.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.cap_nanos.store(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(url: &str) -> Result<HttpBackend, RemoteError> {
        HttpBackend::new(url, Timeouts::default())
    }

    #[test]
    fn urls_are_checked_and_credentials_hidden() {
        let b = new("http://127.0.0.1:9090/cache/").unwrap();
        assert_eq!(b.base, "http://127.0.0.1:9090/cache");
        assert_eq!(b.url(), "http://127.0.0.1:9090/cache/");
        assert!(b.authorization.is_none());
        let b = new("https://ci:s3cret@cache.example:8443").unwrap();
        assert_eq!(b.base, "https://cache.example:8443");
        assert_eq!(b.url(), "https://***@cache.example:8443");
        assert_eq!(b.authorization.as_deref(), Some("Basic Y2k6czNjcmV0"));
        // A token alone as the user name is a secret too.
        let b = new("http://ghp_SECRET123@127.0.0.1:18099/c").unwrap();
        assert_eq!(b.url(), "http://***@127.0.0.1:18099/c");
        assert!(!format!("{b:?}").contains("SECRET"));
        let e = new("http://ghp_SECRET123@ho st").unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
        for bad in ["ftp://host", "http://", "http:///path", "http://host/?q=1", "host:80", "http://ho st"] {
            assert!(matches!(new(bad), Err(RemoteError::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn queries_in_messages_are_hidden() {
        assert_eq!(
            without_queries("bad uri: http://h/b/k?X-Amz-Signature=abc&X-Amz-Security-Token=t is wrong?"),
            "bad uri: http://h/b/k?*** is wrong?"
        );
        assert_eq!(without_queries("io: connection refused"), "io: connection refused");
    }
}
