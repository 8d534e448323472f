//! What is read per region: EC2 and VPC (EBS defaults and volumes, instances,
//! security groups, network ACLs, VPCs, flow logs), CloudTrail, Config, KMS,
//! CloudWatch Logs metric filters, CloudWatch alarms, SNS subscriptions, RDS,
//! EFS, Security Hub, GuardDuty and IAM Access Analyzer. The services of a
//! region are read at once; each that fails is one error for that region.

use futures_util::stream::{self, StreamExt};
use vigil_comply::snapshot::{
    AccessAnalyzer, Alarm, CollectError, ConfigRecorder, EfsFileSystem, FlowLog, GuardDutyDetector,
    Instance, KmsKey, MetricFilter, NaclEntry, NetworkAcl, RdsInstance, Regional, SecurityGroup,
    SgRule, SnsSubscription, Trail, Volume, Vpc,
};

use super::{all_items, client_in, failed};
use crate::Aws;

/// Per-key and per-trail calls made at once.
const FAN_OUT: usize = 8;

/// The regions enabled for `account` (opted in, or not needing it).
pub async fn enabled_regions(aws: &Aws, account: &str) -> Result<Vec<String>, CollectError> {
    let c = client_in!(aws_sdk_ec2, aws, account, None, "ec2");
    let out = c
        .describe_regions()
        .send()
        .await
        .map_err(|e| failed("ec2", None, "DescribeRegions", &e))?;
    let mut regions: Vec<String> = out
        .regions()
        .iter()
        .filter(|r| r.opt_in_status() != Some("not-opted-in"))
        .filter_map(|r| r.region_name().map(str::to_owned))
        .collect();
    regions.sort();
    Ok(regions)
}

pub async fn collect(aws: &Aws, account: &str, region: &str) -> (Regional, Vec<CollectError>) {
    let (ec2, trails, config, kms, filters, alarms, subs, rds, efs, hub, gd, analyzers) = tokio::join!(
        ec2(aws, account, region),
        trails(aws, account, region),
        config(aws, account, region),
        kms(aws, account, region),
        metric_filters(aws, account, region),
        alarms(aws, account, region),
        sns(aws, account, region),
        rds(aws, account, region),
        efs(aws, account, region),
        security_hub(aws, account, region),
        guardduty(aws, account, region),
        access_analyzers(aws, account, region),
    );
    let mut r = Regional::default();
    let mut errors = Vec::new();
    let mut take = |e: CollectError| errors.push(e);
    match ec2 {
        Ok(e) => {
            r.ebs_encryption_by_default = e.ebs_encryption_by_default;
            r.volumes = e.volumes;
            r.instances = e.instances;
            r.security_groups = e.security_groups;
            r.network_acls = e.network_acls;
            r.vpcs = e.vpcs;
            r.flow_logs = e.flow_logs;
        }
        Err(e) => take(e),
    }
    macro_rules! put {
        ($field:ident, $v:expr) => {
            match $v {
                Ok(v) => r.$field = v,
                Err(e) => take(e),
            }
        };
    }
    put!(trails, trails);
    put!(config_recorders, config);
    put!(kms_keys, kms);
    put!(metric_filters, filters);
    put!(alarms, alarms);
    put!(sns_subscriptions, subs);
    put!(rds_instances, rds);
    put!(efs_file_systems, efs);
    put!(security_hub_enabled, hub);
    put!(guardduty_detectors, gd);
    put!(access_analyzers, analyzers);
    (r, errors)
}

/// A mapper of an SDK error to the snapshot's, for `service` in `region`.
fn err<'a, E, R>(
    service: &'a str,
    region: &'a str,
    op: &'a str,
) -> impl Fn(aws_sdk_ec2::error::SdkError<E, R>) -> CollectError + 'a
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| failed(service, Some(region), op, &e)
}

// ---------------------------------------------------------------- EC2

struct Ec2 {
    ebs_encryption_by_default: Option<bool>,
    volumes: Vec<Volume>,
    instances: Vec<Instance>,
    security_groups: Vec<SecurityGroup>,
    network_acls: Vec<NetworkAcl>,
    vpcs: Vec<Vpc>,
    flow_logs: Vec<FlowLog>,
}

