//! A base image pulled from a registry (`brr image --base REF`): its
//! manifest, config and layers, each checked against the digest that names
//! it, for a release that needs a userland (a C library, a shell).
//!
//! An index (a multi-platform image) is resolved to this machine's
//! platform. The layers are kept as the registry has them (compressed or
//! not; Docker's media types become their OCI equals, the bytes are the
//! same), and the config's `rootfs.diff_ids` give their uncompressed
//! digests. What the release's image keeps of the base's config is in
//! [`Base`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::push::{Client, Reference};
use crate::{Blob, ImageError, MEDIA_INDEX, MEDIA_MANIFEST, OciDigest};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests and configs are small; a larger answer is refused.
const JSON_LIMIT: u64 = 4 << 20;
/// A layer is held in memory.
const LAYER_LIMIT: u64 = 1 << 30;

/// A base image, verified.
#[derive(Debug, Clone)]
pub struct Base {
    /// As given: `HOST/REPO:TAG` or `HOST/REPO@sha256:…`.
    pub name: String,
    /// Of its manifest (for this platform).
    pub digest: OciDigest,
    /// `HOST/REPO@sha256:…`: the image by that digest.
    pub by_digest: String,
    /// Bottom first, with OCI media types.
    pub layers: Vec<Blob>,
    /// The uncompressed digest of each layer.
    pub diff_ids: Vec<OciDigest>,
    /// Its `Env`: the release's vars are set over it (a var the release
    /// sets replaces the base's; the base's `PATH` stays unless the release
    /// sets one).
    pub env: Vec<String>,
    /// Its `User`, kept.
    pub user: Option<String>,
    /// Its labels; the release's win. Its `Cmd` and `Entrypoint` are not
    /// kept: the release's process is the entrypoint.
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestIn {
    #[serde(default)]
    media_type: Option<String>,
    config: Option<DescriptorIn>,
    #[serde(default)]
    layers: Vec<DescriptorIn>,
    #[serde(default)]
    manifests: Vec<PlatformDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorIn {
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
struct PlatformDescriptor {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct ConfigIn {
    architecture: String,
    os: String,
    #[serde(default)]
    config: RunConfigIn,
    rootfs: RootFsIn,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfigIn {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RootFsIn {
    diff_ids: Vec<String>,
}

/// Pulls `reference`'s image for this machine's platform; `plain_http`
/// allows HTTP to a registry that is not on this machine.
pub fn pull(reference: &Reference, plain_http: bool) -> Result<Base, ImageError> {
    let fail = |message: String| ImageError::Base { reference: reference.to_string(), message };
    let client = Client::new(reference, plain_http)?;
    let accept = [MEDIA_MANIFEST, DOCKER_MANIFEST, MEDIA_INDEX, DOCKER_LIST].join(", ");
    let wanted = reference.digest.clone().unwrap_or_else(|| reference.tag.clone());
    let (mut bytes, _) = client.get(&format!("manifests/{wanted}"), &accept, JSON_LIMIT)?;
    let mut digest = OciDigest::of(&bytes);
    if let Some(d) = &reference.digest
        && digest.to_string() != *d
    {
        return Err(fail(format!("the registry answered a manifest whose digest is `{digest}`")));
    }
    let mut manifest: ManifestIn =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("its manifest is not valid JSON: {e}")))?;
    let index_type = manifest.media_type.as_deref().is_some_and(|t| t == MEDIA_INDEX || t == DOCKER_LIST);
    if index_type || (manifest.config.is_none() && !manifest.manifests.is_empty()) {
        let arch = crate::oci_arch();
        let entry = manifest
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.architecture == arch && p.os == "linux"))
            .ok_or_else(|| fail(format!("its index has no image for linux/{arch}")))?;
        let want = entry.digest.clone();
        (bytes, _) = client.get(&format!("manifests/{want}"), &accept, JSON_LIMIT)?;
        digest = OciDigest::of(&bytes);
        if digest.to_string() != want {
            return Err(fail(format!("the manifest named `{want}` has digest `{digest}`")));
        }
        manifest = serde_json::from_slice(&bytes).map_err(|e| fail(format!("its manifest is not valid JSON: {e}")))?;
    }
    let config = manifest.config.ok_or_else(|| fail("its manifest names no config".to_owned()))?;
    let config_bytes = blob(&client, &config, JSON_LIMIT, &fail)?;
    let config: ConfigIn =
        serde_json::from_slice(&config_bytes).map_err(|e| fail(format!("its config is not an image config: {e}")))?;
    if config.os != "linux" || config.architecture != crate::oci_arch() {
        return Err(fail(format!(
            "it is a {}/{} image; this machine's releases need linux/{}",
            config.os,
            config.architecture,
            crate::oci_arch()
        )));
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(fail(format!(
            "its config lists {} layers and its manifest {}",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        let media_type = oci_layer_type(&layer.media_type).ok_or_else(|| {
            fail(format!("layer `{}` is of type `{}`, not a tar layer", layer.digest, layer.media_type))
        })?;
        let bytes = blob(&client, layer, LAYER_LIMIT, &fail)?;
        layers.push(Blob { media_type: media_type.to_owned(), digest: OciDigest::of(&bytes), bytes });
    }
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(d).ok_or_else(|| fail(format!("`{d}` in its rootfs.diff_ids is not a sha256 digest"))))
        .collect::<Result<_, _>>()?;
    Ok(Base {
        name: reference.to_string(),
        by_digest: format!("{}/{}@{digest}", reference.host, reference.repo),
        digest,
        layers,
        diff_ids,
        env: config.config.env.unwrap_or_default(),
        user: config.config.user.filter(|u| !u.is_empty()),
        labels: config.config.labels.unwrap_or_default(),
    })
}

/// The blob `d` names, checked against its digest and size.
fn blob(
    client: &Client,
    d: &DescriptorIn,
    limit: u64,
    fail: &dyn Fn(String) -> ImageError,
) -> Result<Vec<u8>, ImageError> {
    if parse_digest(&d.digest).is_none() {
        return Err(fail(format!("`{}` is not a sha256 digest", d.digest)));
    }
    let (bytes, _) = client.get(&format!("blobs/{}", d.digest), "*/*", limit)?;
    let got = OciDigest::of(&bytes);
    if got.to_string() != d.digest || bytes.len() as u64 != d.size {
        return Err(fail(format!(
            "blob `{}` ({} bytes) came back as `{got}` ({} bytes)",
            d.digest,
            d.size,
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn parse_digest(d: &str) -> Option<OciDigest> {
    let hex = d.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| OciDigest(d.to_owned()))
}

/// A layer's OCI media type; `None` for what is not a tar layer.
fn oci_layer_type(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar" | "application/vnd.docker.image.rootfs.diff.tar" => crate::MEDIA_LAYER,
        "application/vnd.oci.image.layer.v1.tar+gzip" | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => return None,
    })
}
