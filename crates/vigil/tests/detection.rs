//! Detection as a user meets it: the built-in rules and their test cases, findings in
//! the platform schema on real samples, dedup, and baselines that persist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{sample, stdout, vigil};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-ingest/tests/fixtures/elastic/cloudtrail")
}

/// Findings of `vigil scan --output jsonl` over `paths` (plus `extra` flags).
fn findings(paths: &[&Path], extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<String> = vec!["scan".into(), "--output".into(), "jsonl".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = vigil(&args);
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one finding"))
        .collect()
}

fn titles(fs: &[Value]) -> BTreeSet<String> {
    fs.iter()
        .map(|f| f["detail"]["rule"]["title"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn builtin_rules_validate_clean() {
    let o = vigil(&["rules", "validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("0 unsupported, 0 invalid"),
        "{}",
        stdout(&o)
    );
    let o = vigil(&["rules", "list"]);
    let list = stdout(&o);
    // Every category has rules.
    for c in [
        "UnauthorizedAccess",
        "Cryptojacking",
        "PolicyViolation",
        "NetworkAttack",
        "DataExfiltration",
    ] {
        assert!(
            list.lines().filter(|l| l.contains(c)).count() >= 4,
            "{c}\n{list}"
        );
    }
    // Rules that only feed correlations raise no finding: no category or playbook.
    let feeders: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with("(feeds a correlation)"))
        .collect();
    assert_eq!(feeders.len(), 19, "{list}");
    assert!(feeders.iter().all(|l| l.starts_with("- ")), "{list}");
}

#[test]
fn coverage_maps_detections_to_attack_as_a_table_and_a_navigator_layer() {
    let o = vigil(&["rules", "coverage"]);
    assert_eq!(o.status.code(), Some(0));
    let table = stdout(&o);
    // Tactics in matrix order, each technique with the detections behind it.
    let persistence = table.find("persistence ").unwrap();
    let exfiltration = table.find("exfiltration ").unwrap();
    assert!(persistence < exfiltration, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("T1098.001") && l.contains("vigil_access_key_for_other_user")),
        "{table}"
    );
    let o = vigil(&["rules", "coverage", "--format", "navigator"]);
    let layer: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(layer["domain"], "enterprise-attack");
    assert_eq!(layer["versions"]["layer"], "4.5");
    let techniques = layer["techniques"].as_array().unwrap();
    assert!(techniques.len() >= 50, "{}", techniques.len());
    let t = techniques
        .iter()
        .find(|t| t["techniqueID"] == "T1562.008")
        .unwrap();
    assert!(t["score"].as_u64().unwrap() >= 5, "{t}");
    assert!(t["comment"]
        .as_str()
        .unwrap()
        .contains("vigil_cloudtrail_tampering"));
    let o = vigil(&["rules", "coverage", "--format", "yaml"]);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn every_builtin_rule_has_passing_match_and_near_miss_cases() {
    let o = vigil(&["rules", "test", "--require-coverage"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(" 0 failed; 0 coverage gaps"), "{out}");
    let cases = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(cases >= 100, "{cases} cases\n{out}");
}

#[test]
fn rules_test_reports_a_failing_user_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("my.yml"),
        "title: Deletes a bucket\nid: my-rule\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: DeleteBucket}\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("my.tests.yml"),
        "rule: my-rule\ncases:\n  - name: wrongly expects CreateBucket to match\n    expect: match\n    events:\n      - {eventVersion: '1.08', eventTime: '2024-05-01T10:00:00Z', eventSource: s3.amazonaws.com, eventName: CreateBucket, awsRegion: us-east-1, eventID: e1, userIdentity: {type: IAMUser}}\n  - name: DeleteBucket matches\n    expect: match\n    events:\n      - {eventVersion: '1.08', eventTime: '2024-05-01T10:00:00Z', eventSource: s3.amazonaws.com, eventName: DeleteBucket, awsRegion: us-east-1, eventID: e2, userIdentity: {type: IAMUser}}\n",
    )
    .unwrap();
    let o = vigil(&["rules", "test", dir.path().to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("FAIL my-rule :: wrongly expects CreateBucket to match"),
        "{out}"
    );
    assert!(
        out.contains("ok   my-rule :: DeleteBucket matches"),
        "{out}"
    );
    assert!(out.contains("2 cases: 1 passed, 1 failed"), "{out}");
}

#[test]
fn own_samples_raise_the_expected_findings() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "cloudtrail/console-login.jsonl",
            &["Console sign-in from a program instead of a browser"],
        ),
        (
            "cloudtrail/records.json",
            &[
                "Administrator policy attached to a user, role or group",
                "IAM policy attached, detached, written or deleted",
                "Root account used",
                "Security group opened to the internet on an administration port",
                "Security group rules changed",
                "VPC flow logs deleted",
            ],
        ),
        // Near misses: an Insights event, a refused detector deletion (in
        // records.json), one rejected SSH probe among ordinary flows.
        ("cloudtrail/insight.json", &[]),
        ("vpcflow/v2-header.log", &[]),
        (
            "guardduty/findings.jsonl",
            &[
                "GuardDuty cryptocurrency mining activity",
                "GuardDuty unauthorized access or credential abuse",
            ],
        ),
        // The GuardDuty finding imported into Security Hub is GuardDuty's to
        // report, not raised twice.
        (
            "securityhub/batch.json",
            &["Security Hub control failed with high or critical severity"],
        ),
    ];
    for (rel, expected) in cases {
        let fs = findings(&[&sample(rel)], &[]);
        let got = titles(&fs);
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{rel}");
    }
    let fs = findings(&[&sample("cloudtrail/records.json")], &[]);
    let root = fs
        .iter()
        .find(|f| f["detail"]["rule"]["title"] == "Root account used")
        .unwrap();
    assert_eq!(root["detail"]["remediation"]["playbook"], "PB-006");
    assert_eq!(
        root["detail"]["evidence"]["api_call"],
        "AuthorizeSecurityGroupIngress"
    );
    assert_eq!(root["detail"]["evidence"]["source_ip"], "203.0.113.77");
    assert_eq!(root["account"], "111122223333");
    assert_eq!(root["region"], "eu-west-1");
}

/// Conformance: Elastic's real-shaped samples raise what they show.
#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn real_samples_raise_the_expected_findings() {
    let ct = vigil_testkit::conformance_data().join("elastic-aws/cloudtrail");
    let cases: [(PathBuf, &[&str]); 7] = [
        (
            ct.join("test-delete-detector-json.log"),
            &["GuardDuty detector deleted or disabled"],
        ),
        (
            ct.join("test-console-login-json.log"),
            &["Console sign-in without MFA"],
        ),
        (
            fixtures().join("test-update-trail-json.log"),
            &["CloudTrail logging stopped, deleted or changed"],
        ),
        (
            fixtures().join("test-schedule-key-deletion-json.log"),
            &["KMS key scheduled for deletion"],
        ),
        (
            fixtures().join("test-stop-configuration-recorder.log"),
            &["AWS Config recorder stopped or deleted"],
        ),
        // Near misses among real records: SSH opened to one /24 (recorded as a
        // low-severity change, CIS 4.10, but no exposure), and a snapshot's public
        // permission removed.
        (
            ct.join("test-authorize-security-group-ingress-json.log"),
            &["Security group rules changed"],
        ),
        (
            fixtures().join("test-modify-snapshot-attribute-json.log"),
            &[],
        ),
    ];
    for (path, expected) in cases {
        let fs = findings(&[&path], &[]);
        let got = titles(&fs);
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{}", path.display());
    }
    let f = &findings(&[&ct.join("test-delete-detector-json.log")], &[])[0];
    assert_eq!(f["detail"]["remediation"]["playbook"], "PB-010");
    assert_eq!(f["detail"]["remediation"]["automated"], true);
    assert_eq!(f["detail"]["resource_type"], "AWS::GuardDuty::Detector");
    assert!(f["detail"]["resource_arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:guardduty:us-east-1:"));
    assert_eq!(f["detail"]["evidence"]["api_call"], "DeleteDetector");
    assert_eq!(f["detail"]["mitre_attack"]["techniques"][0], "T1562.001");
}

