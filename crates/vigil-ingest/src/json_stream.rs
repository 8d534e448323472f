//! Splits a stream of JSON into records without reading the whole stream.
//!
//! It takes every layout AWS telemetry arrives in: one object per line (JSON lines,
//! EventBridge archives), concatenated objects, a top-level array, and an object that
//! wraps the records in an array under a known key (`{"Records":[...]}` for
//! CloudTrail, `{"Findings":[...]}` / `{"findings":[...]}` for GuardDuty and ASFF).
//! Only the record being scanned is held in memory, so a 2 GB `Records` file costs
//! the same memory as a 2 KB one.
//!
//! It only finds record boundaries (brackets and strings); the decoders parse the
//! records. When a decoder reports a syntax error, the splitter restarts from the
//! error and offers the next place a record could start as *tentative*: the decoder
//! rejects it quietly unless it is a valid record. That is how the good records after
//! a damaged one (a missing brace, garbage, a cut line) still come out.

use std::io::Read;

use crate::error::RecordErrorKind;
use crate::input::read_up_to;
use vigil_model::brackets::{container_end, Scan};

const CHUNK: usize = 256 * 1024;
/// Keys whose array value holds the records, at the top level of a file.
const WRAPPER_KEYS: [&[u8]; 3] = [b"Records", b"Findings", b"findings"];

/// Where a record is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the record's first byte in the decompressed stream.
    pub byte: u64,
    /// Line of the record's first byte, from 1.
    pub line: u64,
    /// True when the splitter is recovering from damage and this is only a candidate.
    pub tentative: bool,
    /// The wrapper key the record was found under (`Records`, `Findings`), if any.
    pub wrapper: Option<&'static str>,
}

pub(crate) enum Step<'a> {
    Record(&'a [u8], Span),
    /// Damage the splitter found itself (bad nesting, a record past the size limit,
    /// the input ending inside a record).
    Error(Span, RecordErrorKind),
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    Top,
    /// Inside a top-level array, or the array of a wrapper key.
    Array {
        wrapped: bool,
    },
    /// After the array of a wrapper key: skipping the wrapper's other keys.
    AfterWrapper,
}

/// What one step of the splitter produced, before it is lent out as a [`Step`].
enum Out {
    Record(usize, usize, Span),
    Error(Span, RecordErrorKind),
    End,
    /// Nothing to hand out yet (a rejected candidate): keep going.
    Again,
}

