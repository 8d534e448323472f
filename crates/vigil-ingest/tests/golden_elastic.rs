//! Golden tests against an independent implementation: for every Elastic sample we
//! hold, the fields both Elastic's ECS documents and our model carry must agree.
//! The golden files keep exactly those fields, copied from Elastic's
//! `<file>-expected.json` (upstream path and commit inside each file).

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use vigil_ingest::{DecodeOptions, FlowFormat};
use vigil_model::{Event, Outcome, Severity, Timestamp};

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Our value for one Elastic field, or `Err(reason)` when they disagree.
fn check(e: &Event, key: &str, want: &Value) -> Result<(), String> {
    let actor = e.actor.as_ref();
    let issuer = actor.and_then(|a| a.session_issuer.as_ref());
    let finding = e.finding.as_deref();
    let flow = e.network.as_deref();
    let eq = |ours: Option<String>| -> Result<(), String> {
        let w = s(want);
        if ours.as_deref() == Some(w.as_str()) {
            Ok(())
        } else {
            Err(format!("want {w:?}, ours {ours:?}"))
        }
    };
    let ip_eq = |ours: Option<IpAddr>| -> Result<(), String> {
        let w: IpAddr = s(want)
            .parse()
            .map_err(|_| format!("bad expected ip {want}"))?;
        if ours == Some(w) {
            Ok(())
        } else {
            Err(format!("want {w}, ours {ours:?}"))
        }
    };
    let time_eq = |ours: Option<Timestamp>| -> Result<(), String> {
        let w = Timestamp::parse(&s(want)).map_err(|e| e.to_string())?;
        if ours == Some(w) {
            Ok(())
        } else {
            Err(format!("want {w}, ours {ours:?}"))
        }
    };
    let num_eq = |ours: Option<f64>| -> Result<(), String> {
        let w = want
            .as_f64()
            .or_else(|| s(want).parse().ok())
            .ok_or("not a number")?;
        if ours.is_some_and(|o| (o - w).abs() < 1e-9) {
            Ok(())
        } else {
            Err(format!("want {w}, ours {ours:?}"))
        }
    };
    match key {
        // Elastic stamps a flow record with its end; our event time is its start, and
        // the end is kept in the flow fields.
        "@timestamp" if flow.is_some() => time_eq(flow.and_then(|f| f.end)),
        "@timestamp" => time_eq(Some(e.time)),
        "cloud.account.id" => eq(e.account.clone()),
        "cloud.region" => eq(e.region.clone()),
        // For findings Elastic's event.action is the observed activity type.
        "event.action" if finding.is_some() => eq(e.event_type.clone()),
        "event.action" => eq(e.action.as_ref().map(|a| a.operation.clone())),
        "event.provider" => eq(e.action.as_ref().and_then(|a| a.event_source.clone())),
        "event.id" => eq(Some(e.id.clone())),
        // Older flow pipelines say allow/deny for success/failure.
        "event.outcome" => {
            let w = match s(want).as_str() {
                "allow" => "success".to_owned(),
                "deny" => "failure".to_owned(),
                other => other.to_owned(),
            };
            let ours = match e.outcome {
                Outcome::Success => "success",
                Outcome::Failure { .. } => "failure",
                Outcome::Unknown => "unknown",
            };
            if ours == w {
                Ok(())
            } else {
                Err(format!("want {w}, ours {ours}"))
            }
        }
        "source.ip" => ip_eq(e.source_ip),
        "source.address" => match e.source_ip {
            Some(ip) => ip_eq(Some(ip)),
            None => eq(e.source_host.clone()),
        },
        "user_agent.original" => eq(e.user_agent.clone()),
        // Newer Elastic pipelines put an IAM user's ARN in user.id, older ones the
        // principal id; we carry both.
        "user.id" if actor.and_then(|a| a.arn.as_deref()) == want.as_str() => Ok(()),
        "user.id" => eq(actor.and_then(|a| a.principal_id.clone())),
        "aws.cloudtrail.user_identity.principal_id" => {
            eq(actor.and_then(|a| a.principal_id.clone()))
        }
        // Elastic names an assumed role's user by its issuer, and splits emails.
        "user.name" => {
            let w = s(want);
            let candidates = [
                actor.and_then(|a| a.user_name.clone()),
                issuer.and_then(|i| i.user_name.clone()),
                actor.and_then(|a| {
                    a.user_name
                        .as_deref()
                        .and_then(|n| n.split('@').next())
                        .map(str::to_owned)
                }),
            ];
            if candidates.iter().flatten().any(|c| *c == w) {
                Ok(())
            } else {
                Err(format!("want {w:?}, ours {candidates:?}"))
            }
        }
        "aws.cloudtrail.event_type" => eq(e.event_type.clone()),
        "aws.cloudtrail.read_only" => eq(e.read_only.map(|b| b.to_string())),
        "aws.cloudtrail.error_code" => eq(e.outcome.error_code().map(str::to_owned)),
        "aws.cloudtrail.error_message" => eq(match &e.outcome {
            Outcome::Failure { message, .. } => message.clone(),
            _ => None,
        }),
        "aws.cloudtrail.user_identity.type" => {
            eq(actor.map(|a| a.identity_type.as_str().to_owned()))
        }
        "aws.cloudtrail.user_identity.arn" => eq(actor.and_then(|a| a.arn.clone())),
        "aws.cloudtrail.user_identity.access_key_id" => {
            eq(actor.and_then(|a| a.access_key_id.clone()))
        }
        "aws.cloudtrail.user_identity.invoked_by" => eq(actor.and_then(|a| a.invoked_by.clone())),
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated" => eq(actor
            .and_then(|a| a.mfa_authenticated)
            .map(|b| b.to_string())),
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn" => {
            eq(issuer.and_then(|i| i.arn.clone()))
        }
        "aws.cloudtrail.resources.arn" => {
            let ours: Vec<String> = e.resources.iter().filter_map(|r| r.arn.clone()).collect();
            let w: Vec<String> = want.as_array().ok_or("not a list")?.iter().map(s).collect();
            if ours == w {
                Ok(())
            } else {
                Err(format!("want {w:?}, ours {ours:?}"))
            }
        }
        // VPC flow logs.
        "source.port" => eq(flow.and_then(|f| f.src_port).map(|v| v.to_string())),
        "destination.ip" | "destination.address" => ip_eq(flow.and_then(|f| f.dst_addr)),
        "destination.port" => eq(flow.and_then(|f| f.dst_port).map(|v| v.to_string())),
        "network.iana_number" => eq(flow.and_then(|f| f.protocol).map(|v| v.to_string())),
        "source.bytes" | "network.bytes" => eq(flow.and_then(|f| f.bytes).map(|v| v.to_string())),
        "source.packets" | "network.packets" => {
            eq(flow.and_then(|f| f.packets).map(|v| v.to_string()))
        }
        "event.start" => time_eq(flow.and_then(|f| f.start)),
        "event.end" => time_eq(flow.and_then(|f| f.end)),
        "aws.vpcflow.action" => eq(flow
            .and_then(|f| f.action)
            .map(|a| format!("{a:?}").to_uppercase())),
        "aws.vpcflow.log_status" => eq(flow.and_then(|f| f.log_status).map(|l| {
            serde_json::to_value(l)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })),
        "aws.vpcflow.version" => eq(flow.and_then(|f| f.version).map(|v| v.to_string())),
        "aws.vpcflow.interface_id" => eq(flow.and_then(|f| f.interface_id.clone())),
        "aws.vpcflow.instance_id" => eq(flow.and_then(|f| f.instance_id.clone())),
        "aws.vpcflow.tcp_flags" => eq(flow.and_then(|f| f.tcp_flags).map(|v| v.to_string())),
        "aws.vpcflow.type" => eq(flow.and_then(|f| f.traffic_type.clone())),
        "aws.vpcflow.pkt_srcaddr" => ip_eq(flow.and_then(|f| f.pkt_src_addr)),
        "aws.vpcflow.pkt_dstaddr" => ip_eq(flow.and_then(|f| f.pkt_dst_addr)),
        "aws.vpcflow.pkt_src_service" => eq(flow.and_then(|f| f.pkt_src_aws_service.clone())),
        "aws.vpcflow.pkt_dst_service" => eq(flow.and_then(|f| f.pkt_dst_aws_service.clone())),
        "aws.vpcflow.flow_direction" => eq(flow.and_then(|f| f.flow_direction.clone())),
        "aws.vpcflow.traffic_path" => eq(flow.and_then(|f| f.traffic_path).map(|v| v.to_string())),
        "aws.vpcflow.sublocation.type" => eq(flow.and_then(|f| f.sublocation_type.clone())),
        "aws.vpcflow.sublocation.id" => eq(flow.and_then(|f| f.sublocation_id.clone())),
        "aws.vpcflow.reject_reason" => eq(flow.and_then(|f| f.reject_reason.clone())),
        "aws.vpcflow.ecs.cluster_name" => eq(flow.and_then(|f| f.ecs_cluster_name.clone())),
        "aws.vpcflow.ecs.service_name" => eq(flow.and_then(|f| f.ecs_service_name.clone())),
        "aws.vpcflow.ecs.task_id" => eq(flow.and_then(|f| f.ecs_task_id.clone())),
        "aws.vpcflow.transit_gateway.id" => eq(flow.and_then(|f| f.tgw_id.clone())),
        "aws.vpcflow.transit_gateway.attachment_id" => {
            eq(flow.and_then(|f| f.tgw_attachment_id.clone()))
        }
        "aws.vpcflow.transit_gateway.src_vpc_id" => eq(flow.and_then(|f| f.tgw_src_vpc_id.clone())),
        "aws.vpcflow.transit_gateway.dst_vpc_id" => eq(flow.and_then(|f| f.tgw_dst_vpc_id.clone())),
        "network.direction" => eq(flow.and_then(|f| f.flow_direction.clone())),
        "cloud.availability_zone" => eq(flow.and_then(|f| f.az_id.clone())),
        "vpc.id" | "aws.vpcflow.vpc_id" => eq(flow.and_then(|f| f.vpc_id.clone())),
        "subnet.id" | "aws.vpcflow.subnet_id" => eq(flow.and_then(|f| f.subnet_id.clone())),
        "cloud.instance.id" => eq(flow.and_then(|f| f.instance_id.clone())),
        // Findings.
        "aws.guardduty.id" | "aws.securityhub_findings.id" => eq(finding.map(|f| f.id.clone())),
        "aws.guardduty.type" => eq(finding.and_then(|f| f.finding_type.clone())),
        "aws.guardduty.severity.code" | "event.severity"
            if e.source == vigil_model::SourceKind::GuardDuty =>
        {
            num_eq(finding.and_then(|f| f.severity_score))
        }
        "aws.guardduty.severity.value" => eq(finding.and_then(|f| f.severity).map(|s| {
            let l = s.as_str().to_lowercase();
            let mut c = l.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })),
        "aws.guardduty.title" | "aws.securityhub_findings.title" | "message" => {
            eq(finding.and_then(|f| f.title.clone()))
        }
        "aws.guardduty.resource.type" => eq(finding.and_then(|f| f.resource_type.clone())),
        "aws.guardduty.arn" => eq(finding.and_then(|f| f.arn.clone())),
        "aws.guardduty.created_at" | "aws.securityhub_findings.created_at" => {
            time_eq(finding.and_then(|f| f.created_at))
        }
        "aws.guardduty.updated_at" | "aws.securityhub_findings.updated_at" => {
            time_eq(finding.and_then(|f| f.updated_at))
        }
        "aws.guardduty.service.count" => eq(finding.and_then(|f| f.count).map(|c| c.to_string())),
        "aws.securityhub_findings.product.arn" => eq(finding.and_then(|f| f.product_arn.clone())),
        "aws.securityhub_findings.severity.label" => eq(finding
            .and_then(|f| f.severity)
            .map(|s| s.as_str().to_owned())),
        "aws.securityhub_findings.types" => {
            let ours: Vec<String> = finding.map(|f| f.types.clone()).unwrap_or_default();
            let w: Vec<String> = want.as_array().ok_or("not a list")?.iter().map(s).collect();
            if ours == w {
                Ok(())
            } else {
                Err(format!("want {w:?}, ours {ours:?}"))
            }
        }
        "aws.securityhub_findings.resources.id" => {
            let ours: Vec<String> = e.resources.iter().filter_map(|r| r.id.clone()).collect();
            let w: Vec<String> = want.as_array().ok_or("not a list")?.iter().map(s).collect();
            if ours == w {
                Ok(())
            } else {
                Err(format!("want {w:?}, ours {ours:?}"))
            }
        }
        "aws.securityhub_findings.resources.type" => {
            let ours: Vec<String> = e
                .resources
                .iter()
                .filter_map(|r| r.resource_type.clone())
                .collect();
            let w: Vec<String> = want.as_array().ok_or("not a list")?.iter().map(s).collect();
            if ours == w {
                Ok(())
            } else {
                Err(format!("want {w:?}, ours {ours:?}"))
            }
        }
        "aws.securityhub_findings.compliance.status" => {
            eq(finding.and_then(|f| f.compliance_status.clone()))
        }
        "aws.securityhub_findings.workflow.status" => {
            eq(finding.and_then(|f| f.workflow_status.clone()))
        }
        "aws.securityhub_findings.record_state" => eq(finding.and_then(|f| f.record_state.clone())),
        "aws.securityhub_findings.generator.id" => eq(finding.and_then(|f| f.generator_id.clone())),
        other => Err(format!(
            "the golden file names {other}, which this test does not map"
        )),
    }
}

