//! Field values of Sigma rules: the string syntax (wildcards `*` `?`, escapes `\`),
//! every value modifier of the appendix that applies to JSON logs, and matching a
//! compiled value against a field of an event.
//!
//! Strings match case-insensitively unless `cased`: patterns are folded once when
//! the rule is compiled, and field values are compared with ASCII case folding in
//! place (non-ASCII values are folded into a temporary), so matching allocates
//! nothing for ASCII data.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;
use vigil_model::Timestamp;

/// A record's top-level members by name: a parsed JSON object, or a record parsed
/// member by member as rules reach into it.
pub trait Members {
    fn member(&self, key: &str) -> Option<&Value>;

    /// The string at `path` (keys, outermost first) read straight from the record's
    /// text, for a record kept as text: when every key is found as written and the
    /// value is a string with no escapes. `None` says only "not this way": look the
    /// field up in the parsed members then.
    fn string_at(&self, _path: &[String]) -> Option<&str> {
        None
    }
}

impl Members for Value {
    fn member(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

/// A field path into the event's JSON: `userIdentity.sessionContext.sessionIssuer.arn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    pub name: String,
    parts: Vec<String>,
    /// Which field of the typed event model this is, if it is one (see
    /// [`super::rule::typed_field`]).
    pub typed: Option<u8>,
}

impl FieldPath {
    pub fn new(name: &str) -> FieldPath {
        FieldPath {
            name: name.to_owned(),
            parts: name.split('.').map(str::to_owned).collect(),
            typed: super::rule::typed_field(name),
        }
    }

    /// The field when it is a plain string in the record's text (see
    /// [`Members::string_at`]), read without parsing anything; `None` when it is not
    /// one or cannot be read that way.
    pub fn string_in<'v, M: Members + ?Sized>(&self, root: &'v M) -> Option<&'v str> {
        root.string_at(&self.parts)
    }

    /// Looks the field up: nested keys first, then keys that themselves contain dots.
    pub fn lookup<'v, M: Members + ?Sized>(&self, root: &'v M) -> Option<&'v Value> {
        fn rec<'v>(v: &'v Value, parts: &[String]) -> Option<&'v Value> {
            let Some((first, rest)) = parts.split_first() else {
                return Some(v);
            };
            let obj = v.as_object()?;
            if let Some(child) = obj.get(first.as_str()) {
                if let Some(found) = rec(child, rest) {
                    return Some(found);
                }
            }
            // A key with dots in it ("a.b" as one key).
            for n in 2..=parts.len() {
                let key = parts[..n].join(".");
                if let Some(child) = obj.get(&key) {
                    if let Some(found) = rec(child, &parts[n..]) {
                        return Some(found);
                    }
                }
            }
            None
        }
        let (first, rest) = self.parts.split_first()?;
        if let Some(found) = root.member(first).and_then(|child| rec(child, rest)) {
            return Some(found);
        }
        for n in 2..=self.parts.len() {
            let key = self.parts[..n].join(".");
            if let Some(found) = root
                .member(&key)
                .and_then(|child| rec(child, &self.parts[n..]))
            {
                return Some(found);
            }
        }
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    fn test(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Glob {
    Lit(String),
    Star,
    One,
}

#[derive(Clone, Debug)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Glob(Vec<Glob>),
}

/// An IPv4 or IPv6 network, its address already masked.
#[derive(Clone, Copy, Debug)]
pub enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.trim().parse::<u32>().ok().filter(|b| *b <= max)?,
            None => max,
        };
        Some(match net {
            IpAddr::V4(n) => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                Cidr::V4 {
                    net: u32::from(n) & mask,
                    mask,
                }
            }
            IpAddr::V6(n) => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Cidr::V6 {
                    net: u128::from(n) & mask,
                    mask,
                }
            }
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(i)) => u32::from(i) & mask == net,
            (Cidr::V6 { net, mask }, IpAddr::V6(i)) => u128::from(i) & mask == net,
            _ => false,
        }
    }
}

/// A compiled `re` value, with the longest text every match must contain (when the
/// pattern has one): texts without it are turned away by a substring search, and
/// the regex runs only on the rest. `.+:assumed-role/aws:.+` on every principal
/// ARN costs one `memmem` for most of them.
#[derive(Clone, Debug)]
pub struct Re {
    re: regex::Regex,
    needle: Option<memchr::memmem::Finder<'static>>,
}

impl Re {
    /// Compiles `pattern` with the `i`, `m` and `s` flags.
    pub fn new(pattern: &str, i: bool, m: bool, s: bool) -> Result<Re, ValueError> {
        let invalid =
            |e: &dyn std::fmt::Display| ValueError::Invalid(format!("regular expression: {e}"));
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| invalid(&e))?;
        // The same syntax with the same flags: a letter that folds to others becomes
        // a class there, so only text that must appear as written is kept.
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .build()
            .parse(pattern)
            .map_err(|e| invalid(&e))?;
        let needle = required_literal(&hir)
            .filter(|l| !l.is_empty())
            .map(|l| memchr::memmem::Finder::new(&l).into_owned());
        Ok(Re { re, needle })
    }

    pub fn is_match(&self, text: &str) -> bool {
        if let Some(n) = &self.needle {
            if n.find(text.as_bytes()).is_none() {
                return false;
            }
        }
        self.re.is_match(text)
    }

    /// What a text must contain for the pattern to match (tests).
    pub fn needle(&self) -> Option<&[u8]> {
        self.needle.as_ref().map(|n| n.needle())
    }
}

/// The longest literal that every match of `h` contains: a literal itself, or one of
/// the parts of a sequence (not of an alternation, nor of a repetition that may run
/// zero times).
fn required_literal(h: &regex_syntax::hir::Hir) -> Option<Vec<u8>> {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Literal(l) => Some(l.0.to_vec()),
        HirKind::Capture(c) => required_literal(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_literal(&r.sub),
        HirKind::Concat(parts) => parts
            .iter()
            .filter_map(required_literal)
            .max_by_key(Vec::len),
        _ => None,
    }
}

/// One compiled value of a field.
#[derive(Clone, Debug)]
pub enum Pattern {
    Str {
        m: StrMatch,
        cased: bool,
    },
    Regex(Box<Re>),
    Cidr(Cidr),
    Cmp {
        op: CmpOp,
        value: f64,
    },
    Time {
        part: TimePart,
        op: Option<CmpOp>,
        value: f64,
    },
    Null,
    Exists(bool),
    FieldRef {
        path: FieldPath,
        cased: bool,
    },
}

/// A field's value as the typed event model holds it: text, an address or a number.
/// An address or a number is matched without its text where the patterns allow (a
/// CIDR tests the address, a port list the number); its text, exactly as the record's
/// JSON writes it, is rendered only where a pattern needs it.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed<'e> {
    Text(Cow<'e, str>),
    Ip(IpAddr),
    Num(u64),
}

impl<'e> Typed<'e> {
    /// Appends the value's text.
    pub fn push_to(&self, buf: &mut String) {
        match self {
            Typed::Text(t) => buf.push_str(t),
            Typed::Num(n) => push_u64(buf, *n),
            Typed::Ip(IpAddr::V4(a)) => push_dotted(buf, &a.octets()),
            Typed::Ip(v6) => {
                use std::fmt::Write;
                let _ = write!(buf, "{v6}");
            }
        }
    }

