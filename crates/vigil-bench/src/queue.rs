//! `vigil-bench queue`: reading an organization's telemetry through S3 event
//! notifications on SQS, as deployed: release `vigil serve` processes with the
//! `sqs` source, moto_server (S3 and SQS) on loopback.
//!
//! Throughput: `objects` gzip CloudTrail files of `records` records each (one
//! in a hundred raises a finding) are put first, so that the queue is full;
//! then 1, then 2 processes sharing one store are started and timed until every
//! record is counted in their `GET /api/v1/sources`. Latency: with one process
//! idle on the queue, objects of one record that raises a new finding are put
//! one at a time, and each is timed from the start of its PutObject to the
//! finding being listed by the API (`/api/v1/health` polled every 5 ms).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_credential_types::Credentials;
use serde_json::{json, Value};

use crate::api::{
    benign, connect, console_login, exchange, now_ms, percentile, signed_request, start_with,
    Service,
};
use crate::respond::{start_moto, Moto, KEY_ID, SECRET};

pub struct Spec {
    pub dir: PathBuf,
    pub vigil: PathBuf,
    pub moto: PathBuf,
    /// cargo-lambda (its Runtime API emulator), for the Lambda rows.
    pub cargo_lambda: Option<PathBuf>,
    pub objects: u64,
    pub records: u64,
    pub samples: u64,
}

const REGION: &str = "us-east-1";

struct Cloud {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

async fn cloud(moto: &Moto) -> Cloud {
    let base = vigil_aws::sdk_config(&vigil_aws::AwsSettings {
        endpoint_url: Some(moto.url.clone()),
        home_region: Some(REGION.into()),
        credentials: Some(Credentials::new(KEY_ID, SECRET, None, None, "bench")),
        ..Default::default()
    })
    .await;
    Cloud {
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&base)
                .force_path_style(true)
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::new(&base),
    }
}

/// A bucket notifying a queue (with a dead-letter queue) of every object; the
/// queue's URL.
async fn wire(c: &Cloud, name: &str) -> Result<String> {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    use aws_sdk_sqs::types::QueueAttributeName;
    let e = |e: &dyn std::fmt::Display| anyhow!("seeding moto: {e}");
    c.sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|x| e(&x))?;
    let redrive = json!({
        "deadLetterTargetArn": format!("arn:aws:sqs:{REGION}:123456789012:{name}-dlq"),
        "maxReceiveCount": "5",
    });
    let url = c
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|x| e(&x))?
        .queue_url
        .ok_or_else(|| anyhow!("no queue URL"))?;
    c.s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(|x| e(&x))?;
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .queue_arn(format!("arn:aws:sqs:{REGION}:123456789012:{name}"))
                .events(Event::from("s3:ObjectCreated:*"))
                .build()?,
        )
        .build();
    c.s3.put_bucket_notification_configuration()
        .bucket(name)
        .notification_configuration(config)
        .send()
        .await
        .map_err(|x| e(&x))?;
    Ok(url)
}

fn gzip(v: &Value) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(v.to_string().as_bytes())?;
    Ok(z.finish()?)
}

/// Object `o`: `n` records, one in a hundred a console sign-in without MFA
/// (a finding), the rest ordinary reads.
fn object(o: u64, n: u64, now: i64) -> Result<(String, Vec<u8>)> {
    let records: Vec<Value> = (0..n)
        .map(|r| {
            let i = o * n + r;
            if r % 100 == 0 {
                console_login(i, now)
            } else {
                benign(i, now)
            }
        })
        .collect();
    let key = format!(
        "AWSLogs/o-bench/300000000000/CloudTrail/{REGION}/2026/12/01/300000000000_CloudTrail_{REGION}_{o:06}.json.gz"
    );
    Ok((key, gzip(&json!({ "Records": records }))?))
}

