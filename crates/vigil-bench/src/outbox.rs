//! `vigil-bench outbox`: the outbox against local receivers that answer as the
//! vendors do.
//!
//! Throughput: for each HTTP destination kind (Slack, PagerDuty, Jira, Splunk
//! HEC, webhook) on its own, a fresh release `vigil serve` with that one output
//! (its rate limit lifted: the receiver is local) is sent `findings` console
//! sign-ins of as many users (each a new finding and incident), and timed from
//! the first post until no delivery is pending: deliveries/s and requests/s.
//! Latency: one serve with a Slack output at Slack's own pace (1 message a
//! second), one new finding at a time, spaced over a second apart, each timed
//! from its ingest being answered (the finding is stored then) to the Slack
//! receiver getting its `chat.postMessage`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use crate::api::{
    connect, console_login, exchange, now_ms, percentile, signed_request, start_with, Service,
};

pub struct Spec {
    pub dir: PathBuf,
    pub vigil: PathBuf,
    pub findings: u64,
    pub samples: u64,
}

/// What the receiver saw: requests per path, and when each Slack post came
/// (with its body, to tell which finding it is).
#[derive(Default)]
struct Seen {
    requests: HashMap<String, u64>,
    slack: Vec<(Instant, String)>,
    ts: u64,
    ack: u64,
}

type Shared = Arc<Mutex<Seen>>;

async fn answer(
    axum::extract::State(seen): axum::extract::State<Shared>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().to_owned();
    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
    *s.requests.entry(path.clone()).or_default() += 1;
    let p = path.as_str();
    if p.ends_with("/chat.postMessage") {
        s.slack
            .push((Instant::now(), String::from_utf8_lossy(&body).into_owned()));
        s.ts += 1;
        return axum::Json(
            json!({"ok": true, "channel": "C0BENCH", "ts": format!("1700000000.{:06}", s.ts)}),
        )
        .into_response();
    }
    if p.ends_with("/chat.update") {
        return axum::Json(json!({"ok": true})).into_response();
    }
    if p.ends_with("/v2/enqueue") {
        return (
            axum::http::StatusCode::ACCEPTED,
            axum::Json(json!({"status": "success"})),
        )
            .into_response();
    }
    if p == "/rest/api/3/issue" {
        s.ts += 1;
        return (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"id": "1", "key": format!("SEC-{}", s.ts)})),
        )
            .into_response();
    }
    if p.contains("/comment") {
        return (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"id": "1"})),
        )
            .into_response();
    }
    if p == "/services/collector/event" {
        let lines = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        *s.requests.entry("hec-events".into()).or_default() += lines;
        s.ack += 1;
        return axum::Json(json!({"text": "Success", "code": 0, "ackId": s.ack})).into_response();
    }
    (axum::http::StatusCode::OK, "ok").into_response()
}

struct Receiver {
    addr: std::net::SocketAddr,
    seen: Shared,
}

async fn receiver() -> Result<Receiver> {
    let seen: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&seen));
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Ok(Receiver { addr, seen })
}

/// The `[[outputs]]` table of `kind` pointed at the receiver.
fn output(kind: &str, addr: std::net::SocketAddr, rate: &str) -> String {
    let base = format!("http://{addr}");
    let own = match kind {
        "slack" => format!("token = \"${{BENCH_TOKEN}}\"\nchannel = \"C0BENCH\"\napi_url = \"{base}/api\""),
        "pagerduty" => format!("routing_key = \"${{BENCH_PD_KEY}}\"\nevents_url = \"{base}/v2/enqueue\""),
        "jira" => format!("base_url = \"{base}\"\nemail = \"bench@example.com\"\napi_token = \"${{BENCH_TOKEN}}\"\nproject = \"SEC\""),
        "splunk" => format!("url = \"{base}\"\ntoken = \"${{BENCH_TOKEN}}\""),
        "webhook" => format!("url = \"{base}/hook\"\nsecret = \"${{BENCH_TOKEN}}\""),
        other => unreachable!("{other}"),
    };
    format!("[[outputs]]\ntype = \"{kind}\"\n{own}\n{rate}\n")
}

const ENVS: &[(&str, &str)] = &[
    ("BENCH_TOKEN", "bench-token-0123456789"),
    ("BENCH_PD_KEY", "0123456789abcdef0123456789abcdef"),
];

