//! Shared by the tests of vigil-respond and vigil-aws (which include this file by
//! path): a finding in the platform schema (docs/findings.md), new each call, with parts merged over it.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};
use vigil_model::Finding;
use vigil_model::Timestamp;

pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(ms)
}

static FINDINGS: AtomicUsize = AtomicUsize::new(0);

/// A finding of `account` in `region` that maps to `playbook`, detected now, with
/// `v` merged over it. Each has its own id, finding id and rule.
pub fn finding(account: &str, region: &str, playbook: &str, v: Value) -> Finding {
    let n = FINDINGS.fetch_add(1, Ordering::Relaxed) + 1;
    let t = now().to_string();
    let mut base = json!({
        "version": "1.0", "id": format!("3f0b2c1e-0000-5000-8000-{n:012}"),
        "detail-type": "Security Finding", "source": "com.security.platform",
        "account": account, "time": t, "region": region, "resources": [],
        "detail": {
            "finding_id": format!("sec-test-{n:04}"), "severity": "HIGH", "confidence": 80,
            "title": "t", "description": "d", "category": "UnauthorizedAccess",
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": t, "last_seen": t,
            "remediation": {"playbook": playbook, "automated": true, "status": "PENDING"},
            "evidence": {"source_ip": "203.0.113.9", "user_agent": "x", "api_call": "ListUsers", "aws_region": region},
            "count": 1, "rule": {"id": format!("rule-{n}"), "title": "r", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": null, "event_ids": ["e1"]
        }
    });
    merge(&mut base, v);
    serde_json::from_value(base).expect("a valid finding")
}

/// `b` merged into `a`, objects key by key.
pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}
