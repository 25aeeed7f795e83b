//! Signed action-cache entries: what a remote stores under a build key.
//!
//! An entry says "building key K produced artifact A, whose outputs are tree
//! T; here are the names of every object needed to materialize it", and is
//! signed by the runner that built it. A store accepts it only when the
//! signature verifies against a key it trusts ([`SignedEntry::verify`]);
//! the objects themselves are then checked by hash as they arrive, so a
//! remote can neither invent an entry nor slip other bytes under one.
//!
//! Encoding, in the style of `brr_hash`'s objects (postcard is
//! length-prefixed and canonical; field order below *is* the encoding, and
//! the golden test pins it):
//!
//! | bytes | content |
//! |---|---|
//! | signed message | `brr/cache-entry/1\n` ‖ postcard([`EntryBody`]) |
//! | [`SignedEntry::encode`] | `brr/cache-entry/1\n` ‖ postcard([`SignedEntry`]) = signed message ‖ varint(64) ‖ signature |
//!
//! [`EntryBody`] fields, in order: build key, artifact hash, outputs tree,
//! log blob (optional), objects (kind, then [`BlobId`]: BLAKE3, SHA-256, size),
//! signer name. The signer's name is inside the signed message, so an entry
//! cannot be re-attributed to another key. Decoding is strict: trailing bytes or
//! a non-canonical encoding make an entry [`EntryError::Malformed`].

use brr_hash::{ArtifactHash, BuildKey, ObjectKind, TreeHash};
use serde::{Deserialize, Serialize};

use crate::BlobId;
use crate::keys::{SigningKey, TrustedKeys};

/// Tag and format version of an entry, ending in a newline.
pub const ENTRY_TAG: &str = "brr/cache-entry/1\n";

/// One object an entry needs, named both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryObject {
    pub kind: ObjectKind,
    pub id: BlobId,
}

/// What an entry claims; the part the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    pub key: BuildKey,
    pub artifact: ArtifactHash,
    pub outputs: TreeHash,
    /// The build log, a blob.
    pub log: Option<BlobId>,
    /// The artifact object itself and every tree and blob it needs to be materialized.
    pub objects: Vec<EntryObject>,
    /// Name of the key that signed the entry (set by [`SignedEntry::sign`]).
    pub signer: String,
}

impl EntryBody {
    /// The exact bytes the signature covers: [`ENTRY_TAG`] ‖ postcard(body).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = ENTRY_TAG.as_bytes().to_vec();
        // Serializing plain data into a Vec cannot fail.
        postcard::to_io(self, &mut out).expect("postcard encoding into a Vec");
        out
    }
}

/// An entry and its Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    pub body: EntryBody,
    /// 64 bytes when signed; a `Vec` because serde's arrays stop at 32.
    pub signature: Vec<u8>,
}

/// Why an entry is refused. Messages read after "ignoring the entry: ".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("malformed entry: {reason}")]
    Malformed { reason: String },
    #[error("the entry is not signed")]
    Unsigned,
    #[error("the entry is signed by `{name}`, a key that is not trusted here")]
    UntrustedSigner { name: String },
    #[error("the signature by `{signer}` does not verify: the entry was altered or signed by another key of that name")]
    BadSignature { signer: String },
}

impl SignedEntry {
    /// Signs `body` with `key`, first setting `body.signer` to the key's name.
    pub fn sign(mut body: EntryBody, key: &SigningKey) -> Self {
        key.name().clone_into(&mut body.signer);
        let signature = key.sign(&body.signed_bytes()).to_vec();
        Self { body, signature }
    }

    /// [`ENTRY_TAG`] ‖ postcard(self): what a remote stores.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = ENTRY_TAG.as_bytes().to_vec();
        postcard::to_io(self, &mut out).expect("postcard encoding into a Vec");
        out
    }

    /// Parses [`Self::encode`]'s bytes. Does not check the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let malformed = |reason: String| EntryError::Malformed { reason };
        let body = bytes
            .strip_prefix(ENTRY_TAG.as_bytes())
            .ok_or_else(|| malformed(format!("it does not start with the `{}` tag", ENTRY_TAG.trim_end())))?;
        let (entry, rest): (Self, _) = postcard::take_from_bytes(body).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} bytes after its end", rest.len())));
        }
        if entry.encode() != bytes {
            return Err(malformed("it is not in canonical form".to_owned()));
        }
        Ok(entry)
    }

    /// Checks that the entry is signed by a trusted key and that the
    /// signature covers exactly this body.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<(), EntryError> {
        if self.signature.is_empty() {
            return Err(EntryError::Unsigned);
        }
        let signer = &self.body.signer;
        let key = trusted.find(signer).ok_or_else(|| EntryError::UntrustedSigner { name: signer.clone() })?;
        if key.verify(&self.body.signed_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(EntryError::BadSignature { signer: signer.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use brr_hash::Digest;

    use super::*;

    fn body() -> EntryBody {
        let blob = BlobId::of(b"hello\n");
        EntryBody {
            key: BuildKey(Digest::of(b"key")),
            artifact: ArtifactHash(Digest::of(b"artifact")),
            outputs: TreeHash(Digest::of(b"tree")),
            log: Some(BlobId::of(b"log")),
            objects: vec![EntryObject { kind: ObjectKind::Blob, id: blob }],
            signer: String::new(),
        }
    }

    /// Golden value: fails when the encoding of an entry changes, which would
    /// make every runner's entries unreadable to the others. Bump the tag
    /// when it must change. (Ed25519 signing is deterministic.)
    #[test]
    fn entry_encoding_is_pinned() {
        let key = SigningKey::from_seed("ci-1", [9; 32]).unwrap();
        let bytes = SignedEntry::sign(body(), &key).encode();
        assert!(bytes.starts_with(ENTRY_TAG.as_bytes()));
        assert_eq!(Digest::of(&bytes).to_string(), "293253df07a9bec9180d3aea693bc4deba21887413dbbc6f3947eda541b63d77");
    }

    #[test]
    fn encoding_is_signed_bytes_then_signature() {
        let key = SigningKey::from_seed("ci-1", [9; 32]).unwrap();
        let entry = SignedEntry::sign(body(), &key);
        let mut expected = entry.body.signed_bytes();
        expected.push(64);
        expected.extend_from_slice(&entry.signature);
        assert_eq!(entry.encode(), expected);
        assert_eq!(SignedEntry::decode(&expected).unwrap(), entry);
    }

    #[test]
    fn trailing_bytes_and_wrong_tags_are_malformed() {
        let key = SigningKey::from_seed("ci-1", [9; 32]).unwrap();
        let mut bytes = SignedEntry::sign(body(), &key).encode();
        bytes.push(0);
        assert!(matches!(SignedEntry::decode(&bytes), Err(EntryError::Malformed { .. })));
        assert!(matches!(SignedEntry::decode(b"brr/cache-entry/2\n"), Err(EntryError::Malformed { .. })));
        assert!(matches!(SignedEntry::decode(b""), Err(EntryError::Malformed { .. })));
    }
}
