//! The 57 SigmaHQ AWS rules load with no unsupported feature, are indexed, and fire
//! on the public samples that show the activity they describe.

use std::path::{Path, PathBuf};

use vigil_detect::sigma::{load_path, CompileOptions, Loaded};
use vigil_detect::{RuleSet, Scratch};
use vigil_ingest::{DecodeOptions, Item};

fn shared() -> PathBuf {
    std::env::var("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn sigma_aws() -> RuleSet {
    let mut loaded = Loaded::default();
    load_path(
        &shared().join("sigma-aws"),
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
        &shared().join("elastic-aws").join(rel),
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
fn all_57_rules_load_and_most_are_indexed() {
    let set = sigma_aws();
    assert_eq!(set.len(), 57);
    let (indexed, always) = set.index_stats();
    // Rules that constrain eventName are only tried on those events.
    assert!(indexed >= 50, "{indexed} indexed, {always} always tried");
}

#[test]
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
fn typed_fast_path_agrees_with_json() {
    // The SigmaHQ rules and the built-in ones (flow rules, long literal lists) over
    // every sample: the typed path must give what reading the JSON gives.
    let mut loaded = Loaded::default();
    load_path(
        &shared().join("sigma-aws"),
        &CompileOptions::default(),
        &mut loaded,
    );
    vigil_detect::detector::load_builtin(&mut loaded);
    assert!(loaded.issues.is_empty());
    let (set, _) = RuleSet::new(loaded.rules);
    let mut files = Vec::new();
    let roots = [
        shared().join("elastic-aws"),
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
fn records_read_member_by_member_as_the_full_parse_has_them() {
    // Every CloudTrail record of the samples: each member, read through the walk
    // rules use, is the full parse's.
    use serde_json::Value;
    use vigil_detect::sigma::value::Members;
    let mut files = Vec::new();
    for r in [
        shared().join("elastic-aws"),
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