#[test]
fn guardduty_findings_keep_their_severity_and_title() {
    let fs = findings(&[&sample("guardduty")], &[]);
    assert!(!fs.is_empty());
    for f in &fs {
        let d = &f["detail"];
        assert_eq!(d["detection_source"], "GuardDuty");
        let score = d["evidence"]["source_severity"].as_f64().unwrap();
        let want = match score {
            s if s >= 9.0 => "CRITICAL",
            s if s >= 7.0 => "HIGH",
            s if s >= 4.0 => "MEDIUM",
            s if s >= 1.0 => "LOW",
            _ => "INFORMATIONAL",
        };
        assert_eq!(d["severity"], want, "{f}");
        assert_ne!(
            d["title"], d["rule"]["title"],
            "the finding's own title is kept"
        );
    }
}

/// Every finding from every sample of ours has exactly the schema's keys.
#[test]
fn findings_have_the_design_schema() {
    let mut fs = findings(&[&sample("")], &[]);
    fs.extend(findings(
        &[Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples")
            .as_path()],
        &[],
    ));
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert!(fs.len() >= 5, "{}", fs.len());
    for f in &fs {
        assert_eq!(
            keys(f),
            [
                "account",
                "detail",
                "detail-type",
                "id",
                "region",
                "resources",
                "source",
                "time",
                "version"
            ]
        );
        assert_eq!(f["version"], "1.0");
        assert_eq!(f["detail-type"], "Security Finding");
        assert_eq!(f["source"], "com.security.platform");
        assert_eq!(f["id"].as_str().unwrap().len(), 36);
        let d = &f["detail"];
        let dk = keys(d);
        for k in [
            "finding_id",
            "severity",
            "confidence",
            "title",
            "description",
            "category",
            "detection_source",
            "resource_type",
            "resource_arn",
            "first_seen",
            "last_seen",
            "remediation",
            "evidence",
        ] {
            assert!(dk.contains(&k.to_string()), "{k} missing in {d}");
        }
        assert_eq!(keys(&d["remediation"]), ["automated", "playbook", "status"]);
        for k in ["source_ip", "user_agent", "api_call", "aws_region"] {
            assert!(
                d["evidence"].get(k).is_some(),
                "evidence.{k} missing in {d}"
            );
        }
        assert!(["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
            .contains(&d["severity"].as_str().unwrap()));
        assert!([
            "UnauthorizedAccess",
            "Cryptojacking",
            "PolicyViolation",
            "NetworkAttack",
            "DataExfiltration"
        ]
        .contains(&d["category"].as_str().unwrap()));
        let fid = d["finding_id"].as_str().unwrap();
        assert!(fid.starts_with("sec-") && fid.len() >= 18, "{fid}");
        assert!(d["confidence"].as_u64().unwrap() <= 100);
        if let Some(p) = d["remediation"]["playbook"].as_str() {
            assert!(p.starts_with("PB-0") && p.len() == 6, "{p}");
        }
        assert!(d["first_seen"].as_str() <= d["last_seen"].as_str());
    }
}

fn root_event(time: &str, id: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.20","userAgent":"aws-cli/2.15.0","eventType":"AwsApiCall","recipientAccountId":"111122223333","eventID":"{id}","userIdentity":{{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}}}}"#
    )
}