    /// The value's text.
    pub fn into_text(self) -> Cow<'e, str> {
        match self {
            Typed::Text(t) => t,
            other => {
                let mut s = String::new();
                other.push_to(&mut s);
                Cow::Owned(s)
            }
        }
    }

    /// The value as a number, as a rule's comparison reads its text.
    pub fn number(&self) -> Option<f64> {
        match self {
            Typed::Num(n) => Some(*n as f64),
            Typed::Text(t) => t.trim().parse().ok(),
            Typed::Ip(_) => None,
        }
    }
}

/// Appends `octets` as dotted decimal (`10.0.0.1`, or the first three of them),
/// built on the stack and appended at once.
pub(crate) fn push_dotted(buf: &mut String, octets: &[u8]) {
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, &o) in octets.iter().take(4).enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        if o >= 100 {
            out[len] = b'0' + o / 100;
            len += 1;
        }
        if o >= 10 {
            out[len] = b'0' + o / 10 % 10;
            len += 1;
        }
        out[len] = b'0' + o % 10;
        len += 1;
    }
    buf.push_str(std::str::from_utf8(&out[..len]).unwrap_or_default());
}

/// Appends `v` in decimal.
pub(crate) fn push_u64(buf: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// A field with its values: `userIdentity.type|contains: [Root, AWSAccount]`.
#[derive(Clone, Debug)]
pub struct FieldMatcher {
    pub path: FieldPath,
    /// Set when the rule is compiled: the field is one the typed event carries (its
    /// number there, see [`super::rule::typed_field`]) and every value can be tested
    /// on its text, so no JSON is needed for it.
    pub typed: Option<u8>,
    /// When every value is a plain decimal number (`network.dst_port: [22, 3389]`):
    /// those numbers, so that a typed number is tested without its text.
    pub(crate) nums: Option<Box<[u64]>>,
    /// Whether every value is a comparison, a CIDR range or `exists`, so that a typed
    /// number or address is tested as such, without its text.
    pub(crate) direct: bool,
    /// For string values read from the record's JSON: a piece of each value that
    /// the record's text must hold (ignoring case) for any value to match, so a
    /// record without any of them is turned away before its members are parsed.
    /// Only pieces no JSON writer escapes (letters, digits, some punctuation).
    pub prefilter: Option<Box<[Needle]>>,
    pub patterns: Vec<Pattern>,
    /// `all`: every value must match (default: any).
    pub all: bool,
    /// `neq`: the field must differ from every value.
    pub neq: bool,
    /// A long list of literals (`userAgent|contains: [pacu, cloudfox, …]`) compiled
    /// into one automaton, for the typed fast path: one pass over the text instead of
    /// one per value.
    pub set: Option<regex::Regex>,
    /// For a typed matcher that scans its text (regexes, `contains`, wildcards,
    /// long lists): its slot in the per-thread [`TextCache`], numbered when the
    /// rule set is built.
    pub cache_slot: Option<u32>,
}

/// Hash maps keyed by what events carry: a fast hasher, seeded per process.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What scanning matchers concluded about field texts seen before. A field such as
/// `userAgent` holds a few hundred distinct values across millions of records, so a
/// matcher scanning it with a dozen patterns mostly asks a question already
/// answered. Per thread; each slot holds at most [`TextCache::MAX`] texts and
/// starts over when full. A slot whose texts rarely repeat (an ARN with a session
/// name in it) costs more to remember than to test: after a trial where fewer than
/// half its lookups hit, it tests directly for a while, then tries again.
pub struct TextCache {
    slots: Vec<CacheSlot>,
    min_len: usize,
}

#[derive(Default)]
struct CacheSlot {
    answers: FastMap<Box<str>, bool>,
    /// Lookups and hits in the current trial.
    lookups: u32,
    hits: u32,
    /// Texts still to test directly before the next trial.
    bypass: u32,
}

impl Default for TextCache {
    /// Texts shorter than 24 bytes (ports, addresses) cost less to test than to
    /// look up, so they are not kept.
    fn default() -> Self {
        TextCache::keeping_from(24)
    }
}

impl TextCache {
    pub const MAX: usize = 2048;
    /// Lookups per trial, and texts tested directly after a trial that failed.
    const TRIAL: u32 = 4096;
    const BYPASS: u32 = 65_536;

    /// A cache that keeps texts of at least `min_len` bytes.
    pub fn keeping_from(min_len: usize) -> TextCache {
        TextCache {
            slots: Vec::new(),
            min_len,
        }
    }

    /// `test(text)`, remembered for `slot`.
    pub fn get_or(&mut self, slot: u32, text: &str, test: impl FnOnce() -> bool) -> bool {
        if text.len() < self.min_len {
            return test();
        }
        let slot = slot as usize;
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, CacheSlot::default);
        }
        let s = &mut self.slots[slot];
        if s.bypass > 0 {
            s.bypass -= 1;
            return test();
        }
        s.lookups += 1;
        let hit = match s.answers.get(text) {
            Some(&hit) => {
                s.hits += 1;
                hit
            }
            None => {
                let hit = test();
                if s.answers.len() >= Self::MAX {
                    s.answers.clear();
                }
                s.answers.insert(text.into(), hit);
                hit
            }
        };
        if s.lookups >= Self::TRIAL {
            if s.hits * 2 < s.lookups {
                s.bypass = Self::BYPASS;
                s.answers = FastMap::default();
            }
            s.lookups = 0;
            s.hits = 0;
        }
        hit
    }
}

/// Lists at least this long are matched through one automaton.
const SET_MIN: usize = 4;

/// The automaton for `patterns` when they are all plain ASCII literals (exact,
/// prefix, suffix or contains) of the same casing.
fn literal_set(patterns: &[Pattern]) -> Option<regex::Regex> {
    if patterns.len() < SET_MIN {
        return None;
    }
    let mut cased_all = None;
    let mut alts = Vec::with_capacity(patterns.len());
    for p in patterns {
        let Pattern::Str { m, cased } = p else {
            return None;
        };
        if *cased_all.get_or_insert(*cased) != *cased {
            return None;
        }
        let (lit, pre, post) = match m {
            StrMatch::Exact(l) => (l, "^", "$"),
            StrMatch::Prefix(l) => (l, "^", ""),
            StrMatch::Suffix(l) => (l, "", "$"),
            StrMatch::Contains(l) => (l, "", ""),
            StrMatch::Glob(_) => return None,
        };
        if lit.is_empty() || !lit.is_ascii() {
            return None;
        }
        alts.push(format!("{pre}{}{post}", regex::escape(lit)));
    }
    // ASCII case folding only, as the pattern-by-pattern matcher does (a non-ASCII
    // text is lowercased first, there and here).
    let flags = if cased_all == Some(true) {
        "(?s-u)"
    } else {
        "(?is-u)"
    };
    regex::Regex::new(&format!("{flags}(?:{})", alts.join("|"))).ok()
}

/// Why a field or value could not be compiled. `Unsupported` names a feature the
/// engine does not implement; the others are mistakes in the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    Unsupported(String),
    Invalid(String),
}

#[derive(Default)]
struct Mods {
    all: bool,
    cased: bool,
    contains: bool,
    startswith: bool,
    endswith: bool,
    re: Option<(bool, bool, bool)>,
    cidr: bool,
    cmp: Option<CmpOp>,
    neq: bool,
    exists: bool,
    fieldref: bool,
    expand: bool,
    base64: bool,
    base64offset: bool,
    utf16: Option<&'static str>,
    windash: bool,
    time: Option<TimePart>,
}

