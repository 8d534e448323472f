//! Every sample the project wrote (`tests/samples`, one per layout AWS delivers)
//! decodes without error into the events and fields it holds. These are the
//! decoders' own tests; the conformance suite checks them against Elastic's
//! samples as well (`golden_elastic.rs`).

mod common;

use serde_json::Value;
use vigil_ingest::{DecodeOptions, FlowFormat};

/// Decodes a sample (with a flow layout named, for headerless flow logs) and
/// returns the layout, the events as JSON, and fails on any error.
fn decode(rel: &str, flow: Option<&str>) -> (String, Vec<Value>) {
    let opts = DecodeOptions {
        flow_format: flow.map(|f| FlowFormat::parse(f).unwrap()),
        ..DecodeOptions::default()
    };
    let d = common::decode(&common::sample(rel), &opts);
    assert!(d.errors.is_empty(), "{rel}: {:?}", d.errors);
    let events = d
        .events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    (d.report.layout, events)
}

fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} missing in {v}"))
}

#[test]
fn cloudtrail_json_lines_of_console_sign_ins() {
    let (layout, ev) = decode("cloudtrail/console-login.jsonl", None);
    assert_eq!(layout, "cloudtrail (records)");
    assert_eq!(ev.len(), 3);
    assert_eq!(at(&ev[0], "/outcome/status"), "success");
    assert_eq!(at(&ev[0], "/actor/user_name"), "maria");
    assert_eq!(at(&ev[1], "/outcome/status"), "failure");
    assert_eq!(at(&ev[1], "/outcome/message"), "Failed authentication");
    assert_eq!(at(&ev[1], "/source_ip"), "203.0.113.77");
    assert_eq!(at(&ev[2], "/actor/type"), "AssumedRole");
    for e in &ev {
        assert_eq!(at(e, "/action/operation"), "ConsoleLogin");
        assert_eq!(at(e, "/action/service"), "signin");
        assert_eq!(at(e, "/account"), "111122223333");
    }
}

#[test]
fn cloudtrail_records_file_of_every_identity_type() {
    let (layout, ev) = decode("cloudtrail/records.json", None);
    assert_eq!(layout, "cloudtrail (Records file)");
    let types: Vec<&str> = ev
        .iter()
        .map(|e| at(e, "/actor/type").as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "AWSService",
            "AssumedRole",
            "Root",
            "IAMUser",
            "FederatedUser"
        ]
    );
    assert_eq!(at(&ev[0], "/source_host"), "ec2.amazonaws.com");
    assert_eq!(at(&ev[0], "/read_only"), true);
    assert_eq!(at(&ev[2], "/region"), "eu-west-1");
    assert_eq!(
        at(&ev[2], "/action/operation"),
        "AuthorizeSecurityGroupIngress"
    );
    assert_eq!(at(&ev[3], "/outcome/code"), "AccessDenied");
    assert_eq!(at(&ev[4], "/action/service"), "ec2");
    // The raw record stays whole for rules that read any field.
    assert_eq!(
        at(&ev[1], "/raw/requestParameters/policyArn"),
        "arn:aws:iam::aws:policy/AdministratorAccess"
    );
}

#[test]
fn cloudtrail_insights_event_and_digest_file() {
    let (_, ev) = decode("cloudtrail/insight.json", None);
    assert_eq!(ev.len(), 1);
    assert_eq!(at(&ev[0], "/event_type"), "AwsCloudTrailInsight");
    assert_eq!(at(&ev[0], "/action/operation"), "RunInstances");
    let d = common::decode(
        &common::sample("cloudtrail/digest.json"),
        &DecodeOptions::default(),
    );
    assert_eq!(d.report.layout, "cloudtrail-digest");
    assert!(d.events.is_empty() && d.errors.is_empty());
    assert!(d.report.notes[0].contains("digest file: skipped"));
}

#[test]
fn flow_log_default_format_with_its_header() {
    let (layout, ev) = decode("vpcflow/v2-header.log", None);
    assert_eq!(layout, "vpcflow v2");
    assert_eq!(ev.len(), 6);
    assert_eq!(at(&ev[0], "/network/action"), "ACCEPT");
    assert_eq!(at(&ev[1], "/network/action"), "REJECT");
    assert_eq!(at(&ev[1], "/network/dst_port"), 22);
    assert_eq!(at(&ev[2], "/network/src_addr"), "2001:db8:10::15");
    assert_eq!(at(&ev[3], "/network/protocol"), 1);
    assert_eq!(at(&ev[4], "/network/log_status"), "NODATA");
    assert_eq!(at(&ev[5], "/network/log_status"), "SKIPDATA");
    // `-` is no value, not a text.
    assert!(ev[4].pointer("/network/src_addr").is_none());
    // The start of the capture window, in UTC.
    assert_eq!(at(&ev[0], "/time"), "2025-02-03T09:00:00Z");
}

