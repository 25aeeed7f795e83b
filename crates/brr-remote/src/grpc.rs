//! The Bazel Remote Execution API (REAPI v2) over gRPC, as a cache only:
//! BuildGrid, Buildbarn, NativeLink, BuildBuddy and bazel-remote all serve it.
//!
//! `grpc://HOST:PORT[/INSTANCE]` speaks plaintext HTTP/2, `grpcs://` TLS
//! (rustls with ring, which the HTTP backend already links; system and
//! Mozilla roots, plus a private CA through
//! [`GrpcBackend::with_ca_certificate`]). `INSTANCE` is the REAPI instance
//! name (it may contain `/`; empty when absent).
//!
//! | [`Backend`] call | REAPI call |
//! |---|---|
//! | [`GrpcBackend::new`] | `Capabilities.GetCapabilities`: refuse servers without SHA-256; read `max_batch_total_size_bytes` |
//! | `get_blob` | `ContentAddressableStorage.BatchReadBlobs` up to 1 MiB (or the server's batch limit), else `ByteStream.Read` of `{instance}/blobs/{sha256}/{size}`; `NOT_FOUND` → `None` |
//! | `put_blob` | `BatchUpdateBlobs` up to the same limit, else `ByteStream.Write` of `{instance}/uploads/{uuid}/blobs/{sha256}/{size}` in 1 MiB chunks |
//! | `missing_blobs` | `FindMissingBlobs`, 10 000 digests per call |
//! | `put_entry` | the entry bytes as a CAS blob, then `ActionCache.UpdateActionResult` |
//! | `get_entry` | `ActionCache.GetActionResult` (`NOT_FOUND` → `None`), then the entry blob, checked against its SHA-256 ([`RemoteError::Corrupt`]) since callers only see the entry; a result whose blob is gone → `None` |
//!
//! An action-cache entry is stored as an `ActionResult` under the action
//! digest `{ hash: hex(action_id(key)), size_bytes: 32 }`. No `Action`
//! message exists behind it: brr's build key already names everything an
//! `Action` would, and servers only use the action digest as an opaque key.
//! The size is fixed at 32, the length of the build key the id is derived
//! from; like the domain tag in [`action_id`], it is part of the remote format
//! (changing it orphans every stored entry). The `ActionResult` has one output
//! file, `brr-cache-entry`, whose digest names the CAS blob holding the signed
//! entry. Keeping the entry in the CAS rather than inline lets any REAPI cache
//! hold it (some cap `ActionResult` sizes) and makes it subject to the
//! server's usual CAS retention; `GetActionResult` asks the server to inline
//! it, which saves the second round trip where servers do.
//!
//! Why SHA-256 here: REAPI servers name blobs by a digest function they
//! announce, and SHA-256 is the one they all implement (BuildGrid accepts
//! nothing else). brr keeps BLAKE3 everywhere inside; [`BlobId`] carries both
//! names so this module never hashes to find a name, and callers check what
//! arrives against both. Requests leave `digest_function` unset, which per the
//! spec means "infer from the hash length" and works with servers older than
//! REAPI 2.3.
//!
//! Every call has a deadline, sent to the server as `grpc-timeout` and
//! enforced here too: 2 s to connect (TCP and TLS), 5 s for
//! `GetCapabilities`, 10 s for other unary calls (or the configured request
//! timeout), and that plus one second per MiB for streams; every deadline is
//! lowered to what is left of the run's budget ([`Backend::cap_requests`]).
//! Configured headers (a bearer token) go out as metadata on every call. `UNAVAILABLE`, `DEADLINE_EXCEEDED`, missed deadlines,
//! connection and TLS errors, and `RESOURCE_EXHAUSTED` (an overloaded
//! server), become [`RemoteError::Unavailable`]; any other
//! status the server sends is [`RemoteError::Refused`].
//!
//! The [`Backend`] trait is blocking, tonic is async: the backend owns a
//! tokio runtime with one worker thread (it drives the connection) and each
//! call `block_on`s its future on the calling thread, so many threads can
//! call at once and their requests share one HTTP/2 connection. Do not call
//! it from inside another tokio runtime.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use bazel_remote_apis::google::bytestream;
use brr_hash::BuildKey;
use reapi::action_cache_client::ActionCacheClient;
use reapi::capabilities_client::CapabilitiesClient;
use reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::{Backend, BlobId, ConnectOptions, RemoteError, action_id, check_header, hex, sha256};