enum TopObject {
    Wrapper { key: &'static str, array_at: usize },
    Single(usize),
    Incomplete,
    Bad(usize, &'static str),
}

pub(crate) struct JsonSplitter {
    rest: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes before `start` may be dropped.
    start: usize,
    pos: usize,
    end: usize,
    eof: bool,
    read_error: Option<String>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Line number at buffer index `line_pos`.
    line: u64,
    line_pos: usize,
    ctx: Ctx,
    recovering: bool,
    max_record: usize,
    stack: Vec<u8>,
    /// The wrapper key the records were found under, if any.
    pub wrapper: Option<&'static str>,
    /// Stream offset and span of the last record handed out.
    last: Option<(u64, u64, Span)>,
}

impl JsonSplitter {
    pub fn new(prefix: Vec<u8>, rest: Box<dyn Read + Send>, max_record: usize) -> Self {
        let end = prefix.len();
        let mut buf = prefix;
        buf.resize(CHUNK.max(end), 0);
        let mut s = JsonSplitter {
            rest,
            buf,
            start: 0,
            pos: 0,
            end,
            eof: false,
            read_error: None,
            base: 0,
            line: 1,
            line_pos: 0,
            ctx: Ctx::Top,
            recovering: false,
            max_record,
            stack: Vec::with_capacity(64),
            wrapper: None,
            last: None,
        };
        if s.buf[..s.end].starts_with(b"\xEF\xBB\xBF") {
            s.pos = 3;
        }
        s
    }

    /// Total decompressed bytes consumed so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The decoder found a syntax error `offset` bytes into the last record: restart
    /// from there and look for the next record start.
    pub fn syntax_error_at(&mut self, offset: usize) {
        if let Some((start, end, _)) = self.last.take() {
            let at = (start + offset.max(1) as u64).min(end.max(start + 1));
            self.pos = (at - self.base) as usize;
            self.recovering = true;
        }
    }

    /// The decoder did not accept a tentative record: keep looking after its start.
    pub fn reject(&mut self) {
        if let Some((start, _, _)) = self.last.take() {
            self.pos = (start + 1 - self.base) as usize;
            self.recovering = true;
        }
    }

    pub fn next(&mut self) -> Step<'_> {
        if let Some((_, _, span)) = self.last.take() {
            if span.tentative {
                // The decoder kept the candidate: the stream is back in step.
                self.recovering = false;
            }
        }
        loop {
            match self.advance() {
                Out::Again => continue,
                Out::End => return Step::End,
                Out::Error(span, kind) => return Step::Error(span, kind),
                Out::Record(start, end, span) => return Step::Record(&self.buf[start..end], span),
            }
        }
    }

    fn advance(&mut self) -> Out {
        loop {
            self.start = self.pos;
            let Some(c) = self.skip_ws() else {
                return self.finish();
            };
            match (self.ctx, c) {
                (Ctx::Top, b'{') => match self.top_object() {
                    TopObject::Wrapper { key, array_at } => {
                        self.wrapper = Some(key);
                        self.ctx = Ctx::Array { wrapped: true };
                        self.pos = array_at + 1;
                    }
                    TopObject::Single(end) => return self.emit(end),
                    TopObject::Incomplete => return self.incomplete(),
                    TopObject::Bad(at, why) => return self.bad(at, why),
                },
                (Ctx::Top, b'[') => {
                    self.ctx = Ctx::Array { wrapped: false };
                    self.pos += 1;
                }
                (Ctx::Top | Ctx::Array { .. }, b',') => self.pos += 1,
                // While recovering, brackets cannot be trusted: only a `{` may start
                // a candidate record.
                (Ctx::Array { .. }, _) if self.recovering && c != b'{' => self.pos += 1,
                (Ctx::Array { wrapped }, b']') => {
                    self.pos += 1;
                    self.ctx = if wrapped { Ctx::AfterWrapper } else { Ctx::Top };
                }
                (Ctx::Array { .. }, b'}') => {
                    // A wrapper whose array lost its closing bracket.
                    self.pos += 1;
                    self.ctx = Ctx::Top;
                }
                (Ctx::Array { .. }, _) => match self.scan_here() {
                    Scan::Done(end) => return self.emit(end),
                    Scan::Incomplete => return self.incomplete(),
                    Scan::Bad(at, why) => return self.bad(at, why),
                },
                (Ctx::AfterWrapper, b'}') => {
                    self.pos += 1;
                    self.ctx = Ctx::Top;
                }
                (Ctx::AfterWrapper, b',' | b':') => self.pos += 1,
                (Ctx::AfterWrapper, _) => match self.scan_here() {
                    Scan::Done(end) => self.pos = end,
                    Scan::Incomplete => return self.incomplete(),
                    Scan::Bad(at, why) => return self.bad(at, why),
                },
                (Ctx::Top, _) if self.recovering => self.pos += 1,
                (Ctx::Top, other) => {
                    let span = self.span_at(self.pos, false);
                    self.recovering = true;
                    self.pos += 1;
                    return Out::Error(
                        span,
                        RecordErrorKind::InvalidJson(format!(
                            "unexpected {} where a record should start",
                            describe_byte(other)
                        )),
                    );
                }
            }
        }
    }

    fn emit(&mut self, end: usize) -> Out {
        let tentative = self.recovering;
        if end - self.pos > self.max_record {
            let span = self.span_at(self.pos, tentative);
            self.pos = end;
            if tentative {
                return Out::Again;
            }
            return Out::Error(
                span,
                RecordErrorKind::TooLarge {
                    limit: self.max_record,
                },
            );
        }
        let span = self.span_at(self.pos, tentative);
        let start = self.pos;
        self.pos = end;
        self.last = Some((self.base + start as u64, self.base + end as u64, span));
        Out::Record(start, end, span)
    }

    fn span_at(&mut self, idx: usize, tentative: bool) -> Span {
        Span {
            byte: self.base + idx as u64,
            line: self.line_at(idx),
            tentative,
            wrapper: self.wrapper,
        }
    }

    fn line_at(&mut self, idx: usize) -> u64 {
        if idx >= self.line_pos {
            self.line += memchr::memchr_iter(b'\n', &self.buf[self.line_pos..idx]).count() as u64;
            self.line_pos = idx;
            self.line
        } else {
            self.line - memchr::memchr_iter(b'\n', &self.buf[idx..self.line_pos]).count() as u64
        }
    }

    /// The value at `pos` did not finish before the input ended (or grew past the limit).
    fn incomplete(&mut self) -> Out {
        let at = self.pos;
        let tentative = self.recovering;
        let span = self.span_at(at, tentative);
        let len = self.end - at;
        if tentative {
            // A candidate that runs off the end is not a record; keep looking.
            self.pos = at + 1;
            return Out::Again;
        }
        // Whatever made the value run on (a missing bracket, garbage) may have
        // swallowed good records: report the first syntax error inside it and restart
        // there, so the records after it are found again.
        let syntax = syntax_error_in(&self.buf[at..self.end]);
        let kind = match &syntax {
            Some((_, msg)) => RecordErrorKind::InvalidJson(msg.clone()),
            None if len >= self.max_record => RecordErrorKind::TooLarge {
                limit: self.max_record,
            },
            None => RecordErrorKind::Truncated(
                self.read_error
                    .clone()
                    .unwrap_or_else(|| "the last record is cut off".into()),
            ),
        };
        let resume = syntax.as_ref().map_or(1, |(off, _)| (*off).max(1));
        let span = match syntax {
            Some((off, _)) => Span {
                line: span.line + count_lines(&self.buf[at..at + off]),
                ..span
            },
            None => span,
        };
        self.pos = at + resume.min(len.max(1));
        self.recovering = true;
        Out::Error(span, kind)
    }

    fn bad(&mut self, at: usize, why: &'static str) -> Out {
        let start = self.pos;
        let tentative = self.recovering;
        let span = self.span_at(start, tentative);
        // A bracket that does not match is usually where a *later* record ends; the
        // damage is earlier, at the first syntax error: restart from there.
        let syntax = syntax_error_in(&self.buf[start..=at.min(self.end - 1)]);
        self.pos = match &syntax {
            Some((off, _)) => start + (*off).max(1),
            None => at.max(start + 1),
        };
        self.recovering = true;
        if tentative {
            return Out::Again;
        }
        let (line, msg) = match syntax {
            Some((off, msg)) => (span.line + count_lines(&self.buf[start..start + off]), msg),
            None => (
                span.line,
                format!("{why} at byte {}", self.base + at as u64),
            ),
        };
        Out::Error(Span { line, ..span }, RecordErrorKind::InvalidJson(msg))
    }

    fn finish(&mut self) -> Out {
        if !self.recovering && self.read_error.is_none() {
            if let Ctx::Array { .. } = self.ctx {
                self.ctx = Ctx::Top;
                let span = Span {
                    byte: self.base + self.end as u64,
                    line: self.line_at(self.end),
                    tentative: false,
                    wrapper: self.wrapper,
                };
                return Out::Error(
                    span,
                    RecordErrorKind::Truncated("the input ends inside the records array".into()),
                );
            }
        }
        if let Some(e) = self.read_error.take() {
            // Report a read failure that cut the stream, once.
            if self.ctx == Ctx::Top && !self.recovering {
                let span = Span {
                    byte: self.base + self.end as u64,
                    line: self.line_at(self.end),
                    tentative: false,
                    wrapper: self.wrapper,
                };
                return Out::Error(span, RecordErrorKind::Io(e));
            }
        }
        Out::End
    }

    /// Skips whitespace, reading more as needed; `None` at the end of input.
    fn skip_ws(&mut self) -> Option<u8> {
        loop {
            while self.pos < self.end {
                let c = self.buf[self.pos];
                if !c.is_ascii_whitespace() {
                    return Some(c);
                }
                self.pos += 1;
            }
            self.start = self.pos;
            if !self.fill() {
                return None;
            }
        }
    }

    fn scan_here(&mut self) -> Scan {
        loop {
            let r = scan_value(&self.buf[..self.end], self.pos, self.eof, &mut self.stack);
            match r {
                Scan::Incomplete if !self.eof && self.end - self.pos < self.max_record => {
                    self.start = self.pos;
                    self.fill();
                }
                other => return other,
            }
        }
    }

    fn top_object(&mut self) -> TopObject {
        loop {
            let r = scan_top_object(&self.buf[..self.end], self.pos, self.eof, &mut self.stack);
            match r {
                TopObject::Incomplete if !self.eof && self.end - self.pos < self.max_record => {
                    self.start = self.pos;
                    self.fill();
                }
                other => return other,
            }
        }
    }

    /// Reads more input; false when there is no more.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.start > 0 && (self.start * 2 >= self.buf.len() || self.end == self.buf.len()) {
            self.line_at(self.start);
            let shift = self.start;
            self.buf.copy_within(shift..self.end, 0);
            self.pos -= shift;
            self.end -= shift;
            self.line_pos -= shift;
            self.base += shift as u64;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .min(self.max_record + CHUNK)
                .max(self.buf.len() + CHUNK);
            self.buf.resize(grown, 0);
        }
        match read_up_to(&mut self.rest, &mut self.buf[self.end..]) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.end += n;
                true
            }
            Err(e) => {
                self.read_error = Some(e.to_string());
                self.eof = true;
                false
            }
        }
    }
}

