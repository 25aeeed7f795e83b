//! Remote caches shared by CI runners.
//!
//! Backends speak protocols existing servers already serve, behind one
//! [`Backend`] trait: the Bazel HTTP cache protocol (`http.rs`: `GET`/`PUT`/
//! `HEAD` on `/cas/<sha256>` and `/ac/<sha256>`; nginx, bazel-remote), the
//! Bazel Remote Execution API over gRPC (`grpc.rs`; BuildGrid, Buildbarn,
//! NativeLink, BuildBuddy), S3-compatible object stores (`s3.rs`, behind the
//! `s3` feature: the HTTP protocol with signed requests) and a shared folder
//! (`file.rs`).
//!
//! brr names objects by BLAKE3; these servers name them by SHA-256. The
//! mapping happens here and only here: a [`BlobId`] carries both, remote
//! paths and digests use the SHA-256, and every blob that arrives is checked
//! against both before it is stored. An action-cache entry ([`entry`]) is
//! signed with Ed25519 by the runner that built it and is only accepted when
//! its signature verifies against a key the workspace trusts ([`keys`]).

pub mod breaker;
pub mod entry;
#[cfg(feature = "grpc")]
pub mod exec;
pub mod file;
#[cfg(feature = "grpc")]
pub mod folder;
#[cfg(feature = "grpc")]
pub mod grpc;
/// The REAPI messages, for callers of [`grpc`] and [`exec`].
#[cfg(feature = "grpc")]
pub use bazel_remote_apis;
pub mod http;
pub mod keys;
pub mod remotes;
#[cfg(feature = "s3")]
pub mod s3;

use brr_hash::{BuildKey, Digest};

/// A blob as both sides name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct BlobId {
    /// brr's name: BLAKE3 of the bytes.
    pub blake3: Digest,
    /// The servers' name: SHA-256 of the bytes.
    pub sha256: [u8; 32],
    pub size: u64,
}

impl BlobId {
    /// Both digests of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self { blake3: Digest::of(bytes), sha256: sha256(bytes), size: bytes.len() as u64 }
    }

    /// Lowercase hex of the SHA-256, as remote paths use it.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Whether `bytes` are really this blob (both digests and the size).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.size && Digest::of(bytes) == self.blake3 && sha256(bytes) == self.sha256
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The remote name of an action-cache entry: SHA-256 over a domain tag and
/// the BLAKE3 build key, so it looks like any other action digest to servers
/// that only speak SHA-256.
pub fn action_id(key: BuildKey) -> [u8; 32] {
    let mut bytes = b"brr/action-cache-entry/1\n".to_vec();
    bytes.extend_from_slice(key.0.as_bytes());
    sha256(&bytes)
}

/// Why a remote operation failed. A failing remote never fails a build:
/// callers warn once and go on locally.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{remote}`: {message}")]
    Unavailable { remote: String, message: String },
    #[error("`{remote}`: the server refused {what}: {message}")]
    Refused { remote: String, what: String, message: String },
    #[error("`{remote}`: blob {blob} arrived with other bytes than its name says")]
    Corrupt { remote: String, blob: String },
    #[error(
        "unsupported remote URL `{url}` (use http://, https://, grpc://, grpcs://, s3://, s3+http(s):// or file://)"
    )]
    Url { url: String },
    #[error("invalid remote header `{name}`: {reason}")]
    Header { name: String, reason: String },
}

impl RemoteError {
    /// Whether trying again may help: the server was not reached, timed out
    /// or answered with a server-side error (5xx, `UNAVAILABLE`). A refusal
    /// (4xx, permissions) or corrupt bytes are answers, not accidents.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// How a backend connects: per-request time limit and extra headers (an
/// `Authorization` bearer token, an API key) sent with every request.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// The limit of one small request; `None` keeps the backend's default.
    pub request_timeout: Option<std::time::Duration>,
    /// Sent with every HTTP request (as gRPC metadata for `grpc://`).
    /// Values are secrets: never printed.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ConnectOptions")
            .field("request_timeout", &self.request_timeout)
            .field("headers", &names)
            .finish()
    }
}

