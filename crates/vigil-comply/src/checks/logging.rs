//! Logging and monitoring: CloudTrail, AWS Config, KMS rotation, VPC flow logs,
//! Security Hub, and the CloudWatch metric filters and alarms on the trail's log
//! group.

use std::collections::BTreeMap;
use vigil_model::Severity;

use crate::check::{Check, Input, Results, Status};
use crate::checks::storage::per_region;
use crate::snapshot::Trail;

/// Every trail of the account once (a trail is listed in its home region).
fn trails<'a>(input: &Input<'a>) -> Vec<&'a Trail> {
    let mut by_arn: BTreeMap<&str, &Trail> = BTreeMap::new();
    for r in input.account.regional.values() {
        for t in &r.trails {
            by_arn.entry(t.arn.as_str()).or_insert(t);
        }
    }
    by_arn.into_values().collect()
}

/// ERROR if CloudTrail went unread anywhere.
fn trails_unread(input: &Input, out: &mut Results) -> bool {
    let failed = input
        .account
        .errors
        .iter()
        .find(|e| e.service == "cloudtrail");
    if let Some(e) = failed {
        out.push(
            Status::Error,
            e.region.as_deref(),
            input.account_arn(),
            format!(
                "cloudtrail {} could not be read: {}",
                e.operation, e.message
            ),
        );
        return true;
    }
    false
}

/// A trail that records what the benchmark asks: every region, logging, all
/// management events.
fn complete(t: &Trail) -> bool {
    t.multi_region && t.is_logging && t.management_events.as_deref() == Some("All")
}

fn multi_region_trail(input: &Input, out: &mut Results) {
    if trails_unread(input, out) {
        return;
    }
    let all = trails(input);
    let good: Vec<&str> = all
        .iter()
        .filter(|t| complete(t))
        .map(|t| t.name.as_str())
        .collect();
    let evidence = if !good.is_empty() {
        format!(
            "multi-region trail(s) logging all management events: {}",
            good.join(", ")
        )
    } else if all.is_empty() {
        "no CloudTrail trail".to_owned()
    } else {
        let why: Vec<String> = all
            .iter()
            .map(|t| {
                let mut gaps = Vec::new();
                if !t.multi_region {
                    gaps.push("single-region");
                }
                if !t.is_logging {
                    gaps.push("not logging");
                }
                if t.management_events.as_deref() != Some("All") {
                    gaps.push("not all management events");
                }
                format!("{} ({})", t.name, gaps.join(", "))
            })
            .collect();
        format!("no trail covers every region and event: {}", why.join("; "))
    };
    out.verdict(!good.is_empty(), None, input.account_arn(), evidence);
}

/// Per trail, NOT_APPLICABLE without trails.
fn per_trail(input: &Input, out: &mut Results, judge: impl Fn(&Trail) -> (Status, String)) {
    if trails_unread(input, out) {
        return;
    }
    let all = trails(input);
    if all.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no CloudTrail trail",
        );
    }
    for t in all {
        let (status, evidence) = judge(t);
        out.push(
            status,
            Some(&t.home_region),
            t.arn.clone(),
            format!("{}: {evidence}", t.name),
        );
    }
}

fn log_validation(input: &Input, out: &mut Results) {
    per_trail(input, out, |t| {
        if t.log_file_validation {
            (Status::Pass, "log file validation is on".into())
        } else {
            (Status::Fail, "log file validation is off".into())
        }
    });
}

fn trail_kms(input: &Input, out: &mut Results) {
    per_trail(input, out, |t| match &t.kms_key_id {
        Some(k) => (Status::Pass, format!("logs encrypted with {k}")),
        None => (Status::Fail, "logs not encrypted with a KMS key".into()),
    });
}

fn trail_bucket_logging(input: &Input, out: &mut Results) {
    per_trail(input, out, |t| {
        let Some(name) = &t.s3_bucket else {
            return (Status::Fail, "no S3 bucket".into());
        };
        match input.account.s3.buckets.iter().find(|b| &b.name == name) {
            None => (
                Status::NotApplicable,
                format!("its bucket {name} is in another account; assess it there"),
            ),
            Some(b) if b.errors.iter().any(|e| e.starts_with("GetBucketLogging")) => (
                Status::Error,
                format!("the logging of {name} could not be read"),
            ),
            Some(b) => match &b.logging_target {
                Some(target) => (Status::Pass, format!("{name} logs access to {target}")),
                None => (
                    Status::Fail,
                    format!("{name} has server access logging off"),
                ),
            },
        }
    });
}

