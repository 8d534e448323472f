//! Every built-in detection passes the cases kept beside it, has both a case that must
//! match and a near miss, and carries what an analyst needs to act on a finding:
//! ATT&CK tactic and technique, a rationale for its severity and confidence, and
//! false-positive notes.

use std::path::Path;

use vigil_detect::testcases::{self, Case, RuleTexts, TestFile};
use vigil_detect::DetectorConfig;

fn builtin_tests() -> Vec<TestFile> {
    let mut files = Vec::new();
    for (name, text) in vigil_detect::builtin::TESTS {
        files.append(&mut testcases::parse(text, Path::new(name)).unwrap());
    }
    files
}

fn decode(c: &Case) -> Result<Vec<vigil_model::Event>, String> {
    vigil_ingest::decode_document(&c.input, c.source.as_deref(), c.flow_format.as_deref())
}

#[test]
fn every_builtin_case_passes() {
    let rules = RuleTexts {
        files: Vec::new(),
        builtin: true,
    };
    let files = builtin_tests();
    let results = testcases::run(&rules, &files, &decode);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} :: {} — {}", r.rule, r.case, r.message))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let (det, issues) = rules.detector(&DetectorConfig::default());
    assert!(issues.is_empty(), "{issues:?}");
    let gaps = testcases::coverage_gaps(&det, &files);
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
}

#[test]
fn every_builtin_detection_is_documented() {
    let rules = RuleTexts {
        files: Vec::new(),
        builtin: true,
    };
    let (det, _) = rules.detector(&DetectorConfig::default());
    let mut missing = Vec::new();
    for e in det.entries() {
        if e.silent {
            continue;
        }
        let i = e.info;
        let name = i.name.as_deref().unwrap_or(&i.key);
        if i.mitre.techniques.is_empty() {
            missing.push(format!("{name}: no ATT&CK technique tag"));
        }
        if i.mitre.tactics.is_empty() {
            missing.push(format!("{name}: no ATT&CK tactic tag"));
        }
        if i.rationale.as_deref().is_none_or(|r| r.trim().is_empty()) {
            missing.push(format!("{name}: no vigil.rationale"));
        }
        if i.falsepositives.is_empty() {
            missing.push(format!("{name}: no falsepositives"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
