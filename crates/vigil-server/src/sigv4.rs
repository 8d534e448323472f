//! Verifying AWS Signature Version 4, as a server: the request is canonicalized the
//! way AWS's signers do (`aws-sigv4`, botocore, awscurl), the signature recomputed
//! from the secret of the access key it names, and the two compared in constant time.
//!
//! Both forms are accepted: the `Authorization: AWS4-HMAC-SHA256 …` header with
//! `X-Amz-Date`, and the presigned query (`X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`). The
//! request time must be within the allowed clock skew (header form) or within its
//! expiry (presigned form); the credential scope must name this server's region and
//! service and the request's own date; `host` must be signed; and a body must hash to
//! what was signed (a header form `X-Amz-Content-Sha256` that disagrees with the body
//! is refused, and `UNSIGNED-PAYLOAD` is only taken from a presigned request without
//! a body).
//!
//! What it is not: a policy engine. It answers "which configured key signed this";
//! what that key's principal may do is the router's business.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
/// AWS's own limit on a presigned URL's lifetime: seven days.
const MAX_EXPIRES_S: i64 = 7 * 24 * 3600;

/// Why a request's signature was refused. Each maps to the error code AWS gives
/// for the same fault; the message says what is wrong and never echoes a secret
/// or the signature the server expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the request is not signed: it has neither an Authorization header nor X-Amz-Signature"
    )]
    Missing,
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("the access key id {0} is not known")]
    UnknownKey(String),
    #[error("signature expired or not yet valid: request time {request} is more than {skew_s} s from server time {server}")]
    Skew {
        request: String,
        server: String,
        skew_s: i64,
    },
    #[error("the presigned request expired at {0}")]
    Expired(String),
    #[error("the credential scope {0} is not valid for this server")]
    Scope(String),
    #[error("the body does not hash to the X-Amz-Content-Sha256 that was signed")]
    PayloadHash,
    #[error("the request signature does not match the signature calculated from it")]
    Mismatch,
}

impl AuthError {
    /// The AWS error code for this fault.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Malformed(_) => "IncompleteSignatureException",
            AuthError::UnknownKey(_) => "UnrecognizedClientException",
            AuthError::Skew { .. } | AuthError::Expired(_) => "InvalidSignatureException",
            AuthError::Scope(_) => "InvalidSignatureException",
            AuthError::PayloadHash => "XAmzContentSHA256Mismatch",
            AuthError::Mismatch => "SignatureDoesNotMatch",
        }
    }
}

/// One configured access key.
#[derive(Clone, Debug)]
pub struct Credential<P> {
    pub secret: String,
    /// Who signs with it (a name and a role, to the router).
    pub principal: P,
}

/// What the verifier checks against.
#[derive(Clone, Debug)]
pub struct Verifier<P> {
    pub region: String,
    pub service: String,
    pub max_skew_s: i64,
    keys: HashMap<String, Credential<P>>,
}

/// The parts of a request the signature covers, as they arrived.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names (any case) and values, repeated names allowed.
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: &'a [u8],
}

/// A verified request: who signed it.
#[derive(Debug)]
pub struct Verified<'v, P> {
    pub access_key: String,
    pub principal: &'v P,
}

impl<P> Verifier<P> {
    pub fn new(region: &str, service: &str, max_skew_s: i64) -> Verifier<P> {
        Verifier {
            region: region.to_owned(),
            service: service.to_owned(),
            max_skew_s,
            keys: HashMap::new(),
        }
    }

    pub fn add_key(&mut self, access_key: &str, credential: Credential<P>) {
        self.keys.insert(access_key.to_owned(), credential);
    }

    /// The credential of an access key, if it is configured.
    pub fn credential(&self, access_key: &str) -> Option<&Credential<P>> {
        self.keys.get(access_key)
    }