fn data_events(input: &Input, out: &mut Results, write: bool) {
    if trails_unread(input, out) {
        return;
    }
    let all = trails(input);
    let good: Vec<&str> = all
        .iter()
        .filter(|t| {
            t.multi_region
                && t.is_logging
                && if write {
                    t.s3_data_write_all
                } else {
                    t.s3_data_read_all
                }
        })
        .map(|t| t.name.as_str())
        .collect();
    let kind = if write { "write" } else { "read" };
    out.verdict(
        !good.is_empty(),
        None,
        input.account_arn(),
        if good.is_empty() {
            format!("no multi-region trail records S3 object-level {kind} events for all buckets")
        } else {
            format!(
                "S3 object-level {kind} events recorded by {}",
                good.join(", ")
            )
        },
    );
}

fn data_events_write(input: &Input, out: &mut Results) {
    data_events(input, out, true);
}

fn data_events_read(input: &Input, out: &mut Results) {
    data_events(input, out, false);
}

fn config_recorder(input: &Input, out: &mut Results) {
    per_region(input, out, "config", |region, r, out| {
        let arn = format!(
            "arn:aws:config:{region}:{}:configuration-recorder",
            input.id()
        );
        let good = r.config_recorders.iter().find(|c| {
            c.all_supported && c.recording && c.last_status.as_deref() != Some("Failure")
        });
        let evidence = match (good, r.config_recorders.first()) {
            (Some(c), _) => format!("{} records all supported resources", c.name),
            (None, None) => "no configuration recorder".to_owned(),
            (None, Some(c)) => format!(
                "{}: {}{}",
                c.name,
                if c.recording {
                    "recording"
                } else {
                    "not recording"
                },
                if c.all_supported {
                    ""
                } else {
                    ", not all resource types"
                }
            ),
        };
        out.verdict(good.is_some(), Some(region), arn, evidence);
    });
}

fn kms_rotation(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "kms", |region, r, out| {
        for k in &r.kms_keys {
            if k.manager != "CUSTOMER" || k.spec != "SYMMETRIC_DEFAULT" || k.state != "Enabled" {
                continue;
            }
            any = true;
            match k.rotation_enabled {
                Some(on) => out.verdict(
                    on,
                    Some(region),
                    k.arn.clone(),
                    if on {
                        "automatic rotation on"
                    } else {
                        "automatic rotation off"
                    },
                ),
                None => out.push(
                    Status::Error,
                    Some(region),
                    k.arn.clone(),
                    "its rotation status could not be read",
                ),
            }
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no enabled customer-managed symmetric KMS keys",
        );
    }
}

fn flow_logs(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "ec2", |region, r, out| {
        for v in &r.vpcs {
            any = true;
            let has = r.flow_logs.iter().any(|f| f.resource_id == v.id);
            out.verdict(
                has,
                Some(region),
                format!("arn:aws:ec2:{region}:{}:vpc/{}", input.id(), v.id),
                if has { "flow logs on" } else { "no flow logs" },
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(Status::NotApplicable, None, input.account_arn(), "no VPCs");
    }
}

fn security_hub(input: &Input, out: &mut Results) {
    per_region(input, out, "securityhub", |region, r, out| {
        let arn = format!("arn:aws:securityhub:{region}:{}:hub/default", input.id());
        match r.security_hub_enabled {
            Some(on) => out.verdict(
                on,
                Some(region),
                arn,
                if on {
                    "Security Hub is enabled"
                } else {
                    "Security Hub is not enabled"
                },
            ),
            None => out.push(
                Status::Error,
                Some(region),
                arn,
                "Security Hub's status was not collected",
            ),
        }
    });
}

/// The CIS monitoring controls: what the metric filter's pattern must mention.
pub struct Monitor {
    pub id: &'static str,
    pub what: &'static str,
    pub terms: &'static [&'static str],
}

/// Whether `pattern` mentions every term (spaces ignored, case kept: CloudTrail
/// field values are case-sensitive).
pub fn pattern_covers(pattern: &str, terms: &[&str]) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let p = squeeze(pattern);
    terms.iter().all(|t| p.contains(&squeeze(t)))
}

/// The region of a log group ARN (`arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*`)
/// and its name.
fn log_group(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(8, ':');
    let region = parts.nth(3)?;
    let _account = parts.next()?;
    if parts.next()? != "log-group" {
        return None;
    }
    Some((region, parts.next()?))
}

