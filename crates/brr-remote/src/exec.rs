//! Remote execution over REAPI: the calls a client makes to have an
//! `Action` run (`Execution.Execute`, followed to the end, and
//! `WaitExecution` after a dropped stream), and the digest helpers both the
//! client and `brr worker` use. Blobs go through [`GrpcBackend`]'s CAS calls.
//!
//! Tools: brr does not ship a tool's closure to the worker. The Command
//! names it in the platform property [`TOOLS_PROPERTY`]: the digest of a
//! CAS blob listing each file of every tool closure with its BLAKE3 digest
//! ([`tool_manifest`]). A worker needs the same files at the same paths and
//! refuses the action (`FAILED_PRECONDITION`) when any differs.

use std::collections::BTreeMap;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as reapi;
use bazel_remote_apis::google::longrunning::{Operation, operation};
use prost::Message;
use reapi::execution_client::ExecutionClient;
use tonic::Code;

use crate::RemoteError;
use crate::grpc::GrpcBackend;

/// The platform property naming the tool manifest blob (`SHA256HEX/SIZE`).
pub const TOOLS_PROPERTY: &str = "brr-tools";

/// The REAPI digest (SHA-256 and size) of `bytes`.
pub fn digest_of(bytes: &[u8]) -> reapi::Digest {
    reapi::Digest {
        hash: crate::hex(&crate::sha256(bytes)),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
    }
}

/// A message's bytes and their digest.
pub fn encode<M: Message>(message: &M) -> (Vec<u8>, reapi::Digest) {
    let bytes = message.encode_to_vec();
    let digest = digest_of(&bytes);
    (bytes, digest)
}

/// The tool manifest: one line per file, `BLAKE3HEX ABSOLUTE_PATH`, sorted
/// by path, for the files of every closure an action's key names.
pub fn tool_manifest(files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut text = String::new();
    for (path, blake3) in files {
        text.push_str(blake3);
        text.push(' ');
        text.push_str(path);
        text.push('\n');
    }
    text.into_bytes()
}

/// Parses [`tool_manifest`]'s format back: path → BLAKE3 hex.
pub fn parse_tool_manifest(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines().map(|l| l.split_once(' ').map(|(d, p)| (p.to_owned(), d.to_owned()))).collect()
}

/// `digest` as `HASH/SIZE`, the form platform properties carry.
pub fn digest_text(digest: &reapi::Digest) -> String {
    format!("{}/{}", digest.hash, digest.size_bytes)
}

/// Parses [`digest_text`]'s form.
pub fn parse_digest_text(text: &str) -> Option<reapi::Digest> {
    let (hash, size) = text.split_once('/')?;
    let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(reapi::Digest { hash: hash.to_owned(), size_bytes: size.parse().ok()? })
}

impl GrpcBackend {
    /// Uploads the blobs among `blobs` the server lacks
    /// (`FindMissingBlobs`, then batched or ByteStream writes); the ones sent.
    pub fn upload_missing(&self, blobs: &[(reapi::Digest, &[u8])]) -> Result<Vec<reapi::Digest>, RemoteError> {
        // What fits in one batch costs one round trip to send: as much as
        // asking which of it is missing.
        if self.fits_one_batch(blobs) {
            self.write_blobs(blobs)?;
            return Ok(blobs.iter().map(|(d, _)| d.clone()).collect());
        }
        let mut missing = self.find_missing(blobs.iter().map(|(d, _)| d.clone()))?;
        let send: Vec<(reapi::Digest, &[u8])> =
            blobs.iter().filter(|(d, _)| missing.remove(d)).map(|(d, b)| (d.clone(), *b)).collect();
        self.write_blobs(&send)?;
        Ok(send.into_iter().map(|(d, _)| d).collect())
    }

    /// Runs the action `action_digest` names (its Action, Command and
    /// input root already in the CAS) and returns the server's answer once
    /// the operation is done. A stream that drops before is picked up
    /// again with `WaitExecution` (at most 5 times). `within` bounds the
    /// whole wait.
    pub fn execute(
        &self,
        action_digest: &reapi::Digest,
        skip_cache_lookup: bool,
        within: Duration,
    ) -> Result<reapi::ExecuteResponse, RemoteError> {
        let request = reapi::ExecuteRequest {
            instance_name: self.instance().to_owned(),
            skip_cache_lookup,
            action_digest: Some(action_digest.clone()),
            ..Default::default()
        };
        let what = format!("`Execute` of action {}", action_digest.hash);
        let channel = self.channel();
        self.call(&what, within, async move {
            let mut client = ExecutionClient::new(channel).max_decoding_message_size(64 << 20);
            let mut stream = client.execute(self.request(request, within)).await?.into_inner();
            let mut name = String::new();
            let mut retries = 0;
            loop {
                match stream.message().await {
                    Ok(Some(op)) => {
                        name.clone_from(&op.name);
                        if op.done {
                            return finished(op);
                        }
                    }
                    Ok(None) | Err(_) if !name.is_empty() && retries < 5 => {
                        retries += 1;
                        let wait = reapi::WaitExecutionRequest { name: name.clone() };
                        stream = client.wait_execution(self.request(wait, within)).await?.into_inner();
                    }
                    Ok(None) => return Err(tonic::Status::unavailable("the Execute stream ended early")),
                    Err(status) => return Err(status),
                }
            }
        })
    }
}

/// The `ExecuteResponse` in a done operation, or its error.
fn finished(op: Operation) -> Result<reapi::ExecuteResponse, tonic::Status> {
    match op.result {
        Some(operation::Result::Response(any)) => reapi::ExecuteResponse::decode(any.value.as_slice())
            .map_err(|e| tonic::Status::internal(format!("undecodable ExecuteResponse: {e}"))),
        Some(operation::Result::Error(status)) => Err(tonic::Status::new(Code::from_i32(status.code), status.message)),
        None => Err(tonic::Status::internal("a done operation without a result")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_digest_texts_round_trip() {
        let files =
            BTreeMap::from([("/bin/sh".to_owned(), "ab".repeat(32)), ("/lib/x.so".to_owned(), "cd".repeat(32))]);
        assert_eq!(parse_tool_manifest(&tool_manifest(&files)), Some(files));
        let d = digest_of(b"x");
        assert_eq!(parse_digest_text(&digest_text(&d)), Some(d));
        assert_eq!(parse_digest_text("zz/1"), None);
    }
}