#[test]
fn flow_log_custom_format_with_repeated_headers() {
    let (layout, ev) = decode("vpcflow/custom-v3-header.log", None);
    assert_eq!(layout, "vpcflow custom (21 fields)");
    assert_eq!(ev.len(), 3);
    assert_eq!(at(&ev[0], "/network/instance_id"), "i-0123456789abcdef0");
    assert_eq!(at(&ev[1], "/network/tcp_flags"), 19);
    // Behind a NAT: the packet's own source differs from the interface's peer.
    assert_eq!(at(&ev[2], "/network/pkt_src_addr"), "192.0.2.50");
    assert_eq!(at(&ev[2], "/network/src_addr"), "10.20.4.1");
    assert!(ev[2].pointer("/network/instance_id").is_none());
}

#[test]
fn flow_log_versions_without_a_header() {
    let (layout, ev) = decode("vpcflow/v5.log", Some("v5"));
    assert_eq!(layout, "vpcflow v5");
    assert_eq!(at(&ev[0], "/network/pkt_dst_aws_service"), "CLOUDFRONT");
    assert_eq!(at(&ev[0], "/network/traffic_path"), 8);
    let (_, ev) = decode("vpcflow/v8.log", Some("v8"));
    assert_eq!(at(&ev[0], "/network/ecs_cluster_name"), "payments");
    assert_eq!(at(&ev[0], "/network/ecs_service_name"), "api");
    assert_eq!(at(&ev[0], "/network/reject_reason"), "BPA");
    assert!(ev[0].pointer("/network/ecs_second_container_id").is_none());
    let (layout, ev) = decode("vpcflow/tgw.log", Some("tgw"));
    assert_eq!(layout, "vpcflow tgw");
    assert_eq!(ev.len(), 2);
    assert_eq!(at(&ev[0], "/network/tgw_id"), "tgw-0123456789abcdef0");
    assert_eq!(
        at(&ev[0], "/network/tgw_dst_vpc_account_id"),
        "444455556666"
    );
    assert_eq!(at(&ev[1], "/network/packets_lost_no_route"), 2);
    // Without its layout named, a headerless file is refused line by line, with
    // the preset that would fit.
    let d = common::decode(&common::sample("vpcflow/v8.log"), &DecodeOptions::default());
    assert!(d.events.is_empty());
    assert!(d.errors[0].to_string().contains("v8"), "{}", d.errors[0]);
}

#[test]
fn guardduty_findings_as_the_api_and_the_cli_write_them() {
    let (layout, ev) = decode("guardduty/findings.jsonl", None);
    assert_eq!(layout, "guardduty");
    assert_eq!(ev.len(), 3, "the empty batch holds no finding");
    assert_eq!(at(&ev[0], "/finding/severity"), "HIGH");
    assert_eq!(at(&ev[0], "/finding/threat/purpose"), "CryptoCurrency");
    assert_eq!(at(&ev[0], "/finding/threat/artifact"), "DNS");
    assert_eq!(
        at(&ev[1], "/finding/threat/detection_mechanism"),
        "OutsideAWS"
    );
    assert_eq!(at(&ev[1], "/source_ip"), "198.51.100.99");
    assert_eq!(at(&ev[2], "/finding/threat/resource_type"), "Kubernetes");
    let (_, cli) = decode("guardduty/get-findings.json", None);
    assert_eq!(cli.len(), 2);
    for (a, b) in ev.iter().zip(&cli) {
        for p in [
            "/id",
            "/time",
            "/account",
            "/region",
            "/finding/severity",
            "/finding/title",
        ] {
            assert_eq!(at(a, p), at(b, p), "{p}: camelCase and PascalCase agree");
        }
    }
}

#[test]
fn security_hub_asff_batch() {
    let (layout, ev) = decode("securityhub/batch.json", None);
    assert_eq!(layout, "asff");
    assert_eq!(ev.len(), 2);
    assert_eq!(at(&ev[0], "/finding/control_id"), "S3.8");
    assert_eq!(at(&ev[0], "/finding/compliance_status"), "FAILED");
    assert_eq!(at(&ev[0], "/finding/severity"), "HIGH");
    assert_eq!(
        at(&ev[0], "/resources/0/arn"),
        "arn:aws:s3:::customer-exports-prod"
    );
    assert_eq!(at(&ev[1], "/finding/product_name"), "GuardDuty");
    assert_eq!(at(&ev[1], "/region"), "us-east-1");
}
