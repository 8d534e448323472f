//! Running a set of compiled rules over events.
//!
//! Rules are indexed once: by the telemetry source their logsource names, and, when a
//! rule can only match certain CloudTrail `eventName`s, by those names. For each event
//! only the rules filed under its source and event name (plus the few that cannot be
//! indexed) are evaluated, and the record's JSON is parsed at most once, only when
//! some rule is a candidate.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use vigil_model::{Event, Raw, SourceKind};

use crate::sigma::{CompiledRule, RuleIssue, Subject};

#[derive(Default)]
struct SourceIndex {
    by_event_name: HashMap<String, Vec<u32>>,
    always: Vec<u32>,
}

/// Compiled rules, indexed for matching.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    index: [SourceIndex; 4],
}

/// Reusable per-thread buffers, so that evaluating allocates nothing per rule.
#[derive(Default)]
pub struct Scratch {
    name: String,
    candidates: Vec<u32>,
    memo: Vec<Option<bool>>,
    doc: Option<Value>,
    flow: FlowText,
}

impl Scratch {
    /// Takes the last evaluated event's JSON if a rule had it built.
    pub fn take_doc(&mut self) -> Option<Value> {
        self.doc.take()
    }

    /// A field of the last evaluated `event` from the typed model: `Some(text)`,
    /// `Some(None)` when the event has no value, `None` when the model does not carry
    /// the field for this source (read it from the JSON then).
    pub fn typed<'e>(&'e self, event: &'e Event, name: &str) -> Option<Option<Cow<'e, str>>> {
        typed_value(event, &self.flow, name)
    }
}

/// The numeric and address fields of the last flow record, as the text its JSON
/// would hold, rendered once per record into one buffer.
#[derive(Default)]
struct FlowText {
    buf: String,
    spans: [(u32, u32); 9],
}

/// The rendered fields: the first nine of `TYPED_FLOW_FIELDS`, in that order.
fn flow_numeric() -> &'static [&'static str] {
    &crate::sigma::rule::TYPED_FLOW_FIELDS[..9]
}

impl FlowText {
    fn render(&mut self, n: &vigil_model::FlowFields) {
        self.buf.clear();
        let ip = |buf: &mut String, v: Option<std::net::IpAddr>| {
            let v = v?;
            let start = buf.len() as u32;
            match v {
                std::net::IpAddr::V4(a) => {
                    for (i, o) in a.octets().iter().enumerate() {
                        if i > 0 {
                            buf.push('.');
                        }
                        push_u64(buf, u64::from(*o));
                    }
                }
                v6 => {
                    use std::fmt::Write;
                    let _ = write!(buf, "{v6}");
                }
            }
            Some((start, buf.len() as u32))
        };
        let num = |buf: &mut String, v: Option<u64>| {
            let v = v?;
            let start = buf.len() as u32;
            push_u64(buf, v);
            Some((start, buf.len() as u32))
        };
        const NONE: (u32, u32) = (u32::MAX, 0);
        self.spans = [
            ip(&mut self.buf, n.src_addr).unwrap_or(NONE),
            ip(&mut self.buf, n.dst_addr).unwrap_or(NONE),
            num(&mut self.buf, n.src_port.map(u64::from)).unwrap_or(NONE),
            num(&mut self.buf, n.dst_port.map(u64::from)).unwrap_or(NONE),
            num(&mut self.buf, n.protocol.map(u64::from)).unwrap_or(NONE),
            num(&mut self.buf, n.packets).unwrap_or(NONE),
            num(&mut self.buf, n.bytes).unwrap_or(NONE),
            num(&mut self.buf, n.tcp_flags.map(u64::from)).unwrap_or(NONE),
            num(&mut self.buf, n.version.map(u64::from)).unwrap_or(NONE),
        ];
    }

    fn get(&self, i: usize) -> Option<&str> {
        let (a, b) = self.spans[i];
        (a != u32::MAX).then(|| &self.buf[a as usize..b as usize])
    }
}

