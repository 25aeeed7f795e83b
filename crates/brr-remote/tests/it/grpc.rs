//! The gRPC (REAPI) backend against a real BuildGrid: the contract, big
//! blobs through ByteStream, concurrent callers, and servers that are gone.
#![cfg(feature = "grpc")]

use std::time::{Duration, Instant};

use brr_hash::{BuildKey, Digest};
use brr_remote::grpc::GrpcBackend;
use brr_remote::{Backend, BlobId, RemoteError};
use brr_test_support::BuildGridServer;

use crate::contract::{check_backend, unique};

fn connect(server: &BuildGridServer) -> GrpcBackend {
    GrpcBackend::new(&server.url()).unwrap_or_else(|e| panic!("{e}\n--- bgd.log\n{}", server.log()))
}

/// Runs `f`, checks it returns `Unavailable` and does so within `limit`.
fn assert_unavailable_within<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> Result<T, RemoteError>,
) {
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    assert!(matches!(result, Err(RemoteError::Unavailable { .. })), "{what}: expected `Unavailable`, got {result:?}");
    assert!(took < limit, "{what}: took {took:?}");
}

#[test]
fn grpc_backend_meets_the_contract() {
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);
    assert_eq!(b.url(), server.url());
    assert_eq!(b.instance(), "");
    check_backend(&b);
}

#[test]
fn big_blobs_and_entries_go_through_bytestream() {
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);

    // Over the 1 MiB batch limit and over gRPC's 4 MiB default message size.
    let big = unique("5 MiB", 5 << 20);
    let id = BlobId::of(&big);
    assert_eq!(b.missing_blobs(&[id]).unwrap(), vec![id]);
    assert_eq!(b.get_blob(&id).unwrap(), None);
    b.put_blob(&id, &big).unwrap();
    assert_eq!(b.missing_blobs(&[id]).unwrap(), vec![]);
    let back = b.get_blob(&id).unwrap().expect("the big blob is there");
    assert!(back == big, "5 MiB came back as {} other bytes", back.len());
    // Uploading it again is harmless.
    b.put_blob(&id, &big).unwrap();

    // An entry too big for a batch call: put, get, replace by a small one.
    let key = BuildKey(Digest::of(&unique("big entry key", 8)));
    let entry = unique("2 MiB entry", 2 << 20);
    b.put_entry(key, &entry).unwrap();
    assert!(b.get_entry(key).unwrap() == Some(entry), "the 2 MiB entry came back other");
    b.put_entry(key, b"small").unwrap();
    assert_eq!(b.get_entry(key).unwrap().as_deref(), Some(&b"small"[..]));
}

/// Many small blobs and a big one in one call each way: the small ones
/// grouped into batches (more than fit in one), the big one streamed; a
/// blob the server lacks is absent from what comes back.
#[test]
fn many_blobs_go_up_and_down_in_batches() {
    use brr_remote::exec::digest_of;
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);
    let mut blobs: Vec<Vec<u8>> = (0..300).map(|i| unique(&format!("small {i}"), 8 << 10)).collect();
    blobs.push(unique("big", 3 << 20));
    let digests: Vec<_> = blobs.iter().map(|x| digest_of(x)).collect();
    let pairs: Vec<_> = digests.iter().cloned().zip(blobs.iter().map(Vec::as_slice)).collect();
    b.write_blobs(&pairs).unwrap();
    let absent = digest_of(&unique("never uploaded", 64));
    let mut asked = digests.clone();
    asked.push(absent.clone());
    let back = b.read_blobs(&asked).unwrap();
    assert_eq!(back.len(), blobs.len(), "every uploaded blob, and not the absent one");
    assert!(!back.contains_key(&absent));
    for (digest, bytes) in digests.iter().zip(&blobs) {
        assert!(back.get(digest) == Some(bytes), "blob {} came back other", digest.hash);
    }
}

#[test]
fn many_threads_share_one_backend() {
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);
    std::thread::scope(|s| {
        for t in 0..6 {
            let b = &b;
            s.spawn(move || {
                for i in 0..5 {
                    // Alternately batch-sized and ByteStream-sized.
                    let len = if i % 2 == 0 { 1000 } else { (1 << 20) + 1000 };
                    let bytes = unique(&format!("thread {t} blob {i}"), len);
                    let id = BlobId::of(&bytes);
                    b.put_blob(&id, &bytes).unwrap();
                    assert!(b.get_blob(&id).unwrap().is_some_and(|back| back == bytes));
                    let key = BuildKey(id.blake3);
                    b.put_entry(key, &bytes[..100]).unwrap();
                    assert_eq!(b.get_entry(key).unwrap().as_deref(), Some(&bytes[..100]));
                }
            });
        }
    });
}

#[test]
fn closed_port_is_unavailable_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert_unavailable_within(Duration::from_secs(4), "closed port", || {
        GrpcBackend::new(&format!("grpc://127.0.0.1:{port}"))
    });
}

