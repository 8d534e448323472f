//! Running a set of compiled rules over events.
//!
//! Rules are indexed once: by the telemetry source their logsource names, and, when a
//! rule can only match certain CloudTrail `eventName`s, by those names. For each event
//! only the rules filed under its source and event name (plus the few that cannot be
//! indexed) are evaluated. Fields the typed event carries are read from it; the rest
//! through a [`LazyDoc`], which parses a record's members only as they are reached.

use std::borrow::Cow;

use serde_json::Value;
use vigil_model::{brackets, Event, FlowAction, LogStatus, Raw, SourceKind};

use std::cell::OnceCell;

use crate::sigma::program::{Answers, Program, Row};
use crate::sigma::rule::{typed_field, TYPED_CLOUDTRAIL_FIELDS};
use crate::sigma::value::{
    eq_ignore_ascii_case, fold_key, FastMap, FieldPath, Members, RecordText, TextCache, Typed,
};
use crate::sigma::{CompiledRule, RuleIssue, Subject};

#[derive(Default)]
struct SourceIndex {
    by_event_name: ValueIndex,
    /// Rules no event name narrows but whose condition pins another typed field
    /// to exact values (`userIdentity.type: Root`, `network.action: REJECT`).
    by_field: Vec<FieldIndex>,
    always: Vec<u32>,
}

/// Up to this many values, a [`ValueIndex`] is searched side by side.
const FEW: usize = 4;

/// Rules by the (folded) value a field must have. Remembers the lengths of its
/// values, so that most texts that cannot be one (a long `userAgent`) are turned
/// away without being folded.
#[derive(Default)]
struct ValueIndex {
    /// The entries side by side while there are at most [`FEW`] of them
    /// (`network.action`), compared in place; then all of them in `map`.
    few: Vec<(String, Vec<u32>)>,
    map: FastMap<String, Vec<u32>>,
    /// Bit `n` set: some value is `n` bytes long (`n` < 64); `long`: some is longer.
    lens: u64,
    long: bool,
}

impl ValueIndex {
    fn add(&mut self, value: String, rule: u32) {
        match value.len() {
            n if n < 64 => self.lens |= 1 << n,
            _ => self.long = true,
        }
        let ids = if self.map.is_empty() {
            match self.few.iter().position(|(k, _)| *k == value) {
                Some(at) => &mut self.few[at].1,
                None if self.few.len() < FEW => {
                    self.few.push((value, Vec::new()));
                    let at = self.few.len() - 1;
                    &mut self.few[at].1
                }
                None => {
                    self.map.extend(self.few.drain(..));
                    self.map.entry(value).or_default()
                }
            }
        } else {
            self.map.entry(value).or_default()
        };
        // A value listed twice must not try the rule twice.
        if ids.last() != Some(&rule) {
            ids.push(rule);
        }
    }

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.map.is_empty()
    }

    /// The rules for `text`, folded into `buf` when its length may match.
    fn get(&self, text: &str, buf: &mut String) -> Option<&[u32]> {
        // ASCII folds to the same length; other text may change length.
        if text.is_ascii() {
            let n = text.len();
            let possible = if n < 64 {
                self.lens & (1 << n) != 0
            } else {
                self.long
            };
            if !possible {
                return None;
            }
            // A few values: neither folded nor hashed. ASCII text equals a folded
            // value exactly when it folds to it.
            if !self.few.is_empty() {
                return self
                    .few
                    .iter()
                    .find(|(k, _)| eq_ignore_ascii_case(k.as_bytes(), text.as_bytes()))
                    .map(|(_, ids)| ids.as_slice());
            }
        }
        fold_key(text, buf);
        if self.few.is_empty() {
            self.map.get(buf.as_str()).map(Vec::as_slice)
        } else {
            self.few
                .iter()
                .find(|(k, _)| k == buf)
                .map(|(_, ids)| ids.as_slice())
        }
    }
}

struct FieldIndex {
    /// The field, by its typed number.
    id: u8,
    by_value: ValueIndex,
    /// Every rule indexed under the field, for events whose model does not carry it.
    all: Vec<u32>,
}