/// How long opening the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The deadline of `GetCapabilities` when connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The deadline of a unary call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams get the unary deadline plus one second per this many bytes.
const STREAM_BYTES_PER_SECOND: u64 = 1 << 20;
/// Blobs up to this size go through the batch calls, larger ones through
/// ByteStream (the server's `max_batch_total_size_bytes` may lower it).
const BATCH_MAX: u64 = 1 << 20;
/// Room left in a batch request for everything but the blob's bytes.
const BATCH_OVERHEAD: u64 = 1 << 10;
/// What one blob adds to a batch message besides its bytes (digest, status, framing).
const PER_BLOB_OVERHEAD: u64 = 128;
/// The size of one `ByteStream.Write` message's data.
const WRITE_CHUNK: usize = 1 << 20;
/// Digests per `FindMissingBlobs` call (about 1 MB of request).
const FIND_MISSING_CHUNK: usize = 10_000;
/// The most a `ByteStream.Read` reserves before bytes arrive.
const READ_PREALLOC: u64 = 8 << 20;
/// Responses tonic accepts (its default, 4 MiB, is below what some servers
/// send in one `ByteStream.Read` message).
const MAX_DECODING: usize = 64 << 20;
/// The `ActionResult` output file that names an entry's blob.
const ENTRY_PATH: &str = "brr-cache-entry";
/// `size_bytes` of every entry's action digest (see the module docs).
const ACTION_DIGEST_SIZE: i64 = 32;

/// A REAPI server used as a remote cache. See the module docs.
pub struct GrpcBackend {
    url: String,
    /// The instance name, without leading or trailing `/`.
    instance: String,
    channel: Channel,
    /// Blobs up to this size use the batch calls.
    batch_limit: u64,
    runtime: tokio::runtime::Runtime,
    /// The deadline of a unary call ([`RPC_TIMEOUT`] unless configured).
    rpc_timeout: Duration,
    /// [`Backend::cap_requests`]: no call gets longer than this (ns).
    cap_nanos: AtomicU64,
    /// Sent with every call (tokens: never shown).
    metadata: tonic::metadata::MetadataMap,
}

impl fmt::Debug for GrpcBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBackend")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .field("batch_limit", &self.batch_limit)
            .finish_non_exhaustive()
    }
}

impl GrpcBackend {
    /// Connects to `grpc://HOST[:PORT][/INSTANCE]` (plaintext; the port
    /// defaults to 80) or `grpcs://…` (TLS; port 443, servers verified
    /// against the system's and Mozilla's root certificates) within 2 s and
    /// asks the server for its capabilities (5 s).
    ///
    /// Errors: [`RemoteError::Url`] for anything but `grpc://` or `grpcs://`
    /// with a host; [`RemoteError::Refused`] for servers that do not offer
    /// SHA-256 digests or refuse the instance name;
    /// [`RemoteError::Unavailable`] when nothing answers in time or the TLS
    /// handshake fails.
    pub fn new(url: &str) -> Result<Self, RemoteError> {
        Self::connect_with(url, None, &ConnectOptions::default())
    }

    /// Like [`GrpcBackend::new`], also trusting the PEM certificates in
    /// `ca_pem` for `grpcs://` (a server with a private CA). `Refused` when
    /// `ca_pem` holds no PEM certificate.
    pub fn with_ca_certificate(url: &str, ca_pem: &[u8]) -> Result<Self, RemoteError> {
        Self::connect_with(url, Some(ca_pem), &ConnectOptions::default())
    }

