//! The API over real HTTP on loopback, signed by the official `aws-sigv4` signer:
//! both signature forms, every way a signature can be wrong, roles, the incident
//! lifecycle, listings and the audit log.

mod serving;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use vigil_model::Finding;
use vigil_model::Timestamp;
use vigil_server::{AccessKey, ApiConfig, AppState, Ingest, IngestBatch, IngestReceipt, Role};
use vigil_store::{Grouping, SharedStore, Store};

use serving::Serving;
use support::{raw_call, signed, Key, Reply, Signing};

const ANALYST: Key = Key {
    id: "AKIAANALYST00000001",
    secret: "analyst-secret-key-0000000000000000000001",
};
const RESPONDER: Key = Key {
    id: "AKIARESPONDER000001",
    secret: "responder-secret-key-000000000000000001",
};
const ADMIN: Key = Key {
    id: "AKIAADMIN0000000001",
    secret: "admin-secret-key-0000000000000000000001",
};
const FORWARDER: Key = Key {
    id: "AKIAINGEST000000001",
    secret: "ingest-secret-key-000000000000000000001",
};
const FIREHOSE_KEY: &str = "firehose-access-key-0123456789";

/// Records what it is given and answers with a count, standing in for the
/// pipeline (which the binary's tests run for real).
#[derive(Default)]
struct Recorder(Mutex<Vec<IngestBatch>>);

impl Ingest for Recorder {
    fn submit(
        &self,
        batches: Vec<IngestBatch>,
    ) -> Result<IngestReceipt, vigil_server::IngestError> {
        let mut seen = self.0.lock().unwrap();
        let events = batches
            .iter()
            .map(|b| {
                b.body
                    .split(|&c| c == b'\n')
                    .filter(|l| !l.is_empty())
                    .count() as u64
            })
            .sum();
        seen.extend(batches);
        Ok(IngestReceipt {
            events,
            ..Default::default()
        })
    }
}

struct Server {
    addr: SocketAddr,
    _serving: Serving,
    writer: SharedStore,
    recorder: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Grouping::default()).unwrap();
        let writer = SharedStore::new(store);
        let key = |k: &Key, principal: &str, role| AccessKey {
            access_key_id: k.id.into(),
            secret_access_key: k.secret.into(),
            principal: principal.into(),
            role,
        };
        let config = ApiConfig {
            keys: vec![
                key(&ANALYST, "ana", Role::Analyst),
                key(&RESPONDER, "rob", Role::Responder),
                key(&ADMIN, "adm", Role::Admin),
                key(&FORWARDER, "fwd", Role::Ingest),
            ],
            firehose_access_keys: vec![FIREHOSE_KEY.into()],
            ..ApiConfig::default()
        };
        let recorder = Arc::new(Recorder::default());
        let app = Arc::new(
            AppState::new(
                &config,
                writer.clone(),
                Some(recorder.clone() as Arc<dyn Ingest>),
            )
            .unwrap(),
        );
        let serving = Serving::start(app);
        Server {
            addr: serving.addr,
            _serving: serving,
            writer,
            recorder,
            _dir: dir,
        }
    }

    fn seed(&self, findings: &[Finding]) {
        self.writer
            .lock()
            .record_findings(findings, vigil_server::now())
            .unwrap();
    }
}

fn call(srv: &Server, key: &Key, method: &str, path_query: &str, body: &[u8]) -> Reply {
    let (pq, headers) = signed(
        srv.addr,
        key,
        method,
        path_query,
        &[],
        body,
        &Signing::default(),
    );
    raw_call(srv.addr, method, &pq, &headers, body)
}

fn get(srv: &Server, key: &Key, path_query: &str) -> Reply {
    call(srv, key, "GET", path_query, b"")
}

/// A refusal: 403, the AWS error shape, and nothing else.
fn assert_refused(r: &Reply, code: &str, case: &str) {
    assert_eq!(r.status, 403, "{case}: {:?}", r.body);
    assert_eq!(r.body["__type"], code, "{case}: {:?}", r.body);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["__type", "message"], "{case}");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "x-amzn-errortype" && v == code),
        "{case}"
    );
}

