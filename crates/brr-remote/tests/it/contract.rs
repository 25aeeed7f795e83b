//! The contract every [`Backend`] meets, as one function to run against each.

use std::sync::atomic::{AtomicU64, Ordering};

use brr_hash::{BuildKey, Digest};
use brr_remote::{Backend, BlobId};

/// Bytes no other call returns (in this process or an earlier one), so the
/// suite can run twice against the same server.
pub fn unique(label: &str, len: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let seed = format!("{label} {} {nanos} {}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    // Expand the seed with BLAKE3's XOF: incompressible, every byte value.
    let mut out = vec![0; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

fn sorted(mut ids: Vec<BlobId>) -> Vec<BlobId> {
    ids.sort();
    ids
}

/// Exercises the whole [`Backend`] contract on `b`, which must be empty of
/// the blobs and entries it makes up (they are unique per call).
pub fn check_backend(b: &dyn Backend) {
    assert!(!b.url().is_empty());

    // Absent blobs.
    let small = unique("small", 100);
    let big = unique("big", 3 << 20);
    let never = unique("never uploaded", 10);
    let (small_id, big_id, never_id) = (BlobId::of(&small), BlobId::of(&big), BlobId::of(&never));
    assert_eq!(b.get_blob(&small_id).unwrap(), None);
    assert_eq!(
        sorted(b.missing_blobs(&[small_id, big_id, never_id]).unwrap()),
        sorted(vec![small_id, big_id, never_id])
    );
    assert_eq!(b.missing_blobs(&[]).unwrap(), vec![]);

    // Round trips, the bytes unchanged: small, ~3 MiB, every byte value, empty.
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1024).chain(*b"\r\n\0\r\n").collect();
    let all_id = BlobId::of(&all_bytes);
    let empty_id = BlobId::of(b"");
    for (id, bytes) in [(small_id, &small[..]), (big_id, &big[..]), (all_id, &all_bytes[..]), (empty_id, &[][..])] {
        b.put_blob(&id, bytes).unwrap();
        let back = b.get_blob(&id).unwrap().unwrap_or_else(|| panic!("blob of {} bytes lost", bytes.len()));
        assert!(back == bytes, "a blob of {} bytes came back as {} other bytes", bytes.len(), back.len());
        assert!(id.matches(&back));
    }
    // Uploading again is harmless.
    b.put_blob(&small_id, &small).unwrap();
    assert_eq!(b.get_blob(&small_id).unwrap().as_deref(), Some(&small[..]));

    // missing_blobs reports exactly the absent ones, whatever the order.
    assert_eq!(b.missing_blobs(&[small_id, never_id, big_id]).unwrap(), vec![never_id]);
    assert_eq!(b.missing_blobs(&[never_id]).unwrap(), vec![never_id]);
    assert_eq!(b.missing_blobs(&[big_id, small_id]).unwrap(), vec![]);
    let many: Vec<BlobId> = (0..40).map(|i| BlobId::of(&unique(&format!("many {i}"), 8))).collect();
    let mut ask = many.clone();
    ask.push(small_id);
    assert_eq!(sorted(b.missing_blobs(&ask).unwrap()), sorted(many));

    // Entries: absent, stored, replaced; keys do not collide with blob names.
    let key = BuildKey(Digest::of(&unique("key", 8)));
    let other = BuildKey(Digest::of(&unique("other key", 8)));
    assert_eq!(b.get_entry(key).unwrap(), None);
    let first = unique("entry 1", 300);
    let second = unique("entry 2", 200);
    b.put_entry(key, &first).unwrap();
    assert_eq!(b.get_entry(key).unwrap(), Some(first));
    assert_eq!(b.get_entry(other).unwrap(), None);
    b.put_entry(key, &second).unwrap();
    assert_eq!(b.get_entry(key).unwrap(), Some(second));
    assert_eq!(b.get_blob(&small_id).unwrap().as_deref(), Some(&small[..]), "entries left blobs alone");
}
