//! The dashboard's sign-in and sessions over real HTTP on loopback: the
//! security headers, a sign-in that proves the secret without sending it, the
//! session cookie's flags, CSRF on every mutation, roles, sign-out, and the
//! audit entries. (The pages in a real browser are the end-to-end tests'.)

mod serving;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use vigil_server::web::session::proof;
use vigil_server::{AccessKey, ApiConfig, AppState, Role};
use vigil_store::{Grouping, SharedStore, Store};

use serving::Serving;

const ANA: (&str, &str) = (
    "AKIAANALYST00000001",
    "analyst-secret-key-0000000000000000000001",
);
const ROB: (&str, &str) = (
    "AKIARESPONDER000001",
    "responder-secret-key-000000000000000001",
);
const FWD: (&str, &str) = (
    "AKIAINGEST000000001",
    "ingest-secret-key-000000000000000000001",
);

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on its own connection.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (status, headers, body) =
        support::raw_exchange(addr, method, path, &headers, body.as_bytes());
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

struct Server {
    addr: SocketAddr,
    writer: SharedStore,
    _serving: Serving,
    _dir: tempfile::TempDir,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let writer = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let key = |k: (&str, &str), principal: &str, role| AccessKey {
        access_key_id: k.0.into(),
        secret_access_key: k.1.into(),
        principal: principal.into(),
        role,
    };
    let config = ApiConfig {
        keys: vec![
            key(ANA, "ana", Role::Analyst),
            key(ROB, "rob", Role::Responder),
            key(FWD, "fwd", Role::Ingest),
        ],
        ..ApiConfig::default()
    };
    let app = Arc::new(AppState::new(&config, writer.clone(), None).unwrap());
    let serving = Serving::start(app);
    Server {
        addr: serving.addr,
        writer,
        _serving: serving,
        _dir: dir,
    }
}

/// Signs in as `key` proving `secret`; the answer.
fn sign_in(srv: &Server, key: &str, secret: &str) -> Answer {
    let nonce = http(srv.addr, "POST", "/ui/nonce", &[], "").json()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"access_key_id": key, "nonce": nonce, "proof": proof(secret, &nonce, key)})
        .to_string();
    http(
        srv.addr,
        "POST",
        "/ui/login",
        &[("content-type", "application/json")],
        &body,
    )
}

/// The session cookie and CSRF token of a successful sign-in.
fn session(srv: &Server, k: (&str, &str)) -> (String, String) {
    let a = sign_in(srv, k.0, k.1);
    assert_eq!(a.status, 200, "{}", a.body);
    let cookie = a
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http(srv.addr, "GET", "/", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[test]
fn pages_carry_a_strict_policy_and_no_inline_script() {
    let srv = start();
    let a = http(srv.addr, "GET", "/login", &[], "");
    assert_eq!(a.status, 200);
    let csp = a.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    // Every script is a file of this origin.
    for tag in a.body.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("src=\"/assets/"),
            "inline script: {tag}"
        );
    }
    assert!(
        !a.body.contains(" style=") && !a.body.contains("<style"),
        "inline style"
    );
    assert!(a.body.contains("<label for=\"access-key\">"));
    // The assets are embedded.
    let js = http(srv.addr, "GET", "/assets/login.js", &[], "");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.body.contains("crypto.subtle"));
    assert_eq!(
        http(srv.addr, "GET", "/assets/nope.js", &[], "").status,
        404
    );
    // Without a session the overview sends to the sign-in; /ui answers 401.
    let r = http(srv.addr, "GET", "/", &[], "");
    assert!(r.status == 303 || r.status == 307, "{}", r.status);
    assert_eq!(r.header("location"), Some("/login"));
    assert_eq!(
        http(srv.addr, "GET", "/ui/api/v1/metrics", &[], "").status,
        401
    );
}

