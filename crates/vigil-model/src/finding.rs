//! The finding every detection produces, in the schema of `docs/findings.md`: an
//! EventBridge event whose `detail` is the platform's finding. Detection makes
//! them, the store keeps them, the response engine and the outputs read them; the
//! type lives here so that none of those needs the detection engine to name it.
//!
//! The schema's keys are all always present (absent values are `null`), in its
//! nesting. `detail` carries a few keys more, which the schema leaves room for and a
//! responder needs: `count`, `rule`, `mitre_attack`, `principal`, `event_ids`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Severity, Timestamp};

/// The threat categories of the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    UnauthorizedAccess,
    Cryptojacking,
    PolicyViolation,
    NetworkAttack,
    DataExfiltration,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::UnauthorizedAccess,
        Category::Cryptojacking,
        Category::PolicyViolation,
        Category::NetworkAttack,
        Category::DataExfiltration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::UnauthorizedAccess => "UnauthorizedAccess",
            Category::Cryptojacking => "Cryptojacking",
            Category::PolicyViolation => "PolicyViolation",
            Category::NetworkAttack => "NetworkAttack",
            Category::DataExfiltration => "DataExfiltration",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// The playbook a finding of this category gets when its rule names none.
    pub fn default_playbook(self) -> Option<&'static str> {
        match self {
            Category::UnauthorizedAccess => Some("PB-001"),
            Category::Cryptojacking => Some("PB-002"),
            Category::NetworkAttack => Some("PB-005"),
            Category::DataExfiltration => Some("PB-015"),
            // Policy violations differ too much for one default (bucket, trail, key…).
            Category::PolicyViolation => None,
        }
    }
}

/// A response playbook a finding can suggest.
pub struct PlaybookRef {
    pub id: &'static str,
    pub incident: &'static str,
    /// Runs without a human (`full`) rather than after approval (`semi`).
    pub automated: bool,
}

/// The fifteen playbooks (docs/response.md).
pub const PLAYBOOKS: [PlaybookRef; 15] = [
    pb("PB-001", "Unauthorized API access", true),
    pb("PB-002", "Cryptojacking", true),
    pb("PB-003", "S3 bucket policy violation", false),
    pb("PB-004", "IAM policy drift", true),
    pb("PB-005", "Network scanning", false),
    pb("PB-006", "Root account use", false),
    pb("PB-007", "CloudTrail logging stopped", true),
    pb(
        "PB-008",
        "Security group open to the world on admin ports",
        true,
    ),
    pb("PB-009", "Exposed or compromised access key", true),
    pb("PB-010", "GuardDuty disabled", true),
    pb("PB-011", "KMS key scheduled for deletion", true),
    pb("PB-012", "Public EBS snapshot or AMI", true),
    pb("PB-013", "EBS default encryption disabled", true),
    pb("PB-014", "Console login without MFA", false),
    pb("PB-015", "Data exfiltration from S3", false),
];

const fn pb(id: &'static str, incident: &'static str, automated: bool) -> PlaybookRef {
    PlaybookRef {
        id,
        incident,
        automated,
    }
}

pub fn playbook(id: &str) -> Option<&'static PlaybookRef> {
    PLAYBOOKS.iter().find(|p| p.id == id)
}

/// What kind of detection raised a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A Sigma detection rule (one event).
    Sigma,
    /// A Sigma correlation rule (several events).
    Correlation,
    /// A behavioural baseline (new for this principal or account).
    Baseline,
    /// A check written in code because Sigma cannot express it.
    Native,
}

/// MITRE ATT&CK tags of the rule: tactics by name, techniques by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitre {
    pub tactics: Vec<String>,
    pub techniques: Vec<String>,
}

impl Mitre {
    /// From Sigma tags: `attack.t1078.004` → technique `T1078.004`, `attack.initial-access`
    /// → tactic `initial-access`; other namespaces are ignored.
    pub fn from_tags(tags: &[String]) -> Mitre {
        let mut m = Mitre::default();
        for t in tags {
            let Some(rest) = t.strip_prefix("attack.") else {
                continue;
            };
            let is_technique = rest.len() >= 5
                && rest.as_bytes()[0].eq_ignore_ascii_case(&b't')
                && rest.as_bytes()[1..5].iter().all(u8::is_ascii_digit);
            let is_group = rest.len() >= 5
                && matches!(rest.as_bytes()[0], b'g' | b'G' | b's' | b'S')
                && rest.as_bytes()[1..5].iter().all(u8::is_ascii_digit);
            if is_technique {
                m.techniques.push(rest.to_ascii_uppercase());
            } else if !is_group {
                m.tactics.push(rest.to_ascii_lowercase());
            }
        }
        m
    }