/// The typed fields rules are indexed by, per source, when their event name is not
/// pinned; the first a rule's condition pins is used.
fn index_fields(s: SourceKind) -> &'static [&'static str] {
    match s {
        SourceKind::CloudTrail => &["userIdentity.type", "errorCode", "userAgent", "eventSource"],
        SourceKind::VpcFlow => &["network.action"],
        _ => &[],
    }
}

/// Compiled rules, indexed for matching.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    index: [SourceIndex; 4],
    /// Flow rules that read only the flow's typed fields, run as one program
    /// instead of through the index (they are not in it).
    flows: Program,
}

/// An event's record as rules read it, parsed no further than they reach. A
/// CloudTrail record is walked once (quotes and brackets only) to find where each
/// top-level member lies, and a member is parsed the first time something reads it:
/// a rule on `requestParameters.bucketName` parses that small object, never the
/// 2 kB record around it. Other events are their whole normalized document (see
/// `document`), built on first use.
pub struct LazyDoc<'e> {
    event: &'e Event,
    whole_only: bool,
    parsed: OnceCell<Parsed<'e>>,
}

enum Parsed<'e> {
    Members(JsonMembers<'e>),
    Whole(Option<Value>),
}

/// The top-level members of a JSON object text, each parsed on first read.
pub struct JsonMembers<'t> {
    /// Each member's key (as written, with its quotes) and value text, and the
    /// value once parsed.
    members: Vec<(&'t str, &'t str, OnceCell<Option<Value>>)>,
}

impl<'t> JsonMembers<'t> {
    /// Finds the members of `text`, which must be JSON already known to be valid
    /// (a decoded record): only quotes, escapes and brackets are followed, and a
    /// text not shaped like one object gives `None`.
    pub fn walk(text: &'t str) -> Option<JsonMembers<'t>> {
        let mut members = Vec::with_capacity(32);
        object_members(text, |k, v| {
            members.push((k, v, OnceCell::new()));
            Some(())
        })?;
        Some(JsonMembers { members })
    }
}

impl Members for JsonMembers<'_> {
    fn member(&self, key: &str) -> Option<&Value> {
        // The last of duplicate keys wins, as in a full parse.
        self.members
            .iter()
            .rev()
            .find(|(k, _, _)| key_is(k, key))
            .and_then(|(_, v, cell)| cell.get_or_init(|| serde_json::from_str(v).ok()).as_ref())
    }

    fn string_at(&self, path: &[String]) -> Option<&str> {
        let (first, rest) = path.split_first()?;
        let (_, text, _) = self
            .members
            .iter()
            .rev()
            .find(|(k, _, _)| key_is(k, first))?;
        string_in_text(text, rest)
    }
}

/// The string at `path` inside the JSON value `text` (already known valid): the
/// last member of each name, as a parse keeps; `None` unless every key is there and
/// the value is a string without escapes.
fn string_in_text<'t>(text: &'t str, path: &[String]) -> Option<&'t str> {
    let Some((first, rest)) = path.split_first() else {
        let inner = text.strip_prefix('"')?.strip_suffix('"')?;
        return (!inner.contains('\\')).then_some(inner);
    };
    let mut found = None;
    object_members(text, |k, v| {
        if key_is(k, first) {
            found = Some(v);
        }
        Some(())
    })?;
    string_in_text(found?, rest)
}

/// Whether every string `members` reads straight from a record's text, at every path
/// to a member of `full` (the record parsed), is the one a lookup in `full` finds:
/// the check the tests and the `members` fuzz target hold the text reading to.
#[doc(hidden)]
pub fn strings_agree(members: &dyn Members, full: &Value) -> bool {
    fn every_path(v: &Value, at: &str, out: &mut Vec<String>) {
        for (k, child) in v.as_object().into_iter().flatten() {
            let p = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            every_path(child, &p, out);
            out.push(p);
        }
    }
    let mut paths = vec!["requestParameters.bucketName".to_owned(), "a.b.c".into()];
    every_path(full, "", &mut paths);
    paths.iter().all(|p| {
        let path = FieldPath::new(p);
        path.string_in(members)
            .is_none_or(|s| path.lookup(full) == Some(&Value::from(s)))
    })
}

