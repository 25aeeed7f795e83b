//! Remote caches shared by CI runners.
//!
//! Backends speak protocols existing servers already serve, behind one
//! [`Backend`] trait: the Bazel HTTP cache protocol (`http.rs`: `GET`/`PUT`/
//! `HEAD` on `/cas/<sha256>` and `/ac/<sha256>`; nginx, bazel-remote), the
//! Bazel Remote Execution API over gRPC (`grpc.rs`; BuildGrid, Buildbarn,
//! NativeLink, BuildBuddy) and a shared folder (`file.rs`).
//!
//! brr names objects by BLAKE3; these servers name them by SHA-256. The
//! mapping happens here and only here: a [`BlobId`] carries both, remote
//! paths and digests use the SHA-256, and every blob that arrives is checked
//! against both before it is stored. An action-cache entry ([`entry`]) is
//! signed with Ed25519 by the runner that built it and is only accepted when
//! its signature verifies against a key the workspace trusts ([`keys`]).

pub mod entry;
pub mod file;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;
pub mod keys;
pub mod remotes;

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
    #[error("unsupported remote URL `{url}` (use http://, https://, grpc://, grpcs:// or file://)")]
    Url { url: String },
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
}

/// Opens the backend a URL names.
pub fn open(url: &str) -> Result<Box<dyn Backend>, RemoteError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(http::HttpBackend::new(url, http::Timeouts::default())?));
    }
    if url.starts_with("file://") {
        return Ok(Box::new(file::FileBackend::new(url)?));
    }
    if url.starts_with("grpc://") || url.starts_with("grpcs://") {
        #[cfg(feature = "grpc")]
        return Ok(Box::new(grpc::GrpcBackend::new(url)?));
        #[cfg(not(feature = "grpc"))]
        return Err(RemoteError::Unavailable {
            remote: url.to_owned(),
            message: "this brr was built without the `grpc` feature".to_owned(),
        });
    }
    Err(RemoteError::Url { url: url.to_owned() })
}
