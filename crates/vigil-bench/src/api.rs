//! `vigil-bench api`: the service under load, as deployed. Fills a store with N
//! findings (grouped into incidents as the pipeline would), starts the real
//! `vigil serve` on it, and measures from a separate process over loopback with
//! SigV4-signed requests (the official `aws-sigv4` signer, one signature per
//! request, as a real client pays for):
//! - p50/p99 latency of `/api/v1/metrics` and `/api/v1/findings` under C concurrent
//!   clients on keep-alive connections;
//! - ingest-to-queryable latency: a CloudTrail record POSTed to `/api/v1/ingest`
//!   until a `GET /api/v1/findings/{id}` returns the finding it raised;
//! - the sustained ingest rate: batches of records posted back to back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

const KEY_ID: &str = "AKIABENCHADMIN00001";
const SECRET: &str = "bench-admin-secret-00000000000000000001";

pub struct Spec {
    pub dir: PathBuf,
    pub vigil: PathBuf,
    pub findings: u64,
    pub clients: usize,
    pub seconds: u64,
}

const CATEGORIES: [&str; 5] = [
    "UnauthorizedAccess",
    "Cryptojacking",
    "PolicyViolation",
    "NetworkAttack",
    "DataExfiltration",
];
const SEVERITIES: [&str; 5] = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

/// xorshift: a deterministic spread of accounts, principals and times.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn iso(ms: i64) -> String {
    vigil_model::Timestamp::from_millis(ms).to_string()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;