impl ConnectOptions {
    /// The HTTP backend's limits with [`Self::request_timeout`] applied.
    pub fn http_timeouts(&self) -> http::Timeouts {
        let mut timeouts = http::Timeouts::default();
        if let Some(t) = self.request_timeout {
            timeouts.request = t;
            timeouts.connect = timeouts.connect.min(t);
        }
        timeouts
    }
}

/// Hides the user information of a URL (`scheme://user:password@host` or
/// `scheme://token@host`): `scheme://***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
        None => url.to_owned(),
    }
}

/// A remote cache: content-addressed blobs and action-cache entries.
/// Implementations are blocking, thread-safe and use bounded timeouts.
pub trait Backend: Send + Sync {
    /// The URL, for messages.
    fn url(&self) -> &str;
    /// A blob, or `None` when the remote does not have it. Implementations
    /// return the bytes as received; callers check them with [`BlobId::matches`].
    fn get_blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Uploads a blob (`bytes` match `id`).
    fn put_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<(), RemoteError>;
    /// The subset of `ids` the remote does not have.
    fn missing_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>, RemoteError>;
    /// The raw (signed) entry stored for `key`, if any.
    fn get_entry(&self, key: BuildKey) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Stores the raw (signed) entry for `key`, replacing any older one.
    fn put_entry(&self, key: BuildKey, entry: &[u8]) -> Result<(), RemoteError>;
    /// No request may take longer than `within` from now on (the run's
    /// remaining remote budget). Backends without network waits ignore it.
    fn cap_requests(&self, within: std::time::Duration) {
        let _ = within;
    }
}

/// Opens the backend a URL names, with default options.
pub fn open(url: &str) -> Result<Box<dyn Backend>, RemoteError> {
    open_with(url, &ConnectOptions::default())
}

/// Opens the backend a URL names.
pub fn open_with(url: &str, options: &ConnectOptions) -> Result<Box<dyn Backend>, RemoteError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        let timeouts = options.http_timeouts();
        return Ok(Box::new(http::HttpBackend::new(url, timeouts)?.with_headers(&options.headers)?));
    }
    if url.starts_with("s3://") || url.starts_with("s3+http://") || url.starts_with("s3+https://") {
        #[cfg(feature = "s3")]
        return Ok(Box::new(s3::open(url, options.http_timeouts())?.with_headers(&options.headers)?));
        #[cfg(not(feature = "s3"))]
        return Err(RemoteError::Unavailable {
            remote: redact_url(url),
            message: "this brr was built without the `s3` feature".to_owned(),
        });
    }
    if url.starts_with("file://") {
        return Ok(Box::new(file::FileBackend::new(url)?));
    }
    if url.starts_with("grpc://") || url.starts_with("grpcs://") {
        #[cfg(feature = "grpc")]
        return Ok(Box::new(grpc::GrpcBackend::connect_with(url, None, options)?));
        #[cfg(not(feature = "grpc"))]
        return Err(RemoteError::Unavailable {
            remote: redact_url(url),
            message: "this brr was built without the `grpc` feature".to_owned(),
        });
    }
    Err(RemoteError::Url { url: redact_url(url) })
}

/// Checks a header name (an HTTP token) and value (visible ASCII and
/// blanks); errors name the header, never its value.
pub fn check_header(name: &str, value: &str) -> Result<(), RemoteError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let bad = |reason: &str| RemoteError::Header { name: name.to_owned(), reason: reason.to_owned() };
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad("a header name is letters, digits and `-`"));
    }
    if !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(bad("its value holds a character HTTP headers cannot carry"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_hidden_whole() {
        assert_eq!(redact_url("http://ghp_SECRET@host:1/x"), "http://***@host:1/x");
        assert_eq!(redact_url("https://u:p@h"), "https://***@h");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url("file:///srv/c"), "file:///srv/c");
    }

    #[test]
    fn header_errors_never_show_the_value() {
        assert!(check_header("X-Api-Key", "abc def").is_ok());
        let e = check_header("X Api", "SECRET").unwrap_err().to_string();
        assert!(e.contains("X Api") && !e.contains("SECRET"), "{e}");
        let e = check_header("X-Api", "SEC\nRET").unwrap_err().to_string();
        assert!(!e.contains("SEC"), "{e}");
    }
}