impl<'e> LazyDoc<'e> {
    pub fn new(event: &'e Event) -> LazyDoc<'e> {
        LazyDoc {
            event,
            whole_only: false,
            parsed: OnceCell::new(),
        }
    }

    /// Always the whole document, parsed at once: what the member-by-member reading
    /// is checked against.
    pub fn whole_of(event: &'e Event) -> LazyDoc<'e> {
        LazyDoc {
            whole_only: true,
            ..LazyDoc::new(event)
        }
    }

    fn parsed(&self) -> &Parsed<'e> {
        self.parsed.get_or_init(|| {
            if let (Raw::Json(text), SourceKind::CloudTrail, false) =
                (&self.event.raw, self.event.source, self.whole_only)
            {
                if let Some(members) = JsonMembers::walk(text) {
                    return Parsed::Members(members);
                }
            }
            Parsed::Whole(document(self.event))
        })
    }

    /// The whole document, for events that are not read member by member (`None`
    /// for a CloudTrail record, which is: read it through [`Members`]).
    pub fn whole(&self) -> Option<&Value> {
        match self.parsed() {
            Parsed::Whole(v) => v.as_ref(),
            Parsed::Members(_) => None,
        }
    }
}

impl Members for LazyDoc<'_> {
    fn member(&self, key: &str) -> Option<&Value> {
        match self.parsed() {
            Parsed::Whole(v) => v.as_ref()?.member(key),
            Parsed::Members(members) => members.member(key),
        }
    }

    fn string_at(&self, path: &[String]) -> Option<&str> {
        match self.parsed() {
            Parsed::Whole(_) => None,
            Parsed::Members(members) => members.string_at(path),
        }
    }
}

/// Whether the quoted key `quoted` (as written) reads `key`.
fn key_is(quoted: &str, key: &str) -> bool {
    let inner = &quoted[1..quoted.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(quoted).is_ok_and(|k| k == key)
    } else {
        inner == key
    }
}

/// Calls `each` with every member of the JSON object `text`: its key with the quotes
/// and its value, both as written. For text already parsed as JSON (a decoded
/// record), so it only follows quotes, escapes and brackets; `None` as soon as the
/// text is not shaped like an object or `each` gives up.
fn object_members<'t>(
    text: &'t str,
    mut each: impl FnMut(&'t str, &'t str) -> Option<()>,
) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let end = |i: usize| (skip_ws(b, i + 1) == b.len()).then_some(());
    let mut stack = Vec::with_capacity(16);
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return end(i);
    }
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = text.get(i..key_end)?;
        i = skip_ws(b, key_end);
        if *b.get(i)? != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = value_end(b, i, &mut stack)?;
        each(key, text.get(i..value_end)?)?;
        i = skip_ws(b, value_end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return end(i),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index after the string whose opening quote is at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// The index after the value that starts at `i`; `stack` is scratch for nested
/// brackets.
fn value_end(b: &[u8], i: usize, stack: &mut Vec<u8>) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => match brackets::container_end(b, i, stack) {
            brackets::Scan::Done(end) => Some(end),
            _ => None,
        },
        _ => {
            let end = i + b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(b.len() - i);
            (end > i).then_some(end)
        }
    }
}

/// Reusable per-thread buffers, so that evaluating allocates nothing per rule.
#[derive(Default)]
pub struct Scratch {
    name: String,
    candidates: Vec<u32>,
    memo: Vec<Option<bool>>,
    answers: Answers,
    texts: TextCache,
    record: RecordText,
}

impl Scratch {
    /// A field of `event` from the typed model: `Some(value)`, `Some(None)` when the
    /// event has no value, `None` when the model does not carry the field for this
    /// source (read it from the JSON then).
    pub fn typed<'e>(&self, event: &'e Event, path: &FieldPath) -> Option<Option<Typed<'e>>> {
        typed_value(event, path.typed?)
    }
}

/// A field from the typed model by its [`typed_field`](crate::sigma::rule::typed_field)
/// number: CloudTrail fields as the record names them (`TYPED_CLOUDTRAIL_FIELDS`), for
/// records the model came from whole; flow fields as the normalized event names them
/// (`TYPED_FLOW_FIELDS`).
fn typed_value(e: &Event, id: u8) -> Option<Option<Typed<'_>>> {
    let id = usize::from(id);
    let flow_from = TYPED_CLOUDTRAIL_FIELDS.len();
    match e.source {
        SourceKind::CloudTrail if id < flow_from && matches!(e.raw, Raw::Json(_)) => {
            typed_cloudtrail(e, id)
        }
        SourceKind::VpcFlow if id >= flow_from => typed_flow(e, id - flow_from),
        _ => None,
    }
}