#[test]
fn repeats_within_the_dedup_window_update_one_finding() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..5)
        .map(|i| root_event(&format!("2024-05-01T10:{:02}:00Z", i * 5), &format!("r{i}")))
        .collect();
    lines.push(root_event("2024-05-01T14:00:00Z", "r-later"));
    let file = dir.path().join("root.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let fs = findings(&[&file], &[]);
    assert_eq!(fs.len(), 2, "{fs:?}");
    let d0 = &fs[0]["detail"];
    assert_eq!(d0["count"], 5);
    assert_eq!(d0["first_seen"], "2024-05-01T10:00:00Z");
    assert_eq!(d0["last_seen"], "2024-05-01T10:20:00Z");
    assert_eq!(d0["event_ids"].as_array().unwrap().len(), 5);
    assert_eq!(fs[1]["detail"]["count"], 1);
    assert_eq!(fs[1]["detail"]["first_seen"], "2024-05-01T14:00:00Z");
    // A shorter window splits the burst.
    let fs = findings(&[&file], &["--dedup-window", "2m"]);
    assert_eq!(fs.len(), 6);
    // Ids are stable across runs (a re-delivered detection keeps its id).
    let a = findings(&[&file], &[]);
    let b = findings(&[&file], &[]);
    assert_eq!(a[0]["id"], b[0]["id"]);
    assert_ne!(a[0]["id"], a[1]["id"]);
}

fn key_event(time_ms: i64, ip: &str, id: &str) -> String {
    let t = vigil_model::Timestamp::from_millis(time_ms);
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{t}","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"{ip}","userAgent":"aws-cli/2.15.0","eventType":"AwsApiCall","recipientAccountId":"111122223333","eventID":"{id}","userIdentity":{{"type":"IAMUser","principalId":"AIDAALICE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","accessKeyId":"AKIAALICE00000000001","userName":"alice"}}}}"#
    )
}

#[test]
fn baselines_persist_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_714_550_400_000i64; // 2024-05-01T08:00:00Z
    let learn: Vec<String> = (0..15)
        .map(|i| {
            key_event(
                start + i * 8 * 3_600_000,
                &format!("198.51.100.{}", 10 + i),
                &format!("l{i}"),
            )
        })
        .collect();
    let later = start + 6 * 86_400_000;
    let file1 = dir.path().join("week1.jsonl");
    let file2 = dir.path().join("week2.jsonl");
    std::fs::write(&file1, learn.join("\n")).unwrap();
    std::fs::write(&file2, key_event(later, "203.0.113.50", "new-net")).unwrap();
    let state = dir.path().join("baseline.json");
    let s = state.to_str().unwrap();

    assert!(findings(&[&file1], &["--baseline", s]).is_empty());
    assert!(state.exists());
    let fs = findings(&[&file2], &["--baseline", s]);
    assert_eq!(fs.len(), 1, "{fs:?}");
    let d = &fs[0]["detail"];
    assert_eq!(d["rule"]["id"], "vigil-baseline-new-network-for-principal");
    assert_eq!(d["rule"]["kind"], "baseline");
    assert_eq!(d["principal"], "AKIAALICE00000000001");
    assert_eq!(d["evidence"]["network"], "203.0.113.0/24");
    assert_eq!(d["evidence"]["usual_networks"][0], "198.51.100.0/24");
    assert_eq!(d["remediation"]["playbook"], "PB-009");
    // Without the learned state, the key is new and nothing is judged.
    assert!(findings(&[&file2], &[]).is_empty());
    // The state file is checked, not trusted.
    std::fs::write(&state, "{\"version\": 7}").unwrap();
    let o = vigil(&["scan", "--baseline", s, file2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("baseline file version 7 is not 1"));
}

