//! Each backend against the contract, plus its failure modes: tampered
//! bytes on the server, unreachable and hanging servers, refusals.

use std::path::Path;
use std::time::{Duration, Instant};

use brr_remote::file::FileBackend;
use brr_remote::http::{HttpBackend, Timeouts};
use brr_remote::{Backend, BlobId, RemoteError};
use brr_test_support::NginxCache;

use crate::contract::{check_backend, unique};

/// Puts a blob, rewrites it in the server's folder `root`, and checks that
/// the backend hands back what the server now holds, which no longer
/// matches the id: backends return what the server sent, callers verify.
fn check_tampering_is_visible(b: &dyn Backend, root: &Path) {
    let bytes = unique("tampered", 4096);
    let id = BlobId::of(&bytes);
    b.put_blob(&id, &bytes).unwrap();
    let file = root.join("cas").join(id.sha256_hex());
    let mut other = bytes.clone();
    other[100] ^= 1;
    std::fs::write(&file, &other).unwrap();
    let back = b.get_blob(&id).unwrap().expect("the blob is still there");
    assert_eq!(back, other, "the backend returns the server's bytes as they are");
    assert!(!id.matches(&back));

    // Longer bytes: returned as they are, or refused as corrupt outright.
    other.extend_from_slice(b"more");
    std::fs::write(&file, &other).unwrap();
    match b.get_blob(&id) {
        Ok(Some(back)) => assert!(!id.matches(&back)),
        Err(RemoteError::Corrupt { .. }) => {}
        r => panic!("expected other bytes or `Corrupt`, got {r:?}"),
    }
}

#[test]
fn file_backend_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::new(&format!("file://{}", dir.path().display())).unwrap();
    check_backend(&b);
    // Nothing but the two folders, no temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for sub in ["cas", "ac"] {
        for e in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(name.len() == 64 && name.bytes().all(|c| c.is_ascii_hexdigit()), "stray file `{sub}/{name}`");
        }
    }
}

#[test]
fn file_backend_returns_tampered_bytes_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::new(&format!("file://{}", dir.path().display())).unwrap();
    check_tampering_is_visible(&b, dir.path());
}

/// A blob cut short on the server (a torn upload) counts as missing, so
/// it is uploaded again.
fn check_truncated_blob_is_missing(b: &dyn Backend, root: &Path) {
    let bytes = unique("truncated", 1000);
    let id = BlobId::of(&bytes);
    b.put_blob(&id, &bytes).unwrap();
    assert_eq!(b.missing_blobs(&[id]).unwrap(), vec![]);
    std::fs::write(root.join("cas").join(id.sha256_hex()), &bytes[..10]).unwrap();
    assert_eq!(b.missing_blobs(&[id]).unwrap(), vec![id]);
}

#[test]
fn file_backend_counts_a_truncated_blob_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::new(&format!("file://{}", dir.path().display())).unwrap();
    check_truncated_blob_is_missing(&b, dir.path());
}

#[test]
fn http_backend_meets_the_contract_against_nginx() {
    let Some(nginx) = NginxCache::start() else { return };
    let b = HttpBackend::new(&nginx.url(), Timeouts::default()).unwrap();
    check_backend(&b);
    // A trailing slash names the same remote.
    check_backend(&HttpBackend::new(&format!("{}/", nginx.url()), Timeouts::default()).unwrap());
    nginx.stop();
}

#[test]
fn http_backend_returns_tampered_bytes_as_they_are() {
    let Some(nginx) = NginxCache::start() else { return };
    let b = HttpBackend::new(&nginx.url(), Timeouts::default()).unwrap();
    check_tampering_is_visible(&b, &nginx.root());
}

#[test]
fn http_backend_counts_a_truncated_blob_as_missing() {
    let Some(nginx) = NginxCache::start() else { return };
    let b = HttpBackend::new(&nginx.url(), Timeouts::default()).unwrap();
    check_truncated_blob_is_missing(&b, &nginx.root());
}

#[test]
fn http_backend_reports_a_refusal_with_the_status() {
    let Some(nginx) = NginxCache::start() else { return };
    // Outside the cache's paths nginx allows no PUT.
    let b = HttpBackend::new(&format!("{}/elsewhere", nginx.url()), Timeouts::default()).unwrap();
    let bytes = unique("refused", 10);
    match b.put_blob(&BlobId::of(&bytes), &bytes) {
        Err(e @ RemoteError::Refused { .. }) => assert!(e.to_string().contains("405"), "{e}"),
        r => panic!("expected a refusal, got {r:?}"),
    }
    // Reads there are simply misses.
    assert_eq!(b.get_blob(&BlobId::of(&bytes)).unwrap(), None);
}

#[test]
fn http_backend_is_unavailable_when_nothing_listens() {
    let Some(nginx) = NginxCache::start() else { return };
    let url = nginx.url();
    nginx.stop();
    let b = HttpBackend::new(&url, Timeouts::default()).unwrap();
    let id = BlobId::of(b"x");
    let started = Instant::now();
    assert!(matches!(b.get_blob(&id), Err(RemoteError::Unavailable { .. })));
    assert!(matches!(b.put_blob(&id, b"x"), Err(RemoteError::Unavailable { .. })));
    assert!(matches!(b.missing_blobs(&[id, BlobId::of(b"y")]), Err(RemoteError::Unavailable { .. })));
    assert!(started.elapsed() < Duration::from_secs(5), "a refused connection fails fast");
}

#[test]
fn http_backend_gives_up_on_a_server_that_never_answers() {
    // Connections complete (the kernel accepts them into the backlog), but
    // no response ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let short = Duration::from_millis(300);
    let b = HttpBackend::new(&url, Timeouts { connect: short, request: short, transfer: short }).unwrap();
    let started = Instant::now();
    match b.get_entry(brr_hash::BuildKey(brr_hash::Digest::of(b"k"))) {
        Err(e @ RemoteError::Unavailable { .. }) => assert!(e.to_string().contains("timed out"), "{e}"),
        r => panic!("expected a timeout, got {r:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
