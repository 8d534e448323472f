//! Any text as a playbook file: the parser never panics, and a playbook it accepts
//! plans against a finding without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = vigil_respond::Playbook::parse(text, "fuzz.yaml") {
        assert!(!p.id.is_empty());
        let finding: vigil_detect::Finding = serde_json::from_value(serde_json::json!({
            "version": "1.0", "id": "f", "detail-type": "Security Finding", "source": "fuzz",
            "account": "111122223333", "time": "2026-11-28T00:00:00Z", "region": "eu-west-1", "resources": [],
            "detail": {"finding_id": "sec-1", "severity": "HIGH", "confidence": 50, "title": "t", "description": "d",
                "category": "UnauthorizedAccess", "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
                "first_seen": "2026-11-28T00:00:00Z", "last_seen": "2026-11-28T00:00:00Z",
                "remediation": {"playbook": null, "automated": false, "status": "PENDING"},
                "evidence": {"source_ip": "203.0.113.9", "user_agent": "x", "api_call": "x", "aws_region": "eu-west-1"},
                "count": 1, "rule": {"id": "r", "title": "r", "kind": "sigma"},
                "mitre_attack": {"tactics": [], "techniques": []}, "principal": "arn:aws:iam::111122223333:user/u", "event_ids": []}
        }))
        .expect("a valid finding");
        let ctx = vigil_respond::Context::new(&finding, None, "fuzz");
        let _ = vigil_respond::plan(&p, &ctx, None);
    }
});