#[test]
fn asn_database_makes_baselines_compare_asns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ip2asn.tsv");
    std::fs::write(
        &db,
        "198.51.100.0\t198.51.100.255\t64500\tUS\tOFFICE-ISP\n203.0.113.0\t203.0.113.255\t64501\tRU\tELSEWHERE\n",
    )
    .unwrap();
    let start = 1_714_550_400_000i64;
    let mut lines: Vec<String> = (0..15)
        .map(|i| key_event(start + i * 8 * 3_600_000, "198.51.100.7", &format!("l{i}")))
        .collect();
    lines.push(key_event(start + 6 * 86_400_000, "203.0.113.50", "new"));
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let fs = findings(&[&file], &["--asn-db", db.to_str().unwrap()]);
    assert_eq!(fs.len(), 1, "{fs:?}");
    let d = &fs[0]["detail"];
    assert_eq!(d["evidence"]["network"], "AS64501");
    assert_eq!(d["evidence"]["country"], "RU");
    assert_eq!(d["evidence"]["new_country"], true);
    assert_eq!(d["severity"], "HIGH", "a new country raises the severity");
}

/// The finding ids, counts and rules of a scan, order-free.
fn digest(fs: &[Value]) -> BTreeSet<(String, String, u64)> {
    fs.iter()
        .map(|f| {
            let d = &f["detail"];
            (
                f["id"].as_str().unwrap().to_owned(),
                d["rule"]["id"].as_str().unwrap().to_owned(),
                d["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn parallel_scan_finds_what_one_worker_finds() {
    // Two accounts laid out as CloudTrail delivers them (one as an organization trail),
    // so each goes to its own worker; the first shares its account with the samples.
    let dir = tempfile::tempdir().unwrap();
    for (folder, ip) in [
        ("111122223333", "198.51.100"),
        ("o-a1b2c3d4e5/999988887777", "192.0.2"),
    ] {
        let acct = folder.rsplit('/').next().unwrap();
        let d = dir
            .path()
            .join(format!("AWSLogs/{folder}/CloudTrail/us-east-1"));
        std::fs::create_dir_all(&d).unwrap();
        let lines: Vec<String> = (0..12)
            .map(|i| {
                key_event(
                    1_714_550_400_000 + i * 8 * 3_600_000,
                    &format!("{ip}.{i}"),
                    &format!("{acct}-{i}"),
                )
                .replace("111122223333", acct)
            })
            .chain((0..3).map(|i| {
                root_event(
                    &format!("2024-05-01T10:0{i}:00Z"),
                    &format!("{acct}-root{i}"),
                )
                .replace("111122223333", acct)
            }))
            .collect();
        std::fs::write(d.join("a.jsonl"), lines.join("\n")).unwrap();
    }
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let paths = [dir.path(), samples.as_path()];
    let state1 = dir.path().join("b1.json");
    let state2 = dir.path().join("b2.json");
    let one = findings(
        &paths,
        &["--jobs", "1", "--baseline", state1.to_str().unwrap()],
    );
    let two = findings(
        &paths,
        &["--jobs", "2", "--baseline", state2.to_str().unwrap()],
    );
    assert!(one.len() > 10, "{}", one.len());
    let (d1, d2) = (digest(&one), digest(&two));
    assert!(
        d1 == d2,
        "only --jobs 1: {:?}\nonly --jobs 2: {:?}",
        d1.difference(&d2).collect::<Vec<_>>(),
        d2.difference(&d1).collect::<Vec<_>>()
    );
    // Both workers' baselines end up in the saved state.
    let b1: Value = serde_json::from_str(&std::fs::read_to_string(&state1).unwrap()).unwrap();
    let b2: Value = serde_json::from_str(&std::fs::read_to_string(&state2).unwrap()).unwrap();
    assert_eq!(b1, b2);
    let text = b2.to_string();
    assert!(
        text.contains("999988887777") && text.contains("111122223333"),
        "{text}"
    );
}