fn parse_mods(mods: &[&str]) -> Result<Mods, ValueError> {
    let mut m = Mods::default();
    let mut i = 0;
    while i < mods.len() {
        let name = mods[i];
        match name {
            "all" => m.all = true,
            "cased" => m.cased = true,
            "contains" => m.contains = true,
            "startswith" => m.startswith = true,
            "endswith" => m.endswith = true,
            "re" => {
                let mut flags = (false, false, false);
                while let Some(f) = mods.get(i + 1) {
                    match *f {
                        "i" | "ignorecase" => flags.0 = true,
                        "m" | "multiline" => flags.1 = true,
                        "s" | "dotall" => flags.2 = true,
                        _ => break,
                    }
                    i += 1;
                }
                m.re = Some(flags);
            }
            "cidr" => m.cidr = true,
            "lt" => m.cmp = Some(CmpOp::Lt),
            "lte" => m.cmp = Some(CmpOp::Lte),
            "gt" => m.cmp = Some(CmpOp::Gt),
            "gte" => m.cmp = Some(CmpOp::Gte),
            "neq" => m.neq = true,
            "exists" => m.exists = true,
            "fieldref" => m.fieldref = true,
            "expand" => m.expand = true,
            "base64" => m.base64 = true,
            "base64offset" => m.base64offset = true,
            "utf16le" | "wide" => m.utf16 = Some("le"),
            "utf16be" => m.utf16 = Some("be"),
            "utf16" => m.utf16 = Some("bom"),
            "windash" => m.windash = true,
            "minute" => m.time = Some(TimePart::Minute),
            "hour" => m.time = Some(TimePart::Hour),
            "day" => m.time = Some(TimePart::Day),
            "week" => m.time = Some(TimePart::Week),
            "month" => m.time = Some(TimePart::Month),
            "year" => m.time = Some(TimePart::Year),
            "i" | "m" | "s" => {
                return Err(ValueError::Invalid(format!(
                    "modifier `{name}` only follows `re`"
                )))
            }
            other => return Err(ValueError::Unsupported(format!("modifier `{other}`"))),
        }
        i += 1;
    }
    Ok(m)
}

/// Parses Sigma's string syntax into literal runs and wildcards.
fn parse_glob(s: &str) -> Vec<Glob> {
    let mut out: Vec<Glob> = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some('*') | Some('?') => lit.push(chars.next().unwrap_or('*')),
                Some('\\') => {
                    // `\\` is one backslash (and lets a following wildcard stay a wildcard).
                    chars.next();
                    lit.push('\\');
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Glob::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Glob::Star } else { Glob::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Glob::Lit(lit));
    }
    out
}

fn has_wildcards(g: &[Glob]) -> bool {
    g.iter().any(|p| !matches!(p, Glob::Lit(_)))
}

fn literal_of(g: &[Glob]) -> String {
    g.iter()
        .map(|p| if let Glob::Lit(s) = p { s.as_str() } else { "" })
        .collect()
}

fn fold(s: &str, cased: bool) -> String {
    if cased {
        s.to_owned()
    } else {
        s.to_lowercase()
    }
}