    /// Checks `req`'s signature as of `now_s` (Unix seconds).
    pub fn verify<'v>(
        &'v self,
        req: &SignedRequest<'_>,
        now_s: i64,
    ) -> Result<Verified<'v, P>, AuthError> {
        let auth = header(req, "authorization");
        let parts = match auth {
            Some(a) => from_header(req, a)?,
            None if query_has(req.query, "X-Amz-Signature") => from_query(req)?,
            None => return Err(AuthError::Missing),
        };
        // The scope: AKID/yyyymmdd/region/service/aws4_request.
        let scope: Vec<&str> = parts.credential.split('/').collect();
        let [akid, date, region, service, "aws4_request"] = scope[..] else {
            return Err(AuthError::Malformed(format!(
                "credential {:?} is not AKID/date/region/service/aws4_request",
                parts.credential
            )));
        };
        let request_s = parse_amz_date(&parts.amz_date).ok_or_else(|| {
            AuthError::Malformed(format!(
                "X-Amz-Date {:?} is not yyyymmddThhmmssZ",
                parts.amz_date
            ))
        })?;
        match parts.expires_s {
            None => {
                if (now_s - request_s).abs() > self.max_skew_s {
                    return Err(AuthError::Skew {
                        request: parts.amz_date.clone(),
                        server: amz_date(now_s),
                        skew_s: self.max_skew_s,
                    });
                }
            }
            Some(expires) => {
                if now_s + self.max_skew_s < request_s {
                    return Err(AuthError::Skew {
                        request: parts.amz_date.clone(),
                        server: amz_date(now_s),
                        skew_s: self.max_skew_s,
                    });
                }
                if now_s > request_s + expires {
                    return Err(AuthError::Expired(amz_date(request_s + expires)));
                }
            }
        }
        if date != &parts.amz_date[..8] || region != self.region || service != self.service {
            return Err(AuthError::Scope(format!(
                "{date}/{region}/{service}/aws4_request"
            )));
        }
        if !parts.signed_headers.iter().any(|h| h == "host") {
            return Err(AuthError::Malformed("the host header is not signed".into()));
        }
        let credential = self
            .keys
            .get(akid)
            .ok_or_else(|| AuthError::UnknownKey(akid.to_owned()))?;
        let given = unhex(&parts.signature)
            .ok_or_else(|| AuthError::Malformed("the signature is not 64 hex digits".into()))?;
        let key = signing_key(&credential.secret, date, region, service);
        let scope_str = &parts.credential[akid.len() + 1..];
        // Every payload hash the request may have been signed with (a presigned
        // GET is signed over the empty body by most signers, over UNSIGNED-PAYLOAD
        // by S3-style ones); each candidate is compared in constant time.
        let mut matched = false;
        let queries = canonical_queries(req.query, parts.presigned)?;
        let payloads = payload_hashes(req, parts.presigned)?;
        for (query, payload) in queries
            .iter()
            .flat_map(|q| payloads.iter().map(move |p| (q, p)))
        {
            let canonical = canonical_request(req, &parts.signed_headers, query, payload)?;
            let to_sign = format!(
                "{ALGORITHM}\n{}\n{scope_str}\n{}",
                parts.amz_date,
                hex(&Sha256::digest(canonical.as_bytes()))
            );
            let expected = hmac(&key, to_sign.as_bytes());
            matched |= bool::from(expected.as_slice().ct_eq(given.as_slice()));
        }
        if matched {
            Ok(Verified {
                access_key: akid.to_owned(),
                principal: &credential.principal,
            })
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

/// What the signature says of itself, from either form.
struct Parts {
    credential: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    /// Set for the presigned form.
    expires_s: Option<i64>,
    presigned: bool,
}

fn header<'a>(req: &'a SignedRequest<'_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn from_header(req: &SignedRequest<'_>, auth: &str) -> Result<Parts, AuthError> {
    let rest = auth
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            AuthError::Malformed(format!("the Authorization header is not {ALGORITHM}"))
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let field = field.trim();
        let Some((k, v)) = field.split_once('=') else {
            return Err(AuthError::Malformed(format!("{field:?} is not key=value")));
        };
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(AuthError::Malformed(format!("unknown field {k:?}"))),
        };
        if slot.replace(v.to_owned()).is_some() {
            return Err(AuthError::Malformed(format!("{k} given twice")));
        }
    }
    let missing =
        |what: &str| AuthError::Malformed(format!("the Authorization header lacks {what}"));
    let amz_date = header(req, "x-amz-date").ok_or_else(|| missing("an X-Amz-Date header"))?;
    let signed_headers = split_signed(&signed.ok_or_else(|| missing("SignedHeaders"))?);
    if !signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(AuthError::Malformed(
            "the x-amz-date header is not signed".into(),
        ));
    }
    Ok(Parts {
        credential: credential.ok_or_else(|| missing("Credential"))?,
        signed_headers,
        signature: signature.ok_or_else(|| missing("Signature"))?,
        amz_date: amz_date.to_owned(),
        expires_s: None,
        presigned: false,
    })
}

fn from_query(req: &SignedRequest<'_>) -> Result<Parts, AuthError> {
    let pairs = query_pairs(req.query)?;
    let get = |k: &str| -> Result<String, AuthError> {
        let mut it = pairs.iter().filter(|(n, _)| n == k);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Ok(v.clone()),
            (None, _) => Err(AuthError::Malformed(format!(
                "the presigned query lacks {k}"
            ))),
            (Some(_), Some(_)) => Err(AuthError::Malformed(format!("{k} given twice"))),
        }
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(AuthError::Malformed(format!(
            "X-Amz-Algorithm is not {ALGORITHM}"
        )));
    }
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES_S).contains(e))
        .ok_or_else(|| {
            AuthError::Malformed(format!("X-Amz-Expires is not 1–{MAX_EXPIRES_S} seconds"))
        })?;
    Ok(Parts {
        credential: get("X-Amz-Credential")?,
        signed_headers: split_signed(&get("X-Amz-SignedHeaders")?),
        signature: get("X-Amz-Signature")?,
        amz_date: get("X-Amz-Date")?,
        expires_s: Some(expires),
        presigned: true,
    })
}

