//! A release as a reproducible OCI image: a pure function of the release
//! object, so the same release gives the same manifest digest in any store
//! on any machine of the same architecture.
//!
//! Main items: [`image`] builds an [`Image`] (config, layers and manifest as
//! bytes with their SHA-256 digests) from a release hash (on a [`base`]
//! image when given); [`layout`] writes
//! it as an OCI image layout folder or an `oci-archive` (a tar of one);
//! [`push`] sends it to a registry over the OCI Distribution API.
//!
//! What goes in, and why:
//!
//! | part | content |
//! |---|---|
//! | base layers | with `--base` ([`base`]), the base image's layers as its registry has them |
//! | a layer per dependency | each dependency artifact the service was built from, transitively, under [`DEPS_DIR`] (`/deps/<name>`, what the builder saw as `$DEPS/<name>`); a library after the libraries it was built from, siblings by name ([`dependencies`]). A layer is a function of that artifact's outputs alone, so services that share a library share its layer in a registry |
//! | the service's layer | the build's output files under [`APP_DIR`] (`/app`), as the release folder has them |
//! | config `Env` | the base's `Env` (its `PATH` included), then the config's vars, `NAME=value`, a var the base also sets replacing the base's; never a secret, whose names are in the `org.brr.secrets` label and whose values the runtime must supply |
//! | config `WorkingDir` | `/app` |
//! | config `Entrypoint` | the `web` process's command (or the only process, or the one asked for); a relative program path with a `/` (e.g. `bin/api`) is made absolute under `/app` |
//! | config `User` | the base's, if any |
//! | labels | the base's, then `org.brr.release`, `org.brr.build`, `org.brr.config` (BLAKE3 hashes), `org.opencontainers.image.version` (the release hash), `org.brr.process.<type>` (each process type's command as a JSON array), `org.brr.release-command`, `org.brr.secrets` (comma-separated names), and with a base `org.opencontainers.image.base.name` and `.base.digest` |
//!
//! Layers are uncompressed tars (`application/vnd.oci.image.layer.v1.tar`)
//! written by [`tar`] with fixed owners, modes and times.
//!
//! Not in the image: the release folder's `.env` (the config is in `Env`,
//! so a config change leaves every layer as it is and changes only the
//! config blob) and the service's name (a release hash does not know it,
//! and the image must not depend on how the release was named). The
//! dependencies an artifact was built from are read from the store's build
//! history and action cache (the `ActionKey` of a build that produced it):
//! an artifact fetched from a remote cache or imported has no recorded
//! action key here, and [`image`] fails rather than leave its dependencies
//! out. Without a base there is no userland: a dynamically linked binary
//! needs a base image with the C library.
//!
//! Layers are built in memory: releases are expected to be small (tens of
//! megabytes), not filesystem images.

pub mod base;
pub mod layout;
pub mod push;
pub mod tar;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use brr_hash::{
    ActionKey, Artifact, ArtifactHash, Config, Digest, EntryKind, ObjectKind, Release, ReleaseHash, Tree, TreeHash,
};
use brr_store::{Store, StoreError};
use serde::Serialize;
use sha2::Digest as _;

/// Where the release's files are in the image.
pub const APP_DIR: &str = "/app";

/// Where each dependency artifact's files are in the image: `/deps/<name>`,
/// as the builder saw them at `$DEPS/<name>`.
pub const DEPS_DIR: &str = "/deps";

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write `{entry}` into a tar archive")]
    Tar {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("release `{release}` has no process type `{wanted}` (it has: {})", available.join(", "))]
    NoSuchProcess { release: ReleaseHash, wanted: String, available: Vec<String> },
    #[error("release `{release}` has no `web` process; name one of {} with `--process`", available.join(", "))]
    WhichProcess { release: ReleaseHash, available: Vec<String> },
    #[error("release `{release}` has no process types, so an image of it would run nothing")]
    NoProcesses { release: ReleaseHash },
    #[error("`{path}` is not a path a tar entry can hold")]
    BadName { path: String },
    #[error("`{reference}` is not a `HOST[:PORT]/REPO[:TAG]` reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("registry `{registry}`: {message}")]
    Registry { registry: String, message: String },
    #[error(
        "the store does not record which dependencies artifact `{artifact}` was built from (it came from a remote cache or an import); build it here with `brr build` to record them"
    )]
    UnknownDependencies { artifact: ArtifactHash },
    #[error("dependency `{name}` is two artifacts in one release's closure: `{first}` and `{second}`")]
    DependencyConflict { name: String, first: ArtifactHash, second: ArtifactHash },
    #[error("registry auth file `{}`: {message}", path.display())]
    AuthFile { path: PathBuf, message: String },
    #[error("base image `{reference}`: {message}")]
    Base { reference: String, message: String },
    #[error("could not encode the image's JSON")]
    Json(#[from] serde_json::Error),
}