    /// Like [`GrpcBackend::new`] (with a private CA when `ca_pem` is set),
    /// with `options`' per-call deadline and metadata (checked as HTTP
    /// headers; names are lowercased, as gRPC metadata keys are).
    pub fn connect_with(url: &str, ca_pem: Option<&[u8]>, options: &ConnectOptions) -> Result<Self, RemoteError> {
        let bad_url = || RemoteError::Url { url: url.to_owned() };
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (name, value) in &options.headers {
            check_header(name, value)?;
            let bad = |reason: &str| RemoteError::Header { name: name.clone(), reason: reason.to_owned() };
            let key = tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| bad("not a valid gRPC metadata key"))?;
            let value = value.parse().map_err(|_| bad("not a valid gRPC metadata value"))?;
            metadata.insert(key, value);
        }
        let (tls, rest) = match (url.strip_prefix("grpc://"), url.strip_prefix("grpcs://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad_url()),
        };
        let (authority, instance) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', '?', '#']) {
            return Err(bad_url());
        }
        let instance = instance.trim_matches('/').to_owned();
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
            .map_err(|_| bad_url())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        if tls {
            let mut config = ClientTlsConfig::new().with_enabled_roots().timeout(CONNECT_TIMEOUT);
            if let Some(pem) = ca_pem {
                // tonic skips what is not PEM without a word: say it here.
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(RemoteError::Refused {
                        remote: url.to_owned(),
                        what: "the CA certificate".to_owned(),
                        message: "it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned(),
                    });
                }
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(config).map_err(|e| RemoteError::Refused {
                remote: url.to_owned(),
                what: "the TLS settings".to_owned(),
                message: chain(&e),
            })?;
        }