async fn get_json(addr: &str, pq: &str) -> Result<Value> {
    let mut conn = connect(addr).await?;
    let (status, body) = exchange(&mut conn, &signed_request(addr, "GET", pq, b"")?).await?;
    if status != 200 {
        bail!("{pq}: {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Records counted by every process: events and duplicates of their sources.
async fn counted(services: &[Service]) -> Result<u64> {
    let mut n = 0;
    for s in services {
        let v = get_json(&s.addr, "/api/v1/sources").await?;
        for src in v["sources"].as_array().into_iter().flatten() {
            n += src["events"].as_u64().unwrap_or(0);
        }
    }
    Ok(n)
}

fn sqs_source(url: &str) -> String {
    format!("[[sources]]\ntype = \"sqs\"\nqueue_url = \"{url}\"\nwait = \"1s\"\nconcurrency = 10\n")
}

fn env(moto: &Moto) -> [(&'static str, &str); 4] {
    [
        ("VIGIL_AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", REGION),
    ]
}

/// Seconds for `consumers` processes to count every record of a full queue.
fn throughput(spec: &Spec, rt: &tokio::runtime::Runtime, consumers: usize) -> Result<f64> {
    let moto = start_moto(&spec.moto)?;
    let c = rt.block_on(cloud(&moto));
    let url = rt.block_on(wire(&c, "bench-trail"))?;
    let now = now_ms();
    rt.block_on(async {
        for o in 0..spec.objects {
            let (key, body) = object(o, spec.records, now)?;
            c.s3.put_object()
                .bucket("bench-trail")
                .key(key)
                .body(body.into())
                .send()
                .await
                .map_err(|e| anyhow!("PutObject: {e}"))?;
        }
        anyhow::Ok(())
    })?;
    let data_dir = spec.dir.join(format!("queue-store-{consumers}"));
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    std::fs::create_dir_all(&data_dir)?;
    let started = Instant::now();
    let services = (0..consumers)
        .map(|_| {
            start_with(
                &spec.vigil,
                &spec.dir,
                &data_dir,
                &sqs_source(&url),
                &env(&moto),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let want = spec.objects * spec.records;
    let until = Instant::now() + Duration::from_secs(1800);
    loop {
        let n = rt.block_on(counted(&services))?;
        if n >= want {
            if n > want {
                bail!("{n} records counted of {want}: some twice");
            }
            break;
        }
        if Instant::now() > until {
            bail!("{n} of {want} records counted after 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = started.elapsed().as_secs_f64();
    drop(services);
    drop(moto);
    Ok(secs)
}

/// Put → queryable latencies, in ms, sorted.
fn latency(spec: &Spec, rt: &tokio::runtime::Runtime) -> Result<Vec<Duration>> {
    let moto = start_moto(&spec.moto)?;
    let c = rt.block_on(cloud(&moto));
    let url = rt.block_on(wire(&c, "bench-latency"))?;
    let data_dir = spec.dir.join("queue-store-latency");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    std::fs::create_dir_all(&data_dir)?;
    let svc = start_with(
        &spec.vigil,
        &spec.dir,
        &data_dir,
        &sqs_source(&url),
        &env(&moto),
    )?;
    let mut out = Vec::new();
    rt.block_on(async {
        let findings = |v: &Value| v["findings"].as_u64().unwrap_or(0);
        let mut have = findings(&get_json(&svc.addr, "/api/v1/health").await?);
        for s in 0..=spec.samples {
            let now = now_ms();
            // One record that opens a finding of its own (a new principal).
            let record = console_login(1_000_000_000 + s, now);
            let body = gzip(&json!({ "Records": [record] }))?;
            let t = Instant::now();
            c.s3.put_object()
                .bucket("bench-latency")
                .key(format!(
                    "AWSLogs/o-bench/300000000000/CloudTrail/{REGION}/2026/12/01/one-{s}.json.gz"
                ))
                .body(body.into())
                .send()
                .await
                .map_err(|e| anyhow!("PutObject: {e}"))?;
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                let n = findings(&get_json(&svc.addr, "/api/v1/health").await?);
                if n > have {
                    have = n;
                    break;
                }
                if Instant::now() > until {
                    bail!("sample {s}: no finding after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The first is the warm-up (connections, the first long poll).
            if s > 0 {
                out.push(t.elapsed());
            }
        }
        anyhow::Ok(())
    })
    .context("latency")?;
    drop(svc);
    drop(moto);
    out.sort();
    Ok(out)
}

/// Lambda mode's cold start: `vigil lambda` started fresh against the
/// Runtime API emulator, timed to ready (init) and through its first
/// invocation (one object of one record read from S3 and committed).
fn cold_starts(
    spec: &Spec,
    cargo_lambda: &std::path::Path,
    rounds: u64,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let moto = start_moto(&spec.moto)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let c = rt.block_on(cloud(&moto));
    rt.block_on(async {
        c.s3.create_bucket()
            .bucket("bench-lambda")
            .send()
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let body = gzip(&json!({ "Records": [console_login(7, now_ms())] }))?;
        c.s3.put_object()
            .bucket("bench-lambda")
            .key("AWSLogs/o/300000000000/CloudTrail/us-east-1/one.json.gz")
            .body(body.into())
            .send()
            .await
            .map_err(|e| anyhow!("{e}"))?;
        anyhow::Ok(())
    })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut emulator = Command::new(cargo_lambda)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .args(["--manifest-path", "crates/vigil/Cargo.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting cargo-lambda")?;
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!("the Runtime API emulator did not listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let event = json!({"Records": [{
        "messageId": "m1", "receiptHandle": "r", "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": REGION,
        "body": json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "bench-lambda"},
                   "object": {"key": "AWSLogs/o/300000000000/CloudTrail/us-east-1/one.json.gz"}}}]}).to_string()
    }]});
    let file = spec.dir.join("lambda-event.json");
    std::fs::write(&file, event.to_string())?;
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let data = spec.dir.join(format!("lambda-store-{round}"));
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let t = Instant::now();
        let mut f = Command::new(&spec.vigil)
            .arg("lambda")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("VIGIL_DATA_DIR", &data)
            .envs(env(&moto))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = f.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("ready for SQS events") => break,
                Some(_) => {}
                None => bail!("vigil lambda ended before it was ready"),
            }
        }
        init.push(t.elapsed());
        std::thread::spawn(move || lines.for_each(drop));
        let out = Command::new(cargo_lambda)
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "--data-file",
            ])
            .arg(&file)
            .arg("_")
            .output()?;
        first.push(t.elapsed());
        let answer = String::from_utf8_lossy(&out.stdout);
        if !answer.contains("\"batchItemFailures\":[]") {
            bail!("round {round}: {answer}");
        }
        f.kill().ok();
        f.wait().ok();
    }
    emulator.kill().ok();
    emulator.wait().ok();
    init.sort();
    first.sort();
    Ok((init, first))
}