async fn ec2(aws: &Aws, account: &str, region: &str) -> Result<Ec2, CollectError> {
    let c = client_in!(aws_sdk_ec2, aws, account, Some(region), "ec2");
    let (ebs, volumes, reservations, groups, nacls, vpcs, flows) = tokio::join!(
        c.get_ebs_encryption_by_default().send(),
        c.describe_volumes()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        c.describe_instances()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        c.describe_security_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        c.describe_network_acls()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        c.describe_vpcs()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        c.describe_flow_logs()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
    );
    let ebs = ebs.map_err(err("ec2", region, "GetEbsEncryptionByDefault"))?;
    let volumes = volumes.map_err(err("ec2", region, "DescribeVolumes"))?;
    let reservations = reservations.map_err(err("ec2", region, "DescribeInstances"))?;
    let groups = groups.map_err(err("ec2", region, "DescribeSecurityGroups"))?;
    let nacls = nacls.map_err(err("ec2", region, "DescribeNetworkAcls"))?;
    let vpcs = vpcs.map_err(err("ec2", region, "DescribeVpcs"))?;
    let flows = flows.map_err(err("ec2", region, "DescribeFlowLogs"))?;
    Ok(Ec2 {
        ebs_encryption_by_default: ebs.ebs_encryption_by_default(),
        volumes: volumes
            .iter()
            .map(|v| Volume {
                id: v.volume_id().unwrap_or_default().to_owned(),
                encrypted: v.encrypted().unwrap_or(false),
            })
            .collect(),
        instances: reservations
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| Instance {
                id: i.instance_id().unwrap_or_default().to_owned(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
                http_tokens: i
                    .metadata_options()
                    .and_then(|m| m.http_tokens())
                    .map(|t| t.as_str().to_owned()),
                http_endpoint: i
                    .metadata_options()
                    .and_then(|m| m.http_endpoint())
                    .map(|t| t.as_str().to_owned()),
                instance_profile: i
                    .iam_instance_profile()
                    .and_then(|p| p.arn())
                    .map(str::to_owned),
            })
            .collect(),
        security_groups: groups
            .iter()
            .map(|g| SecurityGroup {
                id: g.group_id().unwrap_or_default().to_owned(),
                name: g.group_name().unwrap_or_default().to_owned(),
                vpc_id: g.vpc_id().map(str::to_owned),
                ingress: g.ip_permissions().iter().map(sg_rule).collect(),
                egress: g.ip_permissions_egress().iter().map(sg_rule).collect(),
            })
            .collect(),
        network_acls: nacls
            .iter()
            .map(|n| NetworkAcl {
                id: n.network_acl_id().unwrap_or_default().to_owned(),
                vpc_id: n.vpc_id().map(str::to_owned),
                entries: n
                    .entries()
                    .iter()
                    .map(|x| NaclEntry {
                        rule_number: x.rule_number().unwrap_or(0),
                        egress: x.egress().unwrap_or(false),
                        action: x
                            .rule_action()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        protocol: x.protocol().unwrap_or("-1").to_owned(),
                        cidr: x.cidr_block().map(str::to_owned),
                        ipv6_cidr: x.ipv6_cidr_block().map(str::to_owned),
                        from_port: x.port_range().and_then(|p| p.from()),
                        to_port: x.port_range().and_then(|p| p.to()),
                    })
                    .collect(),
            })
            .collect(),
        vpcs: vpcs
            .iter()
            .map(|v| Vpc {
                id: v.vpc_id().unwrap_or_default().to_owned(),
                is_default: v.is_default().unwrap_or(false),
            })
            .collect(),
        flow_logs: flows
            .iter()
            .map(|f| FlowLog {
                id: f.flow_log_id().unwrap_or_default().to_owned(),
                resource_id: f.resource_id().unwrap_or_default().to_owned(),
                status: f.flow_log_status().map(str::to_owned),
            })
            .collect(),
    })
}

