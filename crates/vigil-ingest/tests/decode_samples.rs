//! The layouts AWS delivers telemetry in, built from the project's own samples
//! (`tests/samples`): EventBridge envelopes, the S3 delivery layout (gzip,
//! AWSLogs/<account>/<service>/<region>/…), API responses, headerless flow logs.

mod common;

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use vigil_ingest::{DecodeOptions, FlowFormat, RecordErrorKind};
use vigil_model::{IdentityType, Outcome, Severity, SourceKind};

fn sample_lines(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::sample(rel)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The findings of the sample ASFF batch.
fn asff_findings() -> Vec<Value> {
    let text = std::fs::read_to_string(common::sample("securityhub/batch.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["Findings"].as_array().unwrap().clone()
}

fn gz_write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut e = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

#[test]
fn eventbridge_envelopes_of_every_kind() {
    let ct = sample_lines("cloudtrail/console-login.jsonl");
    let gd = sample_lines("guardduty/findings.jsonl");
    let sh = asff_findings();
    let envelope = |detail_type: &str, source: &str, detail: Value| {
        json!({"version":"0","id":"e1","detail-type":detail_type,"source":source,"account":"111122223333",
               "time":"2024-03-15T10:30:00Z","region":"eu-west-1","resources":[],"detail":detail})
    };
    let mut bad_finding = sh[1].clone();
    bad_finding.as_object_mut().unwrap().remove("Id");
    let lines = [
        envelope(
            "AWS Console Sign In via CloudTrail",
            "aws.signin",
            ct[1].clone(),
        ),
        envelope("GuardDuty Finding", "aws.guardduty", gd[0].clone()),
        envelope(
            "Security Hub Findings - Imported",
            "aws.securityhub",
            json!({"findings":[sh[0], bad_finding, sh[1]]}),
        ),
        envelope(
            "EC2 Instance State-change Notification",
            "aws.ec2",
            json!({"state":"running"}),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(d.report.layout, "eventbridge");
    let sources: Vec<SourceKind> = d.events.iter().map(|e| e.source).collect();
    assert_eq!(
        sources,
        [
            SourceKind::CloudTrail,
            SourceKind::GuardDuty,
            SourceKind::SecurityHub,
            SourceKind::SecurityHub
        ]
    );
    // The CloudTrail detail is the raw record, so rules see the same fields either way.
    let login = &d.events[0];
    let raw = login.raw.to_json().unwrap();
    assert_eq!(raw["eventName"], "ConsoleLogin");
    assert!(raw.get("detail-type").is_none());
    assert_eq!(
        login.outcome,
        Outcome::Failure {
            code: None,
            message: Some("Failed authentication".into())
        }
    );
    assert_eq!(d.errors.len(), 2, "{:?}", d.errors);
    assert_eq!(
        d.errors[0].kind,
        RecordErrorKind::BadField {
            field: "detail.findings[1].Id".into(),
            reason: "missing".into()
        }
    );
    assert_eq!(d.errors[0].location.record, Some(3));
    assert!(
        matches!(&d.errors[1].kind, RecordErrorKind::Unrecognized(m) if m.contains("EC2 Instance State-change"))
    );
    assert_eq!(d.errors[1].location.line, Some(4));
}

#[test]
fn s3_delivery_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("AWSLogs/123456789012");
    // CloudTrail file: a Records object whose records lack recipientAccountId and
    // awsRegion; the S3 key supplies them.
    let records = json!({"Records":[
        {"eventVersion":"1.08","eventTime":"2024-05-01T12:00:00Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","sourceIPAddress":"AWS Internal","eventID":"a"},
        {"eventVersion":"1.08","eventTime":"2024-05-01T12:00:01Z","eventSource":"iam.amazonaws.com","eventName":"ListRoles","sourceIPAddress":"203.0.113.9","eventID":"b","errorCode":"AccessDenied","errorMessage":"no"}
    ]});
    gz_write(
        &root.join("CloudTrail/eu-central-1/2024/05/01/123456789012_CloudTrail_eu-central-1_20240501T1200Z_x.json.gz"),
        records.to_string().as_bytes(),
    );
    let digest = std::fs::read(common::sample("cloudtrail/digest.json")).unwrap();
    gz_write(
        &root.join(
            "CloudTrail-Digest/eu-central-1/2024/05/01/123456789012_CloudTrail-Digest_x.json.gz",
        ),
        &digest,
    );
    let flows = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
                 2 123456789012 eni-1 198.51.100.1 10.0.0.5 50000 22 6 3 180 1714564800 1714564860 REJECT OK\n";
    gz_write(&root.join("vpcflowlogs/eu-central-1/2024/05/01/123456789012_vpcflowlogs_eu-central-1_fl-1_20240501T1200Z_h.log.gz"), flows.as_bytes());

    let mut files = Vec::new();
    vigil_ingest::walk(dir.path(), &mut |p| files.push(p), &mut |e| panic!("{e}"));
    assert_eq!(files.len(), 3);
    let mut events = Vec::new();
    for f in &files {
        let d = common::decode(f, &DecodeOptions::default());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert!(d.report.gzip);
        events.extend(d.events);
    }
    assert_eq!(events.len(), 3, "the digest is skipped");
    let ct: Vec<_> = events
        .iter()
        .filter(|e| e.source == SourceKind::CloudTrail)
        .collect();
    assert!(ct
        .iter()
        .all(|e| e.account.as_deref() == Some("123456789012")
            && e.region.as_deref() == Some("eu-central-1")));
    assert_eq!(ct[0].source_host.as_deref(), Some("AWS Internal"));
    assert_eq!(ct[1].outcome.error_code(), Some("AccessDenied"));
    let flow = events
        .iter()
        .find(|e| e.source == SourceKind::VpcFlow)
        .unwrap();
    assert_eq!(flow.region.as_deref(), Some("eu-central-1"));
    assert_eq!(flow.network.as_ref().unwrap().dst_port, Some(22));
}

#[test]
fn guardduty_get_findings_response_and_plain_array() {
    // The CLI's get-findings output: PascalCase keys in a {"Findings": […]} object.
    let d = common::decode(
        &common::sample("guardduty/get-findings.json"),
        &DecodeOptions::default(),
    );
    assert_eq!((d.events.len(), d.errors.len()), (2, 0), "{:?}", d.errors);
    assert_eq!(
        d.events[0].finding.as_ref().unwrap().severity,
        Some(Severity::High)
    );
    let gd = sample_lines("guardduty/findings.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let arr = dir.path().join("array.json");
    std::fs::write(
        &arr,
        serde_json::to_string_pretty(&json!([gd[0], gd[1], gd[2]])).unwrap(),
    )
    .unwrap();
    let d = common::decode(&arr, &DecodeOptions::default());
    assert_eq!((d.events.len(), d.errors.len()), (3, 0));
    let f = d.events[2].finding.as_ref().unwrap();
    let t = f.threat.as_ref().unwrap();
    assert_eq!(
        (
            t.purpose.as_str(),
            t.resource_type.as_str(),
            t.family.as_str()
        ),
        ("Persistence", "Kubernetes", "SuccessfulAnonymousAccess")
    );
    assert_eq!(f.severity, Some(Severity::High));
}

#[test]
fn headerless_flow_formats_by_configuration() {
    let path = common::sample("vpcflow/v5.log");
    let d = common::decode(
        &path,
        &DecodeOptions {
            flow_format: Some(FlowFormat::parse("v5").unwrap()),
            ..Default::default()
        },
    );
    assert_eq!((d.events.len(), d.errors.len()), (1, 0));
    let n = d.events[0].network.as_ref().unwrap();
    assert_eq!(n.flow_direction.as_deref(), Some("egress"));
    assert_eq!(n.az_id.as_deref(), Some("euw1-az2"));
    assert_eq!(n.pkt_dst_aws_service.as_deref(), Some("CLOUDFRONT"));
    // The same fields spelled as an AWS format string.
    let spec = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}";
    let f = FlowFormat::parse(spec).unwrap();
    assert_eq!(f.name(), "v5");
}

#[test]
fn actor_fields_of_an_assumed_role() {
    let path = common::sample("cloudtrail/records.json");
    let d = common::decode(&path, &DecodeOptions::default());
    let a = d.events[1].actor.as_ref().unwrap();
    assert_eq!(a.identity_type, IdentityType::AssumedRole);
    assert_eq!(a.mfa_authenticated, Some(true));
    let i = a.session_issuer.as_ref().unwrap();
    assert_eq!(
        (i.user_name.as_deref(), i.issuer_type.as_deref()),
        (Some("Admin"), Some("Role"))
    );
    let act = d.events[1].action.as_ref().unwrap();
    assert_eq!(
        (act.service.as_str(), act.operation.as_str()),
        ("iam", "AttachUserPolicy")
    );
}