/// Classifies a glob into the cheapest matcher that does the same.
fn str_match(g: Vec<Glob>, cased: bool) -> StrMatch {
    let f = |s: &str| fold(s, cased);
    match g.as_slice() {
        [] => StrMatch::Exact(String::new()),
        [Glob::Lit(s)] => StrMatch::Exact(f(s)),
        [Glob::Lit(s), Glob::Star] => StrMatch::Prefix(f(s)),
        [Glob::Star, Glob::Lit(s)] => StrMatch::Suffix(f(s)),
        [Glob::Star, Glob::Lit(s), Glob::Star] => StrMatch::Contains(f(s)),
        _ => StrMatch::Glob(
            g.into_iter()
                .map(|p| match p {
                    Glob::Lit(s) => Glob::Lit(f(&s)),
                    other => other,
                })
                .collect(),
        ),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let len = chunk.len();
        for i in 0..4 {
            if i <= len {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The three forms a value takes inside base64 text, whatever its offset there.
fn base64_offsets(v: &[u8]) -> Vec<String> {
    let starts = [0usize, 2, 3];
    (0..3)
        .map(|i| {
            let mut buf = vec![b' '; i];
            buf.extend_from_slice(v);
            let enc = base64(&buf);
            let cut_end = match (i + v.len()) % 3 {
                0 => 0,
                1 => 3,
                _ => 2,
            };
            let end = enc.len().saturating_sub(cut_end);
            enc.get(starts[i]..end.max(starts[i]))
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn utf16(s: &str, kind: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if kind == "bom" {
        out.extend_from_slice(&[0xff, 0xfe]);
    }
    for u in s.encode_utf16() {
        let b = if kind == "be" {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        };
        out.extend_from_slice(&b);
    }
    out
}

const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

fn windash(s: &str) -> Vec<String> {
    let positions: Vec<usize> = s
        .char_indices()
        .filter(|(_, c)| DASHES.contains(c))
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return vec![s.to_owned()];
    }
    // Every combination, bounded: a value with many dashes keeps the first four variable.
    let vary = positions.len().min(4);
    let mut out = Vec::new();
    for combo in 0..DASHES.len().pow(vary as u32) {
        let mut k = combo;
        let mut v = String::with_capacity(s.len() + 8);
        let mut seen = 0;
        for (i, c) in s.char_indices() {
            if seen < vary && positions.get(seen) == Some(&i) {
                v.push(DASHES[k % DASHES.len()]);
                k /= DASHES.len();
                seen += 1;
            } else {
                v.push(c);
            }
        }
        out.push(v);
    }
    out
}

fn expand_placeholders(
    s: &str,
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, ValueError> {
    // Split into literal text and %name% placeholders (`\%` is a plain percent).
    let mut parts: Vec<Result<String, String>> = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'%') {
            chars.next();
            lit.push('%');
        } else if c == '%' {
            let mut name = String::new();
            let mut closed = false;
            for n in chars.by_ref() {
                if n == '%' {
                    closed = true;
                    break;
                }
                name.push(n);
            }
            if !closed {
                lit.push('%');
                lit.push_str(&name);
                continue;
            }
            parts.push(Ok(std::mem::take(&mut lit)));
            parts.push(Err(name));
        } else {
            lit.push(c);
        }
    }
    parts.push(Ok(lit));
    let mut out = vec![String::new()];
    for p in parts {
        match p {
            Ok(text) => out.iter_mut().for_each(|o| o.push_str(&text)),
            Err(name) => {
                let values = placeholders.get(&name).ok_or_else(|| {
                    ValueError::Invalid(format!("placeholder %{name}% has no values (set [placeholders] {name} in the config)"))
                })?;
                out = out
                    .iter()
                    .flat_map(|o| values.iter().map(move |v| format!("{o}{v}")))
                    .collect();
            }
        }
    }
    Ok(out)
}

/// Compiles `field|mods: values`.
pub fn compile_field(
    key: &str,
    values: &[yaml_rust2::Yaml],
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<FieldMatcher, ValueError> {
    use yaml_rust2::Yaml;
    let mut split = key.split('|');
    let field = split.next().unwrap_or_default();
    let mod_names: Vec<&str> = split.collect();
    let m = parse_mods(&mod_names)?;
    if m.all && values.len() < 2 {
        return Err(ValueError::Invalid(
            "`all` needs a list of two or more values".into(),
        ));
    }
    let mut patterns = Vec::new();
    for v in values {
        let text = match v {
            Yaml::Null => {
                if !mod_names.is_empty() {
                    return Err(ValueError::Invalid("`null` takes no modifiers".into()));
                }
                patterns.push(Pattern::Null);
                continue;
            }
            Yaml::Boolean(b) if m.exists => {
                patterns.push(Pattern::Exists(*b));
                continue;
            }
            Yaml::Boolean(b) => b.to_string(),
            Yaml::Integer(i) => i.to_string(),
            Yaml::Real(r) => r.clone(),
            Yaml::String(s) => s.clone(),
            Yaml::Array(_) | Yaml::Hash(_) => {
                return Err(ValueError::Invalid(
                    "a value must be a string, number, boolean or null".into(),
                ))
            }
            _ => return Err(ValueError::Invalid("unreadable value".into())),
        };
        if m.exists {
            return Err(ValueError::Invalid("`exists` takes true or false".into()));
        }
        if let Some(op) = m.cmp.filter(|_| m.time.is_none()) {
            let value = text
                .trim()
                .parse::<f64>()
                .map_err(|_| ValueError::Invalid(format!("`{text}` is not a number")))?;
            patterns.push(Pattern::Cmp { op, value });
            continue;
        }
        if let Some(part) = m.time {
            let value = text
                .trim()
                .parse::<f64>()
                .map_err(|_| ValueError::Invalid(format!("`{text}` is not a number")))?;
            patterns.push(Pattern::Time {
                part,
                op: m.cmp,
                value,
            });
            continue;
        }
        if m.fieldref {
            patterns.push(Pattern::FieldRef {
                path: FieldPath::new(&text),
                cased: m.cased,
            });
            continue;
        }
        if m.cidr {
            let c = Cidr::parse(&text)
                .ok_or_else(|| ValueError::Invalid(format!("`{text}` is not a CIDR range")))?;
            patterns.push(Pattern::Cidr(c));
            continue;
        }
        if let Some((i, ml, s)) = m.re {
            patterns.push(Pattern::Regex(Box::new(Re::new(&text, i, ml, s)?)));
            continue;
        }
        // Strings: placeholders, dash variants, encodings, then position modifiers.
        let texts = if m.expand {
            expand_placeholders(&text, placeholders)?
        } else {
            vec![text]
        };
        let texts: Vec<String> = if m.windash {
            texts.iter().flat_map(|t| windash(t)).collect()
        } else {
            texts
        };
        for t in texts {
            let mut globs = parse_glob(&t);
            let encodings: Option<Vec<String>> = if m.base64 || m.base64offset {
                if has_wildcards(&globs) {
                    return Err(ValueError::Invalid(
                        "wildcards cannot be base64-encoded".into(),
                    ));
                }
                let lit = literal_of(&globs);
                let bytes = match m.utf16 {
                    Some(kind) => utf16(&lit, kind),
                    None => lit.into_bytes(),
                };
                Some(if m.base64offset {
                    base64_offsets(&bytes)
                } else {
                    vec![base64(&bytes)]
                })
            } else if let Some(kind) = m.utf16 {
                let bytes = utf16(&literal_of(&globs), kind);
                Some(vec![String::from_utf8_lossy(&bytes).into_owned()])
            } else {
                None
            };
            // Encoded text is matched exactly as encoded, so base64 is always cased.
            let cased = m.cased || encodings.is_some();
            let variants: Vec<Vec<Glob>> = match encodings {
                Some(list) => list.into_iter().map(|e| vec![Glob::Lit(e)]).collect(),
                None => vec![std::mem::take(&mut globs)],
            };
            for mut g in variants {
                if m.contains || m.startswith || m.base64offset {
                    g.push(Glob::Star);
                }
                if m.contains || m.endswith || m.base64offset {
                    g.insert(0, Glob::Star);
                }
                patterns.push(Pattern::Str {
                    m: str_match(g, cased),
                    cased,
                });
            }
        }
    }
    let set = if m.all { None } else { literal_set(&patterns) };
    let nums = number_literals(&patterns);
    let direct = patterns.iter().all(|p| {
        matches!(
            p,
            Pattern::Cmp { .. } | Pattern::Cidr(_) | Pattern::Exists(_)
        )
    });
    let prefilter = if m.neq {
        None
    } else {
        patterns
            .iter()
            .map(|p| match p {
                Pattern::Str { m, .. } => Needle::of(m),
                _ => None,
            })
            .collect::<Option<Box<[Needle]>>>()
            .filter(|n| !n.is_empty())
    };
    Ok(FieldMatcher {
        path: FieldPath::new(field),
        typed: None,
        nums,
        direct,
        prefilter,
        patterns,
        all: m.all,
        neq: m.neq,
        set,
        cache_slot: None,
    })
}

/// A piece of text searched for in a record's raw text, ignoring ASCII case (in the
/// record's text lowercased once, see [`RecordText`]). Only meaningful on a text
/// without `\u` escapes (see [`raw_holds_escapes`]).
#[derive(Clone, Debug)]
pub struct Needle {
    /// Of the lowercase piece.
    finder: memchr::memmem::Finder<'static>,
}

impl Needle {
    /// Pieces with fewer letters than this are too common to turn records away.
    const MIN: usize = 4;

    /// The last run of the literal parts of `m` with enough letters (in paths and
    /// URIs the last part says most: `…/global/AllUsers`), among runs of
    /// bytes a record's JSON text holds exactly as the parsed value does: letters,
    /// digits and punctuation that is neither escaped nor JSON's own structure
    /// (no quotes, slashes, colons, commas or brackets). With at least
    /// [`MIN`](Self::MIN) letters such a run can only lie inside a string (or
    /// `true`, `false`, `null`), never in a number's text, which a writer may
    /// format differently.
    fn of(m: &StrMatch) -> Option<Needle> {
        let safe = |b: &u8| b.is_ascii_alphanumeric() || b"-_.@=+;#$%!()|~^ ".contains(b);
        let lits: Vec<&str> = match m {
            StrMatch::Exact(l)
            | StrMatch::Prefix(l)
            | StrMatch::Suffix(l)
            | StrMatch::Contains(l) => {
                vec![l.as_str()]
            }
            StrMatch::Glob(g) => g
                .iter()
                .filter_map(|x| match x {
                    Glob::Lit(l) => Some(l.as_str()),
                    _ => None,
                })
                .collect(),
        };
        let letters = |run: &[u8]| run.iter().filter(|b| b.is_ascii_alphabetic()).count();
        let best = lits
            .iter()
            .flat_map(|l| l.as_bytes().split(|b| !safe(b)))
            .rev()
            .find(|run| letters(run) >= Self::MIN)?;
        let finder = memchr::memmem::Finder::new(&best.to_ascii_lowercase()).into_owned();
        Some(Needle { finder })
    }

    /// Whether `lower`, a text already ASCII-lowercased, holds the piece.
    pub fn found_in_lower(&self, lower: &[u8]) -> bool {
        self.finder.find(lower).is_some()
    }

    /// Whether `hay` holds the piece, ignoring ASCII case.
    pub fn found_in(&self, hay: &[u8]) -> bool {
        self.found_in_lower(&hay.to_ascii_lowercase())
    }
}

/// A record's text as the prefilter reads it: lowercased, and whether it has `\u`
/// escapes, each worked out at most once per record, when a needle first asks.
#[derive(Default)]
pub struct RecordText {
    lower: Vec<u8>,
    lowered: bool,
    escapes: Option<bool>,
}

impl RecordText {
    /// Forgets the last record.
    pub fn reset(&mut self) {
        self.lowered = false;
        self.escapes = None;
    }

    /// Whether `raw` (the current record) may hold a match for a field with these
    /// needles: one of them is in it, or it has escapes that could spell one.
    pub fn may_hold(&mut self, raw: &[u8], needles: &[Needle]) -> bool {
        if !self.lowered {
            self.lower.clear();
            self.lower.extend_from_slice(raw);
            self.lower.make_ascii_lowercase();
            self.lowered = true;
        }
        needles.iter().any(|n| n.found_in_lower(&self.lower))
            || *self.escapes.get_or_insert_with(|| raw_holds_escapes(raw))
    }
}

/// Whether a record's text has `\u` escapes, which may spell any letter: then
/// needles say nothing about it.
pub fn raw_holds_escapes(raw: &[u8]) -> bool {
    memchr::memmem::find(raw, b"\\u").is_some()
}

/// The numbers of `patterns` when every one is an exact, plain decimal literal: the
/// text a number is written as in JSON (no sign, no leading zero, no spaces), which
/// is the only text a typed number can equal.
fn number_literals(patterns: &[Pattern]) -> Option<Box<[u64]>> {
    patterns
        .iter()
        .map(|p| match p {
            Pattern::Str {
                m: StrMatch::Exact(lit),
                ..
            } => lit
                .parse::<u64>()
                .ok()
                .filter(|n| lit.len() == decimal_len(*n)),
            _ => None,
        })
        .collect()
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// `text` folded as a case-insensitive exact match folds it before comparing with a
/// pattern's literal (ASCII lowercase, or full lowercase for non-ASCII text): equal
/// keys are exactly the texts that match.
pub fn fold_key(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&text.to_lowercase());
    }
}

/// Compares ASCII case-insensitively against an already folded pattern; a non-ASCII
/// haystack is folded into a temporary.
fn with_folded<R>(hay: &str, cased: bool, f: impl FnOnce(&str, bool) -> R) -> R {
    if cased || hay.is_ascii() {
        f(hay, !cased)
    } else {
        f(&hay.to_lowercase(), false)
    }
}

fn eq_fold(a: &[u8], b: &[u8], fold: bool) -> bool {
    if fold {
        eq_ignore_ascii_case(a, b)
    } else {
        a == b
    }
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes at a time (the standard one goes byte by
/// byte; an `eventName` or `network.action` compare is most of what it does).
pub(crate) fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    // The last few bytes one by one: packing them into a word costs more.
    let tails_agree = words_a
        .remainder()
        .eq_ignore_ascii_case(words_b.remainder());
    let word = |c: &[u8]| {
        c.first_chunk::<8>()
            .map(|w| ascii_lower8(u64::from_le_bytes(*w)))
    };
    tails_agree && words_a.zip(words_b).all(|(x, y)| word(x) == word(y))
}

/// The eight bytes of `w` with ASCII capitals made small; other bytes as they are.
fn ascii_lower8(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = w & !HIGH;
    // Per byte, no carry out of it: the high bit says `low7 >= 'A'`, then `> 'Z'`.
    let from_a = low7 + ONES * u64::from(0x80 - b'A');
    let past_z = low7 + ONES * u64::from(0x7f - b'Z');
    let capital = from_a & !past_z & !w & HIGH;
    w | (capital >> 2)
}

fn find_fold(hay: &[u8], needle: &[u8], fold: bool) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if !fold {
        return memchr::memmem::find(hay, needle);
    }
    let (lo, up) = (
        needle[0].to_ascii_lowercase(),
        needle[0].to_ascii_uppercase(),
    );
    let mut start = 0;
    while start + needle.len() <= hay.len() {
        let i = start + memchr::memchr2(lo, up, &hay[start..=hay.len() - needle.len()])?;
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(i);
        }
        start = i + 1;
    }
    None
}

fn glob_match(hay: &[u8], pat: &[Glob], fold: bool) -> bool {
    // Iterative matcher with one backtrack point per star: linear in practice.
    let (mut h, mut p) = (0usize, 0usize);
    let mut lit_off = 0usize;
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pat.len() {
            if h == hay.len() {
                return true;
            }
        } else {
            match &pat[p] {
                Glob::Star => {
                    star = Some((p, h));
                    p += 1;
                    continue;
                }
                Glob::One => {
                    if h < hay.len() {
                        // One character, not one byte.
                        h += utf8_len(hay[h]);
                        p += 1;
                        continue;
                    }
                }
                Glob::Lit(s) => {
                    let s = s.as_bytes();
                    let rest = &s[lit_off..];
                    if hay.len() - h >= rest.len() && eq_fold(&hay[h..h + rest.len()], rest, fold) {
                        h += rest.len();
                        p += 1;
                        lit_off = 0;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sh)) if sh < hay.len() => {
                let next = sh + utf8_len(hay[sh]);
                star = Some((sp, next));
                p = sp + 1;
                h = next;
                lit_off = 0;
            }
            _ => return false,
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

impl StrMatch {
    fn test(&self, hay: &str, cased: bool) -> bool {
        with_folded(hay, cased, |h, fold| {
            let h = h.as_bytes();
            match self {
                StrMatch::Exact(p) => h.len() == p.len() && eq_fold(h, p.as_bytes(), fold),
                StrMatch::Prefix(p) => {
                    h.len() >= p.len() && eq_fold(&h[..p.len()], p.as_bytes(), fold)
                }
                StrMatch::Suffix(p) => {
                    h.len() >= p.len() && eq_fold(&h[h.len() - p.len()..], p.as_bytes(), fold)
                }
                StrMatch::Contains(p) => find_fold(h, p.as_bytes(), fold).is_some(),
                StrMatch::Glob(g) => glob_match(h, g, fold),
            }
        })
    }

    /// The exact literal this matches, when it is one (for rule indexing).
    pub(crate) fn exact(&self) -> Option<&str> {
        match self {
            StrMatch::Exact(s) => Some(s),
            _ => None,
        }
    }
}

impl Pattern {
    /// The exact, case-insensitive literal this pattern stands for, if it is one.
    pub(crate) fn exact_literal(&self) -> Option<&str> {
        match self {
            Pattern::Str { m, cased: false } => m.exact(),
            _ => None,
        }
    }
}

/// The JSON texts of the objects and lists inside one field's value, made once per
/// match and shared by all the field's values (`requestParameters|contains: [a, b]`
/// writes the object out once, not once per value and nesting level). Keyed by
/// address: the value is borrowed, unchanged, for the whole match.
#[derive(Default)]
struct JsonTexts(std::cell::RefCell<Vec<(usize, String)>>);

impl JsonTexts {
    /// `test` on `v`'s text (`false` for null).
    fn with(&self, v: &Value, test: impl FnOnce(&str) -> bool) -> bool {
        match v {
            Value::Object(_) | Value::Array(_) => {
                let key = std::ptr::from_ref(v) as usize;
                let mut texts = self.0.borrow_mut();
                let at = match texts.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        texts.push((key, v.to_string()));
                        texts.len() - 1
                    }
                };
                test(&texts[at].1)
            }
            other => scalar_text(other).is_some_and(|t| test(&t)),
        }
    }
}

/// A field value as text for string matching; objects and arrays as compact JSON.
fn scalar_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
            "true"
        } else {
            "false"
        })),
        Value::Null => None,
        Value::Object(_) | Value::Array(_) => Some(std::borrow::Cow::Owned(v.to_string())),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn time_part(v: &Value, part: TimePart) -> Option<f64> {
    let t = Timestamp::parse(v.as_str()?).ok()?;
    let (y, mo, d, h, mi, _, _) = t.to_parts();
    Some(match part {
        TimePart::Minute => f64::from(mi),
        TimePart::Hour => f64::from(h),
        TimePart::Day => f64::from(d),
        TimePart::Month => f64::from(mo),
        TimePart::Year => y as f64,
        // ISO-8601-like week of the year, 1–53, counted from January 1st.
        TimePart::Week => {
            let jan1 = Timestamp::parse(&format!("{y:04}-01-01T00:00:00Z")).ok()?;
            ((t.as_secs() - jan1.as_secs()) / (7 * 86_400) + 1) as f64
        }
    })
}

impl Pattern {
    fn test_value(&self, v: &Value, root: &dyn Members, texts: &JsonTexts) -> bool {
        match v {
            // A field holding a list matches when any of its items does; an object
            // (e.g. `requestParameters`) when any string inside it does. Either also
            // matches as a whole, by its JSON text.
            Value::Array(items) if items.iter().any(|i| self.test_value(i, root, texts)) => {
                return true
            }
            Value::Object(map)
                if self.is_textual() && map.values().any(|i| self.test_value(i, root, texts)) =>
            {
                return true
            }
            _ => {}
        }
        match self {
            Pattern::Str { m, cased } => texts.with(v, |t| m.test(t, *cased)),
            Pattern::Regex(re) => texts.with(v, |t| re.is_match(t)),
            Pattern::Cidr(c) => v
                .as_str()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| c.contains(ip)),
            Pattern::Cmp { op, value } => number_of(v).is_some_and(|n| op.test(n, *value)),
            Pattern::Time { part, op, value } => {
                time_part(v, *part).is_some_and(|n| op.map_or(n == *value, |op| op.test(n, *value)))
            }
            Pattern::Null => v.is_null(),
            Pattern::Exists(want) => *want,
            Pattern::FieldRef { path, cased } => {
                match (scalar_text(v), path.lookup(root).and_then(scalar_text)) {
                    (Some(a), Some(b)) => {
                        if *cased {
                            a == b
                        } else {
                            a.to_lowercase() == b.to_lowercase()
                        }
                    }
                    _ => false,
                }
            }
        }
    }

    fn is_textual(&self) -> bool {
        matches!(self, Pattern::Str { .. } | Pattern::Regex(_))
    }

    fn test_missing(&self) -> bool {
        matches!(self, Pattern::Null | Pattern::Exists(false))
    }
}

impl Pattern {
    /// Whether the pattern can be tested on a field's text alone (the typed fast
    /// path), giving the same answer as on the JSON.
    fn text_only(&self) -> bool {
        match self {
            // An empty value is "" in JSON but no value in the typed event.
            Pattern::Str {
                m: StrMatch::Exact(s),
                ..
            } => !s.is_empty(),
            // `exists` on a typed field: whether the model has a value (CloudTrail
            // writes no explicit nulls in the fields the model carries).
            Pattern::Str { .. }
            | Pattern::Regex(_)
            | Pattern::Cidr(_)
            | Pattern::Cmp { .. }
            | Pattern::Exists(_) => true,
            _ => false,
        }
    }

    fn test_text(&self, t: &str) -> bool {
        match self {
            Pattern::Str { m, cased } => m.test(t, *cased),
            Pattern::Regex(re) => re.is_match(t),
            Pattern::Cidr(c) => t
                .trim()
                .parse::<IpAddr>()
                .ok()
                .is_some_and(|ip| c.contains(ip)),
            Pattern::Cmp { op, value } => t
                .trim()
                .parse::<f64>()
                .ok()
                .is_some_and(|n| op.test(n, *value)),
            Pattern::Exists(want) => *want,
            _ => false,
        }
    }
}

impl FieldMatcher {
    /// Whether every value can be tested on the field's text alone.
    pub fn text_only(&self) -> bool {
        self.patterns.iter().all(Pattern::text_only)
    }

    /// Whether testing a text costs a scan of it (so remembering the answer pays).
    pub fn scans(&self) -> bool {
        self.set.is_some()
            || self.patterns.len() > 3
            || self.patterns.iter().any(|p| {
                matches!(
                    p,
                    Pattern::Regex(_)
                        | Pattern::Str {
                            m: StrMatch::Contains(_) | StrMatch::Glob(_),
                            ..
                        }
                )
            })
    }

    /// Matches a field given as text (`None`: the event has no value), for matchers
    /// that are [`text_only`](Self::text_only).
    pub fn matches_text(&self, v: Option<&str>) -> bool {
        if let (Some(set), Some(Pattern::Str { cased, .. })) = (&self.set, self.patterns.first()) {
            let hit = v.is_some_and(|t| with_folded(t, *cased, |h, _| set.is_match(h)));
            return if self.neq { v.is_some() && !hit } else { hit };
        }
        // One string value (`network.action: ACCEPT`): `all` and `any` agree.
        if let [Pattern::Str { m, cased }] = self.patterns.as_slice() {
            let hit = v.is_some_and(|t| m.test(t, *cased));
            return if self.neq { v.is_some() && !hit } else { hit };
        }
        self.decide(v.is_some(), |p| match v {
            Some(t) => p.test_text(t),
            None => p.test_missing(),
        })
    }

    /// Matches a value from the typed event model (`None`: the event has no value),
    /// for matchers that are [`text_only`](Self::text_only): the same answer as
    /// [`matches_text`](Self::matches_text) on its text. Addresses and numbers are
    /// tested as such where every pattern allows, otherwise on their text.
    pub fn matches_typed(&self, v: Option<&Typed<'_>>) -> bool {
        match v {
            None => self.matches_text(None),
            Some(Typed::Text(t)) => self.matches_text(Some(t)),
            // Only plain numbers (`network.dst_port: [22, 3389]`).
            Some(Typed::Num(n)) if self.nums.is_some() => {
                let nums = self.nums.as_deref().unwrap_or_default();
                if self.neq {
                    !nums.contains(n)
                } else if self.all {
                    nums.iter().all(|x| x == n)
                } else {
                    nums.contains(n)
                }
            }
            Some(Typed::Num(n)) if self.direct => self.decide(true, |p| match p {
                Pattern::Cmp { op, value } => op.test(*n as f64, *value),
                Pattern::Exists(want) => *want,
                // A number's text is never an address.
                _ => false,
            }),
            Some(Typed::Ip(ip)) if self.direct => self.decide(true, |p| match p {
                Pattern::Cidr(c) => c.contains(*ip),
                Pattern::Exists(want) => *want,
                // An address's text is never a number.
                _ => false,
            }),
            Some(other) => {
                let mut text = String::new();
                other.push_to(&mut text);
                self.matches_text(Some(&text))
            }
        }
    }

    /// Combines the answers of the values as `all`, `neq` or the default `any` ask;
    /// `present`: whether the event has a value.
    fn decide(&self, present: bool, one: impl FnMut(&Pattern) -> bool) -> bool {
        let mut each = self.patterns.iter();
        if self.neq {
            return present && !each.any(one);
        }
        if self.all {
            each.all(one)
        } else {
            each.any(one)
        }
    }

    /// Matches against the event's JSON.
    pub fn matches(&self, root: &dyn Members) -> bool {
        let v = self.path.lookup(root);
        let texts = JsonTexts::default();
        let one = |p: &Pattern| match v {
            None => p.test_missing(),
            Some(v) => match p {
                Pattern::Exists(want) => *want,
                p => p.test_value(v, root, &texts),
            },
        };
        if self.neq {
            // Different from every value; a missing field is not "different".
            return v.is_some_and(|v| !v.is_null()) && !self.patterns.iter().any(one);
        }
        if self.all {
            self.patterns.iter().all(one)
        } else {
            self.patterns.iter().any(one)
        }
    }
}

/// Full-text keywords: a value anywhere in the record.
pub fn compile_keywords(values: &[yaml_rust2::Yaml]) -> Result<Vec<Pattern>, ValueError> {
    values
        .iter()
        .map(|v| {
            let text = match v {
                yaml_rust2::Yaml::String(s) => s.clone(),
                yaml_rust2::Yaml::Integer(i) => i.to_string(),
                _ => return Err(ValueError::Invalid("keywords must be strings".into())),
            };
            let mut g = parse_glob(&text);
            if !matches!(g.first(), Some(Glob::Star)) {
                g.insert(0, Glob::Star);
            }
            if !matches!(g.last(), Some(Glob::Star)) {
                g.push(Glob::Star);
            }
            Ok(Pattern::Str {
                m: str_match(g, false),
                cased: false,
            })
        })
        .collect()
}

/// Keyword test on the raw record text.
pub fn keyword_matches(p: &Pattern, raw: &str) -> bool {
    match p {
        Pattern::Str { m, cased } => m.test(raw, *cased),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yaml_rust2::Yaml;

    fn field(key: &str, values: &[&str]) -> FieldMatcher {
        let v: Vec<Yaml> = values.iter().map(|s| Yaml::String((*s).into())).collect();
        compile_field(key, &v, &HashMap::new()).unwrap()
    }

    #[test]
    fn word_case_folding_is_the_standard_one() {
        // Every byte pair, in each position of a word and of a tail.
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                for at in [0, 5, 7, 9] {
                    let mut a = b"Zebra-Accept".to_vec();
                    let mut b = b"zEBRA-aCCEPT".to_vec();
                    a[at] = x;
                    b[at] = y;
                    assert_eq!(
                        eq_ignore_ascii_case(&a, &b),
                        a.eq_ignore_ascii_case(&b),
                        "{x:#x} {y:#x} at {at}"
                    );
                }
            }
        }
        assert!(!eq_ignore_ascii_case(b"accept", b"accepts"));
        assert!(eq_ignore_ascii_case(b"", b""));
    }

    #[test]
    fn needles_are_pieces_a_record_text_must_hold() {
        let needle = |lit: &str| Needle::of(&StrMatch::Contains(lit.into()));
        let n = needle("acs.amazonaws.com/groups/global/AllUsers").unwrap();
        // The run with the most letters, lowercase; found ignoring case.
        assert_eq!(n.finder.needle(), b"allusers");
        assert!(n.found_in(br#"{"uri":"http://acs.amazonaws.com/groups/global/ALLUSERS"}"#));
        assert!(n.found_in(b"AllUsers"));
        assert!(!n.found_in(br#"{"uri":"http://acs.amazonaws.com/groups/global/AllUser"}"#));
        assert!(!n.found_in(b"all"));
        // Nothing that JSON writers may spell differently: too few letters, or a
        // number's text, or pieces of JSON's structure.
        assert!(needle("10.0.0.1").is_none());
        assert!(needle("1e300").is_none());
        assert!(needle("ab:tru").is_none());
        assert_eq!(needle("x,trueish").unwrap().finder.needle(), b"trueish");
        // Wildcard values give their literal parts.
        let g = Needle::of(&str_match(parse_glob("*public-read*"), false)).unwrap();
        assert_eq!(g.finder.needle(), b"public-read");
        // A record with `\u` escapes may spell any letter so: needles say nothing.
        assert!(raw_holds_escapes(br#"{"a":"\u0041llUsers"}"#));
        assert!(!raw_holds_escapes(br#"{"a":"AllUsers\\"}"#));
        let f = field("requestParameters|contains", &["AllUsers"]);
        let rule_text = r#"{"requestParameters":{"grantee":"\u0041llUsers"}}"#;
        let doc: Value = serde_json::from_str(rule_text).unwrap();
        assert!(f.matches(&doc));
        assert!(!f.prefilter.as_ref().unwrap()[0].found_in(rule_text.as_bytes()));
        assert!(raw_holds_escapes(rule_text.as_bytes()));
    }

    #[test]
    fn text_cache_answers_as_the_test_and_steps_aside_when_texts_do_not_repeat() {
        let mut cache = TextCache::keeping_from(0);
        let truth = |t: &str| t.bytes().map(u32::from).sum::<u32>() % 3 == 0;
        let mut tests = 0;
        // Texts that never repeat: after one trial the slot stops remembering.
        for i in 0..3 * TextCache::TRIAL {
            let t = format!("arn:aws:sts::1:assumed-role/r/session-{i}");
            let got = cache.get_or(0, &t, || {
                tests += 1;
                truth(&t)
            });
            assert_eq!(got, truth(&t));
        }
        assert_eq!(tests, 3 * TextCache::TRIAL);
        assert!(cache.slots[0].answers.is_empty());
        assert!(cache.slots[0].bypass > 0);
        // A slot whose texts repeat keeps them: each is tested once.
        let mut tests = 0;
        for i in 0..3 * TextCache::TRIAL {
            let t = format!("aws-cli/2.{}", i % 100);
            let got = cache.get_or(1, &t, || {
                tests += 1;
                truth(&t)
            });
            assert_eq!(got, truth(&t));
        }
        assert_eq!(tests, 100);
        assert_eq!(cache.slots[1].bypass, 0);
    }

    #[test]
    fn typed_values_render_as_their_json() {
        let text = |v: Typed<'_>| v.into_text().into_owned();
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "100.64.9.99",
            "192.168.10.200",
            "::1",
            "2001:db8::5",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(text(Typed::Ip(ip)), ip.to_string());
            assert_eq!(text(Typed::Ip(ip)), json!(ip).as_str().unwrap());
        }
        for n in [0, 7, 10, 99, 100, 65535, u64::MAX] {
            assert_eq!(text(Typed::Num(n)), json!(n).to_string());
        }
        assert_eq!(Typed::Num(22).number(), Some(22.0));
        assert_eq!(Typed::Text(" 22 ".into()).number(), Some(22.0));
        assert_eq!(Typed::Ip("10.0.0.1".parse().unwrap()).number(), None);
    }

    #[test]
    fn wildcards_and_escapes() {
        let doc =
            json!({"a": "C:\\Windows\\cmd.exe", "b": "prog1.exe", "c": "a*b", "d": "EvilService"});
        assert!(field("a", &["*\\cmd.exe"]).matches(&doc));
        assert!(field("b", &["prog?.exe"]).matches(&doc));
        assert!(!field("b", &["prog?.ex"]).matches(&doc));
        assert!(field("c", &["a\\*b"]).matches(&doc));
        assert!(!field("c", &["a\\*c"]).matches(&doc));
        assert!(
            field("d", &["evilservice"]).matches(&doc),
            "case-insensitive by default"
        );
        assert!(!field("d|cased", &["evilservice"]).matches(&doc));
        assert!(field("d|contains", &["ILSER"]).matches(&doc));
        assert!(field("d|startswith", &["evil"]).matches(&doc));
        assert!(field("d|endswith", &["SERVICE"]).matches(&doc));
        assert!(field("d", &["E*l*e"]).matches(&doc));
    }

    #[test]
    fn modifiers() {
        let doc = json!({"ip": "10.1.2.3", "n": 42, "s": "42", "ua": "aws-cli/2 md/command#s3.cp",
                         "cmd": "powershell -enc SQBFAFgA", "arr": ["x", "Root"], "obj": {"k": "\"Allow\""},
                         "t": "2024-06-01T13:45:00Z", "u": "bob", "name": "BOB"});
        assert!(field("ip|cidr", &["10.0.0.0/8"]).matches(&doc));
        assert!(!field("ip|cidr", &["192.168.0.0/16"]).matches(&doc));
        assert!(compile_field("n|gt", &[Yaml::Integer(41)], &HashMap::new())
            .unwrap()
            .matches(&doc));
        assert!(
            !compile_field("n|lt", &[Yaml::Integer(41)], &HashMap::new())
                .unwrap()
                .matches(&doc)
        );
        assert!(
            compile_field("s|gte", &[Yaml::Integer(42)], &HashMap::new())
                .unwrap()
                .matches(&doc)
        );
        assert!(field("ua|contains|all", &["aws-cli", "s3.cp"]).matches(&doc));
        assert!(!field("ua|contains|all", &["aws-cli", "ec2"]).matches(&doc));
        assert!(field("ua|re", &["^aws-cli/\\d"]).matches(&doc));
        assert!(!field("ua|re", &["^AWS-CLI"]).matches(&doc));
        assert!(field("ua|re|i", &["^AWS-CLI"]).matches(&doc));
        assert!(
            field("arr", &["root"]).matches(&doc),
            "lists match on any item"
        );
        assert!(
            field("obj|contains", &["\"Allow\""]).matches(&doc),
            "objects match as their JSON text"
        );
        assert!(
            compile_field("t|hour", &[Yaml::Integer(13)], &HashMap::new())
                .unwrap()
                .matches(&doc)
        );
        assert!(field("u|fieldref", &["name"]).matches(&doc));
        assert!(!field("u|fieldref|cased", &["name"]).matches(&doc));
        assert!(field("u|neq", &["alice"]).matches(&doc));
        assert!(!field("u|neq", &["bob"]).matches(&doc));
        assert!(!field("missing|neq", &["bob"]).matches(&doc));
        assert!(
            compile_field("u|exists", &[Yaml::Boolean(true)], &HashMap::new())
                .unwrap()
                .matches(&doc)
        );
        assert!(
            compile_field("zz|exists", &[Yaml::Boolean(false)], &HashMap::new())
                .unwrap()
                .matches(&doc)
        );
        assert!(compile_field("zz", &[Yaml::Null], &HashMap::new())
            .unwrap()
            .matches(&doc));
        assert!(!compile_field("u", &[Yaml::Null], &HashMap::new())
            .unwrap()
            .matches(&doc));
        assert!(field("cmd|windash|contains", &["/enc"]).matches(&doc));
        assert!(
            !field("cmd|windash", &["/enc"]).matches(&doc),
            "no contains: the whole value"
        );
    }

    #[test]
    fn base64_forms() {
        assert_eq!(base64(b"cmd"), "Y21k");
        assert_eq!(base64(b"ab"), "YWI=");
        // The three offsets of "http" inside base64 text.
        assert_eq!(base64_offsets(b"http"), ["aHR0c", "h0dH", "odHRw"]);
        let doc = json!({"x": format!("zz{}zz", base64(b"  http://evil"))});
        assert!(field("x|base64offset|contains", &["http"]).matches(&doc));
        let doc = json!({"x": base64(&utf16("cmd", "le"))});
        assert!(field("x|wide|base64", &["cmd"]).matches(&doc));
    }

    #[test]
    fn placeholders() {
        let mut ph = HashMap::new();
        ph.insert(
            "admins".to_string(),
            vec!["root".to_string(), "admin*".to_string()],
        );
        let f = compile_field("u|expand", &[Yaml::String("%admins%".into())], &ph).unwrap();
        assert!(f.matches(&json!({"u": "administrator"})));
        assert!(!f.matches(&json!({"u": "bob"})));
        let err = compile_field("u|expand", &[Yaml::String("%nope%".into())], &ph).unwrap_err();
        assert!(matches!(err, ValueError::Invalid(m) if m.contains("%nope%")));
        // `\%` is a plain percent; the unclosed `%` after it stays plain too.
        let plain = compile_field("u|expand", &[Yaml::String("\\%admins%".into())], &ph).unwrap();
        assert!(plain.matches(&json!({"u": "%admins%"})));
    }

    #[test]
    fn unsupported_and_invalid() {
        let e = compile_field("x|frobnicate", &[Yaml::String("a".into())], &HashMap::new())
            .unwrap_err();
        assert_eq!(e, ValueError::Unsupported("modifier `frobnicate`".into()));
        let e = compile_field("x|all", &[Yaml::String("a".into())], &HashMap::new()).unwrap_err();
        assert!(matches!(e, ValueError::Invalid(_)));
    }

    #[test]
    fn dotted_paths() {
        let doc = json!({"a": {"b.c": {"d": 1}}, "x.y": "z"});
        assert_eq!(FieldPath::new("a.b.c.d").lookup(&doc), Some(&json!(1)));
        assert_eq!(FieldPath::new("x.y").lookup(&doc), Some(&json!("z")));
        assert_eq!(FieldPath::new("a.q").lookup(&doc), None);
    }

    #[test]
    fn regex_needles_are_what_every_match_holds() {
        let needle = |p: &str, i: bool| {
            Re::new(p, i, false, false)
                .unwrap()
                .needle()
                .map(|n| String::from_utf8(n.to_vec()).unwrap())
        };
        assert_eq!(
            needle(".+:assumed-role/aws:.+", false).as_deref(),
            Some(":assumed-role/aws:")
        );
        assert_eq!(needle("^abc(de)+x?", false).as_deref(), Some("abc"));
        assert_eq!(needle("(?:xyz){2,}q", false).as_deref(), Some("xyz"));
        // Nothing every match must hold.
        assert_eq!(needle("abc|abd", false), None);
        assert_eq!(needle("(abc)?d*", false), None);
        // Case-insensitive: letters that fold are classes, other text stays.
        assert_eq!(needle("(?i)policy\\*\"", false).as_deref(), Some("*\""));
        assert_eq!(needle("a:/-b", true).as_deref(), Some(":/-"));
    }

    proptest::proptest! {
        #[test]
        fn regex_prefilter_never_changes_an_answer(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "ab", ":", "x+", "(ab|c)", "[a-c]", ".", ".*", "a?", "(?:ba){1,2}",
                    "\\d", "K", "^", "$", "(?i:k)", "(?:abc)?", "c*",
                ]),
                1..6,
            ),
            text in "[abcxK:\\n1\u{212A}]{0,12}",
            i: bool,
            m: bool,
            s: bool,
        ) {
            let pattern = parts.concat();
            let re = Re::new(&pattern, i, m, s).unwrap();
            let plain = regex::RegexBuilder::new(&pattern)
                .case_insensitive(i)
                .multi_line(m)
                .dot_matches_new_line(s)
                .build()
                .unwrap();
            proptest::prop_assert_eq!(re.is_match(&text), plain.is_match(&text), "{}", pattern);
        }
    }
}