fn monitored(input: &Input, out: &mut Results, m: &Monitor) {
    if trails_unread(input, out) {
        return;
    }
    let mut gaps = Vec::new();
    for t in trails(input).into_iter().filter(|t| complete(t)) {
        let Some((region, group)) = t.cloudwatch_log_group_arn.as_deref().and_then(log_group)
        else {
            gaps.push(format!("{} sends no events to CloudWatch Logs", t.name));
            continue;
        };
        for service in ["logs", "cloudwatch", "sns"] {
            if out.unread(input, service, Some(region)) {
                return;
            }
        }
        let Some(r) = input.account.regional.get(region) else {
            gaps.push(format!("{region}, where {group} is, was not collected"));
            continue;
        };
        let filters: Vec<_> = r
            .metric_filters
            .iter()
            .filter(|f| f.log_group == group && pattern_covers(&f.pattern, m.terms))
            .collect();
        if filters.is_empty() {
            gaps.push(format!("{group} has no metric filter for {}", m.what));
            continue;
        }
        for f in filters {
            let alarms: Vec<_> = r
                .alarms
                .iter()
                .filter(|a| {
                    a.metric_name.as_deref() == Some(&f.metric_name)
                        && a.namespace.as_deref() == Some(&f.metric_namespace)
                })
                .collect();
            if alarms.is_empty() {
                gaps.push(format!(
                    "no alarm on metric {}/{}",
                    f.metric_namespace, f.metric_name
                ));
                continue;
            }
            for a in alarms {
                let told = a.actions.iter().find(|topic| {
                    r.sns_subscriptions
                        .iter()
                        .any(|s| &s.topic_arn == *topic && s.subscription_arn.starts_with("arn:"))
                });
                match told {
                    Some(topic) => {
                        out.verdict(
                            true,
                            Some(region),
                            input.account_arn(),
                            format!(
                                "{} on {group}: filter {}, alarm {}, notifying {topic}",
                                m.what, f.name, a.name
                            ),
                        );
                        return;
                    }
                    None => gaps.push(format!(
                        "alarm {} notifies no confirmed SNS subscriber",
                        a.name
                    )),
                }
            }
        }
    }
    if gaps.is_empty() {
        gaps.push("no multi-region trail logging all management events".to_owned());
    }
    out.verdict(
        false,
        None,
        input.account_arn(),
        format!("{}: {}", m.what, gaps.join("; ")),
    );
}

macro_rules! monitors {
    ($($fn:ident, $id:literal, $title:literal, $what:literal, $prowler:literal, [$($term:literal),+ $(,)?];)+) => {
        $(
            fn $fn(input: &Input, out: &mut Results) {
                monitored(input, out, &Monitor { id: $id, what: $what, terms: &[$($term),+] });
            }
        )+
        pub const MONITORS: &[Check] = &[
            $(Check {
                id: $id,
                title: $title,
                service: "cloudwatch",
                severity: Severity::Medium,
                remediation: concat!(
                    "On the log group of a multi-region trail, create a metric filter whose pattern matches ",
                    $what,
                    ", an alarm on its metric (threshold 1), and an SNS topic for the alarm with at least one confirmed subscriber."
                ),
                playbook: None,
                prowler: &[$prowler],
                run: $fn,
            }),+
        ];
    };
}

