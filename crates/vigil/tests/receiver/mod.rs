//! A local HTTP receiver standing in for Slack, PagerDuty, Jira, Splunk HEC and
//! webhook endpoints: it records every request and answers as the vendor
//! documents (a `ts` for a Slack post, 202 for an Events v2 event, an issue key
//! for a Jira create, an `ackId` for HEC), unless a test scripted other answers
//! for a path (a 500, a 429 with `Retry-After`, a 400).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Req {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Req>,
    /// Path → answers to give, in order, before the default ones.
    scripts: HashMap<String, VecDeque<Answer>>,
    /// Path → answer to give every time (until cleared).
    always: HashMap<String, Answer>,
    slack_ts: u64,
    hec_ack: u64,
    jira: Vec<(String, Vec<String>)>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct Receiver {
    pub addr: SocketAddr,
    inner: Shared,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let inner: Shared = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        rt.spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Receiver {
            addr,
            inner,
            _rt: rt,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `path`'s next requests with `answers`, in order.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Answers every request to `path` with `answer` (None: back to normal).
    pub fn always(&self, path: &str, answer: Option<Answer>) {
        let mut i = self.inner.lock().unwrap();
        match answer {
            Some(a) => i.always.insert(path.to_owned(), a),
            None => i.always.remove(path),
        };
    }

    /// Every request so far to paths starting with `prefix`.
    pub fn requests(&self, prefix: &str) -> Vec<Req> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let mut i = inner.lock().unwrap();
    i.requests.push(req.clone());
    let scripted = i
        .scripts
        .get_mut(&req.path)
        .and_then(VecDeque::pop_front)
        .or_else(|| i.always.get(&req.path).cloned());
    if let Some(a) = scripted {
        let mut r = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
        for (k, v) in a.headers {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return r;
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let p = req.path.as_str();
    if p.ends_with("/chat.postMessage") {
        i.slack_ts += 1;
        return axum::Json(json!({"ok": true, "channel": "C0VIGIL", "ts": format!("1700000000.{:06}", i.slack_ts)})).into_response();
    }
    if p.ends_with("/chat.update") {
        return axum::Json(json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}))
            .into_response();
    }
    if p.ends_with("/v2/enqueue") {
        return (StatusCode::ACCEPTED, axum::Json(json!({"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}))).into_response();
    }
    if p == "/rest/api/3/issue" && req.method == "POST" {
        let n = i.jira.len() + 1;
        let key = format!("SEC-{n}");
        let labels = body["fields"]["labels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        i.jira.push((key.clone(), labels));
        return (
            StatusCode::CREATED,
            axum::Json(
                json!({"id": format!("{}", 10000 + n), "key": key, "self": "http://jira/issue"}),
            ),
        )
            .into_response();
    }
    if p == "/rest/api/3/search/jql" {
        let q = percent_decode(&req.query);
        let found: Vec<Value> = i
            .jira
            .iter()
            .filter(|(_, labels)| {
                labels
                    .iter()
                    .any(|l| l.starts_with("vigil-") && q.contains(&format!("\"{l}\"")))
            })
            .map(|(k, _)| json!({"key": k}))
            .collect();
        return axum::Json(json!({"issues": found})).into_response();
    }
    if p.starts_with("/rest/api/3/issue/") && p.ends_with("/comment") {
        return (StatusCode::CREATED, axum::Json(json!({"id": "1"}))).into_response();
    }
    if p.starts_with("/rest/api/3/issue/") && p.ends_with("/transitions") {
        if req.method == "GET" {
            return axum::Json(json!({"transitions": [
                {"id": "21", "name": "In Progress", "to": {"name": "In Progress"}},
                {"id": "31", "name": "Done", "to": {"name": "Done"}}
            ]}))
            .into_response();
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    if p == "/services/collector/event" {
        i.hec_ack += 1;
        return axum::Json(json!({"text": "Success", "code": 0, "ackId": i.hec_ack}))
            .into_response();
    }
    if p == "/services/collector/ack" {
        let acks: serde_json::Map<String, Value> = body["acks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a.to_string(), Value::Bool(true)))
            .collect();
        return axum::Json(json!({"acks": acks})).into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}