fn text(s: Option<&str>) -> Option<Option<Typed<'_>>> {
    Some(s.map(|s| Typed::Text(Cow::Borrowed(s))))
}

/// By position in `TYPED_CLOUDTRAIL_FIELDS`.
fn typed_cloudtrail(e: &Event, i: usize) -> Option<Option<Typed<'_>>> {
    let actor = e.actor.as_ref();
    let issuer = actor.and_then(|a| a.session_issuer.as_ref());
    match i {
        0 => text(e.action.as_ref().map(|a| a.operation.as_str())),
        1 => text(e.action.as_ref().and_then(|a| a.event_source.as_deref())),
        2 => text(e.region.as_deref()),
        3 => text(e.user_agent.as_deref()),
        4 => text(e.outcome.error_code()),
        5 => match &e.outcome {
            vigil_model::Outcome::Failure { message, .. } => text(message.as_deref()),
            _ => text(None),
        },
        6 => text(e.event_type.as_deref()),
        7 => text(e.read_only.map(|r| if r { "true" } else { "false" })),
        8 => text(actor.map(|a| a.identity_type.as_str())),
        9 => text(actor.and_then(|a| a.arn.as_deref())),
        10 => text(actor.and_then(|a| a.principal_id.as_deref())),
        11 => text(actor.and_then(|a| a.account_id.as_deref())),
        12 => text(actor.and_then(|a| a.access_key_id.as_deref())),
        13 => text(actor.and_then(|a| a.invoked_by.as_deref())),
        14 => text(issuer.and_then(|i| i.issuer_type.as_deref())),
        15 => text(issuer.and_then(|i| i.arn.as_deref())),
        16 => text(issuer.and_then(|i| i.user_name.as_deref())),
        _ => None,
    }
}

/// By position in `TYPED_FLOW_FIELDS`.
fn typed_flow(e: &Event, i: usize) -> Option<Option<Typed<'_>>> {
    // No flow fields at all: the JSON has no `network` either.
    let Some(n) = e.network.as_deref() else {
        return Some(None);
    };
    let num = |v: Option<u64>| Some(v.map(Typed::Num));
    let ip = |v: Option<std::net::IpAddr>| Some(v.map(Typed::Ip));
    match i {
        0 => ip(n.src_addr),
        1 => ip(n.dst_addr),
        2 => num(n.src_port.map(u64::from)),
        3 => num(n.dst_port.map(u64::from)),
        4 => num(n.protocol.map(u64::from)),
        5 => num(n.packets),
        6 => num(n.bytes),
        7 => num(n.tcp_flags.map(u64::from)),
        8 => num(n.version.map(u64::from)),
        9 => text(n.interface_id.as_deref()),
        FLOW_ACTION => text(n.action.map(FlowAction::as_str)),
        FLOW_LOG_STATUS => text(n.log_status.map(LogStatus::as_str)),
        12 => text(n.vpc_id.as_deref()),
        13 => text(n.subnet_id.as_deref()),
        14 => text(n.instance_id.as_deref()),
        15 => text(n.flow_direction.as_deref()),
        16 => text(n.traffic_type.as_deref()),
        17 => text(n.region.as_deref()),
        18 => text(n.az_id.as_deref()),
        19 => text(n.pkt_src_aws_service.as_deref()),
        20 => text(n.pkt_dst_aws_service.as_deref()),
        _ => None,
    }
}

/// The places in `TYPED_FLOW_FIELDS` of a flow's action and log status, the two
/// fields with only a few values.
const FLOW_ACTION: usize = 10;
const FLOW_LOG_STATUS: usize = 11;

/// A flow record as the flow [`Program`] reads it.
struct FlowRow<'e>(&'e Event);

