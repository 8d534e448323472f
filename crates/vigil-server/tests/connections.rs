//! The listener as an attacker probes it: idle, half-sent and slow connections
//! are cut after their deadline, and connections past the cap wait unaccepted
//! instead of taking descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use vigil_model::Span;
use vigil_server::{ApiConfig, AppState};
use vigil_store::{Grouping, SharedStore, Store};

mod serving;

struct Server(serving::Serving);

impl Server {
    fn start(max_connections: usize) -> Server {
        let store = Store::in_memory(Grouping::default()).unwrap();
        let config = ApiConfig {
            header_timeout: Span::from_millis(500),
            body_timeout: Span::from_millis(500),
            max_connections,
            ..ApiConfig::default()
        };
        let app = Arc::new(AppState::new(&config, SharedStore::new(store), None).unwrap());
        Server(serving::Serving::start(app))
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.0.addr).unwrap();
        // A bound on every read, so that a server that never closes fails the
        // test instead of hanging it; far above the 500 ms deadlines.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }
}

/// Reads until the server closes the connection; what it sent. Panics if the
/// read bound passes first (the server kept the connection open).
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

const REQUEST: &str = "GET /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let server = Server::start(64);
    let mut s = server.connect();
    read_until_closed(&mut s);
}

#[test]
fn a_half_sent_header_is_cut_off() {
    let server = Server::start(64);
    let mut s = server.connect();
    s.write_all(b"GET /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let answer = read_until_closed(&mut s);
    // hyper answers 408 where it can, or just closes: never a 200 or 403.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_its_request() {
    let server = Server::start(64);
    let mut s = server.connect();
    s.write_all(REQUEST.as_bytes()).unwrap();
    let answer = read_until_closed(&mut s);
    // The unsigned request is answered (403), then the idle connection is cut.
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[test]
fn a_body_that_stops_half_way_is_answered_408() {
    let server = Server::start(64);
    let mut s = server.connect();
    s.write_all(
        b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"Records\":[",
    )
    .unwrap();
    let answer = read_until_closed(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeoutException"), "{answer}");
}

#[test]
fn connections_past_the_cap_wait_until_others_close() {
    let server = Server::start(4);
    // Four silent connections take every slot.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    // A fifth, well-behaved client is still answered: once the silent ones
    // are cut off at their deadline, its connection is accepted.
    let mut late = server.connect();
    late.write_all(REQUEST.as_bytes()).unwrap();
    let answer = read_until_closed(&mut late);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // By then every silent connection has been closed by the server.
    for s in &mut idle {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent connection is still open: {other:?}"),
        }
    }
}