#[test]
fn a_sign_in_proves_the_secret_and_the_session_keeps_the_api_rules() {
    let srv = start();
    // A wrong secret, an unknown key, a reused nonce, an ingest key: refused.
    assert_eq!(sign_in(&srv, ANA.0, "not-the-secret").status, 403);
    assert_eq!(sign_in(&srv, "AKIAUNKNOWN00000000", ANA.1).status, 403);
    assert_eq!(sign_in(&srv, FWD.0, FWD.1).status, 403);
    let nonce = http(srv.addr, "POST", "/ui/nonce", &[], "").json()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let body =
        json!({"access_key_id": ANA.0, "nonce": nonce, "proof": proof(ANA.1, &nonce, ANA.0)})
            .to_string();
    let ct = [("content-type", "application/json")];
    assert_eq!(http(srv.addr, "POST", "/ui/login", &ct, &body).status, 200);
    assert_eq!(
        http(srv.addr, "POST", "/ui/login", &ct, &body).status,
        403,
        "a nonce works once"
    );

    // The cookie: HttpOnly, SameSite=Strict, an expiry; not Secure without TLS.
    let ok = sign_in(&srv, ANA.0, ANA.1);
    let set = ok.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");

    // An incident to act on.
    let f: vigil_model::Finding = serde_json::from_value(json!({
        "version": "1.0", "id": "f-web-1", "detail-type": "Security Finding",
        "source": "com.security.platform", "account": "111122223333",
        "time": "2026-12-01T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"finding_id": "sec-2026-12-01-001", "severity": "HIGH", "confidence": 90,
            "title": "Root used", "description": "d", "category": "UnauthorizedAccess",
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": "2026-12-01T10:00:00Z", "last_seen": "2026-12-01T10:00:00Z",
            "remediation": {"playbook": null, "automated": false, "status": "PENDING"},
            "evidence": {"source_ip": null, "user_agent": null, "api_call": null, "aws_region": null},
            "count": 1, "rule": {"id": "r", "title": "r", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []}, "principal": "root", "event_ids": []}
    }))
    .unwrap();
    srv.writer
        .lock()
        .record_findings(&[f], vigil_server::now())
        .unwrap();
    let (ana_cookie, ana_csrf) = session(&srv, ANA);
    let (rob_cookie, rob_csrf) = session(&srv, ROB);
    let incidents = http(
        srv.addr,
        "GET",
        "/ui/api/v1/incidents",
        &[("cookie", &ana_cookie)],
        "",
    )
    .json();
    let id = incidents["items"][0]["id"].as_str().unwrap().to_owned();
    let ack = format!("/ui/api/v1/incidents/{id}/acknowledge");
    // The overview shows it.
    let page = http(srv.addr, "GET", "/", &[("cookie", &ana_cookie)], "");
    assert!(page.body.contains("Open incidents (1)"), "{}", page.body);

    // An analyst's session may read but not act, CSRF token or not.
    let r = http(
        srv.addr,
        "POST",
        &ack,
        &[("cookie", &ana_cookie), ("x-csrf-token", &ana_csrf)],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A responder's mutation without the CSRF token, or with another
    // session's, is refused; with its own it goes through.
    let r = http(srv.addr, "POST", &ack, &[("cookie", &rob_cookie)], "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http(
        srv.addr,
        "POST",
        &ack,
        &[("cookie", &rob_cookie), ("x-csrf-token", &ana_csrf)],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http(
        srv.addr,
        "POST",
        &ack,
        &[("cookie", &rob_cookie), ("x-csrf-token", &rob_csrf)],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ACKNOWLEDGED");

    // Sign-out ends the session.
    let out = http(
        srv.addr,
        "POST",
        "/ui/logout",
        &[("cookie", &rob_cookie), ("x-csrf-token", &rob_csrf)],
        "",
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        http(
            srv.addr,
            "GET",
            "/ui/api/v1/metrics",
            &[("cookie", &rob_cookie)],
            ""
        )
        .status,
        401
    );

    // Every sign-in and action is on the audit chain, as the API's are.
    let log = srv.writer.lock().audit_log(0, 1000).unwrap();
    let has = |who: &str, action: &str, outcome: &str| {
        log.iter().any(|e| {
            e.principal.starts_with(who)
                && e.action.starts_with(action)
                && e.outcome.starts_with(outcome)
        })
    };
    assert!(has("ana", "ui login", "403 wrong secret"), "{log:?}");
    assert!(has("ana", "ui login", "200"));
    assert!(has("rob", "ui refused", "403"));
    assert!(has("rob", "incident acknowledged", "200"), "{log:?}");
    assert!(has("ana", "incident acknowledged", "403"));
    assert!(has("rob", "ui logout", "200"));
    assert!(srv.writer.lock().verify_audit().unwrap().broken.is_none());
}

fn finding(id: &str, category: &str) -> vigil_model::Finding {
    let t = vigil_server::now().to_string();
    serde_json::from_value(json!({
        "version": "1.0", "id": id, "detail-type": "Security Finding",
        "source": "com.security.platform", "account": "123456789012",
        "time": t, "region": "us-east-1", "resources": [],
        "detail": {
            "finding_id": format!("sec-{id}"), "severity": "HIGH", "confidence": 80,
            "title": format!("finding {id}"), "description": "d", "category": category,
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": t, "last_seen": t,
            "remediation": {"playbook": "PB-003", "automated": false, "status": "PENDING"},
            "evidence": {"source_ip": null, "user_agent": null, "api_call": null, "aws_region": null},
            "count": 1, "rule": {"id": "r-1", "title": "r", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": format!("arn:aws:iam::123456789012:user/{id}"), "event_ids": []
        }
    }))
    .unwrap()
}

/// A GET in the session of `cookie`.
fn get_as(srv: &Server, cookie: &str, path: &str) -> Answer {
    http(srv.addr, "GET", path, &[("cookie", cookie)], "")
}

/// A server whose rules page lists `rules`.
fn start_with_rules(rules: Vec<vigil_server::web::RuleCard>) -> Server {
    start_with(rules, ApiConfig::default())
}

/// A server with the responder's key and `config`'s other settings.
fn start_with(rules: Vec<vigil_server::web::RuleCard>, config: ApiConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let writer = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let config = ApiConfig {
        keys: vec![AccessKey {
            access_key_id: ROB.0.into(),
            secret_access_key: ROB.1.into(),
            principal: "rob".into(),
            role: Role::Responder,
        }],
        ..config
    };
    let app = Arc::new(
        AppState::new(&config, writer.clone(), None)
            .unwrap()
            .with_rules(rules),
    );
    let serving = Serving::start(app);
    Server {
        addr: serving.addr,
        writer,
        _serving: serving,
        _dir: dir,
    }
}

#[test]
fn the_catalogue_pages_list_rules_with_their_cases_playbooks_and_accounts() {
    let card = vigil_server::web::RuleCard {
        key: "r-1".into(),
        name: Some("vigil_bucket_opened".into()),
        title: "Bucket opened <script>alert(1)</script>".into(),
        description: "A bucket's public access block was removed.".into(),
        kind: "sigma".into(),
        severity: vigil_model::Severity::High,
        confidence: 85,
        category: "PolicyViolation".into(),
        playbook: Some("PB-003".into()),
        tactics: vec!["defense-evasion".into()],
        techniques: vec!["T1530".into()],
        falsepositives: vec!["public websites".into()],
        origin: "builtin:storage/x.yml".into(),
        silent: false,
        cases: vec![vigil_server::web::RuleCase {
            name: "near miss".into(),
            expect_match: false,
            input: r#"{"eventName":"PutBucketPublicAccessBlock"}"#.into(),
        }],
    };
    let srv = start_with_rules(vec![card]);
    srv.writer
        .lock()
        .record_findings(&[finding("cat-1", "PolicyViolation")], vigil_server::now())
        .unwrap();
    let (cookie, _) = session(&srv, ROB);
    let get = |path: &str| get_as(&srv, &cookie, path);

    let rules = get("/rules?q=bucket&tactic=defense-evasion");
    assert_eq!(rules.status, 200);
    assert!(rules.body.contains("href=\"/rules/r-1\""), "{}", rules.body);
    assert!(rules.body.contains("&lt;script&gt;"), "titles are escaped");
    assert!(!rules.body.contains("<script>alert"));
    assert!(!get("/rules?q=nothing-like-it")
        .body
        .contains("href=\"/rules/r-1\""));
    let rule = get("/rules/vigil_bucket_opened");
    assert_eq!(rule.status, 200);
    for part in [
        "T1530",
        "defense-evasion",
        "must not match",
        "PutBucketPublicAccessBlock",
        "public websites",
        "href=\"/playbooks/PB-003\"",
    ] {
        assert!(rule.body.contains(part), "{part}: {}", rule.body);
    }
    assert_eq!(get("/rules/no-such-rule").status, 404);

    let playbooks = get("/playbooks");
    assert!(playbooks.body.contains("href=\"/playbooks/PB-015\""));
    assert!(playbooks.body.contains("Response is off"));
    let pb = get("/playbooks/PB-003");
    assert!(pb.body.contains("s3.block_bucket_public_access"));
    assert!(
        pb.body.contains("href=\"/rules/r-1\""),
        "the rules naming it"
    );
    assert_eq!(get("/playbooks/PB-999").status, 404);

    // An account findings came from, not registered, is listed with its posture.
    let accounts = get("/accounts");
    assert!(accounts.body.contains("123456789012"), "{}", accounts.body);
    assert!(accounts.body.contains("not registered"));

    // The overview's five tiles each carry a chart named for a screen reader.
    let overview = get("/");
    assert_eq!(overview.body.matches("<svg role=\"img\"").count(), 5);
    assert!(
        overview
            .body
            .contains("href=\"/incidents?account=123456789012\""),
        "open incidents by account link to the account's incidents"
    );
    assert!(!overview.body.contains(" style="), "no inline style");
}

#[test]
fn incidents_filter_by_assignee() {
    let srv = start();
    srv.writer
        .lock()
        .record_findings(
            &[
                finding("as-1", "PolicyViolation"),
                finding("as-2", "Cryptojacking"),
            ],
            vigil_server::now(),
        )
        .unwrap();
    let (cookie, csrf) = session(&srv, ROB);
    let list = get_as(&srv, &cookie, "/ui/api/v1/incidents").json();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let r = http(
        srv.addr,
        "POST",
        &format!("/ui/api/v1/incidents/{id}/assign"),
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("content-type", "application/json"),
        ],
        r#"{"assignee":"rob"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mine = get_as(&srv, &cookie, "/ui/api/v1/incidents?assignee=rob").json();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["id"], id.as_str());
    let page = get_as(&srv, &cookie, "/incidents?assignee=rob");
    assert_eq!(page.body.matches("href=\"/incidents/").count(), 1);
    let none = get_as(&srv, &cookie, "/incidents?assignee=someone-else");
    assert!(none.body.contains("No incident matches."));
}

/// Reads `stream` until `needle` has arrived (or fails after its timeout).
fn read_until(stream: &mut std::net::TcpStream, seen: &mut String, needle: &str) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}; got {seen}"));
        assert!(n > 0, "the stream ended before {needle:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn the_event_stream_tells_an_open_page_of_changes_and_ends_with_its_session() {
    use std::io::{Read, Write};
    let srv = start();
    assert_eq!(http(srv.addr, "GET", "/ui/events", &[], "").status, 401);
    let (cookie, csrf) = session(&srv, ROB);
    let mut stream = std::net::TcpStream::connect(srv.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /ui/events HTTP/1.1\r\nhost: {}\r\ncookie: {cookie}\r\naccept: text/event-stream\r\nconnection: close\r\n\r\n",
        srv.addr
    )
    .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");

    // A new finding (and the incident it opens) is told.
    srv.writer
        .lock()
        .record_findings(&[finding("live-1", "PolicyViolation")], vigil_server::now())
        .unwrap();
    read_until(&mut stream, &mut seen, "event: change");
    read_until(&mut stream, &mut seen, "}\n");
    let data = seen
        .split("event: change")
        .nth(1)
        .and_then(|r| r.split("data: ").nth(1))
        .and_then(|r| r.split('\n').next())
        .unwrap();
    let change: Value = serde_json::from_str(data).unwrap();
    assert_eq!(change["findings"], 1, "{data}");
    assert_eq!(change["incidents"], true, "{data}");

    // A repeat of the finding (no new finding, no timeline entry) is told too.
    let mut again = finding("live-1", "PolicyViolation");
    again.detail.count = 2;
    seen.clear();
    srv.writer
        .lock()
        .record_findings(&[again], vigil_server::now())
        .unwrap();
    read_until(&mut stream, &mut seen, "event: change");
    read_until(&mut stream, &mut seen, "}\n");
    assert!(seen.contains(r#""findings":0"#), "{seen}");
    assert!(seen.contains(r#""incidents":true"#), "{seen}");

    // Signing out ends the stream, saying so.
    let out = http(
        srv.addr,
        "POST",
        "/ui/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        "",
    );
    assert_eq!(out.status, 204);
    read_until(&mut stream, &mut seen, "event: signed-out");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        seen.ends_with("0\r\n\r\n") || rest.ends_with("0\r\n\r\n") || rest.is_empty(),
        "the chunked body ends: {rest:?}"
    );
}

#[test]
fn an_expired_session_is_signed_out_of_pages_the_api_and_the_stream() {
    let srv = start_with(
        Vec::new(),
        ApiConfig {
            session_ttl: vigil_model::Span::from_secs(2),
            ..ApiConfig::default()
        },
    );
    let a = sign_in(&srv, ROB.0, ROB.1);
    assert!(
        a.header("set-cookie").unwrap().contains("Max-Age=2"),
        "the cookie expires with the session"
    );
    let (cookie, _) = session(&srv, ROB);
    assert_eq!(get_as(&srv, &cookie, "/ui/api/v1/metrics").status, 200);
    let mut stream = std::net::TcpStream::connect(srv.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!(
            "GET /ui/events HTTP/1.1\r\nhost: {}\r\ncookie: {cookie}\r\nconnection: close\r\n\r\n",
            srv.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: signed-out");
    let page = get_as(&srv, &cookie, "/incidents");
    assert!(page.status == 303 || page.status == 307, "{}", page.status);
    assert_eq!(page.header("location"), Some("/login"));
    assert_eq!(get_as(&srv, &cookie, "/ui/api/v1/metrics").status, 401);
}
