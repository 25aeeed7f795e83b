//! Named Ed25519 keys in the style of Nix's binary-cache keys.
//!
//! A key has a name (conventionally the host or CI pool and a number,
//! `ci-runners-1`) so an entry can say who signed it and a store can find the
//! matching public key without trying them all. Both halves are written
//! `NAME:BASE64`:
//!
//! | what | text | where |
//! |---|---|---|
//! | [`SigningKey`] | `NAME:` + base64 of the 32-byte Ed25519 seed, newline | a file, mode `0600` (`BRR_SIGNING_KEY`) |
//! | [`PublicKey`] | `NAME:` + base64 of the 32-byte Ed25519 public key | `trusted_keys`, `BRR_TRUSTED_KEYS` (comma-separated) |
//!
//! Base64 is the standard alphabet with padding. Names are ASCII letters,
//! digits, `.`, `_` and `-`, so a name can never contain the `:` that ends it
//! or the `,` that separates keys in a list. Unlike Nix, the secret half is the
//! 32-byte seed, not the 64-byte expanded key: the public key is derived from it.
//!
//! Signatures are verified strictly ([`ed25519_dalek::VerifyingKey::verify_strict`]):
//! weak public keys and malleable signatures are refused.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;

/// Length of a seed, a public key, in bytes.
const KEY_LEN: usize = 32;

/// Why a key could not be made, parsed, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key name `{name}`: use ASCII letters, digits, `.`, `_` and `-`")]
    Name { name: String },
    #[error("a {what} is written `NAME:BASE64`, and this one has no `:`")]
    Form { what: &'static str },
    #[error("{what} `{name}`: the part after `:` is not the base64 of 32 bytes")]
    Encoding { what: &'static str, name: String },
    #[error("public key `{name}` is not a valid Ed25519 key")]
    Point { name: String },
    #[error("the trusted keys name `{name}` twice, with different keys")]
    Conflict { name: String },
    #[error("the operating system gave no randomness for a new key: {message}")]
    Random { message: String },
    #[error("cannot read the signing key `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the signing key `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the signing key in `{path}` is invalid")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
}

/// Checks that `name` can stand in `NAME:BASE64` and in a comma-separated list.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(KeyError::Name { name: name.to_owned() }) }
}

/// Splits `NAME:BASE64` and decodes the 32 bytes.
fn split(s: &str, what: &'static str) -> Result<(String, [u8; KEY_LEN]), KeyError> {
    let (name, b64) = s.trim().split_once(':').ok_or(KeyError::Form { what })?;
    check_name(name)?;
    let bad = || KeyError::Encoding { what, name: name.to_owned() };
    let bytes = BASE64.decode(b64).map_err(|_| bad())?;
    let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| bad())?;
    Ok((name.to_owned(), key))
}

/// The secret half: signs cache entries. Its `Debug` shows only the name and
/// the public key; the seed is wiped from memory on drop.
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new random key named `name` (see the module docs for valid names).
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; KEY_LEN];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random { message: e.to_string() })?;
        let key = Self::from_seed(name, seed);
        seed.fill(0);
        key
    }

    /// The key whose 32-byte Ed25519 seed is `seed` (deterministic: for tests
    /// and for keys derived elsewhere).
    pub fn from_seed(name: &str, seed: [u8; KEY_LEN]) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(Self { name: name.to_owned(), key: ed25519_dalek::SigningKey::from_bytes(&seed) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// The Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// `NAME:BASE64(seed)` and a newline: the content of a key file.
    pub fn to_file_string(&self) -> String {
        format!("{}:{}\n", self.name, BASE64.encode(self.key.to_bytes()))
    }

    /// Parses [`Self::to_file_string`]'s format (surrounding whitespace allowed).
    /// Errors never include the secret.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let (name, seed) = split(s, "signing key")?;
        Self::from_seed(&name, seed)
    }

    /// Reads a key file. The file should be readable by its owner only
    /// (`0600`, as [`Self::write_new`] creates it); that is not checked here.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| KeyError::InFile { path: path.to_owned(), source: Box::new(e) })
    }

    /// Writes the key to a new file with mode `0600`; fails if `path` exists,
    /// so an existing key is never overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let err = |source| KeyError::Write { path: path.to_owned(), source };
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
        file.write_all(self.to_file_string().as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public().to_string()).finish_non_exhaustive()
    }
}

