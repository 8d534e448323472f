//! Arbitrary requests to the SigV4 verifier: method, path, query, Authorization,
//! X-Amz-Date, X-Amz-Content-Sha256 and body, split at 0x01 bytes. It must never
//! panic, and nothing it accepts can have been signed without the secret, so a
//! request it lets through must carry the one signature the secret gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_server::sigv4::{Credential, SignedRequest, Verifier};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 1);
    let mut next = || parts.next().unwrap_or_default();
    let (method, path, query) = (next(), next(), next());
    let (auth, date, sha, body) = (next(), next(), next(), next());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (method, path, query) = (text(method), text(path), text(query));
    let mut v = Verifier::new("us-east-1", "execute-api", 300);
    v.add_key(
        "AKIDEXAMPLE",
        Credential {
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            principal: (),
        },
    );
    let mut headers: Vec<(&str, &[u8])> = vec![("host", b"127.0.0.1:8750")];
    for (name, value) in [("authorization", auth), ("x-amz-date", date), ("x-amz-content-sha256", sha)] {
        if !value.is_empty() {
            headers.push((name, value));
        }
    }
    let req = SignedRequest {
        method: &method,
        path: &path,
        query: &query,
        headers,
        body,
    };
    // A random signature passing is a 2^-256 event; if it happens, it is a bug.
    assert!(v.verify(&req, 1_700_000_000).is_err());
});
