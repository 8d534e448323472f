//! The account inventory the checks read: what the collector (`vigil comply
//! collect`, in vigil-aws) found in each account and region, saved as versioned JSON
//! so that an assessment can run offline (`vigil comply assess --snapshot FILE`)
//! and be repeated on the same facts.
//!
//! Every list defaults to empty and every fact to unknown. What could not be read
//! is named in `errors` (service, region, operation), and a check that needs it
//! reports ERROR rather than judging on missing facts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_model::Timestamp;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    pub collected_at: Timestamp,
    /// What wrote it (`vigil 0.1.0`).
    #[serde(default)]
    pub collector: String,
    pub accounts: Vec<AccountSnapshot>,
}

/// Something the collector could not read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectError {
    pub service: String,
    /// None for a global service (IAM, S3's bucket list).
    #[serde(default)]
    pub region: Option<String>,
    pub operation: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSnapshot {
    pub account_id: String,
    /// The regions assessed (those enabled for the account).
    pub regions: Vec<String>,
    pub iam: Iam,
    pub s3: S3,
    /// Per region, in `regions` order where collected.
    pub regional: BTreeMap<String, Regional>,
    pub errors: Vec<CollectError>,
}

impl AccountSnapshot {
    /// The error, if any, that left `service` unread: asked for a region, an
    /// error there or one for every region (`region: None`); asked globally, any.
    pub fn error_for(&self, service: &str, region: Option<&str>) -> Option<&CollectError> {
        self.errors.iter().find(|e| {
            e.service == service
                && (region.is_none() || e.region.is_none() || e.region.as_deref() == region)
        })
    }
}

// ---------------------------------------------------------------- IAM

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Iam {
    /// The credential report, one row per user and one for the root user
    /// (`<root_account>`).
    pub credential_report: Vec<CredentialRow>,
    /// None: the account has no password policy (AWS's defaults apply).
    pub password_policy: Option<PasswordPolicy>,
    /// `GetAccountSummary` (`AccountMFAEnabled`, `AccountAccessKeysPresent`…).
    pub account_summary: BTreeMap<String, i64>,
    pub virtual_mfa_devices: Vec<VirtualMfa>,
    pub users: Vec<User>,
    /// The customer- and AWS-managed policies attached to anything.
    pub policies: Vec<ManagedPolicy>,
    /// The roles `AWSSupportAccess` is attached to.
    pub support_roles: Vec<String>,
    pub server_certificates: Vec<ServerCertificate>,
}

/// A row of the credential report. Times are None where the report says `N/A`,
/// `no_information` or `not_supported`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialRow {
    pub user: String,
    pub arn: String,
    pub user_creation_time: Option<Timestamp>,
    pub password_enabled: bool,
    pub password_last_used: Option<Timestamp>,
    pub password_last_changed: Option<Timestamp>,
    pub mfa_active: bool,
    pub access_key_1_active: bool,
    pub access_key_1_last_rotated: Option<Timestamp>,
    pub access_key_1_last_used: Option<Timestamp>,
    pub access_key_2_active: bool,
    pub access_key_2_last_rotated: Option<Timestamp>,
    pub access_key_2_last_used: Option<Timestamp>,
}

