//! Where a JSON object or array ends, found 64 bytes at a time.
//!
//! The record splitter (`vigil-ingest`) and the lazy record reader of detection
//! (`vigil-detect`) only need where values end: the brackets that lie outside strings.
//! Walking a CloudTrail record byte by byte, or string by string with `memchr`, costs
//! more than parsing half of it (a record has some sixty short strings, and a search
//! call has a fixed price). Here each 64-byte block becomes three bit masks (quotes,
//! backslashes, brackets); escaped quotes are taken out, the bits inside strings are
//! found with a prefix XOR over the quotes, and only the few brackets left are looked
//! at one by one. It does not check the JSON between the brackets (the decoders do).
//!
//! [`container_end_bytewise`] is the plain byte-at-a-time walk that gives the same
//! answers; tests and a fuzz target hold the two to each other.

/// What scanning a value found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The value ends before this index.
    Done(usize),
    /// The input ends inside the value.
    Incomplete,
    /// The nesting is broken at this index.
    Bad(usize, &'static str),
}

/// Deeper nesting is reported as damage rather than followed.
pub const MAX_DEPTH: usize = 512;

const BLOCK: usize = 64;

/// One bit per byte of a block: bit `i` for byte `i`.
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{`, `}`, `[` or `]`.
    bracket: u64,
}

#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2, which every intrinsic here needs, is part of the x86_64 baseline;
    // each load reads one 16-byte `lane` of `block` and has no alignment needs.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        // `[` and `]` differ from `{` and `}` only in bit 0x20.
        let case = _mm_set1_epi8(0x20);
        let open = _mm_set1_epi8(b'{' as i8);
        let close = _mm_set1_epi8(b'}' as i8);
        let bits = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16);
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            bracket: 0,
        };
        for (k, lane) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            let folded = _mm_or_si128(v, case);
            let at = 16 * k;
            m.quote |= bits(_mm_cmpeq_epi8(v, quote)) << at;
            m.backslash |= bits(_mm_cmpeq_epi8(v, backslash)) << at;
            m.bracket |= bits(_mm_or_si128(
                _mm_cmpeq_epi8(folded, open),
                _mm_cmpeq_epi8(folded, close),
            )) << at;
        }
        m
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks {
        quote: 0,
        backslash: 0,
        bracket: 0,
    };
    for (i, &c) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'}' | b'[' | b']' => m.bracket |= bit,
            _ => {}
        }
    }
    m
}

/// The bytes escaped by a backslash in a block whose backslashes are `backslash`;
/// `carry` says the previous block's last byte was a backslash that escapes this
/// block's first byte, and is set the same way for the next block.
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    *carry = false;
    // A backslash that is itself escaped escapes nothing.
    let mut starts = backslash & !escaped;
    while starts != 0 {
        let p = starts.trailing_zeros();
        if p == 63 {
            *carry = true;
        } else {
            escaped |= 1 << (p + 1);
        }
        // The escaped byte (when it is a backslash) starts nothing.
        starts &= !(3u64 << p);
    }
    escaped
}

/// Bit `i` set when an odd number of `quotes` lie at or before bit `i`.
fn prefix_xor(quotes: u64) -> u64 {
    let mut x = quotes;
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The end of the object or array whose opening bracket is `b[from]`: the index after
/// its closing bracket. `stack` is scratch for the open brackets.
pub fn container_end(b: &[u8], from: usize, stack: &mut Vec<u8>) -> Scan {
    stack.clear();
    let mut escape_carry = false;
    let mut in_string = false;
    let mut at = from;
    let mut block: [u8; BLOCK];
    while at < b.len() {
        let n = (b.len() - at).min(BLOCK);
        let chunk: &[u8; BLOCK] = match b[at..].first_chunk::<BLOCK>() {
            Some(full) => full,
            None => {
                // The tail: zeros are neither quotes nor brackets.
                block = [0; BLOCK];
                block[..n].copy_from_slice(&b[at..]);
                &block
            }
        };
        let m = masks(chunk);
        let escaped = escaped(m.backslash, &mut escape_carry);
        let quotes = m.quote & !escaped;
        // Bits inside strings (with the opening quote, without the closing one).
        let strings = prefix_xor(quotes) ^ if in_string { u64::MAX } else { 0 };
        in_string = strings >> 63 == 1;
        let mut brackets = m.bracket & !strings & !escaped;
        while brackets != 0 {
            let i = at + brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            match b[i] {
                c @ (b'{' | b'[') => {
                    if stack.len() >= MAX_DEPTH {
                        return Scan::Bad(i, "nesting deeper than 512 levels");
                    }
                    stack.push(c);
                }
                c => {
                    let open = if c == b'}' { b'{' } else { b'[' };
                    if stack.pop() != Some(open) {
                        return Scan::Bad(i, "mismatched closing bracket");
                    }
                    if stack.is_empty() {
                        return Scan::Done(i + 1);
                    }
                }
            }
        }
        at += n;
    }
    Scan::Incomplete
}

/// [`container_end`] one byte at a time: the reference it is tested against. A
/// backslash escapes the next byte wherever it is (outside strings it makes the record
/// invalid anyway, which the decoder reports).
pub fn container_end_bytewise(b: &[u8], from: usize, stack: &mut Vec<u8>) -> Scan {
    stack.clear();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // To the closing quote, stepping over escapes.
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Scan::Incomplete,
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            // Never valid outside a string; it escapes the next byte there too, as in
            // the block scan.
            b'\\' => i += 1,
            c @ (b'{' | b'[') => {
                if stack.len() >= MAX_DEPTH {
                    return Scan::Bad(i, "nesting deeper than 512 levels");
                }
                stack.push(c);
            }
            c @ (b'}' | b']') => {
                let open = if c == b'}' { b'{' } else { b'[' };
                if stack.pop() != Some(open) {
                    return Scan::Bad(i, "mismatched closing bracket");
                }
                if stack.is_empty() {
                    return Scan::Done(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Scan::Incomplete
}

/// Whether the two scans agree on `data` read from its first bracket (for the fuzz
/// target; `true` when there is no bracket).
#[doc(hidden)]
pub fn scans_agree(data: &[u8]) -> bool {
    let Some(from) = data.iter().position(|c| matches!(c, b'{' | b'[')) else {
        return true;
    };
    let mut stack = Vec::new();
    let fast = container_end(data, from, &mut stack);
    let slow = container_end_bytewise(data, from, &mut stack);
    fast == slow
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn end(s: &str) -> Scan {
        let from = s.find(['{', '[']).unwrap();
        container_end(s.as_bytes(), from, &mut Vec::new())
    }

    #[test]
    fn finds_the_closing_bracket() {
        assert_eq!(end(r#"{"a":[1,{"b":"}"}]} tail"#), Scan::Done(19));
        assert_eq!(end(r#"  [{"x":"\"]"}]"#), Scan::Done(15));
        assert_eq!(end(r#"{"a":"\\"}"#), Scan::Done(10));
        assert_eq!(end(r#"{"a":"\\\"}"}"#), Scan::Done(13));
        assert_eq!(
            end(r#"{"a":[}"#),
            Scan::Bad(6, "mismatched closing bracket")
        );
        assert_eq!(end(r#"{"a":"}"#), Scan::Incomplete);
        assert_eq!(end(r#"{"a":1"#), Scan::Incomplete);
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            end(&deep),
            Scan::Bad(MAX_DEPTH, "nesting deeper than 512 levels")
        );
    }

    #[test]
    fn strings_and_escapes_across_blocks() {
        // A run of backslashes ending on every position around the 64-byte boundary,
        // before a quote that is escaped or not.
        for pad in 50..70 {
            for slashes in 0..5 {
                let s = format!("{{\"{}{}\"}}\"}}", "x".repeat(pad), "\\".repeat(slashes));
                let b = s.as_bytes();
                assert_eq!(
                    container_end(b, 0, &mut Vec::new()),
                    container_end_bytewise(b, 0, &mut Vec::new()),
                    "{s}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random text over the characters that matter, long enough to span blocks.
        #[test]
        fn agrees_with_the_bytewise_walk(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'),
                    Just(b'\\'), Just(b'a'), Just(b','), Just(b'{' | 0x80),
                ],
                0..400,
            )
        ) {
            let mut data = vec![b'{'];
            data.extend(body);
            prop_assert!(scans_agree(&data));
        }

        /// Real JSON with brackets, quotes and backslashes inside its strings ends where
        /// its serialization ends.
        #[test]
        fn ends_where_serialized_json_ends(value in json(), tail in "[ ,\\]\\[{}\"a]{0,8}") {
            let text = format!("{}{tail}", serde_json::json!([value]));
            let want = text.len() - tail.len();
            prop_assert_eq!(container_end(text.as_bytes(), 0, &mut Vec::new()), Scan::Done(want));
        }
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z{}\\[\\]\"\\\\/ é\u{1}]{0,90}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z\"{]{0,12}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
