//! From a rule's match to a finding: what a rule contributes ([`RuleInfo`]), one
//! detection before dedup ([`Alert`]), and the dedup stage ([`Findings`]) that
//! folds repeats of the same rule on the same principal and resource into one
//! finding with a count. The finding itself is `vigil_model::finding`'s.

use std::collections::HashMap;
use std::sync::Arc;

use vigil_model::{Severity, Timestamp};

pub use vigil_model::finding::{
    playbook, Category, Evidence, Finding, FindingDetail, Mitre, PlaybookRef, Remediation,
    RuleKind, RuleRef, FINDING_SOURCE, MAX_EVENT_IDS, MAX_RESOURCES, PLAYBOOKS,
};

/// What a finding's rule contributes to it, worked out once per rule.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// The key findings are deduplicated and referred to by: the rule's id, else its
    /// title.
    pub key: String,
    /// The rule's `name` (what correlations and test cases may call it).
    pub name: Option<String>,
    pub title: String,
    pub description: String,
    pub kind: RuleKind,
    pub category: Category,
    pub severity: Severity,
    pub confidence: u8,
    pub playbook: Option<String>,
    pub mitre: Mitre,
    /// A field of the record naming the finding's resource, and that resource's
    /// CloudFormation type (`AWS::S3::Bucket`), when the rule says.
    pub resource_field: Option<String>,
    pub resource_type: Option<String>,
    /// A field naming the principal, when it is not the actor.
    pub principal_field: Option<String>,
    /// Why the rule has the severity and confidence it has (`vigil.rationale`).
    pub rationale: Option<String>,
    /// What else makes the rule fire (Sigma `falsepositives`).
    pub falsepositives: Vec<String>,
    /// The outputs its findings go to (`vigil.destinations`, comma-separated
    /// output names), overriding routing.
    pub destinations: Vec<String>,
}

/// Where to find the custom attribute `key` in a rule's `vigil:` map.
fn attr<'a>(custom: &'a [(String, String)], key: &str) -> Option<&'a str> {
    custom
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Common inputs of a rule's info, from a Sigma rule or correlation.
pub struct RuleSource<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub status: Option<&'a str>,
    pub level: Option<crate::sigma::Level>,
    pub tags: &'a [String],
    pub custom: &'a [(String, String)],
    pub falsepositives: &'a [String],
    pub kind: RuleKind,
}

