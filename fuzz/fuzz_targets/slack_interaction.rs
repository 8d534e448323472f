//! What reaches `POST /slack/interactions`: any headers and body are verified
//! or refused, and a body is read as a click or refused with a reason, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the timestamp header, the second the signature; the
    // rest is the body.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let ts = parts.next().unwrap_or_default();
    let sig = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut headers = vigil_server::slack::Headers::new();
    if let (Ok(ts), Ok(sig)) = (std::str::from_utf8(ts), std::str::from_utf8(sig)) {
        if let (Ok(ts), Ok(sig)) = (ts.parse(), sig.parse()) {
            headers.insert("x-slack-request-timestamp", ts);
            headers.insert("x-slack-signature", sig);
        }
    }
    let _ = vigil_server::slack::verify("8f742231b10e8888abcd99yyyzzz85a5", &headers, body, 1_531_420_618);
    let _ = vigil_server::slack::click(body);
});