/// Finding `i` of `n`, spread evenly over the last 30 days in order (as a pipeline
/// stores them): 20 accounts, 5,000 principals, every category and severity.
fn finding(i: u64, n: u64, rng: &mut Rng, now: i64) -> vigil_detect::Finding {
    let first = now - SPAN_MS + (i as i128 * SPAN_MS as i128 / n.max(1) as i128) as i64;
    let account = format!("{:012}", 100_000_000_000 + rng.below(20));
    let principal = format!("arn:aws:iam::{account}:user/u{}", rng.below(5000));
    let v = json!({
        "version": "1.0", "id": format!("00000000-0000-5000-8000-{i:012}"),
        "detail-type": "Security Finding", "source": "com.security.platform",
        "account": account, "time": iso(first + 60_000), "region": "us-east-1", "resources": [],
        "detail": {
            "finding_id": format!("sec-bench-{i}"), "severity": SEVERITIES[rng.below(5) as usize],
            "confidence": 70, "title": "bench finding", "description": "generated for the API benchmark",
            "category": CATEGORIES[rng.below(5) as usize], "detection_source": "CloudTrail",
            "resource_type": null, "resource_arn": null,
            "first_seen": iso(first), "last_seen": iso(first),
            "remediation": {"playbook": null, "automated": false, "status": "PENDING"},
            "evidence": {"source_ip": "203.0.113.7", "user_agent": "bench", "api_call": "ListUsers", "aws_region": "us-east-1"},
            "count": 1, "rule": {"id": format!("r{}", rng.below(40)), "title": "bench rule", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": principal, "event_ids": [format!("e{i}")]
        }
    });
    serde_json::from_value(v).expect("a valid finding")
}

/// A store with `n` findings in `data_dir` (reused when it already has them).
fn fill(data_dir: &Path, n: u64) -> Result<()> {
    let mut store = vigil_store::Store::open(data_dir, vigil_store::Grouping::default())?;
    let have = store.finding_count()?;
    if have >= n {
        tracing::info!("store: {have} findings already in {}", data_dir.display());
        return Ok(());
    }
    let started = Instant::now();
    let now = now_ms();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..n {
        let f = finding(i, n, &mut rng, now);
        batch.push(f);
        if batch.len() == 1_000 || i + 1 == n {
            // Stored 90 s after the newest event of its batch.
            let newest = batch.iter().map(|f| f.detail.last_seen.as_millis()).max();
            let detected =
                vigil_model::Timestamp::from_millis(newest.unwrap_or(now).min(now) + 90_000);
            store.record_findings(&batch, detected)?;
            batch.clear();
        }
    }
    tracing::info!(
        "store: {n} findings written in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) struct Service {
    child: Child,
    pub addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .ok();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start(vigil: &Path, dir: &Path, data_dir: &Path) -> Result<Service> {
    start_with(vigil, dir, data_dir, "", &[])
}

/// `vigil serve` on a free loopback port with the bench's admin key, `more`
/// appended to its configuration and `envs` in its environment.
pub(crate) fn start_with(
    vigil: &Path,
    dir: &Path,
    data_dir: &Path,
    more: &str,
    envs: &[(&str, &str)],
) -> Result<Service> {
    let config = dir.join("bench-serve.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nreaders = 4\n[[api.keys]]\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\nprincipal = \"bench\"\nrole = \"admin\"\n{more}"
        ),
    )?;
    let mut child = Command::new(vigil)
        .envs(envs.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", vigil.display()))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            // The service logs `listening on http://ADDR` (text or JSON log).
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let end = rest.find(|c: char| c.is_whitespace() || c == '"');
                tx.send(rest[..end.unwrap_or(rest.len())].to_owned()).ok();
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| anyhow!("vigil serve did not start"))?;
    Ok(Service { child, addr })
}

/// A request, signed.
pub(crate) fn signed_request(addr: &str, method: &str, pq: &str, body: &[u8]) -> Result<Vec<u8>> {
    let url = format!("http://{addr}{pq}");
    let identity = Credentials::new(KEY_ID, SECRET, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let headers = [("host", addr)];
    let signable =
        SignableRequest::new(method, &url, headers.into_iter(), SignableBody::Bytes(body))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut req = format!(
        "{method} {pq} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in instructions.headers() {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// One exchange on a keep-alive connection: the status and the body.
pub(crate) async fn exchange(
    conn: &mut BufStream<TcpStream>,
    req: &[u8],
) -> Result<(u16, Vec<u8>)> {
    conn.write_all(req).await?;
    conn.flush().await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok((status, body))
}

pub(crate) async fn connect(addr: &str) -> Result<BufStream<TcpStream>> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(BufStream::new(s))
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `clients` connections asking for `pq` for `seconds`, each as soon as it has its
/// answer, or (with `pace`) once every `pace`: latencies and errors.
async fn load(
    addr: Arc<str>,
    pq: &'static str,
    clients: usize,
    seconds: u64,
    pace: Option<Duration>,
) -> Result<(Vec<Duration>, u64)> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addr = Arc::clone(&addr);
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(&addr).await?;
            let mut lat = Vec::new();
            let mut errors = 0u64;
            // Independent clients do not tick in step: each starts at its own
            // point of the period.
            let mut tick = pace.map(|p| {
                let offset = p.mul_f64(c as f64 / clients as f64);
                tokio::time::interval_at(tokio::time::Instant::now() + offset, p)
            });
            while Instant::now() < until {
                if let Some(t) = &mut tick {
                    t.tick().await;
                }
                let req = signed_request(&addr, "GET", pq, b"")?;
                let t = Instant::now();
                let (status, _) = exchange(&mut conn, &req).await?;
                lat.push(t.elapsed());
                if status != 200 {
                    errors += 1;
                }
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    all.sort();
    Ok((all, errors))
}

/// A console sign-in without MFA by IAM user `bench-u<i>`, in one of the 20
/// accounts the store already has: a new principal, so a new finding, for each
/// `i`, without adding accounts a real organization would not have.
pub(crate) fn console_login(i: u64, now: i64) -> Value {
    let account = format!("{:012}", 100_000_000_000 + i % 20);
    let user = format!("bench-u{i}");
    json!({
        "eventVersion": "1.08", "eventTime": iso(now), "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
        "userAgent": "Mozilla/5.0", "eventType": "AwsConsoleSignIn", "recipientAccountId": account,
        "eventID": format!("bench-ingest-{i}-{now}"), "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MFAUsed": "No"},
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{i}"),
                         "arn": user_arn(i), "accountId": account, "userName": user}
    })
}

fn user_arn(i: u64) -> String {
    format!(
        "arn:aws:iam::{:012}:user/bench-u{i}",
        100_000_000_000 + i % 20
    )
}

/// An ordinary read call, which no rule flags.
pub(crate) fn benign(i: u64, now: i64) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": iso(now), "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances", "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
        "userAgent": "aws-sdk-go/1.44", "eventType": "AwsApiCall", "recipientAccountId": "300000000000",
        "eventID": format!("bench-benign-{i}-{now}"), "readOnly": true,
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:app",
                         "arn": "arn:aws:sts::300000000000:assumed-role/app/i-1", "accountId": "300000000000"}
    })
}

fn row(name: &str, lat: &[Duration], errors: u64, seconds: f64) {
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {errors} |",
        lat.len(),
        percentile(lat, 0.50),
        percentile(lat, 0.99),
        percentile(lat, 1.0),
        lat.len() as f64 / seconds
    );
}

/// The data directory under `dir` of a store with `findings` findings, filled
/// first if need be (the dashboard's benchmark serves it too).
pub fn store_dir(dir: &Path, findings: u64) -> Result<PathBuf> {
    // The name says how the store was filled: a change to `finding` or `fill`
    // bumps the version, so an old store is not measured as a new one.
    let data_dir = dir.join(format!("api-store-v2-{findings}"));
    fill(&data_dir, findings)?;
    Ok(data_dir)
}