/// Appends `v` in decimal.
fn push_u64(buf: &mut String, mut v: u64) {
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
    for d in &digits[i..] {
        buf.push(*d as char);
    }
}

/// A field from the typed model (see [`Scratch::typed`]): CloudTrail fields by their
/// record names (`TYPED_CLOUDTRAIL_FIELDS`), flow fields by the normalized event's
/// (`TYPED_FLOW_FIELDS`), with `flow` rendered for this event.
fn typed_value<'e>(e: &'e Event, flow: &'e FlowText, name: &str) -> Option<Option<Cow<'e, str>>> {
    match e.source {
        SourceKind::CloudTrail if matches!(e.raw, Raw::Json(_)) => typed_cloudtrail(e, name),
        SourceKind::VpcFlow => typed_flow(e, flow, name),
        _ => None,
    }
}

fn typed_cloudtrail<'e>(e: &'e Event, name: &str) -> Option<Option<Cow<'e, str>>> {
    let b = |s: Option<&'e str>| Some(s.map(Cow::Borrowed));
    let actor = e.actor.as_ref();
    let issuer = actor.and_then(|a| a.session_issuer.as_ref());
    match name {
        "eventName" => b(e.action.as_ref().map(|a| a.operation.as_str())),
        "eventSource" => b(e.action.as_ref().and_then(|a| a.event_source.as_deref())),
        "awsRegion" => b(e.region.as_deref()),
        "userAgent" => b(e.user_agent.as_deref()),
        "errorCode" => b(e.outcome.error_code()),
        "errorMessage" => match &e.outcome {
            vigil_model::Outcome::Failure { message, .. } => b(message.as_deref()),
            _ => b(None),
        },
        "eventType" => b(e.event_type.as_deref()),
        "readOnly" => b(e.read_only.map(|r| if r { "true" } else { "false" })),
        "userIdentity.type" => b(actor.map(|a| a.identity_type.as_str())),
        "userIdentity.arn" => b(actor.and_then(|a| a.arn.as_deref())),
        "userIdentity.principalId" => b(actor.and_then(|a| a.principal_id.as_deref())),
        "userIdentity.accountId" => b(actor.and_then(|a| a.account_id.as_deref())),
        "userIdentity.accessKeyId" => b(actor.and_then(|a| a.access_key_id.as_deref())),
        "userIdentity.invokedBy" => b(actor.and_then(|a| a.invoked_by.as_deref())),
        "userIdentity.sessionContext.sessionIssuer.type" => {
            b(issuer.and_then(|i| i.issuer_type.as_deref()))
        }
        "userIdentity.sessionContext.sessionIssuer.arn" => b(issuer.and_then(|i| i.arn.as_deref())),
        "userIdentity.sessionContext.sessionIssuer.userName" => {
            b(issuer.and_then(|i| i.user_name.as_deref()))
        }
        _ => None,
    }
}

