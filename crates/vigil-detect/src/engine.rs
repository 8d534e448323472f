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
}

impl Scratch {
    /// The JSON of the last evaluated event: parsed already if a rule needed it, else
    /// now (correlations read group-by fields from it).
    pub fn doc_of(&mut self, event: &Event) -> Option<&Value> {
        if self.doc.is_none() {
            self.doc = document(event);
        }
        self.doc.as_ref()
    }
}

/// A field of a CloudTrail event from the typed model (see `TYPED_CLOUDTRAIL_FIELDS`).
fn typed_field<'e>(e: &'e Event, name: &str) -> Option<Cow<'e, str>> {
    let b = |s: Option<&'e str>| s.map(Cow::Borrowed);
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
            _ => None,
        },
        "eventType" => b(e.event_type.as_deref()),
        "readOnly" => e
            .read_only
            .map(|r| Cow::Borrowed(if r { "true" } else { "false" })),
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
        let typed_ok =
            fast && event.source == SourceKind::CloudTrail && matches!(event.raw, Raw::Json(_));
        if typed_ok {
            // Typed fields first; the JSON is parsed at most once, and only if a rule
            // reaches a field the event model does not carry.
            let lazy: std::cell::OnceCell<Option<Value>> = std::cell::OnceCell::new();
            let doc = || lazy.get_or_init(|| document(event)).as_ref();
            for &i in &scratch.candidates {
                if self.rules[i as usize].matches_hybrid(
                    &|name| typed_field(event, name),
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
fn document(event: &Event) -> Option<Value> {
    match (&event.raw, event.source) {
        (Raw::Json(text), SourceKind::CloudTrail) => serde_json::from_str(text).ok(),
        _ => serde_json::to_value(event).ok(),
    }
}