impl ImageError {
    /// A mistake in what the user asked for, not a failure of brr.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::NoSuchProcess { .. }
                | Self::WhichProcess { .. }
                | Self::NoProcesses { .. }
                | Self::BadReference { .. }
                | Self::UnknownDependencies { .. }
                | Self::AuthFile { .. }
        )
    }
}

/// A SHA-256 digest as OCI writes it: `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OciDigest(String);

impl OciDigest {
    pub fn of(bytes: &[u8]) -> Self {
        let hash = sha2::Sha256::digest(bytes);
        let mut hex = String::with_capacity(64);
        for b in &hash {
            let _ = write!(hex, "{b:02x}");
        }
        Self(format!("sha256:{hex}"))
    }

    /// The 64 hex characters, as a blob's file name in a layout.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }
}

impl std::fmt::Display for OciDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OciDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One blob of an image.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: OciDigest,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self { media_type: media_type.to_owned(), digest: OciDigest::of(&bytes), bytes }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor { media_type: self.media_type.clone(), digest: self.digest.clone(), size: self.bytes.len() as u64 }
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: OciDigest,
    pub size: u64,
}

/// An image, whole.
#[derive(Debug, Clone)]
pub struct Image {
    pub release: Release,
    pub release_hash: ReleaseHash,
    /// The process type the entrypoint runs.
    pub process: String,
    pub config: Blob,
    /// Bottom first.
    pub layers: Vec<Blob>,
    pub manifest: Blob,
}

impl Image {
    /// Every blob, layers first, then the config, then the manifest.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.layers.iter().chain([&self.config, &self.manifest])
    }
}

