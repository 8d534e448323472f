//! The normalized event: one shape for a CloudTrail API call, a VPC flow record, a
//! GuardDuty finding and a Security Hub (ASFF) finding, so that detection, incidents
//! and storage handle one type.
//!
//! Fields that every source can fill (time, account, region, actor, source address,
//! action, resources, outcome) are typed at the top level; what only flows have is in
//! [`FlowFields`], what only findings have is in [`FindingFields`]. The original record
//! is kept as [`Raw`] so that rules can look at any field the typed model does not carry.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Severity, Timestamp};

/// Which telemetry source an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    #[serde(rename = "cloudtrail")]
    CloudTrail,
    #[serde(rename = "vpcflow")]
    VpcFlow,
    #[serde(rename = "guardduty")]
    GuardDuty,
    #[serde(rename = "securityhub")]
    SecurityHub,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [
        SourceKind::CloudTrail,
        SourceKind::VpcFlow,
        SourceKind::GuardDuty,
        SourceKind::SecurityHub,
    ];

    /// The lowercase name used on the command line, in rule logsources and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::CloudTrail => "cloudtrail",
            SourceKind::VpcFlow => "vpcflow",
            SourceKind::GuardDuty => "guardduty",
            SourceKind::SecurityHub => "securityhub",
        }
    }

    /// The `detection_source` name of the finding schema.
    pub fn display_name(self) -> &'static str {
        match self {
            SourceKind::CloudTrail => "CloudTrail",
            SourceKind::VpcFlow => "VPCFlowLogs",
            SourceKind::GuardDuty => "GuardDuty",
            SourceKind::SecurityHub => "SecurityHub",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One normalized telemetry record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The source's own id (CloudTrail `eventID`, finding id); for flow records, a
    /// digest of the record, so that a re-delivered line gets the same id.
    pub id: String,
    /// When the activity happened (event time, flow start, finding update time).
    pub time: Timestamp,
    pub source: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The source's own sub-kind: CloudTrail `eventType` (`AwsApiCall`,
    /// `AwsConsoleSignIn`, `AwsCloudTrailInsight`, …), GuardDuty's action type, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// A source that is not an address: an AWS service (`ec2.amazonaws.com`) or
    /// `AWS Internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceRef>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Box<FlowFields>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Box<FindingFields>>,
    /// The record as it arrived (one JSON object, or one flow-log line).
    pub raw: Raw,
}

/// What kind of principal acted, as CloudTrail's `userIdentity.type` names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdentityType {
    Root,
    IamUser,
    AssumedRole,
    Role,
    FederatedUser,
    AwsAccount,
    AwsService,
    IdentityCenterUser,
    SamlUser,
    WebIdentityUser,
    Directory,
    Unknown,
    /// A type this version does not know, kept as written.
    Other(String),
}

impl IdentityType {
    pub fn from_aws(s: &str) -> IdentityType {
        match s {
            "Root" => IdentityType::Root,
            "IAMUser" => IdentityType::IamUser,
            "AssumedRole" => IdentityType::AssumedRole,
            "Role" => IdentityType::Role,
            "FederatedUser" => IdentityType::FederatedUser,
            "AWSAccount" => IdentityType::AwsAccount,
            "AWSService" => IdentityType::AwsService,
            "IdentityCenterUser" => IdentityType::IdentityCenterUser,
            "SAMLUser" => IdentityType::SamlUser,
            "WebIdentityUser" => IdentityType::WebIdentityUser,
            "Directory" => IdentityType::Directory,
            "Unknown" => IdentityType::Unknown,
            other => IdentityType::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            IdentityType::Root => "Root",
            IdentityType::IamUser => "IAMUser",
            IdentityType::AssumedRole => "AssumedRole",
            IdentityType::Role => "Role",
            IdentityType::FederatedUser => "FederatedUser",
            IdentityType::AwsAccount => "AWSAccount",
            IdentityType::AwsService => "AWSService",
            IdentityType::IdentityCenterUser => "IdentityCenterUser",
            IdentityType::SamlUser => "SAMLUser",
            IdentityType::WebIdentityUser => "WebIdentityUser",
            IdentityType::Directory => "Directory",
            IdentityType::Unknown => "Unknown",
            IdentityType::Other(s) => s,
        }
    }
}

