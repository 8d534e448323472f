//! What reaches the dashboard: any method, path, query, cookie, CSRF token and
//! body, sent through the service's whole router (pages, sign-in, the API's
//! handlers under `/ui`, the event stream) over a store with a finding and an
//! incident. Never a panic and never a 500; a forged session or token is
//! refused, never let through.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Setup {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    /// A signed-in responder's cookie and CSRF token, which inputs may use
    /// by writing `$S` and `$C`.
    cookie: String,
    csrf: String,
}

const KEY: &str = "AKIAFUZZRESPONDER01";
const SECRET: &str = "fuzz-responder-secret-0000000000000001";

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // On disk: the API reads through connections of its own beside the
        // writer's, which an in-memory database would not share.
        let dir = std::env::temp_dir().join(format!("vigil-fuzz-dashboard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = vigil_store::Store::open(&dir, Default::default()).unwrap();
        let finding: vigil_model::Finding = serde_json::from_value(serde_json::json!({
            "version": "1.0", "id": "fuzz-1", "detail-type": "Security Finding",
            "source": "com.security.platform", "account": "123456789012",
            "time": "2026-12-06T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "finding_id": "sec-2026-12-06-001", "severity": "HIGH", "confidence": 80,
                "title": "t", "description": "d", "category": "PolicyViolation",
                "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
                "first_seen": "2026-12-06T00:00:00Z", "last_seen": "2026-12-06T00:00:00Z",
                "remediation": {"playbook": "PB-003", "automated": false, "status": "PENDING"},
                "evidence": {"source_ip": null, "user_agent": null, "api_call": null, "aws_region": null},
                "count": 1, "rule": {"id": "r", "title": "r", "kind": "sigma"},
                "mitre_attack": {"tactics": [], "techniques": []},
                "principal": "p", "event_ids": []
            }
        }))
        .unwrap();
        store
            .record_findings(&[finding], vigil_server::now())
            .unwrap();
        let config = vigil_server::ApiConfig {
            keys: vec![vigil_server::AccessKey {
                access_key_id: KEY.into(),
                secret_access_key: SECRET.into(),
                principal: "rob".into(),
                role: vigil_server::Role::Responder,
            }],
            ..Default::default()
        };
        let app = vigil_server::AppState::new(
            &config,
            vigil_store::SharedStore::new(store),
            None,
        )
        .unwrap();
        let router = vigil_server::router(Arc::new(app));
        let (cookie, csrf) = rt.block_on(sign_in(&router));
        Setup {
            rt,
            router,
            cookie,
            csrf,
        }
    })
}

async fn send(
    router: &axum::Router,
    req: http::Request<axum::body::Body>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    // The event stream never ends: only its head is read.
    let body = if r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        Vec::new()
    } else {
        axum::body::to_bytes(r.into_body(), 4 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default()
    };
    (status, headers, body)
}

async fn sign_in(router: &axum::Router) -> (String, String) {
    let post = |path: &str, body: String| {
        http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let (_, _, nonce) = send(router, post("/ui/nonce", String::new())).await;
    let nonce: serde_json::Value = serde_json::from_slice(&nonce).unwrap();
    let nonce = nonce["nonce"].as_str().unwrap().to_owned();
    let proof = vigil_server::web::session::proof(SECRET, &nonce, KEY);
    let body = serde_json::json!({"access_key_id": KEY, "nonce": nonce, "proof": proof});
    let (status, headers, _) = send(router, post("/ui/login", body.to_string())).await;
    assert_eq!(status, 200);
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .and_then(|(_, v)| v.split(';').next())
        .unwrap()
        .to_owned();
    let page = http::Request::get("/")
        .header("cookie", &cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    let (_, _, page) = send(router, page).await;
    let page = String::from_utf8(page).unwrap();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    // Line 1: METHOD PATH[?QUERY]; line 2: the cookie; line 3: the CSRF
    // token; the rest: the body.
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Ok(first), Ok(cookie), Ok(csrf)) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
    ) else {
        return;
    };
    let body = parts.next().unwrap_or_default().to_vec();
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let forged_session = !cookie.contains("$S");
    let forged_token = !csrf.contains("$C");
    let cookie = cookie.replace("$S", s.cookie.trim_start_matches("vigil_session="));
    let csrf = csrf.replace("$C", &s.csrf);
    let Ok(req) = http::Request::builder()
        .method(method)
        .uri(target)
        .header("cookie", format!("vigil_session={cookie}"))
        .header("x-csrf-token", csrf)
        .body(axum::body::Body::from(body))
    else {
        return;
    };
    let is_get = req.method() == http::Method::GET || req.method() == http::Method::HEAD;
    let path = req.uri().path().to_owned();
    let under_session = path == "/"
        || [
            "/incidents",
            "/findings",
            "/compliance",
            "/accounts",
            "/playbooks",
            "/rules",
        ]
        .iter()
        .any(|p| path.starts_with(p))
        || (path.starts_with("/ui/")
            && !["/ui/nonce", "/ui/login", "/ui/logout"].contains(&path.as_str()));
    let (status, _, _) = s.rt.block_on(send(&s.router, req));
    assert!(
        status < 500 || status == 503,
        "{status} for {method} {target}"
    );
    if under_session && status < 300 {
        assert!(!forged_session, "a forged session got {status} on {path}");
        assert!(
            is_get || !forged_token,
            "a forged CSRF token got {status} on {method} {path}"
        );
    }
});
