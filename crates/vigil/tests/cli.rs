//! `vigil scan` as a user runs it: exit codes, the report, the error lines.

mod common;

use common::{sample, stdout, vigil};

#[test]
fn clean_scan_exits_zero() {
    let dir = sample("cloudtrail");
    let o = vigil(&["scan", dir.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(out.contains("cloudtrail-digest"), "{out}");
    assert!(
        out.contains("note: ") && out.contains("digest file: skipped"),
        "{out}"
    );
    assert!(
        out.contains("4 files (0 unreadable), 9 records, 9 events, 0 errors"),
        "{out}"
    );
}

#[test]
fn errors_give_exit_three_and_keep_good_records() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(sample("cloudtrail/console-login.jsonl")).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let mixed = format!(
        "{}\n{{\"eventTime\": oops}}\n{}\n{}\n",
        lines[0], lines[1], lines[2]
    );
    std::fs::write(dir.path().join("mixed.json"), mixed).unwrap();
    std::fs::write(dir.path().join("empty.json"), "").unwrap();
    let o = vigil(&["scan", "--output", "json", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["events"], 3);
    assert_eq!(v["totals"]["errors"], 2);
    assert_eq!(v["totals"]["files_failed"], 1);
    let errors = v["errors"].as_array().unwrap();
    assert!(errors
        .iter()
        .any(|e| e["file"].as_str().unwrap().ends_with("empty.json")
            && e["message"] == "the file is empty"));
    let bad = errors
        .iter()
        .find(|e| e["file"].as_str().unwrap().ends_with("mixed.json"))
        .unwrap();
    assert_eq!(
        (bad["record"].as_u64(), bad["line"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON: expected value"),
        "{bad}"
    );

    let o = vigil(&["scan", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert!(out.contains("mixed.json: record 2, line 2, byte "), "{out}");
    assert!(out.contains("completed with errors"), "{out}");
}

#[test]
fn fatal_and_usage_errors_have_their_own_codes() {
    let o = vigil(&["scan", "/nonexistent/vigil-test-path"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("/nonexistent/vigil-test-path: no such file or directory"));
    let o = vigil(&["scan", "--flow-format", "version bogus-field", "."]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown flow log field \"bogus-field\""));
    let o = vigil(&["scan", "--format", "parquet", "."]);
    assert_eq!(o.status.code(), Some(2));
    let o = vigil(&["scan"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn events_output_writes_every_event() {
    let file = sample("vpcflow/v5.log");
    let o = vigil(&[
        "scan",
        "--output",
        "events",
        "--flow-format",
        "v5",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["source"], "vpcflow");
    assert_eq!(events[0]["network"]["pkt_dst_aws_service"], "CLOUDFRONT");
    // The summary goes to stderr so stdout stays pure JSON lines.
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 records, 1 events, 0 errors"));
}

#[test]
fn forced_format_on_the_wrong_kind_of_file() {
    let file = sample("guardduty/findings.jsonl");
    let o = vigil(&["scan", "--format", "vpcflow", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).contains("the file is JSON, but --format vpcflow reads flow-log text"),
        "{}",
        stdout(&o)
    );
}

/// The findings of `vigil scan --output json --no-builtin --rules RULES INPUT`,
/// which must exit 0.
fn findings_of_rules(rules: &std::path::Path, input: &std::path::Path) -> Vec<serde_json::Value> {
    let o = vigil(&[
        "scan",
        "--output",
        "json",
        "--no-builtin",
        "--rules",
        rules.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["findings"].as_array().unwrap().clone()
}

/// A rule of our own on flow-log deletion, as a user would write one.
const FLOW_LOGS_DELETED: &str = "title: Flow logs deleted
id: 6c1f2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b
status: test
level: high
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventSource: ec2.amazonaws.com
    eventName: DeleteFlowLogs
  condition: sel
";

#[test]
fn rules_validate_and_scan_with_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("flow.yml"), FLOW_LOGS_DELETED).unwrap();
    let o = vigil(&["rules", "validate", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("1 rules, 0 correlations and 0 native detectors loaded")
            && stdout(&o).contains("0 unsupported, 0 invalid"),
        "{}",
        stdout(&o)
    );

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("bad.yml"), "title: Bad\nid: x1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventName|sounds_like: Delete\n  condition: sel\n").unwrap();
    let o = vigil(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("Bad (x1): unsupported: selection `sel`: field `eventName|sounds_like`: modifier `sounds_like`"), "{}", stdout(&o));

    let d = findings_of_rules(&rules, &sample("cloudtrail"));
    assert_eq!(d.len(), 1, "{d:?}");
    let flow = &d[0]["detail"];
    assert_eq!(flow["rule"]["title"], "Flow logs deleted");
    assert_eq!(flow["severity"], "HIGH");
    assert_eq!(flow["count"], 1);
    assert_eq!(flow["detection_source"], "CloudTrail");
    assert_eq!(flow["event_ids"][0], "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c05");
    assert_eq!(flow["evidence"]["source_ip"], "192.0.2.10");
}

/// Conformance: the community's 57 SigmaHQ AWS rules load with nothing
/// unsupported and find the flow-log deletion in Elastic's sample.
#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn sigmahq_rules_validate_and_scan() {
    let data = vigil_testkit::conformance_data();
    let rules = data.join("sigma-aws");
    let o = vigil(&["rules", "validate", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("57 rules, 0 correlations and 0 native detectors loaded")
            && stdout(&o).contains("0 unsupported, 0 invalid"),
        "{}",
        stdout(&o)
    );
    let d = findings_of_rules(&rules, &data.join("elastic-aws/cloudtrail"));
    let flow = d
        .iter()
        .find(|f| f["detail"]["rule"]["title"] == "AWS VPC Flow Logs Deleted")
        .unwrap();
    assert_eq!(flow["detail"]["severity"], "HIGH");
    assert_eq!(
        flow["detail"]["event_ids"][0],
        "b9203069-9e9f-4521-9d18-91247d5b00c1"
    );
    // The document streams findings as they close (memory stays flat); the table
    // is the view ordered by severity.
    assert!(d.iter().all(|f| f["detail"]["severity"].is_string()));
}

#[test]
fn correlation_rules_in_scan() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("failed.yml"),
        "title: Failed console sign-in\nid: 2b7e9c40-5a1d-4f3e-9c8b-7a6d5e4f3c21\nlevel: low\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel:\n    eventSource: signin.amazonaws.com\n    eventName: ConsoleLogin\n    errorMessage: Failed authentication\n  condition: sel\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("burst.yml"),
        "title: Burst of failed console logins\nlevel: high\ncorrelation:\n  type: event_count\n  rules: [2b7e9c40-5a1d-4f3e-9c8b-7a6d5e4f3c21]\n  group-by: [sourceIPAddress]\n  timespan: 10m\n  condition: {gte: 2}\n",
    )
    .unwrap();
    let d = findings_of_rules(&rules, &sample("cloudtrail/console-login.jsonl"));
    // The base rule only feeds the correlation (no `generate`), so one finding.
    assert_eq!(d.len(), 1, "{d:?}");
    let f = &d[0]["detail"];
    assert_eq!(f["title"], "Burst of failed console logins");
    assert_eq!(f["rule"]["kind"], "correlation");
    assert_eq!(f["principal"], "203.0.113.77");
    assert_eq!(f["count"], 2);
    assert_eq!(f["evidence"]["group"]["sourceIPAddress"], "203.0.113.77");
    let o = vigil(&["rules", "validate", rules.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("1 rules, 1 correlations and 0 native detectors loaded"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn sigma_filters_tune_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.yml"), FLOW_LOGS_DELETED).unwrap();
    let samples = sample("cloudtrail/records.json");
    let run = || findings_of_rules(dir.path(), &samples).len();
    assert_eq!(run(), 1);
    std::fs::write(
        dir.path().join("mf_contractor.yml"),
        "title: The network contractor\nlogsource: {product: aws, service: cloudtrail}\nfilter:\n  rules: [6c1f2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b]\n  selection:\n    userIdentity.arn: arn:aws:sts::111122223333:federated-user/contractor\n  condition: selection\n",
    )
    .unwrap();
    assert_eq!(run(), 0, "the filter suppresses the match");
}
