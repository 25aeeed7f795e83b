//! Signed entries end to end: signing, refusals, key files.

use brr_hash::{ArtifactHash, BuildKey, Digest, ObjectKind, TreeHash};
use brr_remote::BlobId;
use brr_remote::entry::{EntryBody, EntryError, EntryObject, SignedEntry};
use brr_remote::keys::{PublicKey, SigningKey, TrustedKeys};

fn body() -> EntryBody {
    let object = |kind, bytes: &[u8]| EntryObject { kind, id: BlobId::of(bytes) };
    EntryBody {
        key: BuildKey(Digest::of(b"key")),
        artifact: ArtifactHash(Digest::of(b"artifact")),
        outputs: TreeHash(Digest::of(b"outputs")),
        log: Some(BlobId::of(b"build log")),
        objects: vec![
            object(ObjectKind::Artifact, b"artifact"),
            object(ObjectKind::Tree, b"tree"),
            object(ObjectKind::Blob, b"a"),
        ],
        signer: "ignored: sign sets it".into(),
    }
}

fn key(name: &str) -> SigningKey {
    SigningKey::generate(name).unwrap()
}

#[test]
fn a_signed_entry_round_trips_and_verifies() {
    let k = key("ci-1");
    let entry = SignedEntry::sign(body(), &k);
    assert_eq!(entry.body.signer, "ci-1");
    let decoded = SignedEntry::decode(&entry.encode()).unwrap();
    assert_eq!(decoded, entry);
    let trusted = TrustedKeys::new(vec![key("other").public(), k.public()]);
    assert_eq!(decoded.verify(&trusted), Ok(()));
}

#[test]
fn an_unsigned_entry_is_refused() {
    let k = key("ci-1");
    let entry = SignedEntry { body: body(), signature: Vec::new() };
    let decoded = SignedEntry::decode(&entry.encode()).unwrap();
    assert_eq!(decoded.verify(&TrustedKeys::new(vec![k.public()])), Err(EntryError::Unsigned));
}

#[test]
fn an_untrusted_signer_is_refused() {
    let entry = SignedEntry::sign(body(), &key("stranger"));
    let trusted = TrustedKeys::new(vec![key("ci-1").public()]);
    assert_eq!(entry.verify(&trusted), Err(EntryError::UntrustedSigner { name: "stranger".into() }));
    assert_eq!(entry.verify(&TrustedKeys::default()), Err(EntryError::UntrustedSigner { name: "stranger".into() }));
    // Another key under a trusted name does not pass either.
    let impostor = SignedEntry::sign(body(), &key("ci-1"));
    assert_eq!(impostor.verify(&trusted), Err(EntryError::BadSignature { signer: "ci-1".into() }));
}

#[test]
fn a_tampered_entry_is_refused() {
    let k = key("ci-1");
    let trusted = TrustedKeys::new(vec![k.public()]);
    let bytes = SignedEntry::sign(body(), &k).encode();

    // Another artifact hash, byte-for-byte in place: decodes, fails the signature.
    let artifact = Digest::of(b"artifact");
    let at = bytes.windows(32).position(|w| w == artifact.as_bytes()).unwrap();
    let mut tampered = bytes.clone();
    tampered[at] ^= 0x80;
    let entry = SignedEntry::decode(&tampered).unwrap();
    assert_eq!(entry.verify(&trusted), Err(EntryError::BadSignature { signer: "ci-1".into() }));

    // Any flipped byte anywhere is caught, by decoding or by verifying.
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let accepted = SignedEntry::decode(&tampered).is_ok_and(|e| e.verify(&trusted).is_ok());
        assert!(!accepted, "flipping byte {i} went unnoticed");
    }
    // Truncated or garbage bytes are malformed.
    assert!(matches!(SignedEntry::decode(&bytes[..bytes.len() - 1]), Err(EntryError::Malformed { .. })));
    assert!(matches!(SignedEntry::decode(b"not an entry"), Err(EntryError::Malformed { .. })));
}

#[test]
fn key_files_round_trip_and_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brr.key");
    let k = key("ci-1");
    k.write_new(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let read = SigningKey::read(&path).unwrap();
    assert_eq!(read.public(), k.public());
    assert_eq!(read.sign(b"m"), k.sign(b"m"));
    // Never overwrites an existing key; errors name the file.
    let e = key("ci-2").write_new(&path).unwrap_err();
    assert!(e.to_string().contains("brr.key"), "{e}");
    assert_eq!(SigningKey::read(&path).unwrap().public(), k.public());
    std::fs::write(&path, "garbage").unwrap();
    assert!(SigningKey::read(&path).unwrap_err().to_string().contains("brr.key"));
    assert!(SigningKey::read(&dir.path().join("missing.key")).unwrap_err().to_string().contains("missing.key"));
}

#[test]
fn public_keys_print_and_parse_back() {
    let public = key("cache.example.org-1").public();
    let text = public.to_string();
    assert!(text.starts_with("cache.example.org-1:"));
    assert_eq!(text.parse::<PublicKey>().unwrap(), public);
    let list = TrustedKeys::parse_list(&format!("{text},{}", key("b").public())).unwrap();
    assert_eq!(list.find("cache.example.org-1"), Some(&public));
}