fn typed_flow<'e>(e: &'e Event, flow: &'e FlowText, name: &str) -> Option<Option<Cow<'e, str>>> {
    let Some(n) = e.network.as_deref() else {
        // No flow fields at all: the JSON has no `network` either.
        return name.starts_with("network.").then_some(None);
    };
    let b = |s: Option<&'e str>| Some(s.map(Cow::Borrowed));
    if let Some(i) = flow_numeric().iter().position(|f| *f == name) {
        return b(flow.get(i));
    }
    match name {
        "network.interface_id" => b(n.interface_id.as_deref()),
        "network.action" => b(n.action.map(|a| match a {
            vigil_model::FlowAction::Accept => "ACCEPT",
            vigil_model::FlowAction::Reject => "REJECT",
        })),
        "network.log_status" => b(n.log_status.map(|s| match s {
            vigil_model::LogStatus::Ok => "OK",
            vigil_model::LogStatus::NoData => "NODATA",
            vigil_model::LogStatus::SkipData => "SKIPDATA",
        })),
        "network.vpc_id" => b(n.vpc_id.as_deref()),
        "network.subnet_id" => b(n.subnet_id.as_deref()),
        "network.instance_id" => b(n.instance_id.as_deref()),
        "network.flow_direction" => b(n.flow_direction.as_deref()),
        "network.traffic_type" => b(n.traffic_type.as_deref()),
        "network.region" => b(n.region.as_deref()),
        "network.az_id" => b(n.az_id.as_deref()),
        "network.pkt_src_aws_service" => b(n.pkt_src_aws_service.as_deref()),
        "network.pkt_dst_aws_service" => b(n.pkt_dst_aws_service.as_deref()),
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
                    for s in sources {
                        let slot = &mut index[source_slot(s)];
                        match (&rule.event_names, s) {
                            (Some(names), SourceKind::CloudTrail) => {
                                for n in names {
                                    slot.by_event_name.entry(n.clone()).or_default().push(i);
                                }
                            }
                            _ => slot.always.push(i),
                        }
                    }
                    kept.push(rule);
                }
            }
        }
        (RuleSet { rules: kept, index }, issues)
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

    /// How many rules can be skipped by event name, and how many are always tried.
    pub fn index_stats(&self) -> (usize, usize) {
        let indexed = self
            .rules
            .iter()
            .filter(|r| r.event_names.is_some())
            .count();
        (indexed, self.rules.len() - indexed)
    }

    /// Pushes the index of every rule `event` matches onto `out`.
    pub fn evaluate(&self, event: &Event, scratch: &mut Scratch, out: &mut Vec<u32>) {
        self.evaluate_inner(event, scratch, out, true)
    }

    /// The same, always reading fields from the record's JSON: the reference the
    /// typed fast path is tested against.
    pub fn evaluate_on_json(&self, event: &Event, scratch: &mut Scratch, out: &mut Vec<u32>) {
        self.evaluate_inner(event, scratch, out, false)
    }

    fn evaluate_inner(&self, event: &Event, scratch: &mut Scratch, out: &mut Vec<u32>, fast: bool) {
        let slot = &self.index[source_slot(event.source)];
        scratch.candidates.clear();
        if !slot.by_event_name.is_empty() {
            if let Some(a) = &event.action {
                scratch.name.clear();
                scratch.name.push_str(&a.operation);
                scratch.name.make_ascii_lowercase();
                if let Some(ids) = slot.by_event_name.get(scratch.name.as_str()) {
                    scratch.candidates.extend_from_slice(ids);
                }
            }
        }
        scratch.candidates.extend_from_slice(&slot.always);
        scratch.doc = None;
        let typed_ok = fast
            && match event.source {
                SourceKind::CloudTrail => matches!(event.raw, Raw::Json(_)),
                SourceKind::VpcFlow => true,
                _ => false,
            };
        if typed_ok {
            if let Some(n) = event.network.as_deref() {
                scratch.flow.render(n);
            }
            // Typed fields first; the JSON is built at most once, and only if a rule
            // reaches a field the event model does not carry.
            let lazy: std::cell::OnceCell<Option<Value>> = std::cell::OnceCell::new();
            let doc = || lazy.get_or_init(|| document(event)).as_ref();
            let flow = &scratch.flow;
            for &i in &scratch.candidates {
                if self.rules[i as usize].matches_hybrid(
                    &|name| typed_value(event, flow, name),
                    &doc,
                    event.raw.as_str(),
                    &mut scratch.memo,
                ) {
                    out.push(i);
                }
            }
            scratch.doc = lazy.into_inner().flatten();
            return;
        }
        for k in 0..scratch.candidates.len() {
            let i = scratch.candidates[k];
            let rule = &self.rules[i as usize];
            let hit = {
                if scratch.doc.is_none() {
                    scratch.doc = document(event);
                }
                let Some(doc) = scratch.doc.as_ref() else {
                    return;
                };
                rule.matches(
                    &Subject {
                        doc,
                        raw: event.raw.as_str(),
                    },
                    &mut scratch.memo,
                )
            };
            if hit {
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
