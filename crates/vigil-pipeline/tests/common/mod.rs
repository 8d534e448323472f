//! Shared by the pipeline's tests: a record the built-in rules flag, and the
//! detect stage as `vigil serve` makes one over a store after a start.

#![allow(dead_code)]

use vigil_detect::testcases::RuleTexts;
use vigil_detect::{DetectorConfig, Findings};
use vigil_pipeline::seen::Seen;
use vigil_pipeline::Detect;
use vigil_store::SharedStore;

/// A CloudTrail record the built-in rules raise "Root account used" on.
pub fn root_login(id: &str, minute: u32) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2026-12-01T10:{minute:02}:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","userAgent":"Mozilla/5.0","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333","eventID":"{id}","responseElements":{{"ConsoleLogin":"Success"}},"additionalEventData":{{"MFAUsed":"No"}},"userIdentity":{{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}}}}"#
    )
}

/// The built-in rules, the findings still open taken back from `store`, the
/// record identities it remembers, and its last record-identity row.
pub fn detect_over(store: &SharedStore) -> Detect {
    let texts = RuleTexts {
        files: Vec::new(),
        builtin: true,
    };
    let (detector, _) = texts.detector(&DetectorConfig::default());
    let mut findings = Findings::new(3_600_000).tracking_changes();
    let mut seen = Seen::new(24 * 3_600_000, 1000);
    let s = store.lock();
    let after = s.last_records_seq().unwrap();
    for f in s.recent_findings(3_600_000).unwrap() {
        findings.reopen(f);
    }
    seen.restore(s.seen_records(0).unwrap());
    Detect::new(detector, findings)
        .with_seen(seen)
        .with_records_after(after)
}