    /// The category tags imply, for rules that do not name one.
    pub fn category(&self) -> Category {
        let has_t = |p: &str| self.techniques.iter().any(|t| t.starts_with(p));
        let has = |p: &str| self.tactics.iter().any(|t| t == p);
        if has_t("T1496") {
            Category::Cryptojacking
        } else if has("exfiltration") || has_t("T1537") || has_t("T1530") {
            Category::DataExfiltration
        } else if has("defense-evasion") || has("impact") {
            Category::PolicyViolation
        } else if has("reconnaissance") || has("discovery") || has("lateral-movement") {
            Category::NetworkAttack
        } else {
            Category::UnauthorizedAccess
        }
    }
}

/// The schema's `remediation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    pub playbook: Option<String>,
    pub automated: bool,
    pub status: String,
}

/// The schema's `evidence`: its four keys always, more where the detection has them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub api_call: Option<String>,
    pub aws_region: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<std::borrow::Cow<'static, str>, Value>,
}

/// The rule that raised a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub kind: RuleKind,
    /// The outputs the rule sends its findings to, when it names them
    /// (`vigil.destinations`): these, and only these, hear of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindingDetail {
    pub finding_id: String,
    pub severity: Severity,
    pub confidence: u8,
    pub title: String,
    pub description: String,
    pub category: Category,
    pub detection_source: String,
    pub resource_type: Option<String>,
    pub resource_arn: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub remediation: Remediation,
    pub evidence: Evidence,
    /// Detections folded into this finding.
    pub count: u64,
    pub rule: RuleRef,
    pub mitre_attack: Mitre,
    pub principal: Option<String>,
    /// Ids of the first events behind the finding (at most `MAX_EVENT_IDS`).
    pub event_ids: Vec<String>,
}

/// A finding, as emitted to EventBridge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: Option<String>,
    pub time: Timestamp,
    pub region: Option<String>,
    pub resources: Vec<String>,
    pub detail: FindingDetail,
    /// The first records behind the finding as they arrived (at most
    /// [`MAX_RAW_RECORDS`]), which the store keeps beside it. Not part of the
    /// schema: outputs never send them.
    #[serde(skip)]
    pub raw_records: Vec<RawRecord>,
}

/// How many of a finding's records are kept as they arrived.
pub const MAX_RAW_RECORDS: usize = 3;
/// A record longer than this is not kept (CloudTrail's are a few KB).
pub const MAX_RAW_RECORD_BYTES: usize = 256 * 1024;

/// A record behind a finding, as it arrived: one JSON object, or one
/// flow-log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub event_id: String,
    pub text: Box<str>,
}

impl Finding {
    /// Keeps `r` among the finding's records, if there is room and it is new.
    pub fn keep_raw(&mut self, r: &RawRecord) {
        if self.raw_records.len() < MAX_RAW_RECORDS
            && r.text.len() <= MAX_RAW_RECORD_BYTES
            && !self.raw_records.iter().any(|h| h.event_id == r.event_id)
        {
            self.raw_records.push(r.clone());
        }
    }
}

/// The EventBridge `source` findings are published under.
pub const FINDING_SOURCE: &str = "com.security.platform";
/// How many event ids a finding lists (its count says how many there were).
pub const MAX_EVENT_IDS: usize = 10;
/// How many resources a finding lists.
pub const MAX_RESOURCES: usize = 20;

impl Finding {
    /// The key repeats fold under: the rule, the principal and the resource.
    pub fn dedup_key(&self) -> String {
        let d = &self.detail;
        format!(
            "{}\u{1f}{}\u{1f}{}",
            d.rule.id,
            d.principal.as_deref().unwrap_or(""),
            d.resource_arn.as_deref().unwrap_or("")
        )
    }

    /// Folds `other` (the same detection, seen by another writer) into this
    /// finding: `added` more events, the wider time span, the worse severity,
    /// and event ids and resources not listed yet (up to the caps).
    pub fn absorb(&mut self, other: &Finding, added: u64) {
        let (d, o) = (&mut self.detail, &other.detail);
        d.first_seen = d.first_seen.min(o.first_seen);
        d.last_seen = d.last_seen.max(o.last_seen);
        d.count = d.count.saturating_add(added);
        d.severity = d.severity.max(o.severity);
        for id in &o.event_ids {
            if d.event_ids.len() >= MAX_EVENT_IDS {
                break;
            }
            if !d.event_ids.contains(id) {
                d.event_ids.push(id.clone());
            }
        }
        for r in &other.resources {
            if self.resources.len() >= MAX_RESOURCES {
                break;
            }
            if !self.resources.contains(r) {
                self.resources.push(r.clone());
            }
        }
    }
}
