//! The router forwards to its backends and switches them without refusing a connection.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

use brr_run::router::Router;

/// A backend answering every connection with `name`.
fn backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0_u8; 64];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(name.as_bytes());
        }
    });
    port
}

fn ask(port: u16) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.write_all(b"hi").expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn forwards_to_the_current_backends() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let router = Router::start(port, listener);
    let (a, b) = (backend("a"), backend("b"));
    router.add(a);
    assert_eq!(ask(port), "a");
    router.set(vec![b]);
    for _ in 0..5 {
        assert_eq!(ask(port), "b", "after a switch only the new backend answers");
    }
    router.add(a);
    let answers: std::collections::BTreeSet<String> = (0..6).map(|_| ask(port)).collect();
    assert_eq!(answers.len(), 2, "round robin over both: {answers:?}");
    // A connection is counted until both directions are done, a moment
    // after the client read its answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while router.active(a) + router.active(b) > 0 {
        assert!(std::time::Instant::now() < deadline, "closed connections are still counted");
        std::thread::yield_now();
    }
    router.stop();
}