impl Serialize for IdentityType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentityType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(IdentityType::from_aws(&s))
    }
}

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub identity_type: IdentityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<SessionIssuer>,
    /// Whether the session was MFA-authenticated (`sessionContext.attributes
    /// .mfaAuthenticated`, or `MFAUsed` for console sign-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_authenticated: Option<bool>,
    /// The service that acted on the principal's behalf (`invokedBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

impl Actor {
    pub fn new(identity_type: IdentityType) -> Actor {
        Actor {
            identity_type,
            arn: None,
            principal_id: None,
            account_id: None,
            user_name: None,
            access_key_id: None,
            session_issuer: None,
            mfa_authenticated: None,
            invoked_by: None,
        }
    }
}

/// The role (or user) whose credentials a temporary session was issued from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIssuer {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub issuer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// What was done: the AWS service and the operation (API call, console action, or
/// for findings the observed activity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Short service name: `iam` for `iam.amazonaws.com`.
    pub service: String,
    pub operation: String,
    /// The full endpoint name as CloudTrail writes it (`eventSource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
}

/// A resource the event touched or a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// Whether the activity succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The source does not say (findings, flow records with no data).
    Unknown,
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failure { .. })
    }

    pub fn error_code(&self) -> Option<&str> {
        match self {
            Outcome::Failure { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// The record exactly as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raw {
    /// One JSON object (a CloudTrail record, a finding, an EventBridge envelope).
    Json(Box<str>),
    /// One line of text (a flow-log record).
    Text(Box<str>),
}

impl Raw {
    pub fn as_str(&self) -> &str {
        match self {
            Raw::Json(s) | Raw::Text(s) => s,
        }
    }

    /// Parses a JSON raw record into a value tree, for rules that look at fields the
    /// typed model does not carry. `None` for text records.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            Raw::Json(s) => serde_json::from_str(s).ok(),
            Raw::Text(_) => None,
        }
    }
}

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // The decoders only keep JSON that parsed, so this embeds it unchanged;
            // should it ever not parse, it is written as a string rather than lost.
            Raw::Json(text) => match serde_json::value::RawValue::from_string(text.to_string()) {
                Ok(v) => v.serialize(s),
                Err(_) => s.serialize_str(text),
            },
            Raw::Text(text) => s.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = v.get();
        if text.starts_with('"') {
            let s: String = serde_json::from_str(text).map_err(serde::de::Error::custom)?;
            Ok(Raw::Text(s.into()))
        } else {
            Ok(Raw::Json(text.into()))
        }
    }
}

/// ACCEPT or REJECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlowAction {
    Accept,
    Reject,
}

impl FlowAction {
    /// Every action.
    pub const ALL: [FlowAction; 2] = [FlowAction::Accept, FlowAction::Reject];

    /// As flow logs write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            FlowAction::Accept => "ACCEPT",
            FlowAction::Reject => "REJECT",
        }
    }
}

/// OK, NODATA (no traffic in the window) or SKIPDATA (records were skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogStatus {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "NODATA")]
    NoData,
    #[serde(rename = "SKIPDATA")]
    SkipData,
}

impl LogStatus {
    /// Every status.
    pub const ALL: [LogStatus; 3] = [LogStatus::Ok, LogStatus::NoData, LogStatus::SkipData];

    /// As flow logs write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

/// Every field of VPC flow log versions 2–8 and of Transit Gateway flow logs (but
/// `account-id`, which is the event's `account`); a field is `None` when the format
/// did not include it or the record wrote `-`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    // `account-id` is the event's `account`, not repeated here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<FlowAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_status: Option<LogStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Bitmask of the TCP flags seen in the window (FIN 1, SYN 2, RST 4, SYN-ACK 18).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u16>,
    /// `type`: IPv4, IPv6 or EFA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkt_src_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkt_dst_addr: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub az_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sublocation_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sublocation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkt_src_aws_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkt_dst_aws_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_direction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_path: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_container_instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_second_container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_task_definition_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
    /// Transit Gateway flow logs: `resource-type` (TransitGateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_attachment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_src_vpc_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_dst_vpc_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_src_vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_dst_vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_src_subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_dst_subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_src_eni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_dst_eni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_src_az_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_dst_az_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgw_pair_attachment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_lost_no_route: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_lost_blackhole: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_lost_mtu_exceeded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_lost_ttl_expired: Option<u64>,
}