pub fn run(spec: &Spec) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let records = spec.objects * spec.records;
    println!(
        "\nS3 notifications through SQS: release vigil serve (sqs source, 1 s long polls, 10 messages in flight a process), moto_server 5.2.5 on loopback; {} gzip CloudTrail objects of {} records put before the consumers start; put → queryable over {} objects of one record, one at a time\n",
        spec.objects, spec.records, spec.samples
    );
    println!("| consumers (one store) | seconds | objects/s | records/s | vs 1 |");
    println!("|---|---|---|---|---|");
    let mut one = None;
    for consumers in [1usize, 2] {
        let secs = throughput(spec, &rt, consumers)?;
        let rate = records as f64 / secs;
        let base = *one.get_or_insert(rate);
        println!(
            "| {consumers} | {secs:.1} | {:.0} | {rate:.0} | {:.2}x |",
            spec.objects as f64 / secs,
            rate / base
        );
    }
    let lat = latency(spec, &rt)?;
    println!(
        "\n| put → finding queryable | samples | p50 ms | p99 ms | max ms | goal p99 |\n|---|---|---|---|---|---|\n| 1 consumer, idle queue | {} | {:.0} | {:.0} | {:.0} | 2000 |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    if let Some(cl) = &spec.cargo_lambda {
        let (init, first) = cold_starts(spec, cl, 10)?;
        println!(
            "\n| vigil lambda, cold (10 starts; Runtime API emulator: cargo-lambda 1.9.2) | p50 ms | max ms |\n|---|---|---|\n| start → ready for events | {:.0} | {:.0} |\n| start → first event done (one S3 object) | {:.0} | {:.0} |",
            percentile(&init, 0.5),
            percentile(&init, 1.0),
            percentile(&first, 0.5),
            percentile(&first, 1.0)
        );
    }
    Ok(())
}
