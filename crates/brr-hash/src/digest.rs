//! `Digest`: 32 bytes of BLAKE3, shown as 64 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of a digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// A BLAKE3-256 digest. Roles get newtypes ([`crate::BuildKey`], [`crate::ArtifactHash`], …).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; DIGEST_LEN]);

/// Why a string or byte slice is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("a digest is 32 bytes, got {0}")]
    Length(usize),
    #[error("`{0}` is not a 64-character lowercase hex digest")]
    Hex(String),
}

/// Bytes together with their [`Digest`], which can only have been computed
/// from them: there is no way to pair bytes with a digest other than by
/// hashing them. The store takes the digest of such bytes as given instead
/// of hashing them again.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedBytes {
    bytes: Vec<u8>,
    digest: Digest,
}

impl HashedBytes {
    /// Hashes `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        let digest = Digest::of(&bytes);
        Self { bytes, digest }
    }

    /// `bytes` whose BLAKE3 `hasher` has just computed over exactly them.
    pub(crate) fn hashed_by(bytes: Vec<u8>, hasher: &blake3::Hasher) -> Self {
        Self { bytes, digest: Digest(*hasher.finalize().as_bytes()) }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }
}

impl fmt::Debug for HashedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashedBytes({}, {} bytes)", self.digest, self.bytes.len())
    }
}

impl Digest {
    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The first `n` hex characters, for display.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(12);
        s
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl TryFrom<&[u8]> for Digest {
    type Error = DigestError;
    fn try_from(b: &[u8]) -> Result<Self, DigestError> {
        <[u8; DIGEST_LEN]>::try_from(b).map(Self).map_err(|_| DigestError::Length(b.len()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        let bad = || DigestError::Hex(s.to_owned());
        if s.len() != DIGEST_LEN * 2 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut out = [0u8; DIGEST_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// Hex in human-readable formats (JSON), raw 32 bytes in the canonical encoding.
impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; DIGEST_LEN]>::deserialize(d).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string(), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        assert!("6437".parse::<Digest>().is_err());
        assert!(d.to_string().to_uppercase().parse::<Digest>().is_err());
        assert_eq!(Digest::try_from(&[0u8; 31][..]), Err(DigestError::Length(31)));
    }

    #[test]
    fn json_is_hex_postcard_is_raw() {
        let d = Digest::of(b"x");
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        let raw = postcard::to_stdvec(&d).unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(postcard::from_bytes::<Digest>(&raw).unwrap(), d);
    }
}
