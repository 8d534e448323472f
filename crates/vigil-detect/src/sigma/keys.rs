//! The bytes correlations group and count by: an event's group-by values (or the
//! values it counts) written one after another, each with a tag, so no value is
//! rendered as text on the hot path and no two lists of values share an encoding.
//!
//! A value is written the same way whether it comes typed or as text: an IPv4
//! address as its four octets (text that reads as one, in the one way an address is
//! written, is written so too), a decimal number likewise as a number, anything else
//! as its text. So a flow's address and a CloudTrail `sourceIPAddress` land in the
//! same group. A missing field and an empty string are both the empty text, as they
//! were when the keys were text. Keys turn back into text only when a correlation
//! fires ([`texts`]).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::value::{push_dotted, push_u64, Typed};

const TEXT: u8 = 0;
const V4: u8 = 1;
const NUM: u8 = 2;

/// Appends a text value; `false` when it is empty.
pub fn push_text(buf: &mut Vec<u8>, s: &str) -> bool {
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_digit) {
        if let Some(n) = canonical_number(b) {
            push_num(buf, n);
            return true;
        }
        // Only the usual dotted form parses (no leading zeros, four parts), so the
        // address writes back as this very text.
        if let Ok(a) = s.parse::<Ipv4Addr>() {
            push_v4(buf, a.octets());
            return true;
        }
    }
    buf.push(TEXT);
    push_len(buf, b.len());
    buf.extend_from_slice(b);
    !b.is_empty()
}

/// Appends a typed value (never empty but for empty text).
pub fn push_typed(buf: &mut Vec<u8>, v: &Typed<'_>) -> bool {
    match v {
        Typed::Text(t) => push_text(buf, t),
        Typed::Num(n) => {
            push_num(buf, *n);
            true
        }
        Typed::Ip(IpAddr::V4(a)) => {
            push_v4(buf, a.octets());
            true
        }
        Typed::Ip(v6) => push_text(buf, &v6.to_string()),
    }
}

fn push_num(buf: &mut Vec<u8>, n: u64) {
    buf.push(NUM);
    buf.extend_from_slice(&n.to_le_bytes());
}

fn push_v4(buf: &mut Vec<u8>, octets: [u8; 4]) {
    buf.push(V4);
    buf.extend_from_slice(&octets);
}

/// `b` as a number when it is one written the one way `u64` writes it.
fn canonical_number(b: &[u8]) -> Option<u64> {
    if b.len() > 20 || (b.len() > 1 && b[0] == b'0') || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Lengths as LEB128.
fn push_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn read_len(b: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

/// The values of a key as text, in order.
pub fn texts(key: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&tag) = key.get(at) {
        at += 1;
        let mut s = String::new();
        match tag {
            V4 => {
                let Some(o) = key.get(at..at + 4) else { break };
                push_dotted(&mut s, o);
                at += 4;
            }
            NUM => {
                let Some(n) = key.get(at..at + 8).and_then(|b| b.try_into().ok()) else {
                    break;
                };
                push_u64(&mut s, u64::from_le_bytes(n));
                at += 8;
            }
            _ => {
                let Some(n) = read_len(key, &mut at) else {
                    break;
                };
                let Some(t) = key.get(at..at + n) else { break };
                s = String::from_utf8_lossy(t).into_owned();
                at += n;
            }
        }
        out.push(s);
    }
    out
}

/// Up to this many bytes a counted value is held in place, without an allocation.
const INLINE: usize = 22;

/// A counted value: in place when short (an address, a port, most names), else
/// shared between the events that have it and the window's count of it. Hashes and
/// compares as its bytes, so maps of them are searched with a `&[u8]`.
#[derive(Clone)]
pub enum Value {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl Value {
    pub fn new(b: &[u8]) -> Value {
        match b.len() {
            n if n <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..n].copy_from_slice(b);
                Value::Inline {
                    len: n as u8,
                    bytes,
                }
            }
            _ => Value::Shared(Arc::from(b)),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Value::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Value::Shared(b) => b,
        }
    }
}

impl Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Value {}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", texts(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn key(parts: &[Typed<'_>]) -> Vec<u8> {
        let mut b = Vec::new();
        for p in parts {
            push_typed(&mut b, p);
        }
        b
    }

    #[test]
    fn typed_and_text_values_write_alike() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let text = |s: &'static str| Typed::Text(Cow::Borrowed(s));
        assert_eq!(key(&[Typed::Ip(ip)]), key(&[text("10.0.0.1")]));
        assert_eq!(key(&[Typed::Num(22)]), key(&[text("22")]));
        // Other spellings of the same address or number stay text.
        for other in ["010.0.0.1", "10.0.0.1 ", "022", "+22", "22.0"] {
            assert_ne!(key(&[text(other)]), key(&[text("10.0.0.1")]));
            assert_ne!(key(&[text(other)]), key(&[Typed::Num(22)]));
            assert_eq!(texts(&key(&[text(other)])), vec![other]);
        }
        // Lists of values do not run into each other.
        assert_ne!(key(&[text("a"), text("bc")]), key(&[text("ab"), text("c")]));
        assert_ne!(key(&[text("a\u{1f}b")]), key(&[text("a"), text("b")]));
    }

    #[test]
    fn keys_read_back_as_text() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let long = "x".repeat(300);
        let k = key(&[
            Typed::Ip(ip),
            Typed::Num(u64::MAX),
            Typed::Text(Cow::Borrowed("")),
            Typed::Ip(v6),
            Typed::Text(Cow::Borrowed(&long)),
            Typed::Text(Cow::Borrowed("0")),
        ]);
        assert_eq!(
            texts(&k),
            vec![
                "203.0.113.9".to_owned(),
                u64::MAX.to_string(),
                String::new(),
                "2001:db8::1".to_owned(),
                long.clone(),
                "0".to_owned()
            ]
        );
        assert_eq!(canonical_number(b"18446744073709551616"), None);
    }

    #[test]
    fn values_compare_and_hash_as_their_bytes() {
        use std::collections::HashMap;
        let long = vec![7u8; 40];
        let mut m: HashMap<Value, u32> = HashMap::new();
        m.insert(Value::new(b"short"), 1);
        m.insert(Value::new(&long), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
        assert_eq!(m.get(&long[..]), Some(&2));
        assert_eq!(m.get(&b"shor"[..]), None);
        assert!(matches!(Value::new(&long), Value::Shared(_)));
    }
}
