//! Serde helpers shared by the JSON decoders: tolerant field types (AWS writes some
//! booleans and numbers as strings, and some objects as `null` or `""`), and turning
//! serde's errors into record errors that name the field.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use vigil_model::Timestamp;

use crate::error::RecordErrorKind;
use crate::json_stream::offset_of;

/// A string field that borrows from the record when it has no escapes.
///
/// serde's own `Option<Cow<str>>` always copies; this visitor keeps the borrow, which
/// is most of the difference between a fast and a slow decoder.
#[derive(Debug, Clone)]
pub(crate) struct CowStr<'a>(pub Cow<'a, str>);

impl std::ops::Deref for CowStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(s)))
            }
            // Numbers and booleans where a string is expected (account ids written as
            // numbers, for one) are kept as their text rather than failing the record.
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) type Str<'a> = Option<CowStr<'a>>;

pub(crate) fn own(s: &Str<'_>) -> Option<String> {
    s.as_deref().filter(|v| !v.is_empty()).map(str::to_owned)
}

/// Why a record could not be decoded, and where to resume if its JSON is broken.
pub(crate) struct Failure {
    pub kind: RecordErrorKind,
    /// Byte offset of a syntax error inside the record.
    pub syntax_at: Option<usize>,
}

impl From<RecordErrorKind> for Failure {
    fn from(kind: RecordErrorKind) -> Self {
        Failure {
            kind,
            syntax_at: None,
        }
    }
}

/// Parses `text` as `T`. On a type error, parses again with path tracking so that the
/// message names the field (`userIdentity.type: invalid type: ...`); the hot path
/// pays nothing for that.
pub(crate) fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, Failure> {
    match serde_json::from_str::<T>(text) {
        Ok(v) => Ok(v),
        Err(e) if e.is_syntax() || e.is_eof() => {
            let at = offset_of(text.as_bytes(), e.line(), e.column());
            Err(Failure {
                kind: RecordErrorKind::InvalidJson(strip_position(&e.to_string())),
                syntax_at: Some(at),
            })
        }
        Err(e) => {
            let mut de = serde_json::Deserializer::from_str(text);
            let kind = match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(pe) => RecordErrorKind::BadField {
                    field: pe.path().to_string(),
                    reason: strip_position(&pe.inner().to_string()),
                },
                Ok(_) => RecordErrorKind::InvalidJson(strip_position(&e.to_string())),
            };
            Err(kind.into())
        }
    }
}

/// serde_json appends "at line L column C" relative to the record; the caller reports
/// the position in the file instead.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

pub(crate) fn required<'s>(
    v: &'s Str<'_>,
    field: &'static str,
) -> Result<&'s str, RecordErrorKind> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(RecordErrorKind::MissingField { field })
}

pub(crate) fn time_field(
    v: &Str<'_>,
    field: &'static str,
) -> Result<Option<Timestamp>, RecordErrorKind> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Timestamp::parse(s)
            .map(Some)
            .map_err(|e| RecordErrorKind::BadField {
                field: field.into(),
                reason: e.to_string(),
            }),
    }
}

/// An object that AWS sometimes writes as `null`, a string or an array: anything but
/// an object reads as `None` instead of failing the record.
pub(crate) struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|v| Lenient(Some(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A boolean written as `true` or `"true"`.
#[derive(Default, Clone, Copy)]
pub(crate) struct LooseBool(pub Option<bool>);

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean or \"true\"/\"false\"")
            }
            fn visit_bool<E>(self, b: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(Some(b)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LooseBool, E> {
                match s.to_ascii_lowercase().as_str() {
                    "true" | "yes" => Ok(LooseBool(Some(true))),
                    "false" | "no" => Ok(LooseBool(Some(false))),
                    "" => Ok(LooseBool(None)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
            fn visit_unit<E>(self) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number written as `5`, `5.0` or `"5.0"`.
#[derive(Default, Clone, Copy)]
pub(crate) struct LooseNum(pub Option<f64>);

impl<'de> Deserialize<'de> for LooseNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseNum;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E>(self, v: f64) -> Result<LooseNum, E> {
                Ok(LooseNum(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<LooseNum, E> {
                Ok(LooseNum(Some(v as f64)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<LooseNum, E> {
                Ok(LooseNum(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LooseNum, E> {
                if s.trim().is_empty() {
                    return Ok(LooseNum(None));
                }
                s.trim()
                    .parse()
                    .map(|v| LooseNum(Some(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))
            }
            fn visit_unit<E>(self) -> Result<LooseNum, E> {
                Ok(LooseNum(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `iam.amazonaws.com` → `iam`.
pub(crate) fn short_service(event_source: &str) -> &str {
    event_source
        .strip_suffix(".amazonaws.com")
        .or_else(|| event_source.strip_suffix(".amazonaws.com.cn"))
        .unwrap_or(event_source)
}

/// Splits a CloudTrail `sourceIPAddress` into an address or a host name.
pub(crate) fn split_source(v: Option<&str>) -> (Option<std::net::IpAddr>, Option<String>) {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => (None, None),
        Some(s) => match s.parse() {
            Ok(ip) => (Some(ip), None),
            Err(_) => (None, Some(s.to_owned())),
        },
    }
}

/// A stable id for records that carry none, as `<prefix>-<16 hex digits>`: a 64-bit
/// multiply-rotate hash over 8-byte words (the same on every platform). It runs once
/// per flow record, so it is written for speed; it is an id, not a security hash.
pub(crate) fn digest_id(prefix: &str, text: &str) -> String {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = text.as_bytes();
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 32;
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    for shift in (0..16).rev() {
        id.push(char::from(
            b"0123456789abcdef"[((h >> (shift * 4)) & 0xf) as usize],
        ));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_ids_are_stable_and_distinct() {
        // Fixed values: ids are stored, so the function must never change silently.
        assert_eq!(super::digest_id("vpcflow", ""), "vpcflow-0000000000000000");
        let a = super::digest_id(
            "vpcflow",
            "2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK",
        );
        let b = super::digest_id(
            "vpcflow",
            "2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1 2 REJECT OK",
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), "vpcflow-".len() + 16);
    }
}