struct Golden {
    expected: Vec<Map<String, Value>>,
    flow_format: Option<String>,
    /// How many events the input holds, when only the first ones are kept.
    events: Option<usize>,
}

fn load(path: &Path) -> Golden {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Golden {
        events: v.get("events").and_then(|n| n.as_u64()).map(|n| n as usize),
        expected: v["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_object().unwrap().clone())
            .collect(),
        flow_format: v
            .get("flow_format")
            .and_then(|f| f.as_str())
            .map(str::to_owned),
    }
}

/// The input a golden file is about: in shared/data when it is there, else a fixture.
fn input_for(stream: &str, golden: &Path) -> PathBuf {
    let name = golden
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches("-golden.json");
    let shared = common::conformance_data()
        .join("elastic-aws")
        .join(stream)
        .join(name);
    if shared.exists() {
        shared
    } else {
        golden.with_file_name(name)
    }
}

fn run_stream(stream: &str) -> usize {
    let dir = common::fixtures().join("elastic").join(stream);
    let mut goldens: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-golden.json"))
        .collect();
    goldens.sort();
    let mut failures = Vec::new();
    let mut fields = 0;
    for g in &goldens {
        let golden = load(g);
        let input = input_for(stream, g);
        let opts = DecodeOptions {
            flow_format: golden
                .flow_format
                .as_deref()
                .map(|f| FlowFormat::parse(f).unwrap()),
            ..DecodeOptions::default()
        };
        let d = common::decode(&input, &opts);
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        if !d.errors.is_empty() {
            failures.push(format!(
                "{name}: decode errors: {:?}",
                d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            ));
            continue;
        }
        let want = golden.events.unwrap_or(golden.expected.len());
        if d.events.len() != want {
            failures.push(format!("{name}: {} events, want {want}", d.events.len()));
            continue;
        }
        for (i, (event, exp)) in d.events.iter().zip(&golden.expected).enumerate() {
            for (key, want) in exp {
                fields += 1;
                if let Err(why) = check(event, key, want) {
                    failures.push(format!("{name} #{}: {key}: {why}", i + 1));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches in {}:\n{}",
        failures.len(),
        golden_dir_name(stream),
        failures.join("\n")
    );
    assert!(!goldens.is_empty());
    let _ = golden_dir_name;
    fields
}

fn golden_dir_name(stream: &str) -> String {
    format!("tests/fixtures/elastic/{stream}")
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn cloudtrail_agrees_with_elastic() {
    let n = run_stream("cloudtrail");
    assert!(n > 100, "only {n} fields compared");
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn vpcflow_agrees_with_elastic() {
    run_stream("vpcflow");
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn guardduty_agrees_with_elastic() {
    run_stream("guardduty");
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn securityhub_agrees_with_elastic() {
    run_stream("securityhub");
}

/// Every shared sample decodes with zero errors (headerless flow files with their
/// format named, as a user would), and the digest is recognized and skipped.
#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn every_shared_sample_decodes_cleanly() {
    let root = common::conformance_data().join("elastic-aws");
    let formats = [
        ("test-v5-all-fields.log", "v5"),
        ("test-tgw-samples.log", "tgw"),
        ("test-v8-samples.log", "v8"),
    ];
    let mut total = 0;
    for stream in ["cloudtrail", "vpcflow", "guardduty", "securityhub"] {
        for entry in std::fs::read_dir(root.join(stream)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let flow_format = formats
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, p)| FlowFormat::parse(p).unwrap());
            let d = common::decode(
                &path,
                &DecodeOptions {
                    flow_format,
                    ..DecodeOptions::default()
                },
            );
            assert!(
                d.errors.is_empty(),
                "{name}: {:?}",
                d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            );
            if name.contains("digest") {
                assert!(d.events.is_empty());
                assert_eq!(d.report.layout, "cloudtrail-digest");
                assert!(
                    d.report.notes.iter().any(|n| n.contains("digest")),
                    "{:?}",
                    d.report.notes
                );
            } else {
                assert!(!d.events.is_empty(), "{name}: no events");
            }
            total += d.events.len();
        }
    }
    // 8 CloudTrail + 22 flow + 3 GuardDuty + 2 ASFF records (INVENTORY.md).
    assert_eq!(total, 8 + 22 + 3 + 2);
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn second_security_hub_sample_by_hand() {
    // Upstream's stored expected file is a later version; this finding is checked
    // against the ASFF it is (an FSBP control finding).
    let path =
        common::conformance_data().join("elastic-aws/securityhub/test-securityhub-findings.log");
    let d = common::decode(&path, &DecodeOptions::default());
    let e = &d.events[1];
    let f = e.finding.as_ref().unwrap();
    assert_eq!(e.id, "xxxx");
    assert_eq!(
        f.title.as_deref(),
        Some("EC2.8 EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)")
    );
    assert_eq!(f.severity, Some(Severity::High));
    assert_eq!(f.severity_score, Some(70.0));
    assert_eq!(f.compliance_status.as_deref(), Some("FAILED"));
    assert_eq!(f.control_id.as_deref(), Some("EC2.8"));
    assert_eq!(f.workflow_status.as_deref(), Some("NEW"));
    assert_eq!(f.record_state.as_deref(), Some("ARCHIVED"));
    assert_eq!(f.archived, Some(true));
    assert_eq!(f.types, ["Software and Configuration Checks/Industry and Regulatory Standards/AWS-Foundational-Security-Best-Practices"]);
    assert_eq!(e.region.as_deref(), Some("us-east-1"));
    assert_eq!(e.time.to_string(), "2022-06-17T08:43:26.731Z");
    assert_eq!(
        e.resources[0].resource_type.as_deref(),
        Some("AwsEc2Instance")
    );
}