async fn get(svc: &Service, pq: &str) -> Result<Value> {
    let mut c = connect(&svc.addr).await?;
    let (status, body) = exchange(&mut c, &signed_request(&svc.addr, "GET", pq, b"")?).await?;
    if status != 200 {
        bail!("{pq}: {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn ingest(svc: &Service, records: Vec<Value>) -> Result<()> {
    let body = serde_json::to_vec(&json!({ "Records": records }))?;
    let mut c = connect(&svc.addr).await?;
    let (status, text) = exchange(
        &mut c,
        &signed_request(&svc.addr, "POST", "/api/v1/ingest", &body)?,
    )
    .await?;
    if status != 200 {
        bail!("ingest: {status} {}", String::from_utf8_lossy(&text));
    }
    Ok(())
}

/// (deliveries settled, pending) over every destination.
async fn settled(svc: &Service) -> Result<(u64, u64)> {
    let v = get(svc, "/api/v1/outbox?limit=1").await?;
    let (mut done, mut pending) = (0, 0);
    for d in v["destinations"].as_array().into_iter().flatten() {
        done += d["done"].as_u64().unwrap_or(0)
            + d["folded"].as_u64().unwrap_or(0)
            + d["dead"].as_u64().unwrap_or(0);
        pending += d["pending"].as_u64().unwrap_or(0);
    }
    Ok((done, pending))
}

pub fn run(spec: &Spec) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(spec))
}

async fn run_async(spec: &Spec) -> Result<()> {
    println!(
        "\noutbox: {} new findings, each destination kind on its own against a local receiver (rate limit lifted)\n",
        spec.findings
    );
    println!("| destination | deliveries | requests | seconds | deliveries/s | requests/s |");
    println!("|---|---|---|---|---|---|");
    for kind in ["slack", "pagerduty", "jira", "splunk", "webhook"] {
        let r = receiver().await?;
        let data = spec.dir.join(format!("bench-outbox-{kind}"));
        let _ = std::fs::remove_dir_all(&data);
        let svc = start_with(
            &spec.vigil,
            &spec.dir,
            &data,
            &output(kind, r.addr, "rate = 100000"),
            ENVS,
        )?;
        let now = now_ms();
        let records: Vec<Value> = (0..spec.findings)
            .map(|i| console_login(1_000_000 + i, now))
            .collect();
        let started = Instant::now();
        for chunk in records.chunks(500) {
            ingest(&svc, chunk.to_vec()).await?;
        }
        let until = Instant::now() + Duration::from_secs(900);
        let (done, _) = loop {
            let (done, pending) = settled(&svc).await?;
            if pending == 0 && done > 0 {
                break (done, pending);
            }
            if Instant::now() > until {
                bail!("{kind}: deliveries still pending after 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let secs = started.elapsed().as_secs_f64();
        let requests: u64 = {
            let s = r.seen.lock().unwrap_or_else(|e| e.into_inner());
            s.requests
                .iter()
                .filter(|(k, _)| k.as_str() != "hec-events")
                .map(|(_, v)| v)
                .sum()
        };
        println!(
            "| {kind} | {done} | {requests} | {secs:.1} | {:.0} | {:.0} |",
            done as f64 / secs,
            requests as f64 / secs
        );
        drop(svc);
        let _ = std::fs::remove_dir_all(&data);
    }

    // Latency: Slack at its own pace.
    let r = receiver().await?;
    let data = spec.dir.join("bench-outbox-latency");
    let _ = std::fs::remove_dir_all(&data);
    let svc = start_with(
        &spec.vigil,
        &spec.dir,
        &data,
        &output("slack", r.addr, ""),
        ENVS,
    )?;
    let mut took = Vec::new();
    for n in 0..spec.samples {
        let i = 2_000_000 + n;
        let needle = format!("user/bench-u{i}`");
        ingest(&svc, vec![console_login(i, now_ms())]).await?;
        let stored = Instant::now();
        let until = stored + Duration::from_secs(30);
        loop {
            let hit = {
                let s = r.seen.lock().unwrap_or_else(|e| e.into_inner());
                s.slack
                    .iter()
                    .find(|(_, b)| b.contains(&needle))
                    .map(|(t, _)| *t)
            };
            if let Some(t) = hit {
                took.push(t.saturating_duration_since(stored));
                break;
            }
            if Instant::now() > until {
                return Err(anyhow!("finding {i} never reached the Slack receiver"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Slack's pace is one message a second a channel: space the samples so
        // that each measures the path, not the queue behind the last.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    took.sort();
    println!(
        "\nfinding stored → Slack receiver ({} samples, Slack's 1 message/s pace): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: p99 under 1 s)",
        took.len(),
        percentile(&took, 0.50),
        percentile(&took, 0.99),
        took.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    );
    drop(svc);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