pub fn run(spec: &Spec) -> Result<()> {
    let data_dir = store_dir(&spec.dir, spec.findings)?;
    let svc = start(&spec.vigil, &spec.dir, &data_dir)?;
    let addr: Arc<str> = Arc::from(svc.addr.as_str());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!(
            "\n{} findings stored; {} concurrent signed clients, {} s per row, keep-alive, loopback\n",
            spec.findings, spec.clients, spec.seconds
        );
        println!("| call | requests | p50 ms | p99 ms | max ms | req/s | non-200 |");
        println!("|---|---|---|---|---|---|---|");
        for pq in [
            "/api/v1/metrics",
            "/api/v1/findings?limit=100",
            "/api/v1/findings?severity=CRITICAL&category=Cryptojacking&limit=100",
            "/api/v1/incidents?status=OPEN&limit=100",
        ] {
            // Warm the path (caches, connections) before measuring it.
            load(Arc::clone(&addr), pq, spec.clients, 1, None).await?;
            let (lat, errors) = load(Arc::clone(&addr), pq, spec.clients, spec.seconds, None).await?;
            row(pq, &lat, errors, spec.seconds as f64);
        }
        // The same clients each asking at a steady pace, offset from one another:
        // 10 a second each (500/s in all) is a busy team's dashboards; the faster
        // paces find the load up to which p99 stays under the goal.
        println!("\nPaced: each of the {} clients asks once per period\n", spec.clients);
        println!("| call | period ms | offered req/s | requests | p50 ms | p99 ms | max ms | req/s | non-200 |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for pq in ["/api/v1/metrics", "/api/v1/findings?limit=100"] {
            for period_ms in [100u64, 20, 10] {
                let pace = Duration::from_millis(period_ms);
                let (lat, errors) =
                    load(Arc::clone(&addr), pq, spec.clients, spec.seconds, Some(pace)).await?;
                let offered = spec.clients as u64 * 1000 / period_ms;
                row(&format!("{pq} | {period_ms} | {offered}"), &lat, errors, spec.seconds as f64);
            }
        }

        // Ingest to queryable: one record, posted, then read back by its finding id.
        let mut conn = connect(&addr).await?;
        let mut lat = Vec::new();
        // Users no earlier run used: each post raises a new finding.
        let run = (now_ms() as u64 / 1000 % 1_000_000) * 1_000_000;
        for i in run..run + 200 {
            let body = json!({ "Records": [console_login(i, now_ms())] }).to_string();
            let post = signed_request(&addr, "POST", "/api/v1/ingest", body.as_bytes())?;
            let t = Instant::now();
            let (status, reply) = exchange(&mut conn, &post).await?;
            if status != 200 {
                bail!("ingest: {status}: {}", String::from_utf8_lossy(&reply));
            }
            let newest = signed_request(&addr, "GET", "/api/v1/findings?limit=1", b"")?;
            let (_, page) = exchange(&mut conn, &newest).await?;
            let page: Value = serde_json::from_slice(&page)?;
            if page["items"][0]["detail"]["principal"] != json!(user_arn(i)) {
                bail!("the posted record's finding is not the newest: {page}");
            }
            lat.push(t.elapsed());
        }
        lat.sort();
        println!("\n| ingest to queryable (POST one record, then GET its finding) | samples | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| sequential, one client | {} | {:.2} | {:.2} | {:.2} |",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );

        // Sustained ingest: batches of 1,000 records (1 in 100 raises a finding).
        let until = Instant::now() + Duration::from_secs(spec.seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..2u64 {
            let addr = Arc::clone(&addr);
            tasks.push(tokio::spawn(async move {
                let mut conn = connect(&addr).await?;
                let mut events = 0u64;
                let mut n = c * 10_000_000_000 + 50_000_000_000;
                while Instant::now() < until {
                    let now = now_ms();
                    let records: Vec<Value> = (0..1000)
                        .map(|k| {
                            n += 1;
                            if k % 100 == 0 { console_login(n, now) } else { benign(n, now) }
                        })
                        .collect();
                    let body = json!({ "Records": records }).to_string();
                    let post = signed_request(&addr, "POST", "/api/v1/ingest", body.as_bytes())?;
                    let (status, reply) = exchange(&mut conn, &post).await?;
                    if status != 200 {
                        bail!("ingest: {status}: {}", String::from_utf8_lossy(&reply));
                    }
                    let r: Value = serde_json::from_slice(&reply)?;
                    events += r["events"].as_u64().unwrap_or(0);
                }
                anyhow::Ok(events)
            }));
        }
        let mut events = 0;
        for t in tasks {
            events += t.await??;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "\nsustained ingest: {events} CloudTrail records in {secs:.1} s = {:.0} records/s (2 clients, 1,000-record batches, 1% raising a finding, each batch stored before its answer)",
            events as f64 / secs
        );
        anyhow::Ok(())
    })?;
    drop(svc);
    Ok(())
}
