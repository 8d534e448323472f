//! Incidents: findings grouped by account, subject (the principal, else the
//! resource) and category within a window of event time, and the lifecycle people
//! move them through: OPEN → ACKNOWLEDGED → REMEDIATING → RESOLVED, or
//! FALSE_POSITIVE from any open state. The store keeps them; the API, the outputs
//! and the response engine read them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::finding::Category;
use crate::{Severity, Timestamp};

/// What a timeline entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A finding joined the incident.
    Finding,
    /// Its status changed.
    Status,
    Note,
    Assign,
    /// A playbook acted on it.
    Action,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 5] = [
        TimelineKind::Finding,
        TimelineKind::Status,
        TimelineKind::Note,
        TimelineKind::Assign,
        TimelineKind::Action,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Finding => "finding",
            TimelineKind::Status => "status",
            TimelineKind::Note => "note",
            TimelineKind::Assign => "assign",
            TimelineKind::Action => "action",
        }
    }

    pub fn parse(s: &str) -> Option<TimelineKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Remediating,
    Resolved,
    FalsePositive,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 5] = [
        IncidentStatus::Open,
        IncidentStatus::Acknowledged,
        IncidentStatus::Remediating,
        IncidentStatus::Resolved,
        IncidentStatus::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "OPEN",
            IncidentStatus::Acknowledged => "ACKNOWLEDGED",
            IncidentStatus::Remediating => "REMEDIATING",
            IncidentStatus::Resolved => "RESOLVED",
            IncidentStatus::FalsePositive => "FALSE_POSITIVE",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentStatus> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
    }

    /// Resolved and false-positive incidents take no more findings or moves.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            IncidentStatus::Resolved | IncidentStatus::FalsePositive
        )
    }

    /// The moves the lifecycle allows. Remediation that fails can step back to
    /// ACKNOWLEDGED; nothing reopens a closed incident (a new finding opens a new
    /// incident instead, so closed ones keep their history as it was).
    pub fn can_become(self, to: IncidentStatus) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Acknowledged | Remediating | Resolved | FalsePositive)
                | (Acknowledged, Remediating | Resolved | FalsePositive)
                | (Remediating, Acknowledged | Resolved | FalsePositive)
        )
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub category: Category,
    pub account: Option<String>,
    /// The principal the findings are about, else their resource.
    pub subject: Option<String>,
    /// Event time of the first and last event of its findings.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub assignee: Option<String>,
    pub finding_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    pub kind: TimelineKind,
    pub actor: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
}

/// An incident with its timeline and the ids of its findings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: Incident,
    pub finding_ids: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

/// How findings are grouped into incidents: the policy, as plain code (the store
/// applies it in its transaction).
///
/// A finding joins the open incident of its account, category and subject (its
/// principal, else its resource) whose events fall within `window_ms` (event
/// time) of its own; otherwise it opens one. An incident's id is derived from its
/// group and first finding, so that a replayed first finding names the same one;
/// its severity is its worst finding's, weighed by its account's environment.
#[derive(Clone, Debug)]
pub struct Grouping {
    pub window_ms: i64,
    /// Weighs an incident's severity by its account's environment.
    pub accounts: crate::AccountRegistry,
}

impl Default for Grouping {
    fn default() -> Self {
        Grouping {
            window_ms: 60 * 60 * 1000,
            accounts: crate::AccountRegistry::default(),
        }
    }
}

/// Incident ids are name-based: a replayed first finding names the same one.
const INCIDENT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2b7e_41c9_8d05_4f3a_a6e2_1c94_b07d_5e38);

impl Grouping {
    /// What the incident is about: the finding's principal, else its resource.
    pub fn subject(f: &crate::Finding) -> Option<&str> {
        f.detail
            .principal
            .as_deref()
            .or(f.detail.resource_arn.as_deref())
    }

    /// The group a finding belongs to: account, category and subject.
    pub fn key(f: &crate::Finding) -> String {
        format!(
            "{}|{}|{}",
            f.account.as_deref().unwrap_or(""),
            f.detail.category.as_str(),
            Self::subject(f).unwrap_or("")
        )
    }

    /// The event-time range an open incident of the finding's group must reach
    /// into for the finding to join it.
    pub fn joins(&self, f: &crate::Finding) -> (i64, i64) {
        (
            f.detail
                .first_seen
                .as_millis()
                .saturating_sub(self.window_ms),
            f.detail
                .last_seen
                .as_millis()
                .saturating_add(self.window_ms),
        )
    }

    /// The id of the incident `f` opens.
    pub fn incident_id(f: &crate::Finding) -> String {
        let name = format!("{}|{}", Self::key(f), f.id);
        uuid::Uuid::new_v5(&INCIDENT_NAMESPACE, name.as_bytes()).to_string()
    }

    /// The title of the incident `f` opens.
    pub fn title(f: &crate::Finding) -> String {
        match Self::subject(f) {
            Some(s) => format!("{}: {s}", f.detail.category.as_str()),
            None => format!("{}: {}", f.detail.category.as_str(), f.detail.title),
        }
    }

    /// The severity `f` gives its incident: its own, weighed by its account.
    pub fn severity(&self, f: &crate::Finding) -> Severity {
        self.accounts.weigh(f.account.as_deref(), f.detail.severity)
    }
}