/// The public half: verifies signatures. Written `NAME:BASE64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32 bytes of the Ed25519 public key.
    pub fn bytes(&self) -> [u8; KEY_LEN] {
        self.key.to_bytes()
    }

    /// Whether `sig` is this key's valid signature of `msg` (strict
    /// verification; a signature of the wrong length is simply invalid).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let (name, bytes) = split(s, "public key")?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Point { name: name.clone() })?;
        if key.is_weak() {
            return Err(KeyError::Point { name });
        }
        Ok(Self { name, key })
    }
}

/// The public keys a workspace trusts, found by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// The given keys. Where one name appears with different keys, the first
    /// wins; [`Self::parse_list`] and [`Self::extend`] refuse that instead.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        let mut out = Self::default();
        for k in keys {
            if out.find(&k.name).is_none() {
                out.keys.push(k);
            }
        }
        out
    }

    /// A comma-separated list of `NAME:BASE64` (`BRR_TRUSTED_KEYS`); blanks
    /// around the keys and empty items are ignored.
    pub fn parse_list(s: &str) -> Result<Self, KeyError> {
        let mut out = Self::default();
        out.extend(
            s.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::parse).collect::<Result<Vec<_>, _>>()?,
        )?;
        Ok(out)
    }

    /// Adds keys. A key already present is skipped; a name already present
    /// with another key is refused, and then nothing is added.
    pub fn extend(&mut self, keys: impl IntoIterator<Item = PublicKey>) -> Result<(), KeyError> {
        let mut all = self.keys.clone();
        for k in keys {
            match all.iter().find(|t| t.name == k.name) {
                Some(t) if *t == k => {}
                Some(_) => return Err(KeyError::Conflict { name: k.name }),
                None => all.push(k),
            }
        }
        self.keys = all;
        Ok(())
    }

    /// The key named `name`.
    pub fn find(&self, name: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, seed: u8) -> SigningKey {
        SigningKey::from_seed(name, [seed; KEY_LEN]).unwrap()
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let k = key("ci-1", 1);
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellO", &sig));
        assert!(!key("ci-1", 2).public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hello", &sig[..63]));
    }

    #[test]
    fn file_string_round_trips_and_hides_the_seed_in_debug() {
        let k = key("ci-1", 7);
        let text = k.to_file_string();
        assert!(text.starts_with("ci-1:") && text.ends_with('\n'));
        assert_eq!(SigningKey::parse(&text).unwrap().public(), k.public());
        let seed_b64 = text.trim().split_once(':').unwrap().1;
        assert!(!format!("{k:?}").contains(seed_b64));
    }

    #[test]
    fn bad_text_is_refused_with_the_reason() {
        assert!(matches!(SigningKey::parse("no-colon"), Err(KeyError::Form { .. })));
        assert!(matches!(SigningKey::parse("a b:AAAA"), Err(KeyError::Name { .. })));
        assert!(matches!(SigningKey::parse(":AAAA"), Err(KeyError::Name { .. })));
        assert!(matches!(SigningKey::parse("ci:AAAA"), Err(KeyError::Encoding { .. })));
        assert!(matches!(SigningKey::parse("ci:!!!"), Err(KeyError::Encoding { .. })));
        assert!(matches!(SigningKey::generate("a,b"), Err(KeyError::Name { .. })));
        // An all-zero public key is a weak (small-order) point.
        let zero = format!("ci:{}", BASE64.encode([0u8; 32]));
        assert!(matches!(zero.parse::<PublicKey>(), Err(KeyError::Point { .. })));
        let e = "ci:AAAA".parse::<PublicKey>().unwrap_err().to_string();
        assert_eq!(e, "public key `ci`: the part after `:` is not the base64 of 32 bytes");
    }

    #[test]
    fn trusted_list_parses_finds_and_refuses_conflicts() {
        let (a, b) = (key("a", 1).public(), key("b", 2).public());
        let list = TrustedKeys::parse_list(&format!(" {a}, {b} ,,{a}")).unwrap();
        assert_eq!(list.iter().count(), 2);
        assert_eq!(list.find("b"), Some(&b));
        assert!(list.find("c").is_none());
        assert!(TrustedKeys::parse_list("").unwrap().is_empty());
        let other_a = key("a", 3).public();
        assert!(matches!(TrustedKeys::parse_list(&format!("{a},{other_a}")), Err(KeyError::Conflict { .. })));
        let mut list = TrustedKeys::new(vec![a.clone()]);
        assert!(list.extend([b.clone(), other_a]).is_err());
        assert_eq!(list, TrustedKeys::new(vec![a]), "a refused extend adds nothing");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(SigningKey::generate("x").unwrap().public(), SigningKey::generate("x").unwrap().public());
    }
}