/// The image of `release`, entrypoint `process` (default: `web`, or the
/// only process type), on `base` when given.
pub fn image(
    store: &Store,
    release_hash: ReleaseHash,
    process: Option<&str>,
    base: Option<&base::Base>,
) -> Result<Image, ImageError> {
    let release: Release = store.get_object(release_hash.0)?;
    let artifact: Artifact = store.get_object(release.build.0)?;
    let config: Config = store.get_object(release.config.0)?;
    let procs = &artifact.manifest.processes;
    let available: Vec<String> = procs.keys().cloned().collect();
    let process = match process {
        Some(p) if procs.contains_key(p) => p.to_owned(),
        Some(p) => {
            return Err(ImageError::NoSuchProcess { release: release_hash, wanted: p.to_owned(), available });
        }
        None if procs.contains_key("web") => "web".to_owned(),
        None => match available.as_slice() {
            [] => return Err(ImageError::NoProcesses { release: release_hash }),
            [only] => only.clone(),
            _ => return Err(ImageError::WhichProcess { release: release_hash, available }),
        },
    };

    // The base's layers (as the registry has them), each dependency's, then
    // the service's.
    let mut layers: Vec<Blob> = base.map(|b| b.layers.clone()).unwrap_or_default();
    let mut diff_ids: Vec<OciDigest> = base.map(|b| b.diff_ids.clone()).unwrap_or_default();
    for (name, dep) in dependencies(store, release.build)? {
        let outputs = store.get_object::<Artifact>(dep.0)?.outputs;
        let blob = Blob::new(MEDIA_LAYER, dep_layer(store, &name, outputs)?);
        diff_ids.push(blob.digest.clone());
        layers.push(blob);
    }
    let own = Blob::new(MEDIA_LAYER, layer(store, artifact.outputs)?);
    diff_ids.push(own.digest.clone());
    layers.push(own);

    let mut labels = base.map(|b| b.labels.clone()).unwrap_or_default();
    if let Some(b) = base {
        labels.insert("org.opencontainers.image.base.name".to_owned(), b.name.clone());
        labels.insert("org.opencontainers.image.base.digest".to_owned(), b.digest.to_string());
    }
    labels.insert("org.brr.release".to_owned(), release_hash.to_string());
    labels.insert("org.brr.build".to_owned(), release.build.to_string());
    labels.insert("org.brr.config".to_owned(), release.config.to_string());
    labels.insert("org.opencontainers.image.version".to_owned(), release_hash.to_string());
    labels.remove("org.brr.secrets");
    if !config.secrets.is_empty() {
        let names: Vec<&str> = config.secrets.iter().map(String::as_str).collect();
        labels.insert("org.brr.secrets".to_owned(), names.join(","));
    }
    labels.retain(|k, _| !k.starts_with("org.brr.process.") && k != "org.brr.release-command");
    for (name, spec) in procs {
        labels.insert(format!("org.brr.process.{name}"), serde_json::to_string(&spec.command)?);
    }
    if let Some(cmd) = &artifact.manifest.release {
        labels.insert("org.brr.release-command".to_owned(), serde_json::to_string(cmd)?);
    }
    let entrypoint = procs.get(&process).map(|p| entrypoint(&p.command)).unwrap_or_default();
    let mut env: Vec<String> = base.map(|b| b.env.clone()).unwrap_or_default();
    for (k, v) in &config.vars {
        let entry = format!("{k}={v}");
        match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }
    let image_config = ImageConfig {
        architecture: oci_arch(),
        os: "linux",
        config: RunConfig { env, entrypoint, working_dir: APP_DIR, user: base.and_then(|b| b.user.clone()), labels },
        rootfs: RootFs { kind: "layers", diff_ids },
    };
    let config_blob = Blob::new(MEDIA_CONFIG, serde_json::to_vec(&image_config)?);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST,
        config: config_blob.descriptor(),
        layers: layers.iter().map(Blob::descriptor).collect(),
    };
    let manifest = Blob::new(MEDIA_MANIFEST, serde_json::to_vec(&manifest)?);
    Ok(Image { release, release_hash, process, config: config_blob, layers, manifest })
}

/// The dependency artifacts `artifact` was built from, transitively, each
/// under the name its dependents saw it by (`$DEPS/<name>`): a library
/// after the libraries it was built from, siblings in name order.
pub fn dependencies(store: &Store, artifact: ArtifactHash) -> Result<Vec<(String, ArtifactHash)>, ImageError> {
    fn visit(
        store: &Store,
        artifact: ArtifactHash,
        seen: &mut BTreeMap<String, ArtifactHash>,
        order: &mut Vec<(String, ArtifactHash)>,
    ) -> Result<(), ImageError> {
        for (name, dep) in direct_dependencies(store, artifact)? {
            match seen.get(&name) {
                Some(&known) if known == dep => continue,
                Some(&known) => {
                    return Err(ImageError::DependencyConflict { name, first: known, second: dep });
                }
                None => {}
            }
            seen.insert(name.clone(), dep);
            visit(store, dep, seen, order)?;
            order.push((name, dep));
        }
        Ok(())
    }
    let (mut seen, mut order) = (BTreeMap::new(), Vec::new());
    visit(store, artifact, &mut seen, &mut order)?;
    Ok(order)
}

/// `ActionKey::deps` of the latest recorded build that produced
/// `artifact` (whose action key is still stored), each name checked as a
/// folder name.
fn direct_dependencies(store: &Store, artifact: ArtifactHash) -> Result<BTreeMap<String, ArtifactHash>, ImageError> {
    for key in store.keys_of_artifact(artifact)? {
        if store.kind_of(key.0)? != Some(ObjectKind::Action) {
            continue;
        }
        let action: ActionKey = store.get_object(key.0)?;
        for name in action.deps.keys() {
            if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
                return Err(ImageError::BadName { path: format!("deps/{name}") });
            }
        }
        return Ok(action.deps);
    }
    Err(ImageError::UnknownDependencies { artifact })
}