impl Row for FlowRow<'_> {
    fn value(&self, id: u8) -> Option<Typed<'_>> {
        let i = usize::from(id).checked_sub(TYPED_CLOUDTRAIL_FIELDS.len())?;
        typed_flow(self.0, i).flatten()
    }

    fn code(&self, id: u8) -> usize {
        let n = self.0.network.as_deref();
        match usize::from(id).checked_sub(TYPED_CLOUDTRAIL_FIELDS.len()) {
            Some(FLOW_ACTION) => n.and_then(|n| n.action).map_or(0, |a| {
                1 + FlowAction::ALL
                    .iter()
                    .position(|x| *x == a)
                    .unwrap_or_default()
            }),
            Some(FLOW_LOG_STATUS) => n.and_then(|n| n.log_status).map_or(0, |s| {
                1 + LogStatus::ALL
                    .iter()
                    .position(|x| *x == s)
                    .unwrap_or_default()
            }),
            _ => 0,
        }
    }
}

/// Whether typed field `id` is a flow field.
fn is_flow_field(id: u8) -> bool {
    usize::from(id) >= TYPED_CLOUDTRAIL_FIELDS.len()
}

/// The texts flow field `id` can take, when it has only a few.
fn flow_field_texts(id: u8) -> Option<Vec<&'static str>> {
    match usize::from(id).checked_sub(TYPED_CLOUDTRAIL_FIELDS.len()) {
        Some(FLOW_ACTION) => Some(FlowAction::ALL.map(FlowAction::as_str).to_vec()),
        Some(FLOW_LOG_STATUS) => Some(LogStatus::ALL.map(LogStatus::as_str).to_vec()),
        _ => None,
    }
}

fn source_slot(s: SourceKind) -> usize {
    s as usize
}

/// Which of our sources a Sigma logsource covers; empty when none.
pub fn sources_of(rule: &CompiledRule) -> Result<Vec<SourceKind>, String> {
    let ls = &rule.meta.logsource;
    if let Some(p) = &ls.product {
        if p != "aws" {
            return Err(format!("logsource product `{p}` is not AWS"));
        }
    }
    if let Some(c) = &ls.category {
        return Err(format!("logsource category `{c}` has no AWS source"));
    }
    Ok(match ls.service.as_deref() {
        None => SourceKind::ALL.to_vec(),
        Some("cloudtrail") => vec![SourceKind::CloudTrail],
        Some("vpcflow" | "vpc_flow" | "vpcflowlogs") => vec![SourceKind::VpcFlow],
        Some("guardduty") => vec![SourceKind::GuardDuty],
        Some("securityhub" | "security_hub") => vec![SourceKind::SecurityHub],
        Some(other) => {
            return Err(format!(
                "logsource service `{other}` is not a source Vigil reads"
            ))
        }
    })
}