impl RuleInfo {
    /// A rule's finding attributes: its `vigil:` map where it has one, else worked out
    /// from its level, status and ATT&CK tags. Bad attribute values are errors.
    pub fn from_rule(r: &RuleSource<'_>) -> Result<RuleInfo, String> {
        let mitre = Mitre::from_tags(r.tags);
        let category = match attr(r.custom, "category") {
            Some(c) => Category::parse(c).ok_or_else(|| {
                format!(
                    "vigil.category `{c}` is not one of {}",
                    Category::ALL.map(|c| c.as_str()).join(", ")
                )
            })?,
            None => mitre.category(),
        };
        let severity = match attr(r.custom, "severity") {
            Some(s) => s
                .parse::<Severity>()
                .map_err(|_| format!("vigil.severity `{s}` is not a severity"))?,
            None => match r.level {
                Some(crate::sigma::Level::Informational) => Severity::Informational,
                Some(crate::sigma::Level::Low) => Severity::Low,
                Some(crate::sigma::Level::Medium) | None => Severity::Medium,
                Some(crate::sigma::Level::High) => Severity::High,
                Some(crate::sigma::Level::Critical) => Severity::Critical,
            },
        };
        let confidence = match attr(r.custom, "confidence") {
            Some(c) => c
                .parse::<u8>()
                .ok()
                .filter(|c| *c <= 100)
                .ok_or_else(|| format!("vigil.confidence `{c}` is not 0–100"))?,
            // How far the rule's authors trust it.
            None => match r.status {
                Some("stable") => 90,
                Some("test") => 75,
                Some("experimental") => 60,
                _ => 70,
            },
        };
        let playbook = match attr(r.custom, "playbook") {
            Some("none") => None,
            Some(p) => Some(
                playbook(p)
                    .ok_or_else(|| format!("vigil.playbook `{p}` is not PB-001…PB-015"))?
                    .id
                    .to_owned(),
            ),
            None => category.default_playbook().map(str::to_owned),
        };
        Ok(RuleInfo {
            key: r.id.unwrap_or(r.title).to_owned(),
            name: r.name.map(str::to_owned),
            title: r.title.to_owned(),
            description: r.description.unwrap_or(r.title).trim().to_owned(),
            kind: r.kind,
            category,
            severity,
            confidence,
            playbook,
            mitre,
            resource_field: attr(r.custom, "resource").map(str::to_owned),
            resource_type: attr(r.custom, "resource_type").map(str::to_owned),
            principal_field: attr(r.custom, "principal").map(str::to_owned),
            rationale: attr(r.custom, "rationale").map(str::to_owned),
            falsepositives: r.falsepositives.to_vec(),
            destinations: attr(r.custom, "destinations")
                .map(|d| {
                    d.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// One detection, before dedup.
#[derive(Clone, Debug)]
pub struct Alert {
    pub rule: Arc<RuleInfo>,
    /// Event time of the first and the last event behind the detection.
    pub first: Timestamp,
    pub last: Timestamp,
    pub account: Option<String>,
    pub region: Option<String>,
    pub principal: Option<String>,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub resources: Vec<String>,
    pub detection_source: &'static str,
    /// When the source says better than the rule (GuardDuty's own title, severity…).
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<Severity>,
    pub confidence: Option<u8>,
    pub evidence: Evidence,
    pub event_ids: Vec<String>,
    /// How many events the detection covers (1, or a correlation's window).
    pub events: u64,
    /// The record behind it as it arrived, when the alert was made with its
    /// detail (see `vigil_model::RawRecord`).
    pub raw: Option<vigil_model::finding::RawRecord>,
}

/// Whether a recorded alert opened a finding or updated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    New,
    Updated,
}

type DedupKey = (String, Option<String>, Option<String>);

/// A [`DedupKey`] borrowed from an alert: hashes as the key does (a tuple struct
/// hashes its fields in order, as the tuple does).
#[derive(Hash)]
struct KeyRef<'a>(&'a str, Option<&'a str>, Option<&'a str>);

impl hashbrown::Equivalent<DedupKey> for KeyRef<'_> {
    fn equivalent(&self, k: &DedupKey) -> bool {
        self.0 == k.0 && self.1 == k.1.as_deref() && self.2 == k.2.as_deref()
    }
}

/// Whether `alert` falls within the dedup window of `f`.
fn within(f: &Finding, alert: &Alert, window_ms: i64) -> bool {
    let (a, b) = (
        f.detail.first_seen.as_millis() - window_ms,
        f.detail.last_seen.as_millis() + window_ms,
    );
    alert.first.as_millis() <= b && alert.last.as_millis() >= a
}

/// Folds an alert into the open finding it repeats: times, count, worst severity,
/// new event ids and resources (both capped; given apart from the alert so that
/// `record` can move them out of it).
fn merge<S: AsRef<str> + Into<String>>(
    f: &mut Finding,
    alert: &Alert,
    event_ids: impl IntoIterator<Item = S>,
    resources: impl IntoIterator<Item = S>,
) {
    let d = &mut f.detail;
    d.first_seen = d.first_seen.min(alert.first);
    d.last_seen = d.last_seen.max(alert.last);
    d.count += alert.events;
    d.severity = d
        .severity
        .max(alert.severity.unwrap_or(alert.rule.severity));
    for id in event_ids {
        if d.event_ids.len() >= MAX_EVENT_IDS {
            break;
        }
        if !d.event_ids.iter().any(|have| have == id.as_ref()) {
            d.event_ids.push(id.into());
        }
    }
    for r in resources {
        if f.resources.len() < MAX_RESOURCES && !f.resources.iter().any(|have| have == r.as_ref()) {
            f.resources.push(r.into());
        }
    }
    if let Some(r) = &alert.raw {
        f.keep_raw(r);
    }
}

/// Folds alerts into findings: the same rule on the same principal and resource
/// within `window` (event time) of the finding's last event updates it (`last_seen`,
/// `count`, worst severity); otherwise a new finding opens. Findings whose window has
/// passed the newest event are closed and handed out, so state stays bounded.
pub struct Findings {
    window_ms: i64,
    open: hashbrown::HashMap<DedupKey, Finding, foldhash::fast::RandomState>,
    per_day: HashMap<(i64, u32, u32), u32>,
    /// This stage's share of the per-day sequence when several run side by side:
    /// it numbers `offset + 1`, `offset + 1 + stride`, ….
    offset: u32,
    stride: u32,
    watermark: i64,
    closed: Vec<Finding>,
    /// Keys of findings opened or updated since [`Findings::take_changed`], when
    /// a service stores findings as they change (`None` for a scan).
    changed: Option<hashbrown::HashSet<DedupKey, foldhash::fast::RandomState>>,
}

fn key_of(f: &Finding) -> DedupKey {
    (
        f.detail.rule.id.clone(),
        f.detail.principal.clone(),
        f.detail.resource_arn.clone(),
    )
}

impl Findings {
    pub fn new(window_ms: i64) -> Findings {
        Findings {
            window_ms,
            open: Default::default(),
            per_day: HashMap::new(),
            offset: 0,
            stride: 1,
            watermark: i64::MIN,
            closed: Vec::new(),
            changed: None,
        }
    }

    /// Remembers which findings open or change, for [`take_changed`](Self::take_changed).
    pub fn tracking_changes(mut self) -> Findings {
        self.changed = Some(Default::default());
        self
    }

    /// Hands out a copy of every finding opened or updated since the last call
    /// (needs [`tracking_changes`](Self::tracking_changes)).
    pub fn take_changed(&mut self, out: &mut Vec<Finding>) {
        let Some(changed) = &mut self.changed else {
            return;
        };
        for key in changed.drain() {
            match self.open.get(&key) {
                Some(f) => out.push(f.clone()),
                // Changed, then closed by a later alert for the same key.
                None => out.extend(self.closed.iter().filter(|f| key_of(f) == key).cloned()),
            }
        }
    }

    /// Takes back a finding stored before a restart, so that its alerts keep
    /// updating it rather than opening a second one, and so that new findings of
    /// its day are numbered after it.
    pub fn reopen(&mut self, f: Finding) {
        self.note_finding_id(&f.detail.finding_id);
        self.watermark = self.watermark.max(f.detail.last_seen.as_millis());
        self.open.insert(key_of(&f), f);
    }

    /// Takes the id and number the store gave the finding this stage knows as
    /// `local_id` (another writer's finding, when both detected the same thing;
    /// or the store's next number of the day): later alerts update it under them.
    pub fn adopt(&mut self, local_id: &str, stored: &Finding) {
        if let Some(f) = self.open.get_mut(&key_of(stored)) {
            if f.id == local_id {
                f.id.clone_from(&stored.id);
                f.detail.finding_id.clone_from(&stored.detail.finding_id);
            }
        }
    }

    /// Numbers new findings of a day after `finding_id` (`sec-YYYY-MM-DD-N`), one
    /// already given out; other ids are ignored.
    pub fn note_finding_id(&mut self, finding_id: &str) {
        let parse = || -> Option<((i64, u32, u32), u32)> {
            let rest = finding_id.strip_prefix("sec-")?;
            let (y, rest) = rest.split_once('-')?;
            let (m, rest) = rest.split_once('-')?;
            let (d, n) = rest.split_once('-')?;
            Some((
                (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?),
                n.parse().ok()?,
            ))
        };
        if let Some((day, seq)) = parse() {
            // seq = offset + 1 + n·stride for the n-th id this stage gives out.
            let given = seq.saturating_sub(self.offset).div_ceil(self.stride);
            let n = self.per_day.entry(day).or_insert(0);
            *n = (*n).max(given);
        }
    }

    fn mark_changed(&mut self, key: impl FnOnce() -> DedupKey) {
        if let Some(c) = &mut self.changed {
            c.insert(key());
        }
    }

    /// One of `of` stages working side by side (numbered from 0): their
    /// `finding_id`s never collide.
    pub fn shared(window_ms: i64, index: u32, of: u32) -> Findings {
        Findings {
            offset: index,
            stride: of.max(1),
            ..Findings::new(window_ms)
        }
    }

    /// The dedup window, in milliseconds of event time.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Forgets every open finding (and what changed), to take back the stored
    /// ones after a delivery that was not committed; ids already given out stay
    /// given out.
    pub fn forget_open(&mut self) {
        self.open.clear();
        self.closed.clear();
        if let Some(c) = &mut self.changed {
            c.clear();
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The findings still open.
    pub fn open(&self) -> impl Iterator<Item = &Finding> {
        self.open.values()
    }

    /// Records `alert` (detected at wall-clock `now`) and returns the finding it
    /// opened or updated.
    pub fn record(&mut self, mut alert: Alert, now: Timestamp) -> (Update, &Finding) {
        self.watermark = self.watermark.max(alert.last.as_millis());
        // The principal and resource move into the key; a new finding gets copies.
        let key: DedupKey = (
            alert.rule.key.clone(),
            alert.principal.take(),
            alert.resource_arn.take(),
        );
        let update = match self.open.get(&key) {
            Some(f) if within(f, &alert, self.window_ms) => Update::Updated,
            Some(_) => {
                if let Some(old) = self.open.remove(&key) {
                    self.closed.push(old);
                }
                Update::New
            }
            None => Update::New,
        };
        if self.changed.is_some() {
            self.mark_changed(|| key.clone());
        }
        if update == Update::Updated {
            let f = self.open.get_mut(&key).expect("checked above");
            let ids = std::mem::take(&mut alert.event_ids);
            let resources = std::mem::take(&mut alert.resources);
            merge(f, &alert, ids, resources);
            return (Update::Updated, f);
        }
        alert.principal.clone_from(&key.1);
        alert.resource_arn.clone_from(&key.2);
        let finding = self.build(alert, now);
        let slot = self.open.entry(key).or_insert(finding);
        (Update::New, slot)
    }

    /// What [`record`](Self::record) does with an alert that updates an open
    /// finding, without taking the alert (which may then lack its evidence, which
    /// an update does not read). `false`, with nothing done, when the alert would
    /// open a finding instead: record it then.
    pub fn touch(&mut self, alert: &Alert) -> bool {
        let key = KeyRef(
            &alert.rule.key,
            alert.principal.as_deref(),
            alert.resource_arn.as_deref(),
        );
        let window = self.window_ms;
        match self.open.get_mut(&key) {
            Some(f) if within(f, alert, window) => {
                self.watermark = self.watermark.max(alert.last.as_millis());
                merge(f, alert, &alert.event_ids, &alert.resources);
                self.mark_changed(|| {
                    (
                        alert.rule.key.clone(),
                        alert.principal.clone(),
                        alert.resource_arn.clone(),
                    )
                });
                true
            }
            _ => false,
        }
    }

    fn build(&mut self, a: Alert, now: Timestamp) -> Finding {
        let (y, m, d, ..) = a.first.to_parts();
        let n = self.per_day.entry((y, m, d)).or_insert(0);
        let seq = self.offset + 1 + *n * self.stride;
        *n += 1;
        let finding_id = format!("sec-{y:04}-{m:02}-{d:02}-{seq:03}");
        // Deterministic: the same detection re-delivered gets the same id.
        let name = format!(
            "{}|{}|{}|{}|{}",
            a.rule.key,
            a.principal.as_deref().unwrap_or(""),
            a.resource_arn.as_deref().unwrap_or(""),
            a.first.as_millis(),
            a.event_ids.first().map(String::as_str).unwrap_or("")
        );
        let id = uuid::Uuid::new_v5(&FINDING_NAMESPACE, name.as_bytes()).to_string();
        let automated = a
            .rule
            .playbook
            .as_deref()
            .and_then(playbook)
            .is_some_and(|p| p.automated);
        let mut resources: Vec<String> = Vec::new();
        for r in a.resource_arn.iter().chain(a.resources.iter()) {
            if resources.len() < MAX_RESOURCES && !resources.contains(r) {
                resources.push(r.clone());
            }
        }
        let mut event_ids = a.event_ids;
        event_ids.truncate(MAX_EVENT_IDS);
        Finding {
            version: "1.0".into(),
            id,
            detail_type: "Security Finding".into(),
            source: FINDING_SOURCE.into(),
            account: a.account,
            time: now,
            region: a.region.clone(),
            resources,
            detail: FindingDetail {
                finding_id,
                severity: a.severity.unwrap_or(a.rule.severity),
                confidence: a.confidence.unwrap_or(a.rule.confidence),
                title: a.title.unwrap_or_else(|| a.rule.title.clone()),
                description: a.description.unwrap_or_else(|| a.rule.description.clone()),
                category: a.rule.category,
                detection_source: a.detection_source.to_owned(),
                resource_type: a.resource_type,
                resource_arn: a.resource_arn,
                first_seen: a.first,
                last_seen: a.last,
                remediation: Remediation {
                    playbook: a.rule.playbook.clone(),
                    automated,
                    status: "PENDING".into(),
                },
                evidence: a.evidence,
                count: a.events,
                rule: RuleRef {
                    id: a.rule.key.clone(),
                    title: a.rule.title.clone(),
                    kind: a.rule.kind,
                    destinations: a.rule.destinations.clone(),
                },
                mitre_attack: a.rule.mitre.clone(),
                principal: a.principal,
                event_ids,
            },
            raw_records: a
                .raw
                .filter(|r| r.text.len() <= vigil_model::finding::MAX_RAW_RECORD_BYTES)
                .into_iter()
                .collect(),
        }
    }

    /// Closes findings whose dedup window ended before the newest event seen, and
    /// hands out every closed finding.
    pub fn drain_closed(&mut self, out: &mut Vec<Finding>) {
        let horizon = self.watermark.saturating_sub(self.window_ms);
        let expired: Vec<DedupKey> = self
            .open
            .iter()
            .filter(|(_, f)| f.detail.last_seen.as_millis() < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(f) = self.open.remove(&k) {
                self.closed.push(f);
            }
        }
        out.append(&mut self.closed);
    }

    /// Closes and hands out everything, oldest first.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        let start = out.len();
        out.append(&mut self.closed);
        out.extend(self.open.drain().map(|(_, f)| f));
        out[start..].sort_by(|a, b| {
            (a.detail.first_seen, &a.detail.finding_id)
                .cmp(&(b.detail.first_seen, &b.detail.finding_id))
        });
    }
}

/// UUID namespace for finding ids (a fixed random UUID).
const FINDING_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f1c_9a0e_3d2b_4c71_9e84_b6a2_d0f3_7c15);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn info() -> Arc<RuleInfo> {
        Arc::new(
            RuleInfo::from_rule(&RuleSource {
                id: Some("r1"),
                name: None,
                title: "Test rule",
                description: None,
                status: Some("stable"),
                level: Some(crate::sigma::Level::High),
                tags: &["attack.initial-access".into(), "attack.t1078.004".into()],
                custom: &[],
                falsepositives: &[],
                kind: RuleKind::Sigma,
            })
            .unwrap(),
        )
    }

    fn alert(ms: i64, principal: &str) -> Alert {
        Alert {
            rule: info(),
            first: Timestamp::from_millis(ms),
            last: Timestamp::from_millis(ms),
            account: Some("123456789012".into()),
            region: Some("us-east-1".into()),
            principal: Some(principal.into()),
            resource_arn: Some("arn:aws:iam::123456789012:user/alice".into()),
            resource_type: Some("AWS::IAM::User".into()),
            resources: vec![],
            detection_source: "CloudTrail",
            title: None,
            description: None,
            severity: None,
            confidence: None,
            evidence: Evidence::default(),
            event_ids: vec![format!("e{ms}")],
            events: 1,
            raw: Some(vigil_model::finding::RawRecord {
                event_id: format!("e{ms}"),
                text: format!(r#"{{"eventID":"e{ms}"}}"#).into(),
            }),
        }
    }

    #[test]
    fn a_rule_names_the_outputs_its_findings_go_to() {
        let custom = [(
            "destinations".to_owned(),
            " pagerduty-oncall, slack-soc ,".to_owned(),
        )];
        let i = RuleInfo::from_rule(&RuleSource {
            id: Some("r2"),
            name: None,
            title: "Routed rule",
            description: None,
            status: None,
            level: Some(crate::sigma::Level::High),
            tags: &[],
            custom: &custom,
            falsepositives: &[],
            kind: RuleKind::Sigma,
        })
        .unwrap();
        assert_eq!(i.destinations, ["pagerduty-oncall", "slack-soc"]);
        let mut a = alert(0, "alice");
        a.rule = Arc::new(i);
        let mut findings = Findings::new(60_000);
        let (_, f) = findings.record(a, Timestamp::from_millis(0));
        assert_eq!(
            f.detail.rule.destinations,
            ["pagerduty-oncall", "slack-soc"]
        );
        // Without destinations the finding's schema is as before.
        let (_, plain) = findings.record(alert(0, "bob"), Timestamp::from_millis(0));
        let plain = serde_json::to_value(plain).unwrap();
        assert!(plain["detail"]["rule"].get("destinations").is_none());
    }

    #[test]
    fn rule_info_from_tags() {
        let i = info();
        assert_eq!(i.category, Category::UnauthorizedAccess);
        assert_eq!(i.severity, Severity::High);
        assert_eq!(i.confidence, 90);
        assert_eq!(i.playbook.as_deref(), Some("PB-001"));
        assert_eq!(i.mitre.techniques, ["T1078.004"]);
        assert_eq!(i.mitre.tactics, ["initial-access"]);
        let bad = RuleInfo::from_rule(&RuleSource {
            id: None,
            name: None,
            title: "x",
            description: None,
            status: None,
            level: None,
            tags: &[],
            custom: &[("playbook".into(), "PB-099".into())],
            falsepositives: &[],
            kind: RuleKind::Sigma,
        });
        assert!(bad.unwrap_err().contains("PB-099"));
    }

    #[test]
    fn a_finding_keeps_its_first_records_as_they_arrived() {
        let now = Timestamp::from_millis(0);
        let mut f = Findings::new(3_600_000);
        for i in 1..=5 {
            f.record(alert(i * 1_000, "alice"), now);
        }
        // A repeat of a kept record is not kept twice.
        f.record(alert(2_000, "alice"), now);
        let mut out = Vec::new();
        f.finish(&mut out);
        let ids: Vec<&str> = out[0]
            .raw_records
            .iter()
            .map(|r| r.event_id.as_str())
            .collect();
        assert_eq!(ids, ["e1000", "e2000", "e3000"]);
        assert_eq!(&*out[0].raw_records[0].text, r#"{"eventID":"e1000"}"#);
        // Not part of the schema: the finding serializes without them.
        assert!(!serde_json::to_string(&out[0]).unwrap().contains("eventID"));
    }

    #[test]
    fn touch_updates_open_findings_as_record_does() {
        let now = Timestamp::from_millis(0);
        let (mut a, mut b) = (Findings::new(3_600_000), Findings::new(3_600_000));
        // Nothing open yet: touch does nothing.
        assert!(!a.touch(&alert(1_000, "alice")));
        assert_eq!(a.open_count(), 0);
        a.record(alert(1_000, "alice"), now);
        b.record(alert(1_000, "alice"), now);
        // A repeat: touched in `a`, recorded in `b`; the findings come out the same.
        let mut again = alert(1_000_000, "alice");
        again.severity = Some(Severity::Critical);
        again.resources = vec!["arn:aws:s3:::b".into()];
        assert!(a.touch(&again));
        assert_eq!(b.record(again, now).0, Update::Updated);
        // Another principal, or past the window: not touched (each opens a finding).
        assert!(!a.touch(&alert(1_000_500, "bob")));
        assert!(!a.touch(&alert(1_000_000 + 3_700_000, "alice")));
        assert_eq!(a.open_count(), 1);
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        a.finish(&mut fa);
        b.finish(&mut fb);
        assert_eq!(fa.len(), 1);
        let (fa, fb) = (&fa[0], &fb[0]);
        assert_eq!(fa.detail.count, 2);
        assert_eq!(fa.detail.severity, Severity::Critical);
        assert_eq!(fa.detail.event_ids, ["e1000", "e1000000"]);
        assert!(fa.resources.iter().any(|r| r == "arn:aws:s3:::b"));
        assert_eq!(fa.resources, fb.resources);
        assert_eq!(
            serde_json::to_value(fa).unwrap(),
            serde_json::to_value(fb).unwrap()
        );
    }

    #[test]
    fn dedup_window_updates_then_opens_new() {
        let mut f = Findings::new(3_600_000);
        let now = Timestamp::from_millis(0);
        assert_eq!(f.record(alert(1_000, "alice"), now).0, Update::New);
        let (u, g) = f.record(alert(1_000_000, "alice"), now);
        assert_eq!(u, Update::Updated);
        assert_eq!(g.detail.count, 2);
        assert_eq!(g.detail.last_seen.as_millis(), 1_000_000);
        assert_eq!(g.detail.event_ids, ["e1000", "e1000000"]);
        // Another principal: its own finding.
        assert_eq!(f.record(alert(1_000_500, "bob"), now).0, Update::New);
        // Same key, but more than the window after the last event: a new finding.
        assert_eq!(
            f.record(alert(1_000_000 + 3_700_000, "alice"), now).0,
            Update::New
        );
        let mut out = Vec::new();
        f.drain_closed(&mut out);
        // The first alice finding was replaced; bob's window has passed too.
        assert_eq!(out.len(), 2);
        assert_eq!(f.open_count(), 1);
        f.finish(&mut out);
        assert_eq!(out.len(), 3);
        let ids: Vec<&str> = out.iter().map(|f| f.detail.finding_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "sec-1970-01-01-001",
                "sec-1970-01-01-002",
                "sec-1970-01-01-003"
            ]
        );
    }

    #[test]
    fn serialized_shape_is_the_schema() {
        let mut f = Findings::new(1000);
        let (_, g) = f.record(alert(1_710_498_600_000, "alice"), Timestamp::from_millis(0));
        let v = serde_json::to_value(g).unwrap();
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "account",
                "detail",
                "detail-type",
                "id",
                "region",
                "resources",
                "source",
                "time",
                "version"
            ]
        );
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["detail"]["first_seen"], "2024-03-15T10:30:00Z");
        assert_eq!(v["detail"]["severity"], "HIGH");
        assert_eq!(v["detail"]["remediation"]["status"], "PENDING");
        assert_eq!(v["detail"]["remediation"]["automated"], true);
        assert_eq!(
            keys(&v["detail"]["evidence"]),
            ["api_call", "aws_region", "source_ip", "user_agent"]
        );
        // Everything but the records it arrived with (kept by the store
        // beside it, never sent) comes back.
        let back: Finding = serde_json::from_value(v).unwrap();
        assert!(back.raw_records.is_empty());
        let mut sent = g.clone();
        sent.raw_records.clear();
        assert_eq!(back, sent);
    }
}