/// A process command as an entrypoint: `bin/api` becomes `/app/bin/api`
/// (runtimes do not resolve a relative path against `WorkingDir`); a bare
/// name (`python3`) is left to the image's `PATH`.
fn entrypoint(command: &[String]) -> Vec<String> {
    let mut out = command.to_vec();
    if let Some(first) = out.first_mut()
        && first.contains('/')
        && !first.starts_with('/')
    {
        *first = format!("{APP_DIR}/{}", first.trim_start_matches("./"));
    }
    out
}

/// The OCI name of this machine's architecture, whose binaries the
/// release holds.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The layer of an output tree: `app/` and everything below it, depth
/// first, entries of a folder in the tree's (sorted) order.
fn layer(store: &Store, outputs: TreeHash) -> Result<Vec<u8>, ImageError> {
    let mut tar = tar::Builder::default();
    let root = APP_DIR.trim_start_matches('/');
    append(&mut tar, root, tar::Kind::Dir, b"")?;
    add_tree(store, &mut tar, root, outputs.0)?;
    tar.finish().map_err(|source| ImageError::Tar { entry: "the end of the layer".into(), source })
}

/// The layer of dependency `name`: `deps/`, `deps/<name>/` and its output
/// tree below, a function of the dependency's outputs alone, so every
/// service built on it has the same layer.
fn dep_layer(store: &Store, name: &str, outputs: TreeHash) -> Result<Vec<u8>, ImageError> {
    let mut tar = tar::Builder::default();
    let root = DEPS_DIR.trim_start_matches('/');
    append(&mut tar, root, tar::Kind::Dir, b"")?;
    let dir = format!("{root}/{name}");
    append(&mut tar, &dir, tar::Kind::Dir, b"")?;
    add_tree(store, &mut tar, &dir, outputs.0)?;
    tar.finish().map_err(|source| ImageError::Tar { entry: "the end of the layer".into(), source })
}

/// Adds one entry, naming it in the error.
pub(crate) fn append(tar: &mut tar::Builder, path: &str, kind: tar::Kind, data: &[u8]) -> Result<(), ImageError> {
    tar.append(path, kind, data).map_err(|source| ImageError::Tar { entry: path.to_owned(), source })
}

fn add_tree(store: &Store, tar: &mut tar::Builder, dir: &str, tree: Digest) -> Result<(), ImageError> {
    let tree: Tree = store.get_object(tree)?;
    for e in &tree.entries {
        if e.name.is_empty() || e.name.contains('/') || e.name == "." || e.name == ".." || e.name.contains('\0') {
            return Err(ImageError::BadName { path: format!("{dir}/{}", e.name) });
        }
        let path = format!("{dir}/{}", e.name);
        match e.kind {
            EntryKind::Dir => {
                append(tar, &path, tar::Kind::Dir, b"")?;
                add_tree(store, tar, &path, e.hash)?;
            }
            EntryKind::File => append(tar, &path, tar::Kind::File, &store.get(e.hash)?)?,
            EntryKind::Executable => append(tar, &path, tar::Kind::Executable, &store.get(e.hash)?)?,
            EntryKind::Symlink => append(tar, &path, tar::Kind::Symlink, &store.get(e.hash)?)?,
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    os: &'static str,
    config: RunConfig,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Vec<String>,
    entrypoint: Vec<String>,
    working_dir: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<OciDigest>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_programs_move_under_app() {
        let cmd = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(entrypoint(&cmd(&["bin/api", "serve"])), cmd(&["/app/bin/api", "serve"]));
        assert_eq!(entrypoint(&cmd(&["./run"])), cmd(&["/app/run"]));
        assert_eq!(entrypoint(&cmd(&["python3", "x.py"])), cmd(&["python3", "x.py"]));
        assert_eq!(entrypoint(&cmd(&["/bin/sh"])), cmd(&["/bin/sh"]));
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            OciDigest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