/// A GuardDuty finding type split into its parts:
/// `ThreatPurpose:ResourceType/ThreatFamily.DetectionMechanism!Artifact`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatType {
    pub purpose: String,
    pub resource_type: String,
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

impl ThreatType {
    /// `None` when the string does not have the `Purpose:Resource/Family` shape.
    pub fn parse(s: &str) -> Option<ThreatType> {
        let (purpose, rest) = s.split_once(':')?;
        let (resource_type, rest) = rest.split_once('/')?;
        let (rest, artifact) = match rest.split_once('!') {
            Some((r, a)) => (r, Some(a.to_owned())),
            None => (rest, None),
        };
        let (family, detection_mechanism) = match rest.split_once('.') {
            Some((f, m)) => (f, Some(m.to_owned())),
            None => (rest, None),
        };
        if purpose.is_empty() || resource_type.is_empty() || family.is_empty() {
            return None;
        }
        Some(ThreatType {
            purpose: purpose.to_owned(),
            resource_type: resource_type.to_owned(),
            family: family.to_owned(),
            detection_mechanism,
            artifact,
        })
    }
}

/// What a GuardDuty or Security Hub finding says about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FindingFields {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// GuardDuty's finding type, or the first of ASFF's `Types`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat: Option<ThreatType>,
    /// ASFF `Types` (namespace/category/classifier paths).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    pub severity: Option<Severity>,
    /// GuardDuty's 0–10 score, or ASFF's normalized 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_id: Option<String>,
    /// The type of the (first) resource: GuardDuty `resource.resourceType`, ASFF
    /// `Resources[0].Type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub sample: bool,
    /// ASFF `Remediation.Recommendation.Text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_action_and_status_texts_are_their_json() {
        for a in FlowAction::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for s in LogStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn threat_type_parts() {
        let t = ThreatType::parse("CryptoCurrency:EC2/BitcoinTool.B!DNS").unwrap();
        assert_eq!(t.purpose, "CryptoCurrency");
        assert_eq!(t.resource_type, "EC2");
        assert_eq!(t.family, "BitcoinTool");
        assert_eq!(t.detection_mechanism.as_deref(), Some("B"));
        assert_eq!(t.artifact.as_deref(), Some("DNS"));
        let t = ThreatType::parse(
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        )
        .unwrap();
        assert_eq!(t.family, "InstanceCredentialExfiltration");
        assert_eq!(t.detection_mechanism.as_deref(), Some("OutsideAWS"));
        assert_eq!(t.artifact, None);
        let t = ThreatType::parse("Trojan:EC2/BlackholeTraffic!DNS").unwrap();
        assert_eq!(
            (t.family.as_str(), t.artifact.as_deref()),
            ("BlackholeTraffic", Some("DNS"))
        );
        assert!(ThreatType::parse("NotAType").is_none());
        assert!(ThreatType::parse(":/").is_none());
    }

    #[test]
    fn identity_types_round_trip() {
        for s in [
            "Root",
            "IAMUser",
            "AssumedRole",
            "AWSService",
            "SomethingNew",
        ] {
            assert_eq!(IdentityType::from_aws(s).as_str(), s);
        }
    }

    #[test]
    fn outcome_serializes_tagged() {
        let o = Outcome::Failure {
            code: Some("AccessDenied".into()),
            message: None,
        };
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"status":"failure","code":"AccessDenied"}"#
        );
        assert_eq!(
            serde_json::to_string(&Outcome::Success).unwrap(),
            r#"{"status":"success"}"#
        );
    }
}