fn describe_byte(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("'{}'", c as char)
    } else {
        format!("byte 0x{c:02x}")
    }
}

/// Skips the string whose opening quote is at `i`; returns the index after the
/// closing quote.
#[inline]
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        let off = memchr::memchr2(b'"', b'\\', &b[i..])?;
        i += off;
        if b[i] == b'\\' {
            i += 2;
            if i > b.len() {
                return None;
            }
        } else {
            return Some(i + 1);
        }
    }
}

/// Finds the end of the JSON value starting at `from` by its brackets and strings.
fn scan_value(b: &[u8], from: usize, eof: bool, stack: &mut Vec<u8>) -> Scan {
    let mut i = from;
    match b[i] {
        b'{' | b'[' => container_end(b, from, stack),
        b'"' => match skip_string(b, i) {
            Some(e) => Scan::Done(e),
            None => Scan::Incomplete,
        },
        b'}' | b']' => Scan::Bad(i, "unexpected closing bracket"),
        _ => {
            while i < b.len()
                && !matches!(b[i], b',' | b']' | b'}' | b'{' | b'[' | b'"')
                && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            if i == b.len() && !eof {
                Scan::Incomplete
            } else {
                Scan::Done(i.max(from + 1))
            }
        }
    }
}

fn skip_ws_in(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Reads the keys of the top-level object at `from` until it either finds a wrapper
/// key holding an array or reaches the object's end.
fn scan_top_object(b: &[u8], from: usize, eof: bool, stack: &mut Vec<u8>) -> TopObject {
    let whole = |stack: &mut Vec<u8>| match scan_value(b, from, eof, stack) {
        Scan::Done(e) => TopObject::Single(e),
        Scan::Incomplete => TopObject::Incomplete,
        Scan::Bad(at, why) => TopObject::Bad(at, why),
    };
    let mut i = from + 1;
    loop {
        i = skip_ws_in(b, i);
        match b.get(i) {
            None => return TopObject::Incomplete,
            Some(b'}') => return TopObject::Single(i + 1),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b'"') => {}
            // Not the shape of an object's keys: let the decoder say what is wrong.
            Some(_) => return whole(stack),
        }
        let Some(key_end) = skip_string(b, i) else {
            return TopObject::Incomplete;
        };
        let key = &b[i + 1..key_end - 1];
        i = skip_ws_in(b, key_end);
        match b.get(i) {
            None => return TopObject::Incomplete,
            Some(b':') => i = skip_ws_in(b, i + 1),
            Some(_) => return whole(stack),
        }
        let Some(&v) = b.get(i) else {
            return TopObject::Incomplete;
        };
        if v == b'[' {
            if let Some(k) = WRAPPER_KEYS.iter().position(|k| *k == key) {
                let key = ["Records", "Findings", "findings"][k];
                return TopObject::Wrapper { key, array_at: i };
            }
        }
        match scan_value(b, i, eof, stack) {
            Scan::Done(e) => i = e,
            Scan::Incomplete => return TopObject::Incomplete,
            Scan::Bad(..) => return whole(stack),
        }
    }
}