#[test]
fn silent_server_is_unavailable_within_the_handshake_deadline() {
    // The kernel accepts the TCP connection into the backlog; nobody answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_unavailable_within(Duration::from_secs(10), "silent server", || {
        GrpcBackend::new(&format!("grpc://127.0.0.1:{port}"))
    });
    drop(listener);
}

#[test]
fn stopped_server_makes_calls_unavailable_not_hang() {
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);
    let bytes = unique("before the stop", 100);
    let id = BlobId::of(&bytes);
    b.put_blob(&id, &bytes).unwrap();
    let key = BuildKey(Digest::of(&unique("key", 8)));
    b.put_entry(key, b"entry").unwrap();

    server.stop();

    let limit = Duration::from_secs(5);
    let big = unique("after the stop", 2 << 20);
    let big_id = BlobId::of(&big);
    assert_unavailable_within(limit, "get_blob", || b.get_blob(&id));
    assert_unavailable_within(limit, "get_blob (stream)", || b.get_blob(&big_id));
    assert_unavailable_within(limit, "put_blob", || b.put_blob(&id, &bytes));
    assert_unavailable_within(limit, "put_blob (stream)", || b.put_blob(&big_id, &big));
    assert_unavailable_within(limit, "missing_blobs", || b.missing_blobs(&[id]));
    assert_unavailable_within(limit, "get_entry", || b.get_entry(key));
    assert_unavailable_within(limit, "put_entry", || b.put_entry(key, b"entry"));
}

#[test]
fn unknown_instance_is_refused() {
    let Some(server) = BuildGridServer::start() else { return };
    let url = format!("{}/no/such/instance", server.url());
    match GrpcBackend::new(&url) {
        Err(RemoteError::Refused { .. }) => {}
        other => panic!("expected `Refused`, got {other:?}"),
    }
}

#[test]
fn tampered_blobs_come_back_as_they_are_and_tampered_entries_as_corrupt() {
    let Some(server) = BuildGridServer::start() else { return };
    let b = connect(&server);
    let object = |id: &BlobId| {
        let hex = id.sha256_hex();
        server.storage().join("cas/objects").join(&hex[..2]).join(&hex[2..])
    };
    for len in [4096, 2 << 20] {
        let bytes = unique("tampered", len);
        let id = BlobId::of(&bytes);
        b.put_blob(&id, &bytes).unwrap();
        let mut other = bytes.clone();
        other[100] ^= 1;
        std::fs::write(object(&id), &other).unwrap();
        let back = b.get_blob(&id).unwrap().expect("the blob is still there");
        assert!(back == other && !id.matches(&back), "{len} bytes: the server's bytes as they are");
    }

    // Entries are checked against their digest here, since no caller can.
    let key = BuildKey(Digest::of(&unique("tampered entry key", 8)));
    let entry = unique("tampered entry", 300);
    b.put_entry(key, &entry).unwrap();
    let mut other = entry.clone();
    other[0] ^= 1;
    std::fs::write(object(&BlobId::of(&entry)), &other).unwrap();
    match b.get_entry(key) {
        Err(RemoteError::Corrupt { .. }) => {}
        r => panic!("expected `Corrupt`, got {r:?}"),
    }
}

/// `tests/it/tls/`: a test CA and a certificate for 127.0.0.1 signed by it.
fn tls_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/tls").join(name)
}

#[test]
fn grpcs_works_with_the_servers_ca_and_not_without() {
    let Some(server) = BuildGridServer::start_tls(&tls_file("server.pem"), &tls_file("server.key")) else { return };
    assert!(server.url().starts_with("grpcs://"));
    let ca = std::fs::read(tls_file("ca.pem")).unwrap();
    let b = GrpcBackend::with_ca_certificate(&server.url(), &ca)
        .unwrap_or_else(|e| panic!("{e}\n--- bgd.log\n{}", server.log()));
    for len in [100, 2 << 20] {
        let bytes = unique("over TLS", len);
        let id = BlobId::of(&bytes);
        b.put_blob(&id, &bytes).unwrap();
        assert!(b.get_blob(&id).unwrap().is_some_and(|back| back == bytes), "{len} bytes over TLS");
    }
    let key = BuildKey(Digest::of(&unique("TLS key", 8)));
    b.put_entry(key, b"entry over TLS").unwrap();
    assert_eq!(b.get_entry(key).unwrap().as_deref(), Some(&b"entry over TLS"[..]));

    // A certificate no trusted root signed, and plaintext to a TLS port:
    // errors, quickly.
    let limit = Duration::from_secs(8);
    assert_unavailable_within(limit, "untrusted certificate", || GrpcBackend::new(&server.url()));
    let plain = server.url().replacen("grpcs://", "grpc://", 1);
    assert_unavailable_within(limit, "plaintext to TLS", || GrpcBackend::new(&plain));
    match GrpcBackend::with_ca_certificate(&server.url(), b"not a certificate") {
        Err(RemoteError::Refused { what, .. }) => assert_eq!(what, "the CA certificate"),
        other => panic!("expected `Refused`, got {other:?}"),
    }
}