fn split_signed(s: &str) -> Vec<String> {
    s.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect()
}

/// The payload hashes the signature may cover. A header-form request covers the
/// body, through `X-Amz-Content-Sha256` when it sends one (which must then be the
/// body's hash). A presigned request covers no body: it may carry none.
fn payload_hashes(req: &SignedRequest<'_>, presigned: bool) -> Result<Vec<String>, AuthError> {
    let actual = hex(&Sha256::digest(req.body));
    match header(req, "x-amz-content-sha256") {
        Some(UNSIGNED) if presigned && req.body.is_empty() => Ok(vec![UNSIGNED.to_owned()]),
        Some(claimed) if claimed.eq_ignore_ascii_case(&actual) => Ok(vec![claimed.to_owned()]),
        Some(_) => Err(AuthError::PayloadHash),
        None if presigned => {
            if req.body.is_empty() {
                Ok(vec![actual, UNSIGNED.to_owned()])
            } else {
                Err(AuthError::PayloadHash)
            }
        }
        None => Ok(vec![actual]),
    }
}

/// The canonical request of SigV4.
fn canonical_request(
    req: &SignedRequest<'_>,
    signed: &[String],
    query: &str,
    payload: &str,
) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(query);
    out.push('\n');
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| trim_value(v))
            .collect();
        if values.is_empty() {
            return Err(AuthError::Malformed(format!(
                "the signed header {name} is not in the request"
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(payload);
    Ok(out)
}

/// The canonical query strings the signature may cover: the query decoded and
/// encoded again the strict SigV4 way (what `aws-sigv4` and AWS's services do),
/// and, when it differs, its pairs sorted as sent (what botocore-based signers such
/// as awscurl sign when handed an already-encoded URL, e.g. a `+` for a space).
/// Both are made only of what the request carries, so either binds the signature
/// to the query the server reads.
fn canonical_queries(query: &str, presigned: bool) -> Result<Vec<String>, AuthError> {
    let keep = |k: &str| !(presigned && k == "X-Amz-Signature");
    let mut strict: Vec<(String, String)> = query_pairs(query)?
        .into_iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    strict.sort();
    let mut raw: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .filter(|(k, _)| keep(&percent_encoding::percent_decode_str(k).decode_utf8_lossy()))
        .collect();
    raw.sort();
    let join = |pairs: &mut dyn Iterator<Item = String>| pairs.collect::<Vec<_>>().join("&");
    let strict = join(&mut strict.iter().map(|(k, v)| format!("{k}={v}")));
    let raw = join(&mut raw.iter().map(|(k, v)| format!("{k}={v}")));
    Ok(if raw == strict {
        vec![strict]
    } else {
        vec![strict, raw]
    })
}

/// A header value with its ends trimmed and inner runs of spaces made one.
fn trim_value(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    s.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// The path with `.` and `..` segments resolved and empty segments dropped (as
/// AWS's signers normalize it), each segment then URI-encoded once more — the
/// signers encode the already-encoded path, so a `%20` is signed as `%2520`.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s, true))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// SigV4's URI encoding: everything but `A–Z a–z 0–9 - _ . ~` as `%XX` (upper case),
/// `/` too when `slash` is set.
fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (b == b'/' && !slash)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string's pairs, percent-decoded (`+` stays a plus, as AWS reads it).
fn query_pairs(q: &str) -> Result<Vec<(String, String)>, AuthError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| AuthError::Malformed(format!("query part {s:?} is not UTF-8")))
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn query_has(q: &str, key: &str) -> bool {
    q.split('&').any(|p| {
        let k = p.split_once('=').map_or(p, |(k, _)| k);
        percent_encoding::percent_decode_str(k).decode_utf8_lossy() == key
    })
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `yyyymmddThhmmssZ` as Unix seconds: exactly that shape (the model's parser
/// also takes RFC 3339, which SigV4 does not).
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape {
        return None;
    }
    vigil_model::Timestamp::parse(s).ok().map(|t| t.as_secs())
}

/// Unix seconds as `yyyymmddThhmmssZ`.
pub fn amz_date(t: i64) -> String {
    let ts = vigil_model::Timestamp::from_secs(t);
    let (y, mo, d, h, mi, s, _) = ts.to_parts();
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_amz_date(&amz_date(t)), Some(t), "{t}");
        }
        assert_eq!(parse_amz_date("20240230T000000"), None);
        assert_eq!(parse_amz_date("2024023xT000000Z"), None);
        assert_eq!(parse_amz_date("20241301T000000Z"), None);
    }

    #[test]
    fn paths_are_normalized_and_encoded_again() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_uri("/a%20b/"), "/a%2520b/");
        assert_eq!(uri_encode("a b+c~", true), "a%20b%2Bc~");
    }

    /// The example AWS documents for deriving a signing key (secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 20120215, us-east-1, iam).
    #[test]
    fn signing_key_matches_the_documented_example() {
        let k = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
