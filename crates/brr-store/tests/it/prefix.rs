//! Resolving hash prefixes: unique, ambiguous, too short, unknown.

use std::collections::HashMap;

use brr_hash::{Digest, ObjectKind};
use brr_store::StoreError;

use crate::support::{TestResult, new_store};

/// Two contents whose digests share their first 8 hex characters (found by
/// brute force: about 2^16 tries by the birthday bound).
fn colliding_pair() -> (Vec<u8>, Vec<u8>) {
    let mut seen: HashMap<[u8; 4], u64> = HashMap::new();
    for i in 0u64.. {
        let d = Digest::of(&i.to_le_bytes());
        let key = [d.as_bytes()[0], d.as_bytes()[1], d.as_bytes()[2], d.as_bytes()[3]];
        if let Some(j) = seen.insert(key, i) {
            return (j.to_le_bytes().to_vec(), i.to_le_bytes().to_vec());
        }
    }
    unreachable!("the loop only ends by returning")
}

#[test]
fn unique_prefix_resolves() -> TestResult {
    let (_dir, store) = new_store()?;
    let d = store.put_bytes(ObjectKind::Blob, b"one")?;
    store.put_bytes(ObjectKind::Blob, b"two")?;
    let hex = d.to_hex();
    for len in [8, 9, 13, 64] {
        assert_eq!(store.resolve_prefix(&hex[..len])?, d, "prefix of {len}");
    }
    Ok(())
}

#[test]
fn ambiguous_prefix_lists_candidates() -> TestResult {
    let (_dir, store) = new_store()?;
    let (a, b) = colliding_pair();
    let da = store.put_bytes(ObjectKind::Blob, &a)?;
    let db = store.put_bytes(ObjectKind::Blob, &b)?;
    let prefix = &da.to_hex()[..8];
    let err = store.resolve_prefix(prefix).expect_err("ambiguous");
    match &err {
        StoreError::AmbiguousPrefix { candidates, .. } => {
            let mut want = vec![da, db];
            want.sort();
            assert_eq!(candidates, &want);
        }
        other => panic!("expected an ambiguity, got {other}"),
    }
    assert!(err.to_string().contains(&db.to_hex()), "{err}");
    // One more character (or the full hash) tells them apart.
    assert_eq!(store.resolve_prefix(&da.to_hex())?, da);
    Ok(())
}

#[test]
fn short_invalid_and_unknown_prefixes_are_errors() -> TestResult {
    let (_dir, store) = new_store()?;
    let d = store.put_bytes(ObjectKind::Blob, b"x")?;
    let err = store.resolve_prefix(&d.to_hex()[..7]).expect_err("too short");
    assert!(matches!(err, StoreError::PrefixTooShort { .. }), "{err}");
    let err = store.resolve_prefix("zzzzzzzz").expect_err("not hex");
    assert!(matches!(err, StoreError::InvalidPrefix { .. }), "{err}");
    let err = store.resolve_prefix(&d.to_hex().to_uppercase()).expect_err("uppercase");
    assert!(matches!(err, StoreError::InvalidPrefix { .. }), "{err}");
    // A prefix that differs from the only object in its first character.
    let other = if d.to_hex().starts_with('0') { "ffffffff" } else { "00000000" };
    let err = store.resolve_prefix(other).expect_err("unknown");
    assert!(matches!(err, StoreError::PrefixNotFound { .. }), "{err}");
    Ok(())
}