/// Byte offset of the first syntax error in `slice`, if serde finds one before the end.
#[cfg(test)]
pub(crate) fn first_syntax_error(slice: &[u8]) -> Option<usize> {
    syntax_error_in(slice).map(|(at, _)| at)
}

/// The first syntax error in `slice` (offset and message), if there is one before the
/// slice ends.
fn syntax_error_in(slice: &[u8]) -> Option<(usize, String)> {
    let err = serde_json::from_slice::<serde::de::IgnoredAny>(slice).err()?;
    if err.is_eof() {
        return None;
    }
    let msg = err.to_string();
    let msg = msg
        .rfind(" at line ")
        .map_or(msg.as_str(), |i| &msg[..i])
        .to_owned();
    Some((offset_of(slice, err.line(), err.column()), msg))
}

fn count_lines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

/// Converts serde_json's 1-based line and column into a byte offset.
pub(crate) fn offset_of(slice: &[u8], line: usize, column: usize) -> usize {
    let mut line_start = 0;
    if line > 1 {
        if let Some(nl) = memchr::memchr_iter(b'\n', slice).nth(line - 2) {
            line_start = nl + 1;
        }
    }
    (line_start + column.saturating_sub(1)).min(slice.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> (Vec<String>, Vec<String>) {
        let mut s = JsonSplitter::new(
            input.as_bytes().to_vec(),
            Box::new(std::io::empty()),
            1 << 20,
        );
        let (mut recs, mut errs) = (vec![], vec![]);
        loop {
            let (out, syntax) = match s.next() {
                Step::Record(b, span) => {
                    let text = String::from_utf8_lossy(b).into_owned();
                    let bad = first_syntax_error(b);
                    let valid = bad.is_none() && text.starts_with("{\"a\"");
                    match bad {
                        _ if span.tentative && !valid => {
                            s.reject();
                            continue;
                        }
                        Some(at) => {
                            errs.push(format!("syntax@{}", span.line));
                            (None, Some(at))
                        }
                        None => (Some(text), None),
                    }
                }
                Step::Error(span, k) => {
                    errs.push(format!("{k}@{}", span.line));
                    (None, None)
                }
                Step::End => break,
            };
            if let Some(r) = out {
                recs.push(r);
            }
            if let Some(at) = syntax {
                s.syntax_error_at(at);
            }
        }
        (recs, errs)
    }

    #[test]
    fn layouts() {
        let (r, e) = split(r#"{"Records":[{"a":1},{"b":"x}]"}]}"#);
        assert_eq!(r, vec![r#"{"a":1}"#, r#"{"b":"x}]"}"#]);
        assert!(e.is_empty());
        let (r, _) = split("{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}");
        assert_eq!(r.len(), 3);
        let (r, _) = split(r#"[{"a":1}, {"a":2}]"#);
        assert_eq!(r.len(), 2);
        let (r, _) =
            split(r#"{"NextToken":"x","Findings":[{"Id":"1"}],"Other":{"k":[1]}} {"Id":"2"}"#);
        assert_eq!(r, vec![r#"{"Id":"1"}"#, r#"{"Id":"2"}"#]);
        let (r, _) = split(r#"{"detail":{"findings":[{"x":1}]}}"#);
        assert_eq!(r.len(), 1, "nested findings stay inside their envelope");
    }

    #[test]
    fn recovers_after_missing_brace() {
        let (r, e) = split("{\"a\":1}\n{\"a\":{\"b\":2}\n{\"a\":3}\n{\"a\":4}");
        assert_eq!(r, vec![r#"{"a":1}"#, r#"{"a":3}"#, r#"{"a":4}"#]);
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn recovers_after_garbage_in_array() {
        let (r, e) = split(r#"{"Records":[{"a":1},{"a":@@,"n":[{"x":1}]},{"a":3}]}"#);
        // The nested {"x":1} is a candidate too, rejected as the decoders would.
        assert_eq!(r, vec![r#"{"a":1}"#, r#"{"a":3}"#]);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn truncated_tail() {
        let (r, e) = split("{\"a\":1}\n{\"a\":2}\n{\"a\":");
        assert_eq!(r.len(), 2);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("cut off"), "{e:?}");
    }

    #[test]
    fn mismatched_bracket() {
        let (r, e) = split("{\"a\":[1}\n{\"a\":2}");
        assert_eq!(r, vec![r#"{"a":2}"#]);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn offsets() {
        assert_eq!(offset_of(b"ab\ncd", 2, 2), 4);
        assert_eq!(first_syntax_error(b"{\"a\":1 x}"), Some(7));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut s = JsonSplitter::new(input, Box::new(std::io::empty()), 64);
            for _ in 0..10_000 {
                match s.next() {
                    Step::End => break,
                    Step::Record(b, _) => {
                        if let Some(at) = first_syntax_error(b) { s.syntax_error_at(at) }
                    }
                    Step::Error(..) => {}
                }
            }
        }
    }
}