impl CredentialRow {
    pub fn is_root(&self) -> bool {
        self.user == "<root_account>"
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub minimum_length: Option<i64>,
    pub reuse_prevention: Option<i64>,
    pub max_age_days: Option<i64>,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualMfa {
    pub serial_number: String,
    pub user_arn: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub arn: String,
    /// ARNs of the managed policies attached to the user directly.
    pub attached_policies: Vec<String>,
    /// Names of its inline policies.
    pub inline_policies: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ManagedPolicy {
    pub arn: String,
    pub name: String,
    /// Owned by AWS (`arn:aws:iam::aws:policy/…`).
    pub aws_managed: bool,
    pub attachment_count: i64,
    /// The default version's document.
    pub document: Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerCertificate {
    pub name: String,
    pub arn: String,
    pub expiration: Option<Timestamp>,
}

// ---------------------------------------------------------------- S3

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3 {
    /// The account-level Block Public Access; None when none is set.
    pub account_public_access_block: Option<PublicAccessBlock>,
    pub buckets: Vec<Bucket>,
}

/// The four Block Public Access settings.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn all_on(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    /// The bucket policy, parsed; None when it has none.
    pub policy: Option<Value>,
    pub public_access_block: Option<PublicAccessBlock>,
    /// `Enabled`, `Suspended`, or None (never enabled).
    pub versioning: Option<String>,
    pub mfa_delete: bool,
    /// Where its server access logs go; None when logging is off.
    pub logging_target: Option<String>,
    /// Default encryption (`AES256`, `aws:kms`, `aws:kms:dsse`); None when the
    /// bucket has no configuration (before 2023, or unreadable).
    pub encryption: Option<String>,
    /// Per-field read failures (`GetBucketPolicy: AccessDenied`).
    pub errors: Vec<String>,
}

// ---------------------------------------------------------------- regional

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Regional {
    pub access_analyzers: Vec<AccessAnalyzer>,
    pub ebs_encryption_by_default: Option<bool>,
    pub volumes: Vec<Volume>,
    pub instances: Vec<Instance>,
    pub security_groups: Vec<SecurityGroup>,
    pub network_acls: Vec<NetworkAcl>,
    pub vpcs: Vec<Vpc>,
    /// The resources (VPC ids, mostly) flow logs are attached to.
    pub flow_logs: Vec<FlowLog>,
    pub trails: Vec<Trail>,
    pub config_recorders: Vec<ConfigRecorder>,
    pub kms_keys: Vec<KmsKey>,
    pub metric_filters: Vec<MetricFilter>,
    pub alarms: Vec<Alarm>,
    pub sns_subscriptions: Vec<SnsSubscription>,
    pub rds_instances: Vec<RdsInstance>,
    pub efs_file_systems: Vec<EfsFileSystem>,
    pub security_hub_enabled: Option<bool>,
    pub guardduty_detectors: Vec<GuardDutyDetector>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessAnalyzer {
    pub name: String,
    pub arn: String,
    /// `ACTIVE`, `CREATING`, `DISABLED`, `FAILED`.
    pub status: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Volume {
    pub id: String,
    pub encrypted: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    /// `running`, `stopped`…
    pub state: String,
    /// `required` (IMDSv2 only) or `optional`.
    pub http_tokens: Option<String>,
    /// `enabled` or `disabled`.
    pub http_endpoint: Option<String>,
    pub instance_profile: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

/// One permission of a security group, with its sources flattened.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SgRule {
    /// `tcp`, `udp`, `icmp`, a number, or `-1` for all.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// Other groups and prefix lists named as sources.
    pub others: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkAcl {
    pub id: String,
    pub vpc_id: Option<String>,
    pub entries: Vec<NaclEntry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NaclEntry {
    pub rule_number: i32,
    pub egress: bool,
    /// `allow` or `deny`.
    pub action: String,
    /// A protocol number as text; `-1` for all.
    pub protocol: String,
    pub cidr: Option<String>,
    pub ipv6_cidr: Option<String>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Vpc {
    pub id: String,
    pub is_default: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowLog {
    pub id: String,
    pub resource_id: String,
    /// `ACTIVE` when it delivers.
    pub status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Trail {
    pub name: String,
    pub arn: String,
    pub home_region: String,
    pub multi_region: bool,
    pub organization: bool,
    pub log_file_validation: bool,
    pub kms_key_id: Option<String>,
    pub s3_bucket: Option<String>,
    pub cloudwatch_log_group_arn: Option<String>,
    pub is_logging: bool,
    /// Management events recorded: `All`, `ReadOnly`, `WriteOnly`, or None.
    pub management_events: Option<String>,
    /// S3 object-level (data) events recorded for every bucket.
    pub s3_data_read_all: bool,
    pub s3_data_write_all: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigRecorder {
    pub name: String,
    pub all_supported: bool,
    pub include_global_resources: bool,
    pub recording: bool,
    /// The last recording status (`Success`, `Failure`, `Pending`).
    pub last_status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KmsKey {
    pub id: String,
    pub arn: String,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`…
    pub spec: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`…
    pub state: String,
    pub rotation_enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricFilter {
    pub log_group: String,
    pub name: String,
    pub pattern: String,
    pub metric_name: String,
    pub metric_namespace: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Alarm {
    pub name: String,
    pub metric_name: Option<String>,
    pub namespace: Option<String>,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SnsSubscription {
    pub topic_arn: String,
    pub protocol: String,
    pub endpoint: String,
    /// `PendingConfirmation` until confirmed.
    pub subscription_arn: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RdsInstance {
    pub id: String,
    pub arn: String,
    pub engine: String,
    pub storage_encrypted: bool,
    pub auto_minor_version_upgrade: bool,
    pub publicly_accessible: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EfsFileSystem {
    pub id: String,
    pub arn: String,
    pub encrypted: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GuardDutyDetector {
    pub id: String,
    /// `ENABLED` or `DISABLED`.
    pub status: String,
}

/// IAM's credential report (CSV, as GetCredentialReport returns it) as rows,
/// read by its header's column names (IAM adds columns now and then; their order
/// is not relied on). An error names the line and column.
pub fn parse_credential_report(text: &str) -> Result<Vec<CredentialRow>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("the credential report is empty")?
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(user), Some(arn)) = (col("user"), col("arn")) else {
        return Err(format!(
            "the credential report has no user or arn column: {}",
            header.join(",")
        ));
    };
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let get = |name: &str| col(name).and_then(|i| f.get(i)).copied().unwrap_or("");
        let flag = |name: &str| get(name) == "true";
        let when = |name: &str| -> Result<Option<Timestamp>, String> {
            match get(name) {
                "" | "N/A" | "no_information" | "not_supported" => Ok(None),
                t => Timestamp::parse(t)
                    .map(Some)
                    .map_err(|e| format!("credential report line {}: {name}: {e}", n + 2)),
            }
        };
        let (Some(u), Some(a)) = (f.get(user), f.get(arn)) else {
            return Err(format!(
                "credential report line {}: fewer columns than the header",
                n + 2
            ));
        };
        rows.push(CredentialRow {
            user: (*u).to_owned(),
            arn: (*a).to_owned(),
            user_creation_time: when("user_creation_time")?,
            password_enabled: flag("password_enabled"),
            password_last_used: when("password_last_used")?,
            password_last_changed: when("password_last_changed")?,
            mfa_active: flag("mfa_active"),
            access_key_1_active: flag("access_key_1_active"),
            access_key_1_last_rotated: when("access_key_1_last_rotated")?,
            access_key_1_last_used: when("access_key_1_last_used_date")?,
            access_key_2_active: flag("access_key_2_active"),
            access_key_2_last_rotated: when("access_key_2_last_rotated")?,
            access_key_2_last_used: when("access_key_2_last_used_date")?,
        });
    }
    Ok(rows)
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}, column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: snapshot version {found}; this build reads version {SNAPSHOT_VERSION}")]
    Version { path: String, found: u32 },
}

impl Snapshot {
    /// Reads and checks a snapshot file.
    pub fn read(path: &std::path::Path) -> Result<Snapshot, SnapshotError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Io {
            path: name.clone(),
            source,
        })?;
        Snapshot::parse(&text, &name)
    }

    /// Parses snapshot text; `name` is what errors call it.
    pub fn parse(text: &str, name: &str) -> Result<Snapshot, SnapshotError> {
        // The version first, so an old or newer file is named as such rather than
        // as a field error.
        #[derive(Deserialize)]
        struct Head {
            version: Option<u32>,
        }
        if let Ok(Head {
            version: Some(found),
        }) = serde_json::from_str::<Head>(text)
        {
            if found != SNAPSHOT_VERSION {
                return Err(SnapshotError::Version {
                    path: name.to_owned(),
                    found,
                });
            }
        }
        serde_json::from_str(text).map_err(|e| SnapshotError::Parse {
            path: name.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_columns_are_found_by_name() {
        let text = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n\
<root_account>,arn:aws:iam::123456789012:root,2026-01-01T00:00:00+00:00,not_supported,2026-11-01T10:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
alice,arn:aws:iam::123456789012:user/alice,2026-02-01T00:00:00+00:00,true,no_information,2026-02-01T00:00:00+00:00,N/A,false,true,2026-02-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n";
        let rows = parse_credential_report(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is_root() && rows[0].mfa_active && !rows[0].password_enabled);
        assert_eq!(
            rows[0].password_last_used,
            Some(Timestamp::parse("2026-11-01T10:00:00Z").unwrap())
        );
        assert!(rows[1].password_enabled && rows[1].access_key_1_active);
        assert_eq!(rows[1].password_last_used, None);
        assert_eq!(rows[1].access_key_1_last_used, None);
    }

    #[test]
    fn a_bad_report_is_named() {
        assert!(parse_credential_report("").unwrap_err().contains("empty"));
        let e = parse_credential_report("user,arn,password_last_used\nbob,arn:x,yesterday\n")
            .unwrap_err();
        assert!(e.contains("line 2: password_last_used"), "{e}");
    }
}