impl RuleSet {
    /// Indexes `rules`. Rules whose logsource Vigil cannot serve are returned as
    /// issues (they would never match) and left out.
    pub fn new(rules: Vec<CompiledRule>) -> (RuleSet, Vec<RuleIssue>) {
        let mut kept = Vec::with_capacity(rules.len());
        let mut issues = Vec::new();
        let mut index: [SourceIndex; 4] = Default::default();
        let mut flows = Program::default();
        for rule in rules {
            match sources_of(&rule) {
                Err(message) => issues.push(RuleIssue {
                    origin: rule.meta.origin.clone(),
                    rule: Some(rule.meta.title.clone()),
                    unsupported: true,
                    message,
                }),
                Ok(sources) => {
                    let i = kept.len() as u32;
                    if sources == [SourceKind::VpcFlow]
                        && flows.add(i, &rule, is_flow_field, flow_field_texts)
                    {
                        kept.push(rule);
                        continue;
                    }
                    for s in sources {
                        let slot = &mut index[source_slot(s)];
                        if let (Some(names), SourceKind::CloudTrail) = (&rule.event_names, s) {
                            for n in names {
                                slot.by_event_name.add(n.clone(), i);
                            }
                            continue;
                        }
                        let pinned = index_fields(s)
                            .iter()
                            .find_map(|f| Some((typed_field(f)?, rule.required_values(f)?)));
                        let Some((id, values)) = pinned else {
                            slot.always.push(i);
                            continue;
                        };
                        let at = match slot.by_field.iter().position(|x| x.id == id) {
                            Some(at) => at,
                            None => {
                                slot.by_field.push(FieldIndex {
                                    id,
                                    by_value: ValueIndex::default(),
                                    all: Vec::new(),
                                });
                                slot.by_field.len() - 1
                            }
                        };
                        let fi = &mut slot.by_field[at];
                        fi.all.push(i);
                        for v in values {
                            fi.by_value.add(v, i);
                        }
                    }
                    kept.push(rule);
                }
            }
        }
        let mut slots = 0;
        for r in &mut kept {
            r.number_cached(&mut slots);
        }
        (
            RuleSet {
                rules: kept,
                index,
                flows,
            },
            issues,
        )
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules are tried only on some events (by event name or another
    /// field's value), and how many on every event of their source.
    pub fn index_stats(&self) -> (usize, usize) {
        // The flow program's rules are tried on every flow.
        let mut always: Vec<u32> = self.index.iter().flat_map(|s| s.always.clone()).collect();
        always.extend(self.flows.rules());
        always.sort_unstable();
        always.dedup();
        (self.rules.len() - always.len(), always.len())
    }

    /// Pushes the index of every rule `event` matches onto `out`.
    pub fn evaluate(&self, event: &Event, scratch: &mut Scratch, out: &mut Vec<u32>) {
        self.evaluate_with(event, &LazyDoc::new(event), scratch, out)
    }

    /// The same, with the record read through `doc` (which keeps what it parsed for
    /// whatever reads the event after matching).
    pub fn evaluate_with(
        &self,
        event: &Event,
        doc: &LazyDoc<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) {
        self.evaluate_inner(event, doc, scratch, out, true)
    }

    /// The same, always reading fields from the whole record's JSON: the reference
    /// the typed fast path is tested against.
    pub fn evaluate_on_json(&self, event: &Event, scratch: &mut Scratch, out: &mut Vec<u32>) {
        self.evaluate_inner(event, &LazyDoc::whole_of(event), scratch, out, false)
    }

    fn evaluate_inner(
        &self,
        event: &Event,
        doc: &LazyDoc<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
        fast: bool,
    ) {
        let slot = &self.index[source_slot(event.source)];
        scratch.candidates.clear();
        let from = out.len();
        if event.source == SourceKind::VpcFlow && !self.flows.is_empty() {
            if fast {
                self.flows.run(&FlowRow(event), &mut scratch.answers, out);
            } else {
                // The reference path tries them as any other rule.
                scratch.candidates.extend(self.flows.rules());
            }
        }
        if !slot.by_event_name.is_empty() {
            if let Some(a) = &event.action {
                if let Some(ids) = slot.by_event_name.get(&a.operation, &mut scratch.name) {
                    scratch.candidates.extend_from_slice(ids);
                }
            }
        }
        scratch.candidates.extend_from_slice(&slot.always);
        let typed_ok = fast
            && match event.source {
                SourceKind::CloudTrail => matches!(event.raw, Raw::Json(_)),
                SourceKind::VpcFlow => true,
                _ => false,
            };
        for fi in &slot.by_field {
            // The reference path tries them all, so that it checks the index too.
            match typed_value(event, fi.id).filter(|_| typed_ok) {
                Some(Some(v)) => {
                    if let Some(ids) = fi.by_value.get(&v.into_text(), &mut scratch.name) {
                        scratch.candidates.extend_from_slice(ids);
                    }
                }
                // No value: no rule that needs one of these can match.
                Some(None) => {}
                None => scratch.candidates.extend_from_slice(&fi.all),
            }
        }
        // In rule order, however the index found them.
        scratch.candidates.sort_unstable();
        if typed_ok {
            // A CloudTrail record is what rules read as JSON (see `document`).
            let raw_is_doc = event.source == SourceKind::CloudTrail;
            scratch.record.reset();
            // Typed fields first; the record is only read where a rule reaches a
            // field the event model does not carry.
            for &i in &scratch.candidates {
                if self.rules[i as usize].matches_hybrid(
                    &|id| typed_value(event, id),
                    doc,
                    event.raw.as_str(),
                    raw_is_doc.then_some(&mut scratch.record),
                    &mut scratch.memo,
                    &mut scratch.texts,
                ) {
                    out.push(i);
                }
            }
            if from != out.len() {
                // The program's matches came first.
                out[from..].sort_unstable();
            }
            return;
        }
        if scratch.candidates.is_empty() {
            return;
        }
        let Some(whole) = doc.whole() else {
            return;
        };
        for &i in &scratch.candidates {
            let subject = Subject {
                doc: whole,
                raw: event.raw.as_str(),
            };
            if self.rules[i as usize].matches(&subject, &mut scratch.memo) {
                out.push(i);
            }
        }
    }
}

/// The record as rules see it: for CloudTrail the original record (rules use
/// CloudTrail's own field names); for flow records and GuardDuty and Security Hub
/// findings the normalized event (`network.dst_port`, `finding.finding_type`,
/// `finding.severity`, …, the original finding under `raw`), so one rule covers every
/// layout those sources arrive in.
pub(crate) fn document(event: &Event) -> Option<Value> {
    match (&event.raw, event.source) {
        (Raw::Json(text), SourceKind::CloudTrail) => serde_json::from_str(text).ok(),
        _ => serde_json::to_value(event).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the full parse, and some it lacks, read the same member by
    /// member; `false` when the text is not walked as an object.
    use crate::sigma::value::FieldPath;

    fn agrees(text: &str) -> bool {
        let Some(m) = JsonMembers::walk(text) else {
            return false;
        };
        let full: Value = serde_json::from_str(text).unwrap();
        let obj = full.as_object().unwrap();
        for (k, v) in obj {
            assert_eq!(m.member(k), Some(v), "{k} in {text}");
        }
        for k in ["", "missing", "requestParameters", "a.b"] {
            assert_eq!(m.member(k), obj.get(k), "{k} in {text}");
        }
        assert!(strings_agree(&m, &full), "{text}");
        true
    }

    #[test]
    fn strings_are_read_from_the_text_when_plain() {
        let text = r#"{"requestParameters":{"bucketName":"b1","key":"a\"b","n":1,"o":{"x":"y"},"bucketName":"b2"},"s":"t"}"#;
        assert!(agrees(text));
        let m = JsonMembers::walk(text).unwrap();
        let at = |p: &str| FieldPath::new(p).string_in(&m);
        assert_eq!(at("requestParameters.bucketName"), Some("b2"));
        assert_eq!(at("requestParameters.o.x"), Some("y"));
        assert_eq!(at("s"), Some("t"));
        // Escaped, not a string, not there: read from the parse instead.
        assert_eq!(at("requestParameters.key"), None);
        assert_eq!(at("requestParameters.n"), None);
        assert_eq!(at("requestParameters.o"), None);
        assert_eq!(at("requestParameters.missing"), None);
        assert_eq!(at("s.x"), None);
    }

    #[test]
    fn members_read_as_the_full_parse_does() {
        let cases = [
            // Brackets, quotes and escapes inside strings; nested arrays; numbers.
            r#"{"eventName":"x{[\"}]","requestParameters":{"bucketName":"b","list":[[1,{"k":"]"}],2.5e3]},"n":-1.5,"t":true,"z":null}"#,
            // An escaped key that reads as another; whitespace everywhere.
            " {\n \"request\\u0050arameters\" :\t{\"bucketName\" : \"b\\\\\"} , \"other\":[ ] }\n",
            // Dotted keys, and a duplicate: the last one wins.
            r#"{"a.b":{"c":1},"a":{"b.c":2},"a.b.c":3,"responseElements":1,"responseElements":{"x":"y"}}"#,
            r#"{}"#,
            r#"{"requestParameters":null}"#,
            "{\"requestParameters\":\"caf\u{e9} \u{1f600}\"}",
        ];
        for text in cases {
            assert!(agrees(text), "{text}");
        }
        let m = JsonMembers::walk(cases[1]).unwrap();
        assert_eq!(m.member("requestParameters").unwrap()["bucketName"], "b\\");
        let m = JsonMembers::walk(cases[2]).unwrap();
        assert_eq!(m.member("responseElements").unwrap()["x"], "y");
    }

    #[test]
    fn what_is_not_one_object_is_not_walked() {
        // Records are parsed before rules see them, so the walk need not validate
        // what it skips; but what it can tell is not an object it must not take
        // for one.
        for text in [
            "",
            "[1]",
            "\"a\"",
            "{\"a\":1",
            "{\"a\":1} x",
            "{\"a\" 1}",
            "{\"a\":}",
            "{\"a\":\"unterminated}",
            "{\"a\":1,,\"b\":2}",
            "{\"a\":1,}",
            "{,\"a\":1}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[1,{\"x\":\"\\\"}]}",
            "{\"a\":[1,2}",
        ] {
            assert!(JsonMembers::walk(text).is_none(), "{text:?}");
        }
    }
}
