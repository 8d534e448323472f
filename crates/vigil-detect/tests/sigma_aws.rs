//! Conformance: the 57 SigmaHQ AWS rules load with no unsupported feature, are indexed, and fire
//! on the public samples that show the activity they describe.

use std::path::Path;

use vigil_detect::sigma::{load_path, CompileOptions, Loaded};
use vigil_detect::{RuleSet, Scratch};
use vigil_ingest::{DecodeOptions, Item};

use vigil_testkit::conformance_data;

fn sigma_aws() -> RuleSet {
    let mut loaded = Loaded::default();
    load_path(
        &conformance_data().join("sigma-aws"),
        &CompileOptions::default(),
        &mut loaded,
    );
    assert!(
        loaded.issues.is_empty(),
        "{:#?}",
        loaded
            .issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
    );
    let (set, issues) = RuleSet::new(loaded.rules);
    assert!(issues.is_empty(), "{issues:?}");
    set
}

/// Titles of the rules that fire on each event of a shared sample file.
fn fired(set: &RuleSet, rel: &str) -> Vec<Vec<String>> {
    let d = vigil_ingest::open(
        &conformance_data().join("elastic-aws").join(rel),
        &DecodeOptions::default(),
    )
    .unwrap();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut per_event = Vec::new();
    for item in d {
        let Item::Event(e) = item else {
            panic!("decode error in {rel}")
        };
        out.clear();
        set.evaluate(&e, &mut scratch, &mut out);
        let mut titles: Vec<String> = out
            .iter()
            .map(|&i| set.rules()[i as usize].meta.title.clone())
            .collect();
        titles.sort();
        per_event.push(titles);
    }
    per_event
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn all_57_rules_load_and_most_are_indexed() {
    let set = sigma_aws();
    assert_eq!(set.len(), 57);
    let (indexed, always) = set.index_stats();
    // Rules that constrain eventName are only tried on those events.
    assert!(indexed >= 50, "{indexed} indexed, {always} always tried");
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn rules_fire_on_the_samples_that_show_them() {
    let set = sigma_aws();
    assert_eq!(
        fired(&set, "cloudtrail/test-delete-detector-json.log"),
        [vec!["AWS GuardDuty Detector Deleted Or Updated".to_string()]]
    );
    assert_eq!(
        fired(&set, "cloudtrail/test-delete-flow-log-json.log"),
        [vec!["AWS VPC Flow Logs Deleted".to_string()]]
    );
    let sg = fired(
        &set,
        "cloudtrail/test-authorize-security-group-ingress-json.log",
    );
    assert!(sg[0].iter().any(|t| t.contains("Security Group")), "{sg:?}");
    let logins = fired(&set, "cloudtrail/test-console-login-json.log");
    assert_eq!(logins[0], ["AWS Successful Console Login Without MFA"]);
    assert!(logins[1].iter().any(|t| t.contains("Failed")), "{logins:?}");
    // Samples of other sources never meet CloudTrail rules.
    assert!(fired(&set, "guardduty/test-guardduty.log")
        .iter()
        .all(Vec::is_empty));
}

/// The typed fast path (rules reading only fields the event model carries) gives the
/// same matches as reading the record's JSON, on every CloudTrail record we hold.
#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn typed_fast_path_agrees_with_json() {
    // The SigmaHQ rules and the built-in ones (flow rules, long literal lists) over
    // every sample: the typed path must give what reading the JSON gives.
    let mut loaded = Loaded::default();
    load_path(
        &conformance_data().join("sigma-aws"),
        &CompileOptions::default(),
        &mut loaded,
    );
    vigil_detect::detector::load_builtin(&mut loaded);
    assert!(loaded.issues.is_empty());
    let (set, _) = RuleSet::new(loaded.rules);
    let mut files = Vec::new();
    let roots = [
        conformance_data().join("elastic-aws"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-ingest/tests/fixtures/elastic"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples"),
    ];
    for r in &roots {
        vigil_ingest::walk(r, &mut |p| files.push(p), &mut |e| panic!("{e}"));
    }
    let (mut s1, mut s2) = (Scratch::default(), Scratch::default());
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    let (mut events, mut matches) = (0, 0);
    for f in files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with("-golden.json"))
    {
        let Ok(d) = vigil_ingest::open(f, &DecodeOptions::default()) else {
            continue;
        };
        for item in d {
            let Item::Event(e) = item else { continue };
            fast.clear();
            slow.clear();
            set.evaluate(&e, &mut s1, &mut fast);
            set.evaluate_on_json(&e, &mut s2, &mut slow);
            assert_eq!(fast, slow, "{} in {}", e.id, f.display());
            events += 1;
            matches += fast.len();
        }
    }
    assert!(
        events > 9000 && matches > 1000,
        "{events} events, {matches} matches"
    );
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn records_read_member_by_member_as_the_full_parse_has_them() {
    // Every CloudTrail record of the samples: each member, read through the walk
    // rules use, is the full parse's.
    use serde_json::Value;
    use vigil_detect::sigma::value::Members;
    let mut files = Vec::new();
    for r in [
        conformance_data().join("elastic-aws"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples"),
    ] {
        vigil_ingest::walk(&r, &mut |p| files.push(p), &mut |e| panic!("{e}"));
    }
    let (mut records, mut members) = (0, 0);
    for f in &files {
        let Ok(d) = vigil_ingest::open(f, &DecodeOptions::default()) else {
            continue;
        };
        for item in d {
            let Item::Event(e) = item else { continue };
            let vigil_model::Raw::Json(text) = &e.raw else {
                continue;
            };
            if e.source != vigil_model::SourceKind::CloudTrail {
                continue;
            }
            let Ok(Value::Object(full)) = serde_json::from_str::<Value>(text) else {
                panic!("{} is not an object", e.id)
            };
            let walked = vigil_detect::engine::JsonMembers::walk(text)
                .unwrap_or_else(|| panic!("{} not walked", e.id));
            for (k, v) in &full {
                assert_eq!(walked.member(k), Some(v), "{k} of {}", e.id);
                members += 1;
            }
            records += 1;
        }
    }
    assert!(
        records > 500 && members > 10_000,
        "{records} records, {members} members"
    );
}

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn rules_indexed_by_a_field_value_match_as_unindexed() {
    // Rules no event name narrows, pinned to values of other typed fields: tried
    // only on events with one of those values (folded as the matcher folds them),
    // with the same matches as trying every rule on the record's JSON.
    let rules = r#"
title: root
logsource: {product: aws, service: cloudtrail}
detection:
  s: {userIdentity.type: Root}
  condition: s
---
title: denied or agent
logsource: {product: aws, service: cloudtrail}
detection:
  a: {errorCode: [AccessDenied, AccessDenied]}
  b: {errorCode: UnauthorizedOperation, userAgent|contains: cli}
  condition: a or b
---
title: kelvin key
logsource: {product: aws, service: cloudtrail}
detection:
  s: {userAgent: key}
  condition: s
---
title: not pinned
logsource: {product: aws, service: cloudtrail}
detection:
  s: {userIdentity.type: Root}
  condition: not s
---
title: one name twice
logsource: {product: aws, service: cloudtrail}
detection:
  s: {eventName: [ListUsers, listusers]}
  condition: s
"#;
    let mut loaded = Loaded::default();
    vigil_detect::sigma::load_str(
        rules,
        Path::new("t.yml"),
        &CompileOptions::default(),
        &mut loaded,
    );
    assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
    let (set, _) = RuleSet::new(loaded.rules);
    assert_eq!(set.index_stats(), (4, 1));
    let record = |ty: &str, err: Option<&str>, ua: &str| {
        let err = err.map_or(String::new(), |e| format!(r#""errorCode":"{e}","#));
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-06-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9",{err}"userAgent":"{ua}","userIdentity":{{"type":"{ty}","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012"}},"eventID":"{ty}-{ua}","recipientAccountId":"123456789012"}}"#
        )
    };
    let records = [
        record("Root", None, "console"),
        record("ROOT", Some("AccessDenied"), "x"),
        record("IAMUser", Some("accessdenied"), "x"),
        record("IAMUser", Some("UnauthorizedOperation"), "aws-cli/2"),
        record("IAMUser", Some("UnauthorizedOperation"), "boto3"),
        // U+212A KELVIN SIGN lowercases to an ASCII `k`.
        record("AssumedRole", None, "\u{212A}EY"),
    ];
    let text = format!("{{\"Records\":[{}]}}", records.join(","));
    let d = vigil_ingest::open_reader(
        Path::new("t.json"),
        Box::new(std::io::Cursor::new(text.into_bytes())),
        &DecodeOptions::default(),
    )
    .unwrap();
    let (mut s1, mut s2) = (Scratch::default(), Scratch::default());
    let mut got = Vec::new();
    for item in d {
        let Item::Event(e) = item else {
            panic!("decode error")
        };
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        set.evaluate(&e, &mut s1, &mut fast);
        set.evaluate_on_json(&e, &mut s2, &mut slow);
        assert_eq!(fast, slow, "{}", e.id);
        got.push(fast);
    }
    // Every record is a ListUsers: rule 4 once each, though its name is listed twice.
    assert_eq!(
        got,
        [
            vec![0, 4],
            vec![0, 1, 4],
            vec![1, 3, 4],
            vec![1, 3, 4],
            vec![3, 4],
            vec![2, 3, 4]
        ]
    );
}
