//! `brr image --json`.

use schemars::JsonSchema;
use serde::Serialize;

use super::Hash;

/// `brr image RELEASE --json`: the image written, with its OCI digests.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Image")]
pub struct ImageDoc {
    pub release: Hash,
    pub build: Hash,
    pub config: Hash,
    /// The process type the image's entrypoint runs.
    pub process: String,
    /// Where it was written.
    pub output: String,
    /// `oci-layout` or `oci-archive`.
    pub format: String,
    pub tag: String,
    /// `sha256:<hex>` of the manifest: the image's identity in a registry.
    pub manifest_digest: String,
    /// `sha256:<hex>` of the image config.
    pub config_digest: String,
    /// `sha256:<hex>` of each layer, bottom first: the base's, each
    /// dependency's, then the service's.
    pub layers: Vec<String>,
    /// The base image by digest (`HOST/REPO@sha256:<hex>`), with `--base`.
    pub base: Option<String>,
}

/// `brr push RELEASE REF --json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Push")]
pub struct PushDoc {
    pub release: Hash,
    /// `HOST/REPO@sha256:<hex>`: the image by digest.
    pub reference: String,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// Blobs uploaded (`sha256:<hex>`).
    pub uploaded: Vec<String>,
    /// Blobs mounted from another repository of the registry that brr
    /// pushed them to before (no upload).
    pub mounted: Vec<String>,
    /// Blobs the registry already had.
    pub present: Vec<String>,
}