monitors! {
    mon_unauthorized, "cloudwatch_alarm_unauthorized_api_calls", "Unauthorized API calls raise an alarm",
        "unauthorized API calls", "cloudwatch_log_metric_filter_unauthorized_api_calls",
        ["$.errorCode", "UnauthorizedOperation", "AccessDenied"];
    mon_no_mfa, "cloudwatch_alarm_console_sign_in_without_mfa", "Console sign-in without MFA raises an alarm",
        "console sign-in without MFA", "cloudwatch_log_metric_filter_sign_in_without_mfa",
        ["ConsoleLogin", "$.additionalEventData.MFAUsed"];
    mon_root, "cloudwatch_alarm_root_usage", "Use of the root user raises an alarm",
        "use of the root user", "cloudwatch_log_metric_filter_root_usage",
        ["$.userIdentity.type", "\"Root\"", "$.userIdentity.invokedBy", "NOT EXISTS", "AwsServiceEvent"];
    mon_iam_policy, "cloudwatch_alarm_iam_policy_changes", "IAM policy changes raise an alarm",
        "IAM policy changes", "cloudwatch_log_metric_filter_policy_changes",
        ["DeleteGroupPolicy", "DeleteRolePolicy", "DeleteUserPolicy", "PutGroupPolicy", "PutRolePolicy",
         "PutUserPolicy", "CreatePolicy", "DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
         "AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy", "DetachUserPolicy", "AttachGroupPolicy",
         "DetachGroupPolicy"];
    mon_trail, "cloudwatch_alarm_cloudtrail_changes", "CloudTrail configuration changes raise an alarm",
        "CloudTrail configuration changes",
        "cloudwatch_log_metric_filter_and_alarm_for_cloudtrail_configuration_changes_enabled",
        ["CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"];
    mon_auth_failures, "cloudwatch_alarm_console_auth_failures", "Console authentication failures raise an alarm",
        "console authentication failures", "cloudwatch_log_metric_filter_authentication_failures",
        ["ConsoleLogin", "Failed authentication"];
    mon_kms, "cloudwatch_alarm_cmk_disabled_or_deleted", "Disabling or scheduling deletion of a KMS key raises an alarm",
        "KMS keys disabled or scheduled for deletion",
        "cloudwatch_log_metric_filter_disable_or_scheduled_deletion_of_kms_cmk",
        ["kms.amazonaws.com", "DisableKey", "ScheduleKeyDeletion"];
    mon_s3_policy, "cloudwatch_alarm_s3_bucket_policy_changes", "S3 bucket policy changes raise an alarm",
        "S3 bucket policy changes", "cloudwatch_log_metric_filter_for_s3_bucket_policy_changes",
        ["s3.amazonaws.com", "PutBucketAcl", "PutBucketPolicy", "PutBucketCors", "PutBucketLifecycle",
         "PutBucketReplication", "DeleteBucketPolicy", "DeleteBucketCors", "DeleteBucketLifecycle",
         "DeleteBucketReplication"];
    mon_config, "cloudwatch_alarm_config_changes", "AWS Config configuration changes raise an alarm",
        "AWS Config configuration changes",
        "cloudwatch_log_metric_filter_and_alarm_for_aws_config_configuration_changes_enabled",
        ["config.amazonaws.com", "StopConfigurationRecorder", "DeleteDeliveryChannel", "PutDeliveryChannel",
         "PutConfigurationRecorder"];
    mon_sg, "cloudwatch_alarm_security_group_changes", "Security group changes raise an alarm",
        "security group changes", "cloudwatch_log_metric_filter_security_group_changes",
        ["AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
         "RevokeSecurityGroupEgress", "CreateSecurityGroup", "DeleteSecurityGroup"];
    mon_nacl, "cloudwatch_alarm_nacl_changes", "Network ACL changes raise an alarm",
        "network ACL changes", "cloudwatch_changes_to_network_acls_alarm_configured",
        ["CreateNetworkAcl", "CreateNetworkAclEntry", "DeleteNetworkAcl", "DeleteNetworkAclEntry",
         "ReplaceNetworkAclEntry", "ReplaceNetworkAclAssociation"];
    mon_gateways, "cloudwatch_alarm_network_gateway_changes", "Network gateway changes raise an alarm",
        "network gateway changes", "cloudwatch_changes_to_network_gateways_alarm_configured",
        ["CreateCustomerGateway", "DeleteCustomerGateway", "AttachInternetGateway", "CreateInternetGateway",
         "DeleteInternetGateway", "DetachInternetGateway"];
    mon_routes, "cloudwatch_alarm_route_table_changes", "Route table changes raise an alarm",
        "route table changes", "cloudwatch_changes_to_network_route_tables_alarm_configured",
        ["CreateRoute", "CreateRouteTable", "ReplaceRoute", "ReplaceRouteTableAssociation", "DeleteRouteTable",
         "DeleteRoute", "DisassociateRouteTable"];
    mon_vpc, "cloudwatch_alarm_vpc_changes", "VPC changes raise an alarm",
        "VPC changes", "cloudwatch_changes_to_vpcs_alarm_configured",
        ["CreateVpc", "DeleteVpc", "ModifyVpcAttribute", "AcceptVpcPeeringConnection",
         "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection", "RejectVpcPeeringConnection"];
    mon_org, "cloudwatch_alarm_organizations_changes", "AWS Organizations changes raise an alarm",
        "AWS Organizations changes", "cloudwatch_log_metric_filter_aws_organizations_changes",
        ["organizations.amazonaws.com", "AcceptHandshake", "AttachPolicy", "CreateAccount",
         "CreateOrganizationalUnit", "CreatePolicy", "DeclineHandshake", "DeleteOrganization",
         "DeleteOrganizationalUnit", "DeletePolicy", "DetachPolicy", "DisablePolicyType", "EnablePolicyType",
         "InviteAccountToOrganization", "LeaveOrganization", "MoveAccount", "RemoveAccountFromOrganization",
         "UpdatePolicy", "UpdateOrganizationalUnit"];
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "cloudtrail_multi_region",
        title: "A multi-region trail logs all management events",
        service: "cloudtrail",
        severity: Severity::High,
        remediation: "aws cloudtrail create-trail --name org --s3-bucket-name BUCKET --is-multi-region-trail, then start-logging; record all management events (read and write).",
        playbook: Some("PB-007"),
        prowler: &["cloudtrail_multi_region_enabled"],
        run: multi_region_trail,
    },
    Check {
        id: "cloudtrail_log_validation",
        title: "CloudTrail log file validation is on",
        service: "cloudtrail",
        severity: Severity::Medium,
        remediation: "aws cloudtrail update-trail --name NAME --enable-log-file-validation.",
        playbook: None,
        prowler: &["cloudtrail_log_file_validation_enabled"],
        run: log_validation,
    },
    Check {
        id: "config_recorder_all_regions",
        title: "AWS Config records all resources in every region",
        service: "config",
        severity: Severity::Medium,
        remediation: "In each region, create a configuration recorder with allSupported=true and a delivery channel, then start it.",
        playbook: None,
        prowler: &["config_recorder_all_regions_enabled"],
        run: config_recorder,
    },
    Check {
        id: "cloudtrail_bucket_access_logging",
        title: "The CloudTrail bucket logs access to it",
        service: "cloudtrail",
        severity: Severity::Low,
        remediation: "aws s3api put-bucket-logging --bucket TRAIL-BUCKET with a target bucket for its access logs.",
        playbook: None,
        prowler: &["cloudtrail_logs_s3_bucket_access_logging_enabled"],
        run: trail_bucket_logging,
    },
    Check {
        id: "cloudtrail_kms_encryption",
        title: "CloudTrail logs are encrypted with a KMS key",
        service: "cloudtrail",
        severity: Severity::Medium,
        remediation: "aws cloudtrail update-trail --name NAME --kms-key-id KEY, with a key policy that lets CloudTrail encrypt and your auditors decrypt.",
        playbook: None,
        prowler: &["cloudtrail_kms_encryption_enabled"],
        run: trail_kms,
    },
    Check {
        id: "kms_key_rotation",
        title: "Customer-managed symmetric KMS keys rotate automatically",
        service: "kms",
        severity: Severity::Medium,
        remediation: "aws kms enable-key-rotation --key-id KEY.",
        playbook: None,
        prowler: &["kms_cmk_rotation_enabled"],
        run: kms_rotation,
    },
    Check {
        id: "vpc_flow_logs",
        title: "Every VPC has flow logs",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "aws ec2 create-flow-logs --resource-type VPC --resource-ids VPC --traffic-type REJECT (or ALL) to CloudWatch Logs or S3.",
        playbook: None,
        prowler: &["vpc_flow_logs_enabled"],
        run: flow_logs,
    },
    Check {
        id: "cloudtrail_s3_data_events_write",
        title: "S3 object-level write events are recorded",
        service: "cloudtrail",
        severity: Severity::Low,
        remediation: "aws cloudtrail put-event-selectors on a multi-region trail with data resource AWS::S3::Object arn:aws:s3 and ReadWriteType WriteOnly or All.",
        playbook: None,
        prowler: &["cloudtrail_s3_dataevents_write_enabled"],
        run: data_events_write,
    },
    Check {
        id: "cloudtrail_s3_data_events_read",
        title: "S3 object-level read events are recorded",
        service: "cloudtrail",
        severity: Severity::Low,
        remediation: "aws cloudtrail put-event-selectors on a multi-region trail with data resource AWS::S3::Object arn:aws:s3 and ReadWriteType ReadOnly or All.",
        playbook: None,
        prowler: &["cloudtrail_s3_dataevents_read_enabled"],
        run: data_events_read,
    },
    Check {
        id: "securityhub_enabled",
        title: "Security Hub is enabled in every region",
        service: "securityhub",
        severity: Severity::Medium,
        remediation: "aws securityhub enable-security-hub in each region (or from the delegated administrator for the organization).",
        playbook: None,
        prowler: &["securityhub_enabled"],
        run: security_hub,
    },
];
