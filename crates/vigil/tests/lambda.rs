//! `vigil lambda` as AWS Lambda runs it, through a real Lambda Runtime API
//! emulator (`cargo lambda watch --only-lambda-apis`, installed from PyPI by
//! `scripts/test`) and its `cargo lambda invoke`: an SQS event whose records
//! announce objects in moto's S3; the record of a corrupt object comes back as
//! a batch item failure and the others do not; the findings are committed; the
//! same event again counts nothing twice.

mod service;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use service::*;

/// The emulator of the Lambda Runtime API on a free loopback port, and the
/// function (`vigil lambda`) polling it; both stopped when dropped.
struct Emulated {
    emulator: Child,
    function: Child,
    port: u16,
}

impl Drop for Emulated {
    fn drop(&mut self) {
        for c in [&mut self.function, &mut self.emulator] {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn start(moto: &Moto, data: &Path) -> Emulated {
    let port = free_port();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let emulator = Command::new(vigil_testkit::python_tool("cargo-lambda"))
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo-lambda starts");
    wait_for(60, "the Lambda Runtime API emulator", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut function = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("lambda")
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("VIGIL_DATA_DIR", data)
        .env_remove("VIGIL_CONFIG")
        .envs(moto.env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = function.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ready for SQS events") {
                tx.send(()).ok();
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("vigil lambda is ready");
    Emulated {
        emulator,
        function,
        port,
    }
}

/// Invokes the function with `event` as `cargo lambda invoke` does; its answer.
fn invoke(e: &Emulated, event: &Value, dir: &Path) -> Value {
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let out = Command::new(vigil_testkit::python_tool("cargo-lambda"))
        .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
        .arg(e.port.to_string())
        .arg("--data-file")
        .arg(&file)
        .arg("_")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "invoke: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// An SQS record as Lambda hands it over, carrying `body`.
fn sqs_record(id: &str, body: &Value) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764979200000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764979200001"},
        "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:vigil", "awsRegion": "us-east-1"
    })
}

fn s3_note(bucket: &str, encoded_key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded_key}}
    }]})
}

fn gzip(text: &str) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(text.as_bytes()).unwrap();
    z.finish().unwrap()
}

/// Stopped-trail findings in the store, and their counts.
fn stored(data: &Path) -> Vec<u64> {
    let db = rusqlite::Connection::open(data.join("vigil.db")).unwrap();
    let mut q = db
        .prepare("SELECT json_extract(body, '$.detail.count') FROM findings WHERE dedup_key LIKE '%trail/lambda-%'")
        .unwrap();
    q.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|c| c.unwrap() as u64)
        .collect()
}

#[test]
fn an_sqs_batch_reports_only_its_failed_records_and_counts_nothing_twice() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config(&rt))
            .force_path_style(true)
            .build(),
    );
    let key = "AWSLogs/o-example/111122223333/CloudTrail/us-east-1/2026/12/01/a b+c.json.gz";
    let bad = "AWSLogs/o-example/111122223333/CloudTrail/us-east-1/2026/12/01/corrupt.json.gz";
    let records: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "eventVersion": "1.08", "eventTime": format!("2026-12-01T10:0{i}:00Z"),
                "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
                "eventID": format!("lambda-stop-{i}"), "sourceIPAddress": "198.51.100.23",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ops",
                                 "accountId": "111122223333", "principalId": "AIDAOPS"},
                "requestParameters": {"name": "arn:aws:cloudtrail:us-east-1:111122223333:trail/lambda-main"}
            })
        })
        .collect();
    rt.block_on(async {
        s3.create_bucket().bucket("org-logs").send().await.unwrap();
        let body = gzip(&json!({ "Records": records }).to_string());
        for (k, b) in [(key, body), (bad, b"\x1f\x8b\x08\x00not deflate".to_vec())] {
            s3.put_object()
                .bucket("org-logs")
                .key(k)
                .body(b.into())
                .send()
                .await
                .unwrap();
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = start(&moto, &data);
    let event = json!({"Records": [
        sqs_record("m-good", &s3_note("org-logs", &key.replace(' ', "+").replace("b+c", "b%2Bc"))),
        sqs_record("m-bad", &s3_note("org-logs", bad)),
        sqs_record("m-test", &json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "org-logs"})),
    ]});
    let answer = invoke(&f, &event, dir.path());
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-bad"}]}),
        "only the corrupt object's record is reported"
    );
    assert_eq!(stored(&data), vec![3], "one finding of three events");

    // Lambda delivers the batch again (a timeout, say): nothing counts twice.
    let again = invoke(&f, &event, dir.path());
    assert_eq!(again["batchItemFailures"].as_array().unwrap().len(), 1);
    assert_eq!(stored(&data), vec![3]);
}