fn sg_rule(p: &aws_sdk_ec2::types::IpPermission) -> SgRule {
    SgRule {
        protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ipv4: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_owned))
            .collect(),
        ipv6: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6().map(str::to_owned))
            .collect(),
        others: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .chain(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|l| l.prefix_list_id().map(str::to_owned)),
            )
            .collect(),
    }
}

// ---------------------------------------------------------------- CloudTrail

/// The trails whose home is this region (a multi-region trail is listed once,
/// where it was made), with their status and event selectors.
async fn trails(aws: &Aws, account: &str, region: &str) -> Result<Vec<Trail>, CollectError> {
    let c = client_in!(aws_sdk_cloudtrail, aws, account, Some(region), "cloudtrail");
    let out = c
        .describe_trails()
        .include_shadow_trails(false)
        .send()
        .await
        .map_err(err("cloudtrail", region, "DescribeTrails"))?;
    let c = &c;
    let read = stream::iter(out.trail_list().to_vec())
        .map(|t| async move {
            let arn = t.trail_arn().unwrap_or_default().to_owned();
            let (status, selectors) = tokio::join!(
                c.get_trail_status().name(&arn).send(),
                c.get_event_selectors().trail_name(&arn).send(),
            );
            let status = status.map_err(err("cloudtrail", region, "GetTrailStatus"))?;
            let selectors = selectors.map_err(err("cloudtrail", region, "GetEventSelectors"))?;
            let coverage = Coverage::of(&selectors);
            Ok(Trail {
                name: t.name().unwrap_or_default().to_owned(),
                home_region: t.home_region().unwrap_or(region).to_owned(),
                multi_region: t.is_multi_region_trail().unwrap_or(false),
                organization: t.is_organization_trail().unwrap_or(false),
                log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
                kms_key_id: t.kms_key_id().map(str::to_owned),
                s3_bucket: t.s3_bucket_name().map(str::to_owned),
                cloudwatch_log_group_arn: t.cloud_watch_logs_log_group_arn().map(str::to_owned),
                is_logging: status.is_logging().unwrap_or(false),
                management_events: coverage.management(),
                s3_data_read_all: coverage.s3_read,
                s3_data_write_all: coverage.s3_write,
                arn,
            })
        })
        .buffered(FAN_OUT)
        .collect::<Vec<Result<Trail, CollectError>>>()
        .await;
    read.into_iter().collect()
}

/// What a trail's selectors record: management reads and writes, and S3 object
/// reads and writes in every bucket.
#[derive(Default, Debug, PartialEq)]
struct Coverage {
    mgmt_read: bool,
    mgmt_write: bool,
    s3_read: bool,
    s3_write: bool,
}

impl Coverage {
    fn of(
        out: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
    ) -> Coverage {
        let mut c = Coverage::default();
        for s in out.event_selectors() {
            let (read, write) = rw(s.read_write_type().map(|t| t.as_str()));
            if s.include_management_events().unwrap_or(true) {
                c.mgmt_read |= read;
                c.mgmt_write |= write;
            }
            let all_s3 = s.data_resources().iter().any(|d| {
                d.r#type() == Some("AWS::S3::Object")
                    && d.values()
                        .iter()
                        .any(|v| v == "arn:aws:s3" || v == "arn:aws:s3:::" || v == "arn:aws:s3:::*")
            });
            if all_s3 {
                c.s3_read |= read;
                c.s3_write |= write;
            }
        }
        for s in out.advanced_event_selectors() {
            let mut category = None;
            let mut resource_type = None;
            let mut read_only = None;
            let mut narrowed = false;
            for f in s.field_selectors() {
                let eq = f.equals();
                match f.field() {
                    "eventCategory" => category = eq.first().cloned(),
                    "resources.type" => resource_type = eq.first().cloned(),
                    "readOnly" => read_only = eq.first().map(|v| v == "true"),
                    // Any other condition records only part of the events.
                    _ => narrowed = true,
                }
            }
            let (read, write) = match read_only {
                None => (true, true),
                Some(true) => (true, false),
                Some(false) => (false, true),
            };
            match category.as_deref() {
                Some("Management") if !narrowed => {
                    c.mgmt_read |= read;
                    c.mgmt_write |= write;
                }
                Some("Data")
                    if !narrowed && resource_type.as_deref() == Some("AWS::S3::Object") =>
                {
                    c.s3_read |= read;
                    c.s3_write |= write;
                }
                _ => {}
            }
        }
        c
    }

