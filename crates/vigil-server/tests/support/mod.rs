//! Calling a Vigil API from tests: requests signed by the official `aws-sigv4`
//! signer, sent over a plain HTTP/1.1 connection on loopback. Shared by the
//! server's tests and the binary's (which include this file by path).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use serde_json::Value;

pub const REGION: &str = "us-east-1";
pub const SERVICE: &str = "execute-api";

pub struct Key {
    pub id: &'static str,
    pub secret: &'static str,
}

/// How to sign a request.
#[derive(Clone)]
pub struct Signing {
    pub time: SystemTime,
    pub presign: Option<Duration>,
    pub region: &'static str,
    pub service: &'static str,
}

impl Default for Signing {
    fn default() -> Self {
        Signing {
            time: SystemTime::now(),
            presign: None,
            region: REGION,
            service: SERVICE,
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// The signed request: its path-and-query and headers, by the official signer.
pub fn signed(
    addr: SocketAddr,
    key: &Key,
    method: &str,
    path_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    s: &Signing,
) -> (String, Vec<(String, String)>) {
    let host = addr.to_string();
    let url = format!("http://{host}{path_query}");
    let identity = Credentials::new(key.id, key.secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if let Some(d) = s.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(d);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(s.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let signable =
        SignableRequest::new(method, &url, all.iter().copied(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut out_headers: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in instructions.headers() {
        out_headers.push((k.to_owned(), v.to_owned()));
    }
    let mut pq = path_query.to_owned();
    for (k, v) in instructions.params() {
        pq.push(if pq.contains('?') { '&' } else { '?' });
        // SigV4's own set: all but A–Z a–z 0–9 - _ . ~
        const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SET).to_string();
        pq.push_str(&format!("{}={}", enc(k), enc(v)));
    }
    (pq, out_headers)
}

/// One HTTP/1.1 exchange over a fresh connection: the status, the headers
/// (names in lower case) and the body, unchunked.
pub fn raw_exchange(
    addr: SocketAddr,
    method: &str,
    path_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("{method} {path_query} HTTP/1.1\r\n");
    let mut has_host = false;
    for (k, v) in headers {
        has_host |= k.eq_ignore_ascii_case("host");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_host {
        req.push_str(&format!("host: {addr}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = unchunk(&body);
    }
    (status, headers, body)
}

/// One HTTP/1.1 exchange over a fresh connection, its body read as JSON.
pub fn raw_call(
    addr: SocketAddr,
    method: &str,
    path_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    let (status, headers, body) = raw_exchange(addr, method, path_query, headers, body);
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
    out
}