fn finding(id: &str, category: &str, principal: &str, minutes_ago: i64, severity: &str) -> Finding {
    let t = Timestamp::from_millis(vigil_server::now().as_millis() - minutes_ago * 60_000);
    serde_json::from_value(json!({
        "version": "1.0", "id": id, "detail-type": "Security Finding",
        "source": "com.security.platform", "account": "123456789012",
        "time": t.to_string(), "region": "us-east-1", "resources": [],
        "detail": {
            "finding_id": format!("sec-{id}"), "severity": severity, "confidence": 80,
            "title": "t", "description": "d", "category": category,
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": t.to_string(), "last_seen": t.to_string(),
            "remediation": {"playbook": null, "automated": false, "status": "PENDING"},
            "evidence": {"source_ip": null, "user_agent": null, "api_call": null, "aws_region": null},
            "count": 1, "rule": {"id": "r", "title": "r", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": principal, "event_ids": []
        }
    }))
    .unwrap()
}

#[test]
fn both_signature_forms_are_accepted() {
    let srv = Server::start();
    let r = get(&srv, &ANALYST, "/api/v1/metrics");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "compliance_score",
            "false_positive_rate",
            "incidents_last_24h",
            "mttd",
            "mttr"
        ]
    );
    assert_eq!(r.body["compliance_score"], Value::Null);

    let presigned = Signing {
        presign: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    let (pq, headers) = signed(
        srv.addr,
        &ANALYST,
        "GET",
        "/api/v1/health",
        &[],
        b"",
        &presigned,
    );
    assert!(pq.contains("X-Amz-Signature="));
    let r = raw_call(srv.addr, "GET", &pq, &headers, b"");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["principal"]["name"], "ana");

    // Query parameters (sorted and encoded by the signer) and a signed body.
    let r = get(
        &srv,
        &ANALYST,
        "/api/v1/findings?severity=HIGH,CRITICAL&limit=5",
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(
        &srv,
        &ADMIN,
        "POST",
        "/api/v1/ingest",
        b"{\"Records\":[]}\n",
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[test]
fn every_kind_of_bad_signature_is_refused_with_403_and_nothing_else() {
    let srv = Server::start();
    let a = srv.addr;
    let ok = Signing::default();
    let path = "/api/v1/metrics";

    let r = raw_call(a, "GET", path, &[], b"");
    assert_refused(&r, "MissingAuthenticationTokenException", "unsigned");

    let stranger = Key {
        id: "AKIASTRANGER0000001",
        secret: "whatever",
    };
    let (pq, h) = signed(a, &stranger, "GET", path, &[], b"", &ok);
    assert_refused(
        &raw_call(a, "GET", &pq, &h, b""),
        "UnrecognizedClientException",
        "unknown key",
    );

    let wrong_secret = Key {
        id: ANALYST.id,
        secret: "not-the-secret",
    };
    let (pq, h) = signed(a, &wrong_secret, "GET", path, &[], b"", &ok);
    assert_refused(
        &raw_call(a, "GET", &pq, &h, b""),
        "SignatureDoesNotMatch",
        "wrong secret",
    );

    // Signed for one path or query, sent with another.
    let (_, h) = signed(a, &ANALYST, "GET", path, &[], b"", &ok);
    assert_refused(
        &raw_call(a, "GET", "/api/v1/health", &h, b""),
        "SignatureDoesNotMatch",
        "other path",
    );
    let (_, h) = signed(
        a,
        &ANALYST,
        "GET",
        "/api/v1/findings?limit=5",
        &[],
        b"",
        &ok,
    );
    assert_refused(
        &raw_call(a, "GET", "/api/v1/findings?limit=6", &h, b""),
        "SignatureDoesNotMatch",
        "other query",
    );
    // Signed as GET, sent as POST.
    let (pq, h) = signed(a, &RESPONDER, "GET", "/api/v1/ingest", &[], b"", &ok);
    assert_refused(
        &raw_call(a, "POST", &pq, &h, b""),
        "SignatureDoesNotMatch",
        "other method",
    );
    // A body other than the one signed.
    let (pq, h) = signed(a, &ADMIN, "POST", "/api/v1/ingest", &[], b"{\"a\":1}", &ok);
    assert_refused(
        &raw_call(a, "POST", &pq, &h, b"{\"a\":2}"),
        "SignatureDoesNotMatch",
        "other body",
    );
    // A body that disagrees with the X-Amz-Content-Sha256 that was signed.
    let sha_of_a = "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862";
    let (pq, h) = signed(
        a,
        &ADMIN,
        "POST",
        "/api/v1/ingest",
        &[("x-amz-content-sha256", sha_of_a)],
        b"{\"a\":1}",
        &ok,
    );
    assert_refused(
        &raw_call(a, "POST", &pq, &h, b"{\"a\":9}"),
        "XAmzContentSHA256Mismatch",
        "payload hash",
    );
    // A signed header changed on the way.
    let (pq, mut h) = signed(
        a,
        &ANALYST,
        "GET",
        path,
        &[("x-vigil-trace", "1")],
        b"",
        &ok,
    );
    for (k, v) in h.iter_mut() {
        if k == "x-vigil-trace" {
            *v = "2".into();
        }
    }
    assert_refused(
        &raw_call(a, "GET", &pq, &h, b""),
        "SignatureDoesNotMatch",
        "changed header",
    );

    // Signed with other settings than the server takes.
    let refused_with = |s: Signing, code: &str, case: &str| {
        let (pq, h) = signed(a, &ANALYST, "GET", path, &[], b"", &s);
        assert_refused(&raw_call(a, "GET", &pq, &h, b""), code, case);
    };
    let at = |shift: i64| {
        let d = Duration::from_secs(shift.unsigned_abs());
        if shift < 0 {
            SystemTime::now() - d
        } else {
            SystemTime::now() + d
        }
    };
    let stale = "InvalidSignatureException";
    // Out of the ±5 minute window, either way: a replay, or a clock far ahead.
    for (case, shift) in [("replayed", -360), ("from the future", 360)] {
        refused_with(
            Signing {
                time: at(shift),
                ..ok.clone()
            },
            stale,
            case,
        );
    }
    // A presigned URL past its expiry.
    let expired = Signing {
        time: at(-120),
        presign: Some(Duration::from_secs(60)),
        ..ok.clone()
    };
    refused_with(expired, stale, "expired presign");
    // The wrong scope: another region, another service.
    refused_with(
        Signing {
            region: "eu-west-1",
            ..ok.clone()
        },
        stale,
        "region",
    );
    refused_with(
        Signing {
            service: "s3",
            ..ok.clone()
        },
        stale,
        "service",
    );
    // Inside the window is fine.
    let (pq, h) = signed(
        a,
        &ANALYST,
        "GET",
        path,
        &[],
        b"",
        &Signing {
            time: at(-200),
            ..ok.clone()
        },
    );
    assert_eq!(raw_call(a, "GET", &pq, &h, b"").status, 200);

    // A presigned URL with its signature altered.
    let fresh = Signing {
        presign: Some(Duration::from_secs(60)),
        ..ok.clone()
    };
    let (pq, h) = signed(a, &ANALYST, "GET", path, &[], b"", &fresh);
    let at = pq.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &pq[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &pq[..at], &pq[at + 1..]);
    assert_refused(
        &raw_call(a, "GET", &tampered, &h, b""),
        "SignatureDoesNotMatch",
        "tampered presign",
    );

    // Malformed Authorization headers.
    let (pq, h) = signed(a, &ANALYST, "GET", path, &[], b"", &ok);
    let mangle = |f: &dyn Fn(&str) -> String| -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("authorization") {
                    (k.clone(), f(v))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };
    type Mangle<'a> = &'a dyn Fn(&str) -> String;
    let cases: [(&str, Mangle); 4] = [
        ("other algorithm", &|v| {
            v.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")
        }),
        ("no signature", &|v| {
            v.split(", Signature=").next().unwrap().to_owned()
        }),
        ("short signature", &|v| v[..v.len() - 2].to_owned()),
        ("host unsigned", &|v| {
            v.replace("SignedHeaders=host;", "SignedHeaders=")
        }),
    ];
    for (case, f) in cases {
        let r = raw_call(a, "GET", &pq, &mangle(f), b"");
        assert_eq!(r.status, 403, "{case}");
        assert!(
            ["IncompleteSignatureException", "SignatureDoesNotMatch"]
                .contains(&r.body["__type"].as_str().unwrap()),
            "{case}: {:?}",
            r.body
        );
    }
    // Nothing was let through on the way: an unsigned unknown route is refused too.
    assert_refused(
        &raw_call(a, "GET", "/nowhere", &[], b""),
        "MissingAuthenticationTokenException",
        "unknown route",
    );
}

#[test]
fn roles_decide_who_reads_acts_and_audits_and_every_act_is_audited() {
    let srv = Server::start();
    srv.seed(&[finding("f1", "UnauthorizedAccess", "alice", 5, "HIGH")]);
    let incidents = get(&srv, &ANALYST, "/api/v1/incidents");
    assert_eq!(incidents.status, 200);
    let id = incidents.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // An analyst reads but cannot resolve.
    let r = call(
        &srv,
        &ANALYST,
        "POST",
        &format!("/api/v1/incidents/{id}/resolve"),
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.body["__type"], "AccessDeniedException");
    assert_eq!(
        get(&srv, &ANALYST, &format!("/api/v1/incidents/{id}")).body["status"],
        "OPEN"
    );
    // A forwarder may send telemetry but not read.
    assert_eq!(get(&srv, &FORWARDER, "/api/v1/findings").status, 403);
    assert_eq!(
        call(&srv, &FORWARDER, "POST", "/api/v1/ingest", b"{}\n").status,
        200
    );
    assert_eq!(
        call(&srv, &ANALYST, "POST", "/api/v1/ingest", b"{}\n").status,
        403
    );
    // A responder acts.
    let r = call(
        &srv,
        &RESPONDER,
        "POST",
        &format!("/api/v1/incidents/{id}/acknowledge"),
        br#"{"note":"on it"}"#,
    );
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("ACKNOWLEDGED")),
        "{:?}",
        r.body
    );
    let r = call(
        &srv,
        &RESPONDER,
        "POST",
        &format!("/api/v1/incidents/{id}/assign"),
        br#"{"assignee":"rob"}"#,
    );
    assert_eq!(r.body["assignee"], "rob");
    let r = call(
        &srv,
        &RESPONDER,
        "POST",
        &format!("/api/v1/incidents/{id}/notes"),
        br#"{"text":"key rotated"}"#,
    );
    assert_eq!(r.status, 200);
    let r = call(
        &srv,
        &RESPONDER,
        "POST",
        &format!("/api/v1/incidents/{id}/resolve"),
        b"",
    );
    assert_eq!(r.body["status"], "RESOLVED");
    // Closed stays closed: 409.
    let r = call(
        &srv,
        &RESPONDER,
        "POST",
        &format!("/api/v1/incidents/{id}/acknowledge"),
        b"",
    );
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (409, Some("ConflictException"))
    );
    // Unknown incident: 404; bad body: 400.
    assert_eq!(
        call(
            &srv,
            &RESPONDER,
            "POST",
            "/api/v1/incidents/nope/resolve",
            b""
        )
        .status,
        404
    );
    assert_eq!(
        call(
            &srv,
            &RESPONDER,
            "POST",
            &format!("/api/v1/incidents/{id}/notes"),
            b"{\"txt\":1}"
        )
        .status,
        400
    );

    let view = get(&srv, &ANALYST, &format!("/api/v1/incidents/{id}")).body;
    let kinds: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["finding", "status", "assign", "note", "status"]);
    assert_eq!(view["timeline"][3]["actor"], "rob");

    // Only an admin reads the audit log; it holds every mutating call, refused ones too.
    assert_eq!(get(&srv, &RESPONDER, "/api/v1/audit").status, 403);
    let log = get(&srv, &ADMIN, "/api/v1/audit").body;
    let rows: Vec<(String, String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["principal"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |p: &str, a: &str, o: &str| {
        rows.iter()
            .any(|r| r.0.starts_with(p) && r.1 == a && r.2.starts_with(o))
    };
    assert!(has("ana", "incident resolved", "403"), "{rows:?}");
    assert!(has("rob", "incident acknowledged", "200"), "{rows:?}");
    assert!(has("rob", "incident acknowledged", "409"), "{rows:?}");
    assert!(has("rob", "incident resolved", "200"), "{rows:?}");
    assert!(has("fwd", "ingest", "200"), "{rows:?}");
    assert!(has("ana", "ingest", "403"), "{rows:?}");

    // The KPIs follow: one incident in 24 h, resolved, no false positives.
    let m = get(&srv, &ANALYST, "/api/v1/metrics").body;
    assert_eq!(m["incidents_last_24h"], 1);
    assert_eq!(m["false_positive_rate"], 0.0);
    assert!(m["mttr"].is_string() && m["mttd"].is_string(), "{m:?}");
}

#[test]
fn findings_page_and_filter_over_http() {
    let srv = Server::start();
    let mut fs = Vec::new();
    for i in 0..12 {
        let sev = if i < 4 { "CRITICAL" } else { "LOW" };
        fs.push(finding(
            &format!("f{i:02}"),
            "NetworkAttack",
            &format!("10.0.0.{i}"),
            30 - i,
            sev,
        ));
    }
    srv.seed(&fs);
    let mut seen = Vec::new();
    let mut pq = "/api/v1/findings?limit=5".to_owned();
    for _ in 0..10 {
        let r = get(&srv, &ANALYST, &pq);
        assert_eq!(r.status, 200, "{:?}", r.body);
        for f in r.body["items"].as_array().unwrap() {
            seen.push(f["id"].as_str().unwrap().to_owned());
            assert_eq!(f["detail-type"], "Security Finding");
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => pq = format!("/api/v1/findings?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12);
    let crit = get(
        &srv,
        &ANALYST,
        "/api/v1/findings?severity=critical&category=NetworkAttack",
    );
    assert_eq!(crit.body["items"].as_array().unwrap().len(), 4);
    let one = get(&srv, &ANALYST, "/api/v1/findings/f03");
    assert_eq!(one.body["detail"]["severity"], "CRITICAL");
    assert_eq!(get(&srv, &ANALYST, "/api/v1/findings/nope").status, 404);
    for bad in [
        "severity=SEVERE",
        "limit=0",
        "since=yesterday",
        "colour=red",
        "cursor=x",
    ] {
        let r = get(&srv, &ANALYST, &format!("/api/v1/findings?{bad}"));
        assert_eq!(
            (r.status, r.body["__type"].as_str()),
            (400, Some("ValidationException")),
            "{bad}: {:?}",
            r.body
        );
    }
    let threats = get(&srv, &ANALYST, "/api/v1/metrics/threats").body;
    assert!(threats["categories"].is_array(), "{threats:?}");
    let net = threats["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "NetworkAttack")
        .unwrap()
        .clone();
    assert_eq!(net["detections"], 12);
}

#[test]
fn the_firehose_endpoint_speaks_firehose() {
    use base64::Engine;
    let srv = Server::start();
    let record = br#"{"eventVersion":"1.08","eventName":"ListUsers"}"#;
    let body = json!({
        "requestId": "req-7", "timestamp": 1_700_000_000_000i64,
        "records": [{"data": base64::engine::general_purpose::STANDARD.encode(record)}]
    })
    .to_string();
    let h = |key: &str| {
        vec![
            ("x-amz-firehose-request-id".to_owned(), "req-7".to_owned()),
            ("x-amz-firehose-access-key".to_owned(), key.to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ]
    };
    let r = raw_call(
        srv.addr,
        "POST",
        "/api/v1/firehose",
        &h("wrong-key-wrong-key"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.body["requestId"], "req-7");
    assert!(r.body["errorMessage"].is_string());
    let r = raw_call(
        srv.addr,
        "POST",
        "/api/v1/firehose",
        &h(FIREHOSE_KEY),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["requestId"], "req-7");
    assert!(r.body["timestamp"].is_i64());
    assert!(r.body.get("errorMessage").is_none());
    let got = srv.recorder.0.lock().unwrap();
    assert_eq!(got.last().unwrap().body, [&record[..], b"\n"].concat());
    drop(got);
    let r = raw_call(
        srv.addr,
        "POST",
        "/api/v1/firehose",
        &h(FIREHOSE_KEY),
        b"not json",
    );
    assert_eq!(r.status, 400);
    assert!(r.body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("not a Firehose request"));
}

#[test]
fn every_documented_route_is_served_and_the_document_is_the_checked_in_one() {
    let srv = Server::start();
    let doc: Value = serde_json::from_str(vigil_server::OPENAPI).unwrap();
    let served = get(&srv, &ANALYST, "/api/v1/openapi.json");
    assert_eq!(served.body, doc);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path.replace("{id}", "no-such-id");
            let r = call(&srv, &ADMIN, &method.to_uppercase(), &concrete, b"{}");
            let unrouted = r.status == 404 && r.body["message"] == "no such route";
            assert!(!unrouted, "{method} {path} is documented but not served");
            // No server error but a documented one (503: response is off here).
            let documented = op["responses"].get(r.status.to_string()).is_some();
            assert!(
                r.status < 500 || (r.status == 503 && documented),
                "{method} {path}: {}",
                r.status
            );
        }
    }
    // And an undocumented route is not served.
    let r = get(&srv, &ADMIN, "/api/v1/nowhere");
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("no such route"))
    );
}