    fn management(&self) -> Option<String> {
        match (self.mgmt_read, self.mgmt_write) {
            (true, true) => Some("All".into()),
            (true, false) => Some("ReadOnly".into()),
            (false, true) => Some("WriteOnly".into()),
            (false, false) => None,
        }
    }
}

/// The reads and writes a basic selector's `ReadWriteType` records (All when
/// unset).
fn rw(t: Option<&str>) -> (bool, bool) {
    match t {
        Some("ReadOnly") => (true, false),
        Some("WriteOnly") => (false, true),
        _ => (true, true),
    }
}

// ---------------------------------------------------------------- the rest

async fn config(
    aws: &Aws,
    account: &str,
    region: &str,
) -> Result<Vec<ConfigRecorder>, CollectError> {
    let c = client_in!(aws_sdk_config, aws, account, Some(region), "config");
    let (recorders, status) = tokio::join!(
        c.describe_configuration_recorders().send(),
        c.describe_configuration_recorder_status().send(),
    );
    let recorders = recorders.map_err(err("config", region, "DescribeConfigurationRecorders"))?;
    let status = status.map_err(err("config", region, "DescribeConfigurationRecorderStatus"))?;
    Ok(recorders
        .configuration_recorders()
        .iter()
        .map(|r| {
            let name = r.name().unwrap_or_default().to_owned();
            let st = status
                .configuration_recorders_status()
                .iter()
                .find(|s| s.name() == Some(name.as_str()));
            let group = r.recording_group();
            ConfigRecorder {
                all_supported: group.is_some_and(|g| g.all_supported()),
                include_global_resources: group.is_some_and(|g| g.include_global_resource_types()),
                recording: st.is_some_and(|s| s.recording()),
                last_status: st
                    .and_then(|s| s.last_status())
                    .map(|s| s.as_str().to_owned()),
                name,
            }
        })
        .collect())
}

async fn kms(aws: &Aws, account: &str, region: &str) -> Result<Vec<KmsKey>, CollectError> {
    let c = client_in!(aws_sdk_kms, aws, account, Some(region), "kms");
    let keys = all_items!(c.list_keys(), err("kms", region, "ListKeys"))?;
    let c = &c;
    let read = stream::iter(keys)
        .map(|k| async move {
            let id = k.key_id().unwrap_or_default().to_owned();
            let d = c.describe_key().key_id(&id).send().await.map_err(err(
                "kms",
                region,
                "DescribeKey",
            ))?;
            let Some(m) = d.key_metadata() else {
                return Ok(None);
            };
            let manager = m
                .key_manager()
                .map(|x| x.as_str().to_owned())
                .unwrap_or_default();
            let spec = m
                .key_spec()
                .map(|x| x.as_str().to_owned())
                .unwrap_or_default();
            let state = m
                .key_state()
                .map(|x| x.as_str().to_owned())
                .unwrap_or_default();
            // Rotation is asked only where it can be on: customer keys,
            // symmetric, in use.
            let rotation_enabled =
                if manager == "CUSTOMER" && spec == "SYMMETRIC_DEFAULT" && state == "Enabled" {
                    let r = c
                        .get_key_rotation_status()
                        .key_id(&id)
                        .send()
                        .await
                        .map_err(err("kms", region, "GetKeyRotationStatus"))?;
                    Some(r.key_rotation_enabled())
                } else {
                    None
                };
            Ok(Some(KmsKey {
                arn: m.arn().unwrap_or_default().to_owned(),
                id,
                manager,
                spec,
                state,
                rotation_enabled,
            }))
        })
        .buffered(FAN_OUT)
        .collect::<Vec<Result<Option<KmsKey>, CollectError>>>()
        .await;
    read.into_iter().filter_map(Result::transpose).collect()
}

