//! Typed BLAKE3 digests, the canonical encoding of brr's objects, and hashing
//! of files and folders into Merkle trees.
//!
//! Main types: [`Digest`] and its role newtypes ([`BlobHash`], [`TreeHash`],
//! [`BuildKey`], [`ArtifactHash`], [`ToolDigest`], [`ConfigHash`],
//! [`ReleaseHash`], [`EntryHash`]); the objects [`Tree`], [`ActionKey`],
//! [`Artifact`], [`Config`], [`Release`] and [`LedgerEntry`] behind the [`Object`] trait, whose module
//! docs list the inputs of every hash; [`fs::snapshot`] and
//! [`fs::TreeBuilder`] for Merkle trees.
//!
//! Why postcard for the encoding: it is a specified, stable binary format with
//! length-prefixed fields, so the encoding is canonical without a hand-written
//! serializer, and the same bytes decode back for `brr show`.

mod digest;
pub mod fs;
mod object;
pub mod release;
mod roles;

pub use digest::{DIGEST_LEN, Digest, DigestError, HashedBytes};
pub use object::{
    ACTION_V1_TAG, ARTIFACT_V1_TAG, ActionKey, Artifact, DecodeError, EntryKind, Object, ObjectKind, Probe,
    ProcessSpec, Restart, ServiceManifest, ToolClosure, Tree, TreeEntry,
};
pub use release::{Config, LedgerAction, LedgerEntry, PromotionSource, Release, ReleaseStatus};
pub use roles::{ArtifactHash, BlobHash, BuildKey, ConfigHash, EntryHash, ReleaseHash, ToolDigest, TreeHash};