        let unavailable = |message: String| RemoteError::Unavailable { remote: url.to_owned(), message };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("brr-grpc")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the gRPC runtime: {e}")))?;
        let channel = runtime.block_on(async {
            match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
                Ok(Ok(channel)) => Ok(channel),
                Ok(Err(e)) => Err(unavailable(format!("cannot connect: {}", chain(&e)))),
                Err(_) => Err(unavailable(format!("cannot connect within {CONNECT_TIMEOUT:?}"))),
            }
        })?;
        let mut backend = Self {
            url: url.to_owned(),
            instance,
            channel,
            batch_limit: BATCH_MAX,
            runtime,
            rpc_timeout: options.request_timeout.unwrap_or(RPC_TIMEOUT),
            cap_nanos: AtomicU64::new(u64::MAX),
            metadata,
        };
        backend.check_capabilities()?;
        Ok(backend)
    }

    /// The deadline of a unary call now: the configured one, capped.
    pub(crate) fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout.min(self.cap())
    }

    fn cap(&self) -> Duration {
        Duration::from_nanos(self.cap_nanos.load(Ordering::Relaxed))
    }

    /// Streams get the unary deadline plus one second per MiB, capped.
    fn stream_deadline(&self, size: u64) -> Duration {
        (self.rpc_timeout + Duration::from_secs(size / STREAM_BYTES_PER_SECOND)).min(self.cap())
    }

    /// A request that tells the server its deadline (`grpc-timeout`; the
    /// client enforces it itself in [`GrpcBackend::call`]) and carries the
    /// configured metadata.
    pub(crate) fn request<T>(&self, message: T, deadline: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline);
        for kv in self.metadata.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                request.metadata_mut().insert(k.clone(), v.clone());
            }
        }
        request
    }

    /// The connection, for services this module does not wrap (Bots).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Runs `future` on this backend's runtime within `deadline`; a
    /// status becomes a [`RemoteError`] as for the calls above.
    pub fn run<T>(
        &self,
        what: &str,
        deadline: Duration,
        future: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, RemoteError> {
        self.call(what, deadline, future)
    }

    /// Whether `blobs` go up in a single `BatchUpdateBlobs` call.
    pub fn fits_one_batch(&self, blobs: &[(reapi::Digest, &[u8])]) -> bool {
        let digests: Vec<&reapi::Digest> = blobs.iter().map(|(d, _)| d).collect();
        batches(&digests, self.batch_limit).len() <= 1 && blobs.iter().all(|(_, b)| b.len() as u64 <= self.batch_limit)
    }

    /// The REAPI instance name (empty for the default instance).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn check_capabilities(&mut self) -> Result<(), RemoteError> {
        let mut client = CapabilitiesClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING);
        let request =
            self.request(reapi::GetCapabilitiesRequest { instance_name: self.instance.clone() }, HANDSHAKE_TIMEOUT);
        let capabilities = self.call("`GetCapabilities`", HANDSHAKE_TIMEOUT, async move {
            Ok(client.get_capabilities(request).await?.into_inner())
        })?;
        let cache = capabilities.cache_capabilities.unwrap_or_default();
        let sha256 = reapi::digest_function::Value::Sha256 as i32;
        if !cache.digest_functions.contains(&sha256) {
            let offered: Vec<&str> = cache
                .digest_functions
                .iter()
                .map(|f| reapi::digest_function::Value::try_from(*f).map_or("unknown", |v| v.as_str_name()))
                .collect();
            return Err(RemoteError::Refused {
                remote: self.url.clone(),
                what: "SHA-256 digests".to_owned(),
                message: format!(
                    "its cache offers [{}]; brr needs a server whose cache supports SHA256",
                    offered.join(", ")
                ),
            });
        }
        if let Ok(max) = u64::try_from(cache.max_batch_total_size_bytes)
            && max > 0
        {
            self.batch_limit = BATCH_MAX.min(max.saturating_sub(BATCH_OVERHEAD));
        }
        Ok(())
    }

    fn cas(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING)
    }

    fn action_cache(&self) -> ActionCacheClient<Channel> {
        ActionCacheClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING)
    }

    fn byte_stream(&self) -> bytestream::byte_stream_client::ByteStreamClient<Channel> {
        bytestream::byte_stream_client::ByteStreamClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_DECODING)
    }

    /// `{instance}/` or nothing, for ByteStream resource names.
    fn resource_prefix(&self) -> String {
        if self.instance.is_empty() { String::new() } else { format!("{}/", self.instance) }
    }

    /// Runs `future` to completion within `deadline` on the calling thread.
    pub(crate) fn call<T>(
        &self,
        what: &str,
        deadline: Duration,
        future: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, RemoteError> {
        match self.runtime.block_on(async { tokio::time::timeout(deadline, future).await }) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(status)) => Err(self.status_error(what, &status)),
            Err(_) => Err(RemoteError::Unavailable {
                remote: self.url.clone(),
                message: format!("{what}: no answer within {deadline:?}"),
            }),
        }
    }

    pub(crate) fn status_error(&self, what: &str, status: &Status) -> RemoteError {
        if is_unavailable(status) {
            RemoteError::Unavailable { remote: self.url.clone(), message: format!("{what}: {}", describe(status)) }
        } else {
            RemoteError::Refused { remote: self.url.clone(), what: what.to_owned(), message: describe(status) }
        }
    }

    /// Which of `digests` the server lacks (`FindMissingBlobs`, in chunks of
    /// [`FIND_MISSING_CHUNK`]).
    pub(crate) fn find_missing(
        &self,
        digests: impl Iterator<Item = reapi::Digest>,
    ) -> Result<std::collections::HashSet<reapi::Digest>, RemoteError> {
        let digests: Vec<reapi::Digest> = digests.collect();
        let mut missing = std::collections::HashSet::new();
        for chunk in digests.chunks(FIND_MISSING_CHUNK) {
            let mut cas = self.cas();
            let request = reapi::FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: chunk.to_vec(),
                ..Default::default()
            };
            let rpc = self.rpc_timeout();
            let answer = self.call("`FindMissingBlobs`", rpc, async move {
                Ok(cas.find_missing_blobs(self.request(request, rpc)).await?.into_inner())
            })?;
            missing.extend(answer.missing_blob_digests);
        }
        Ok(missing)
    }

    /// The bytes of the blob `digest` names, or `None` when the server does
    /// not have it. Not checked against the digest.
    pub fn read_blob(&self, digest: &reapi::Digest) -> Result<Option<Vec<u8>>, RemoteError> {
        let size = u64::try_from(digest.size_bytes).unwrap_or(0);
        if size <= self.batch_limit {
            let mut cas = self.cas();
            let request = reapi::BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: vec![digest.clone()],
                ..Default::default()
            };
            let what = format!("`BatchReadBlobs` of blob {}", digest.hash);
            let rpc = self.rpc_timeout();
            let responses = self.call(&what, rpc, async move {
                Ok(cas.batch_read_blobs(self.request(request, rpc)).await?.into_inner().responses)
            })?;
            let Some(response) = responses.into_iter().find(|r| r.digest.as_ref() == Some(digest)) else {
                return Err(self.refused(&what, "the response does not mention the blob"));
            };
            let status = response.status.unwrap_or_default();
            return match Code::from_i32(status.code) {
                Code::Ok => Ok(Some(response.data)),
                Code::NotFound => Ok(None),
                code => Err(self.status_error(&what, &Status::new(code, status.message))),
            };
        }
        let mut byte_stream = self.byte_stream();
        let request = bytestream::ReadRequest {
            resource_name: format!("{}blobs/{}/{}", self.resource_prefix(), digest.hash, size),
            read_offset: 0,
            read_limit: 0,
        };
        let deadline = self.stream_deadline(size);
        let what = format!("`ByteStream.Read` of blob {}", digest.hash);
        self.call(&what, deadline, async move {
            let mut stream = match byte_stream.read(self.request(request, deadline)).await {
                Ok(response) => response.into_inner(),
                Err(status) if status.code() == Code::NotFound => return Ok(None),
                Err(status) => return Err(status),
            };
            // The size is only a claim (a hostile Directory may say 1 TB):
            // memory follows the bytes that arrive, from a bounded start.
            let mut bytes = Vec::with_capacity(usize::try_from(size.min(READ_PREALLOC)).unwrap_or(0));
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        bytes.extend_from_slice(&message.data);
                        // More than the name says: no need to read on, the
                        // caller's check fails anyway.
                        if bytes.len() as u64 > size {
                            return Ok(Some(bytes));
                        }
                    }
                    Ok(None) => return Ok(Some(bytes)),
                    Err(status) if status.code() == Code::NotFound && bytes.is_empty() => return Ok(None),
                    Err(status) => return Err(status),
                }
            }
        })
    }

    /// The blobs `digests` name that the server has (unchecked, like
    /// [`GrpcBackend::read_blob`]): small ones grouped into `BatchReadBlobs`
    /// calls of at most the batch limit in all, large ones streamed. One
    /// round trip per batch instead of per blob.
    pub fn read_blobs(&self, digests: &[reapi::Digest]) -> Result<HashMap<reapi::Digest, Vec<u8>>, RemoteError> {
        let mut found = HashMap::new();
        let mut unique: Vec<&reapi::Digest> = digests.iter().collect();
        unique.sort_by(|a, b| a.hash.cmp(&b.hash));
        unique.dedup();
        let (small, large): (Vec<&reapi::Digest>, Vec<&reapi::Digest>) =
            unique.into_iter().partition(|d| u64::try_from(d.size_bytes).unwrap_or(u64::MAX) <= self.batch_limit);
        for batch in batches(&small, self.batch_limit) {
            let mut cas = self.cas();
            let request = reapi::BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: batch.iter().map(|d| (*d).clone()).collect(),
                ..Default::default()
            };
            let what = format!("`BatchReadBlobs` of {} blobs", batch.len());
            let rpc = self.rpc_timeout();
            let responses = self.call(&what, rpc, async move {
                Ok(cas.batch_read_blobs(self.request(request, rpc)).await?.into_inner().responses)
            })?;
            for response in responses {
                let status = response.status.unwrap_or_default();
                let Some(digest) = response.digest.filter(|d| batch.contains(&d)) else {
                    return Err(self.refused(&what, "the response names a blob not asked for"));
                };
                match Code::from_i32(status.code) {
                    Code::Ok => {
                        found.insert(digest, response.data);
                    }
                    Code::NotFound => {}
                    code => return Err(self.status_error(&what, &Status::new(code, status.message))),
                }
            }
        }
        for digest in large {
            if let Some(bytes) = self.read_blob(digest)? {
                found.insert(digest.clone(), bytes);
            }
        }
        Ok(found)
    }

    /// Uploads `blobs`: small ones grouped into `BatchUpdateBlobs` calls of
    /// at most the batch limit in all, large ones streamed.
    pub fn write_blobs(&self, blobs: &[(reapi::Digest, &[u8])]) -> Result<(), RemoteError> {
        // Each blob once: servers answer once per distinct digest.
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&(reapi::Digest, &[u8])> = blobs.iter().filter(|(d, _)| seen.insert(d)).collect();
        let (small, large): (Vec<_>, Vec<_>) =
            unique.into_iter().partition(|(_, b)| b.len() as u64 <= self.batch_limit);
        let digests: Vec<&reapi::Digest> = small.iter().map(|(d, _)| d).collect();
        let mut at = 0;
        for batch in batches(&digests, self.batch_limit) {
            let requests = small[at..at + batch.len()]
                .iter()
                .map(|(digest, bytes)| reapi::batch_update_blobs_request::Request {
                    digest: Some(digest.clone()),
                    data: bytes.to_vec(),
                    ..Default::default()
                })
                .collect();
            at += batch.len();
            let mut cas = self.cas();
            let what = format!("`BatchUpdateBlobs` of {} blobs", batch.len());
            let request =
                reapi::BatchUpdateBlobsRequest { instance_name: self.instance.clone(), requests, ..Default::default() };
            let rpc = self.rpc_timeout();
            let responses = self.call(&what, rpc, async move {
                Ok(cas.batch_update_blobs(self.request(request, rpc)).await?.into_inner().responses)
            })?;
            if responses.len() != batch.len() {
                return Err(self.refused(&what, &format!("{} answers for {} blobs", responses.len(), batch.len())));
            }
            for response in responses {
                let status = response.status.unwrap_or_default();
                if status.code != 0 {
                    let code = Code::from_i32(status.code);
                    return Err(self.status_error(&what, &Status::new(code, status.message)));
                }
            }
        }
        for (digest, bytes) in large {
            self.write_blob(digest, bytes)?;
        }
        Ok(())
    }

    /// Uploads `bytes` as the blob `digest` names.
    pub fn write_blob(&self, digest: &reapi::Digest, bytes: &[u8]) -> Result<(), RemoteError> {
        let size = bytes.len() as u64;
        if size <= self.batch_limit {
            let mut cas = self.cas();
            let what = format!("`BatchUpdateBlobs` of blob {}", digest.hash);
            let request = reapi::BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests: vec![reapi::batch_update_blobs_request::Request {
                    digest: Some(digest.clone()),
                    data: bytes.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let rpc = self.rpc_timeout();
            let responses = self.call(&what, rpc, async move {
                Ok(cas.batch_update_blobs(self.request(request, rpc)).await?.into_inner().responses)
            })?;
            let Some(response) = responses.into_iter().find(|r| r.digest.as_ref() == Some(digest)) else {
                return Err(self.refused(&what, "the response does not mention the blob"));
            };
            let status = response.status.unwrap_or_default();
            return match Code::from_i32(status.code) {
                Code::Ok => Ok(()),
                code => Err(self.status_error(&what, &Status::new(code, status.message))),
            };
        }

        let resource_name = format!("{}uploads/{}/blobs/{}/{}", self.resource_prefix(), upload_id(), digest.hash, size);
        let owned = bytes.to_vec();
        let chunks = owned.len().div_ceil(WRITE_CHUNK);
        let messages = (0..chunks).map(move |i| {
            let start = i * WRITE_CHUNK;
            let end = owned.len().min(start + WRITE_CHUNK);
            bytestream::WriteRequest {
                resource_name: if i == 0 { resource_name.clone() } else { String::new() },
                write_offset: i64::try_from(start).unwrap_or(i64::MAX),
                finish_write: i + 1 == chunks,
                data: owned[start..end].to_vec(),
            }
        });
        let mut byte_stream = self.byte_stream();
        let deadline = self.stream_deadline(size);
        let what = format!("`ByteStream.Write` of blob {}", digest.hash);
        let committed = self.call(&what, deadline, async move {
            let request = self.request(tokio_stream::iter(messages), deadline);
            Ok(byte_stream.write(request).await?.into_inner().committed_size)
        })?;
        // -1: the server already had the blob (REAPI allows this answer).
        if committed == digest.size_bytes || committed == -1 {
            Ok(())
        } else {
            Err(self.refused(&what, &format!("committed {committed} of {size} bytes")))
        }
    }

    pub(crate) fn refused(&self, what: &str, message: &str) -> RemoteError {
        RemoteError::Refused { remote: self.url.clone(), what: what.to_owned(), message: message.to_owned() }
    }
}

/// `digests` cut into consecutive runs whose sizes, plus a per-blob
/// allowance for the message around each, add up to at most `limit` (a run
/// holds at least one).
fn batches<'a>(digests: &'a [&'a reapi::Digest], limit: u64) -> Vec<&'a [&'a reapi::Digest]> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0u64);
    for (i, d) in digests.iter().enumerate() {
        let size = u64::try_from(d.size_bytes).unwrap_or(u64::MAX).saturating_add(PER_BLOB_OVERHEAD);
        if i > start && total.saturating_add(size) > limit {
            runs.push(&digests[start..i]);
            (start, total) = (i, 0);
        }
        total = total.saturating_add(size);
    }
    if start < digests.len() {
        runs.push(&digests[start..]);
    }
    runs
}

impl Backend for GrpcBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get_blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>, RemoteError> {
        self.read_blob(&blob_digest(id))
    }

    fn put_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<(), RemoteError> {
        debug_assert_eq!(id.size, bytes.len() as u64, "put_blob: the bytes do not match the id");
        self.write_blob(&blob_digest(id), bytes)
    }

    fn missing_blobs(&self, ids: &[BlobId]) -> Result<Vec<BlobId>, RemoteError> {
        let missing = self.find_missing(ids.iter().map(blob_digest))?;
        Ok(ids.iter().filter(|id| missing.contains(&blob_digest(id))).copied().collect())
    }

    fn get_entry(&self, key: BuildKey) -> Result<Option<Vec<u8>>, RemoteError> {
        let mut action_cache = self.action_cache();
        let request = reapi::GetActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action_digest(key)),
            inline_output_files: vec![ENTRY_PATH.to_owned()],
            ..Default::default()
        };
        let rpc = self.rpc_timeout();
        let result = self.call("`GetActionResult`", rpc, async move {
            match action_cache.get_action_result(self.request(request, rpc)).await {
                Ok(response) => Ok(Some(response.into_inner())),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status),
            }
        })?;
        // An action result without our file is not one of brr's entries.
        let Some(file) = result.and_then(|r| r.output_files.into_iter().find(|f| f.path == ENTRY_PATH)) else {
            return Ok(None);
        };
        let Some(digest) = file.digest else {
            return Err(self.refused("`GetActionResult`", "the entry's output file has no digest"));
        };
        let bytes = if file.contents.is_empty() && digest.size_bytes != 0 {
            match self.read_blob(&digest)? {
                Some(bytes) => bytes,
                // The server dropped the blob but kept the result.
                None => return Ok(None),
            }
        } else {
            file.contents
        };
        if hex(&sha256(&bytes)) != digest.hash || bytes.len() as u64 != u64::try_from(digest.size_bytes).unwrap_or(0) {
            return Err(RemoteError::Corrupt { remote: self.url.clone(), blob: digest.hash });
        }
        Ok(Some(bytes))
    }

    fn cap_requests(&self, within: Duration) {
        let nanos = u64::try_from(within.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.cap_nanos.store(nanos, Ordering::Relaxed);
    }

    fn put_entry(&self, key: BuildKey, entry: &[u8]) -> Result<(), RemoteError> {
        let blob = BlobId::of(entry);
        self.put_blob(&blob, entry)?;
        let mut action_cache = self.action_cache();
        let request = reapi::UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action_digest(key)),
            action_result: Some(reapi::ActionResult {
                output_files: vec![reapi::OutputFile {
                    path: ENTRY_PATH.to_owned(),
                    digest: Some(blob_digest(&blob)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let rpc = self.rpc_timeout();
        self.call("`UpdateActionResult`", rpc, async move {
            action_cache.update_action_result(self.request(request, rpc)).await.map(drop)
        })
    }
}

/// The REAPI digest of a blob: its SHA-256 and size.
fn blob_digest(id: &BlobId) -> reapi::Digest {
    reapi::Digest { hash: id.sha256_hex(), size_bytes: i64::try_from(id.size).unwrap_or(i64::MAX) }
}

/// The action digest an entry is stored under (see the module docs).
fn action_digest(key: BuildKey) -> reapi::Digest {
    reapi::Digest { hash: hex(&action_id(key)), size_bytes: ACTION_DIGEST_SIZE }
}

/// Whether `status` means "the server is not there" rather than "the server
/// said no". A status with a source was made on this side from a connection
/// or protocol error (statuses received from a server have none).
fn is_unavailable(status: &Status) -> bool {
    use std::error::Error as _;
    match status.code() {
        // RESOURCE_EXHAUSTED: overloaded (BuildGrid's cap on concurrent
        // calls, say); a later try may pass.
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => true,
        // tonic's generated clients report a broken channel this way.
        Code::Unknown if status.message().starts_with("Service was not ready") => true,
        _ => status.source().is_some(),
    }
}

/// `message (Code)` plus the causes of a locally made status.
fn describe(status: &Status) -> String {
    use std::error::Error as _;
    with_causes(format!("{} ({:?})", status.message(), status.code()), status.source())
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    with_causes(error.to_string(), error.source())
}

/// `text`, then each cause not already in it, joined with `: `.
fn with_causes(mut text: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A fresh UUID (version 4 layout) for a ByteStream upload name: unique per
/// process, time and call, which is all servers need of it.
fn upload_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{}/{nanos}/{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut bytes = sha256(seed.as_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex(&bytes[..16]);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_look_like_uuids_and_differ() {
        let (a, b) = (upload_id(), upload_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(a.split('-').map(str::len).eq([8, 4, 4, 4, 12]));
    }

    #[test]
    fn urls_other_than_grpc_are_refused_before_connecting() {
        for url in ["http://localhost:1", "grpc://", "grpcs:///instance", "grpc://user@host:1", "grpc://a b"] {
            assert!(matches!(GrpcBackend::new(url), Err(RemoteError::Url { .. })), "{url}");
        }
    }

    #[test]
    fn local_transport_errors_count_as_unavailable() {
        assert!(is_unavailable(&Status::unavailable("down")));
        assert!(is_unavailable(&Status::deadline_exceeded("slow")));
        assert!(!is_unavailable(&Status::invalid_argument("bad digest")));
        assert!(!is_unavailable(&Status::permission_denied("read-only")));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_unavailable(&Status::from_error(Box::new(io))));
    }
}