async fn metric_filters(
    aws: &Aws,
    account: &str,
    region: &str,
) -> Result<Vec<MetricFilter>, CollectError> {
    let c = client_in!(aws_sdk_cloudwatchlogs, aws, account, Some(region), "logs");
    let filters = all_items!(
        c.describe_metric_filters(),
        err("logs", region, "DescribeMetricFilters")
    )?;
    Ok(filters
        .iter()
        .flat_map(|f| {
            let base = MetricFilter {
                log_group: f.log_group_name().unwrap_or_default().to_owned(),
                name: f.filter_name().unwrap_or_default().to_owned(),
                pattern: f.filter_pattern().unwrap_or_default().to_owned(),
                metric_name: String::new(),
                metric_namespace: String::new(),
            };
            f.metric_transformations()
                .iter()
                .map(move |t| MetricFilter {
                    metric_name: t.metric_name().to_owned(),
                    metric_namespace: t.metric_namespace().to_owned(),
                    ..base.clone()
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

async fn alarms(aws: &Aws, account: &str, region: &str) -> Result<Vec<Alarm>, CollectError> {
    let c = client_in!(aws_sdk_cloudwatch, aws, account, Some(region), "cloudwatch");
    let pages = c
        .describe_alarms()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(err("cloudwatch", region, "DescribeAlarms"))?;
    Ok(pages
        .iter()
        .flat_map(|p| p.metric_alarms())
        .map(|a| Alarm {
            name: a.alarm_name().unwrap_or_default().to_owned(),
            metric_name: a.metric_name().map(str::to_owned),
            namespace: a.namespace().map(str::to_owned),
            actions: a.alarm_actions().to_vec(),
        })
        .collect())
}

async fn sns(aws: &Aws, account: &str, region: &str) -> Result<Vec<SnsSubscription>, CollectError> {
    let c = client_in!(aws_sdk_sns, aws, account, Some(region), "sns");
    let subs = all_items!(
        c.list_subscriptions(),
        err("sns", region, "ListSubscriptions")
    )?;
    Ok(subs
        .iter()
        .map(|s| SnsSubscription {
            topic_arn: s.topic_arn().unwrap_or_default().to_owned(),
            protocol: s.protocol().unwrap_or_default().to_owned(),
            endpoint: s.endpoint().unwrap_or_default().to_owned(),
            subscription_arn: s.subscription_arn().unwrap_or_default().to_owned(),
        })
        .collect())
}

async fn rds(aws: &Aws, account: &str, region: &str) -> Result<Vec<RdsInstance>, CollectError> {
    let c = client_in!(aws_sdk_rds, aws, account, Some(region), "rds");
    let dbs = all_items!(
        c.describe_db_instances(),
        err("rds", region, "DescribeDBInstances")
    )?;
    Ok(dbs
        .iter()
        .map(|d| RdsInstance {
            id: d.db_instance_identifier().unwrap_or_default().to_owned(),
            arn: d.db_instance_arn().unwrap_or_default().to_owned(),
            engine: d.engine().unwrap_or_default().to_owned(),
            storage_encrypted: d.storage_encrypted().unwrap_or(false),
            auto_minor_version_upgrade: d.auto_minor_version_upgrade().unwrap_or(false),
            publicly_accessible: d.publicly_accessible().unwrap_or(false),
        })
        .collect())
}

async fn efs(aws: &Aws, account: &str, region: &str) -> Result<Vec<EfsFileSystem>, CollectError> {
    let c = client_in!(aws_sdk_efs, aws, account, Some(region), "efs");
    let all = all_items!(
        c.describe_file_systems(),
        err("efs", region, "DescribeFileSystems")
    )?;
    Ok(all
        .iter()
        .map(|f| EfsFileSystem {
            id: f.file_system_id().to_owned(),
            arn: f.file_system_arn().unwrap_or_default().to_owned(),
            encrypted: f.encrypted().unwrap_or(false),
        })
        .collect())
}

/// Whether Security Hub is on: DescribeHub answers only where it is.
async fn security_hub(
    aws: &Aws,
    account: &str,
    region: &str,
) -> Result<Option<bool>, CollectError> {
    use aws_sdk_securityhub::error::ProvideErrorMetadata;
    let c = client_in!(
        aws_sdk_securityhub,
        aws,
        account,
        Some(region),
        "securityhub"
    );
    match c.describe_hub().send().await {
        Ok(_) => Ok(Some(true)),
        Err(e)
            if matches!(
                e.code(),
                Some("InvalidAccessException" | "ResourceNotFoundException")
            ) =>
        {
            Ok(Some(false))
        }
        Err(e) => Err(failed("securityhub", Some(region), "DescribeHub", &e)),
    }
}

async fn guardduty(
    aws: &Aws,
    account: &str,
    region: &str,
) -> Result<Vec<GuardDutyDetector>, CollectError> {
    let c = client_in!(aws_sdk_guardduty, aws, account, Some(region), "guardduty");
    let ids = all_items!(
        c.list_detectors(),
        err("guardduty", region, "ListDetectors")
    )?;
    let mut out = Vec::new();
    for id in ids {
        let d = c.get_detector().detector_id(&id).send().await.map_err(err(
            "guardduty",
            region,
            "GetDetector",
        ))?;
        out.push(GuardDutyDetector {
            status: d
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            id,
        });
    }
    Ok(out)
}

async fn access_analyzers(
    aws: &Aws,
    account: &str,
    region: &str,
) -> Result<Vec<AccessAnalyzer>, CollectError> {
    let c = client_in!(
        aws_sdk_accessanalyzer,
        aws,
        account,
        Some(region),
        "accessanalyzer"
    );
    let all = all_items!(
        c.list_analyzers(),
        err("accessanalyzer", region, "ListAnalyzers")
    )?;
    Ok(all
        .iter()
        .map(|a| AccessAnalyzer {
            name: a.name().to_owned(),
            arn: a.arn().to_owned(),
            status: a.status().as_str().to_owned(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput;
    use aws_sdk_cloudtrail::types::{
        AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector, ReadWriteType,
    };

    fn field(name: &str, v: &str) -> AdvancedFieldSelector {
        AdvancedFieldSelector::builder()
            .field(name)
            .equals(v)
            .build()
            .unwrap()
    }

    #[test]
    fn basic_selectors() {
        let out = GetEventSelectorsOutput::builder()
            .event_selectors(
                EventSelector::builder()
                    .read_write_type(ReadWriteType::WriteOnly)
                    .include_management_events(true)
                    .data_resources(
                        DataResource::builder()
                            .r#type("AWS::S3::Object")
                            .values("arn:aws:s3")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let c = Coverage::of(&out);
        assert_eq!(c.management().as_deref(), Some("WriteOnly"));
        assert!(c.s3_write && !c.s3_read);
        // One bucket only is not every bucket.
        let out = GetEventSelectorsOutput::builder()
            .event_selectors(
                EventSelector::builder()
                    .data_resources(
                        DataResource::builder()
                            .r#type("AWS::S3::Object")
                            .values("arn:aws:s3:::logs/")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let c = Coverage::of(&out);
        assert_eq!(c.management().as_deref(), Some("All"));
        assert!(!c.s3_write && !c.s3_read);
    }

    #[test]
    fn advanced_selectors() {
        let out = GetEventSelectorsOutput::builder()
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .field_selectors(field("eventCategory", "Management"))
                    .build()
                    .unwrap(),
            )
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .field_selectors(field("eventCategory", "Data"))
                    .field_selectors(field("resources.type", "AWS::S3::Object"))
                    .field_selectors(field("readOnly", "true"))
                    .build()
                    .unwrap(),
            )
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .field_selectors(field("eventCategory", "Data"))
                    .field_selectors(field("resources.type", "AWS::S3::Object"))
                    .field_selectors(field("resources.ARN", "arn:aws:s3:::one/"))
                    .build()
                    .unwrap(),
            )
            .build();
        let c = Coverage::of(&out);
        assert_eq!(c.management().as_deref(), Some("All"));
        assert!(c.s3_read);
        assert!(!c.s3_write, "a selector for one bucket does not count");
    }

    #[test]
    fn no_selectors_no_coverage() {
        let c = Coverage::of(&GetEventSelectorsOutput::builder().build());
        assert_eq!(c, Coverage::default());
    }
}
