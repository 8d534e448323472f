//! `vigil serve` as a user runs it: the real binary on a free loopback port, called
//! with requests signed by the official `aws-sigv4` signer. The demo, telemetry
//! posted over HTTP and through the Firehose format, and a `kill -9` in the middle
//! of ingesting an inbox.

mod common;
mod service;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use service::support::{raw_call, signed, Key, Signing};
use service::*;

#[test]
fn the_demo_shows_incidents_and_kpis_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let svc = Service::start_demo(dir.path());
    eprintln!("demo replayed after {:?}", started.elapsed());
    let incidents = svc.get("/api/v1/incidents")["items"].clone();
    let categories: BTreeSet<&str> = incidents
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["category"].as_str().unwrap())
        .collect();
    for c in [
        "UnauthorizedAccess",
        "PolicyViolation",
        "Cryptojacking",
        "NetworkAttack",
        "DataExfiltration",
    ] {
        assert!(categories.contains(c), "no {c} incident: {categories:?}");
    }
    let m = svc.get("/api/v1/metrics");
    assert!(m["incidents_last_24h"].as_u64().unwrap() >= 8, "{m:?}");
    let mttd: f64 = m["mttd"].as_str().unwrap().parse().unwrap();
    assert!(
        (0.0..10.0).contains(&mttd),
        "the demo happens in the last minutes: {m:?}"
    );
    assert_eq!(m["compliance_score"], Value::Null);
    assert_eq!(m["mttr"], Value::Null);
    // The demo's account is production in the registry: its incidents weigh up.
    let accounts = svc.get("/api/v1/accounts");
    assert_eq!(accounts["items"][0]["environment"], "production");
    // An analyst may look but not act.
    let id = incidents[0]["id"].as_str().unwrap();
    let r = svc.call(
        &ANALYST,
        "POST",
        &format!("/api/v1/incidents/{id}/resolve"),
        b"",
    );
    assert_eq!(r.status, 403);
    let status = svc.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn telemetry_posted_is_queryable_when_the_post_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);

    // A CloudTrail record, signed by a forwarder.
    let body = serde_json::to_vec(&json!({"Records": [root_login("posted-1")]})).unwrap();
    let posted = Instant::now();
    let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &body);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["events"], 1);
    assert!(
        r.body["new_findings"].as_u64().unwrap() >= 1,
        "{:?}",
        r.body
    );
    let findings = svc.get("/api/v1/findings");
    eprintln!("ingest to queryable: {:?}", posted.elapsed());
    let titles: Vec<&str> = findings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detail"]["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Root account used"), "{titles:?}");
    // Its incident: production account, so HIGH weighs up to CRITICAL.
    let incidents = svc.get("/api/v1/incidents?category=UnauthorizedAccess");
    assert_eq!(
        incidents["items"][0]["severity"], "CRITICAL",
        "{incidents:?}"
    );

    // Posting the same record again changes nothing.
    let again = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &body);
    assert_eq!(again.body["new_findings"], 0, "{:?}", again.body);

    // An EventBridge event, as a rule target would deliver it.
    let eb = json!({"version": "0", "id": "eb-1", "detail-type": "AWS API Call via CloudTrail",
                    "source": "aws.cloudtrail", "account": "111122223333", "time": now_rfc3339(),
                    "region": "us-east-1", "resources": [], "detail": root_login("eb-1")});
    let r = svc.call(
        &FORWARDER,
        "POST",
        "/api/v1/ingest",
        eb.to_string().as_bytes(),
    );
    assert_eq!(
        (r.status, r.body["events"].as_u64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );

    // Firehose delivery, gzip-encoded, a record per line.
    use base64::Engine;
    let record = root_login("firehose-1").to_string();
    let data = base64::engine::general_purpose::STANDARD.encode(record.as_bytes());
    let fh = json!({"requestId": "fh-1", "timestamp": 1, "records": [{"data": data}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, fh.to_string().as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let headers = vec![
        ("x-amz-firehose-request-id".to_owned(), "fh-1".to_owned()),
        (
            "x-amz-firehose-access-key".to_owned(),
            FIREHOSE_KEY.to_owned(),
        ),
        ("content-encoding".to_owned(), "gzip".to_owned()),
    ];
    let r = raw_call(svc.addr, "POST", "/api/v1/firehose", &headers, &gz);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["requestId"], "fh-1");

    // Bad telemetry: a clear 400 naming what was wrong, and the good records of a
    // mixed batch still count.
    let r = svc.call(
        &FORWARDER,
        "POST",
        "/api/v1/ingest",
        b"this is not telemetry",
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    let mixed = format!(
        "{}\n{{\"eventVersion\": 7\n{}\n",
        root_login("mixed-1"),
        root_login("mixed-2")
    );
    let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", mixed.as_bytes());
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["events"].as_u64().unwrap() >= 1, "{:?}", r.body);
    assert!(
        !r.body["errors"].as_array().unwrap().is_empty(),
        "{:?}",
        r.body
    );

    // Every post is in the audit log with its principal.
    let audit = svc.call(&ADMIN, "GET", "/api/v1/audit", b"").body;
    let ingests = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ingest")
        .count();
    assert!(ingests >= 6, "{audit:?}");
}

/// The repository's samples cut into many small inbox files: CloudTrail records
/// and flow-log lines (header kept) in slices, the EventBridge file whole.
fn many_inbox_files(inbox: &Path) -> usize {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let gunzip = |p: &Path| {
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let find = |sub: &str| -> PathBuf {
        let mut found = Vec::new();
        let mut stack = vec![samples.join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    found.push(p);
                }
            }
        }
        found.pop().unwrap()
    };
    std::fs::create_dir_all(inbox).unwrap();
    // First, one root sign-in a file, a minute apart: a single finding in the
    // reference, which a kill in their midst must not split in two.
    for i in 0..40 {
        let mut r = root_login(&format!("root-{i}"));
        r["eventTime"] = json!(format!("2024-06-01T06:{i:02}:00Z"));
        let doc = json!({ "Records": [r] });
        std::fs::write(inbox.join(format!("a-root-{i:04}.json")), doc.to_string()).unwrap();
    }
    let mut n = 40;
    let trail: Value = serde_json::from_str(&gunzip(&find("cloudtrail"))).unwrap();
    for chunk in trail["Records"].as_array().unwrap().chunks(10) {
        let doc = json!({ "Records": chunk });
        std::fs::write(inbox.join(format!("ct-{n:04}.json")), doc.to_string()).unwrap();
        n += 1;
    }
    let flows = gunzip(&find("vpcflow"));
    let mut lines = flows.lines();
    let header = lines.next().unwrap().to_owned();
    let body: Vec<&str> = lines.collect();
    for chunk in body.chunks(150) {
        let text = format!("{header}\n{}\n", chunk.join("\n"));
        std::fs::write(inbox.join(format!("flow-{n:04}.log")), text).unwrap();
        n += 1;
    }
    std::fs::copy(
        samples.join("eventbridge/findings.jsonl"),
        inbox.join("zz-eventbridge.jsonl"),
    )
    .unwrap();
    n + 1
}

fn checkpoints(svc: &Service) -> u64 {
    svc.get("/api/v1/health")["checkpoints"].as_u64().unwrap()
}

#[test]
fn kill_9_during_ingestion_loses_no_finding_and_duplicates_none() {
    // The reference: the whole inbox, undisturbed.
    let reference = tempfile::tempdir().unwrap();
    let files = many_inbox_files(&reference.path().join("data/inbox"));
    assert!(files > 100, "{files}");
    let svc = Service::start(reference.path(), &[]);
    wait_for(240, "the reference run", || {
        checkpoints(&svc) == files as u64
    });
    let expected = svc.finding_ids();
    drop(svc);
    let expected_set: BTreeSet<&(String, u64)> = expected.iter().collect();
    assert!(
        expected.iter().any(|(_, count)| *count == 40),
        "the forty root sign-ins are one finding"
    );
    assert_eq!(expected_set.len(), expected.len());
    assert!(expected.len() > 100, "{}", expected.len());

    // The same inbox, killed with SIGKILL part way, then restarted.
    let mut killed_mid_way = false;
    for _attempt in 0..3 {
        let run = tempfile::tempdir().unwrap();
        many_inbox_files(&run.path().join("data/inbox"));
        let mut svc = Service::start(run.path(), &[]);
        let mut done_at_kill = 0;
        wait_for(240, "the first files", || {
            done_at_kill = checkpoints(&svc);
            done_at_kill >= 5
        });
        svc.child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
        svc.child.wait().unwrap();
        let log = svc.log.lock().unwrap().clone();
        drop(svc);
        let svc = Service::start(run.path(), &[]);
        let resumed = checkpoints(&svc);
        wait_for(240, "the restarted run", || {
            checkpoints(&svc) == files as u64
        });
        let got = svc.finding_ids();
        let got_set: BTreeSet<&(String, u64)> = got.iter().collect();
        assert_eq!(got_set.len(), got.len(), "a finding was stored twice");
        let missing: Vec<_> = expected_set.difference(&got_set).take(5).collect();
        let extra: Vec<_> = got_set.difference(&expected_set).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "after kill -9 at {done_at_kill}/{files} files: missing {missing:?}, extra {extra:?}; log before the kill: {log:?}"
        );
        if resumed < files as u64 {
            killed_mid_way = true;
            break;
        }
    }
    assert!(
        killed_mid_way,
        "every kill came after the inbox was done; the test proved nothing"
    );
}

/// The count of the finding "Root account used", and how many such findings.
fn root_login_count(svc: &Service) -> (usize, u64) {
    let page = svc.get("/api/v1/findings?limit=1000");
    let counts: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detail"]["title"] == "Root account used")
        .map(|f| f["detail"]["count"].as_u64().unwrap())
        .collect();
    (counts.len(), counts.iter().sum())
}

#[test]
fn a_record_delivered_again_counts_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]);
    // One record, and another of the same principal (two events: count 2).
    let one = serde_json::to_vec(&json!({"Records": [root_login("redelivered-1")]})).unwrap();
    let two = serde_json::to_vec(&json!({"Records": [root_login("redelivered-2")]})).unwrap();
    let first = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &one);
    assert_eq!(
        (first.status, first.body["events"].as_u64()),
        (200, Some(1)),
        "{:?}",
        first.body
    );
    // A retry of the same post: taken before, not counted.
    let retry = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &one);
    assert_eq!(
        (
            retry.body["events"].as_u64(),
            retry.body["duplicates"].as_u64()
        ),
        (Some(0), Some(1)),
        "{:?}",
        retry.body
    );
    svc.call(&FORWARDER, "POST", "/api/v1/ingest", &two);
    assert_eq!(root_login_count(&svc), (1, 2));

    // SIGKILL, a restart, and both records delivered again.
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    drop(svc);
    let svc = Service::start(dir.path(), &[]);
    for body in [&one, &two, &one] {
        let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", body);
        assert_eq!(
            (r.status, r.body["duplicates"].as_u64()),
            (200, Some(1)),
            "{:?}",
            r.body
        );
    }
    assert_eq!(
        root_login_count(&svc),
        (1, 2),
        "redelivered records counted again"
    );
    // A new record still counts.
    let three = serde_json::to_vec(&json!({"Records": [root_login("redelivered-3")]})).unwrap();
    svc.call(&FORWARDER, "POST", "/api/v1/ingest", &three);
    assert_eq!(root_login_count(&svc), (1, 3));
}

#[cfg(unix)]
#[test]
fn the_inbox_refuses_links_out_and_never_logs_content_or_raw_names() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("data/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("passwd");
    std::fs::write(&secret, "root-SECRET-LINE:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::os::unix::fs::symlink(&secret, inbox.join("leak.log")).unwrap();
    // Text that is not telemetry, under a name that would forge a log line.
    let forged = "a.log\nERROR forged line";
    std::fs::write(inbox.join(forged), "CONTENT-SECRET not a flow log\n").unwrap();
    // And a good file beside them, to know the inbox has been read.
    let good = serde_json::to_vec(&json!({"Records": [root_login("inbox-good-1")]})).unwrap();
    std::fs::write(inbox.join("good.json"), good).unwrap();

    let svc = Service::start(dir.path(), &[]);
    wait_for(60, "the good file", || root_login_count(&svc).0 == 1);
    wait_for(60, "the refusals", || {
        let log = svc.log.lock().unwrap();
        log.iter()
            .any(|l| l.contains("leak.log") && l.contains("outside the inbox"))
            && log.iter().any(|l| l.contains("a.log\\nERROR forged line"))
    });
    let log = svc.log.lock().unwrap().clone();
    for line in &log {
        assert!(!line.contains("SECRET"), "file content in the log: {line}");
        assert!(
            !line.trim_start().starts_with("ERROR forged line"),
            "a file name forged a log line: {log:#?}"
        );
    }
    // The linked file was never read: only the good file's event was taken.
    assert_eq!(checkpoints(&svc), 2, "{log:#?}");
}

/// Runs `cmd`, killing it if it takes longer than `secs`.
fn run_bounded(mut cmd: Command, secs: u64) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send(child.wait_with_output()).ok();
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status()
                .ok();
            panic!("{cmd:?} ran longer than {secs} s");
        }
    }
}

#[test]
fn awscurl_calls_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_demo(dir.path());
    let awscurl = vigil_testkit::python_tool("awscurl");
    let call = |key: &Key, extra: &[&str], url: &str| {
        let mut cmd = Command::new(&awscurl);
        cmd.args(["--service", "execute-api", "--region", "us-east-1"])
            .args(["--access_key", key.id, "--secret_key", key.secret])
            .args(extra)
            .arg(format!("http://{}{url}", svc.addr));
        let out = run_bounded(cmd, 60);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "awscurl {url}: {text} {err}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text} {err}"))
    };
    let m = call(&ANALYST, &[], "/api/v1/metrics");
    assert!(m["incidents_last_24h"].as_u64().unwrap() >= 8, "{m:?}");
    let page = call(
        &ANALYST,
        &[],
        "/api/v1/findings?severity=HIGH,CRITICAL&limit=3",
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page:?}");
    let incidents = call(&ANALYST, &[], "/api/v1/incidents?status=OPEN");
    let id = incidents["items"][0]["id"].as_str().unwrap().to_owned();
    let acked = call(
        &ADMIN,
        &["-X", "POST", "-d", r#"{"note":"seen from awscurl"}"#],
        &format!("/api/v1/incidents/{id}/acknowledge"),
    );
    assert_eq!(acked["status"], "ACKNOWLEDGED", "{acked:?}");
    // A wrong secret gets the AWS-style refusal.
    let wrong = Key {
        id: ANALYST.id,
        secret: "not-the-secret",
    };
    let mut cmd = Command::new(&awscurl);
    cmd.args(["--service", "execute-api", "--region", "us-east-1"])
        .args(["--access_key", wrong.id, "--secret_key", wrong.secret])
        .arg(format!("http://{}/api/v1/metrics", svc.addr));
    let out = run_bounded(cmd, 60);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() {
    let dir = tempfile::tempdir().unwrap();
    // Response on, so that its routes answer; AWS is a closed loopback port, so
    // the demo's triggered runs fail fast and nothing leaves the machine.
    let response = "[response]\nenabled = true\n[aws]\nendpoint_url = \"http://127.0.0.1:9\"\n";
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "example"),
    ];
    let svc = Service::start_env(dir.path(), &["--demo"], response, &creds);
    wait_for(60, "the demo's replay", || {
        svc.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("demo: replayed"))
    });
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-server/openapi.json");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python");
    let mut cmd = Command::new(vigil_testkit::python_tool("st"));
    cmd.arg("run")
        .arg(&doc)
        .args(["--url", &format!("http://{}", svc.addr)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "30", "--seed", "7", "--no-color"])
        .env("PYTHONPATH", &hooks)
        .env("SCHEMATHESIS_HOOKS", "vigil_sigv4_hooks")
        .env("VIGIL_ACCESS_KEY_ID", ADMIN.id)
        .env("VIGIL_SECRET_ACCESS_KEY", ADMIN.secret)
        .env("VIGIL_FIREHOSE_KEY", FIREHOSE_KEY)
        .current_dir(dir.path());
    let out = run_bounded(cmd, 420);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("passed"), "{text}");
    assert!(
        !text.contains("Authentication failed"),
        "requests went unsigned:\n{text}"
    );
}

#[test]
fn tls_serves_tls_1_3_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // `[api.tls]` is a sub-table of `[api]`, which the test configuration opens
    // before its keys; TOML allows a dotted table anywhere after.
    let svc = Service::start_with(
        dir.path(),
        &[],
        &format!("[api.tls]\ncert = {:?}\nkey = {:?}\n", cert, key),
    );
    assert!(svc
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("https://")));
    let curl = |extra: &[&str]| {
        let pq = "/api/v1/metrics";
        let (pq, headers) = signed(svc.addr, &ANALYST, "GET", pq, &[], b"", &Signing::default());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&cert)
            .args(extra);
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        cmd.arg(format!("https://{}{pq}", svc.addr));
        run_bounded(cmd, 60)
    };
    let out = curl(&["--tlsv1.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["compliance_score"], Value::Null);
    // TLS 1.2 is refused at the handshake.
    let old = curl(&["--tlsv1.2", "--tls-max", "1.2"]);
    assert!(!old.status.success(), "TLS 1.2 was accepted");
    // Plain HTTP to the TLS port gets no API answer.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{}/api/v1/metrics", svc.addr))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("compliance_score"));
}

/// The run `id` once it has left `IN_PROGRESS`.
fn settled_run(svc: &Service, id: &str) -> Value {
    let mut run = Value::Null;
    wait_for(60, "the run to settle", || {
        run = svc.get(&format!("/api/v1/remediations/{id}"));
        run["status"] != "IN_PROGRESS"
    });
    run
}

#[test]
fn findings_start_playbooks_and_responders_run_approve_and_reject_them() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_env(dir.path(), &[], "[response]\nenabled = true\n", &moto.env());

    // A root login triggers PB-006 (semi-automated): its run waits for approval
    // and the incident is being remediated.
    let body = serde_json::to_vec(&json!({"Records": [root_login("respond-1")]})).unwrap();
    let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &body);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let incident = svc.get("/api/v1/incidents")["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (The login had no MFA either: PB-014 may be started for it too.)
    let mut auto = Value::Null;
    wait_for(30, "the triggered run", || {
        let runs = svc.get(&format!("/api/v1/remediations?incident_id={incident}"));
        let found = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["playbook"] == "PB-006");
        auto = found.cloned().unwrap_or(Value::Null);
        auto["status"] == "AWAITING_APPROVAL"
    });
    assert_eq!(auto["requested_by"], "vigil:auto");
    let inc = svc.get(&format!("/api/v1/incidents/{incident}"));
    assert_eq!(inc["status"], "REMEDIATING", "{inc:?}");

    // An analyst may not start one.
    let ask = |playbook: &str, extra: Value| {
        let mut b = json!({"incident_id": incident, "playbook": playbook, "severity": "CRITICAL"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::to_vec(&b).unwrap()
    };
    let r = svc.call(
        &ANALYST,
        "POST",
        "/api/v1/remediate",
        &ask("PB-013", json!({})),
    );
    assert_eq!(r.status, 403, "{:?}", r.body);

    // A dry run: the calls, nothing started.
    let r = svc.call(
        &ADMIN,
        "POST",
        "/api/v1/remediate",
        &ask("PB-013", json!({"dry_run": true})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "DRY_RUN");
    assert_eq!(
        r.body["plan"]["steps"][0]["calls"],
        json!([
            "ec2:GetEbsEncryptionByDefault",
            "ec2:EnableEbsEncryptionByDefault"
        ])
    );

    // By hand: a full playbook runs to the end against the emulator.
    let r = svc.call(
        &ADMIN,
        "POST",
        "/api/v1/remediate",
        &ask("PB-013", json!({})),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "IN_PROGRESS");
    assert!(r.body["estimated_completion"].is_string(), "{:?}", r.body);
    let id = r.body["remediation_id"].as_str().unwrap().to_owned();
    let run = settled_run(&svc, &id);
    assert_eq!(run["status"], "SUCCEEDED", "{run:?}");
    let step = &run["steps"][0];
    assert_eq!(step["changed"], true, "{step:?}");
    assert_eq!(
        step["calls"],
        json!([
            "ec2:GetEbsEncryptionByDefault",
            "ec2:EnableEbsEncryptionByDefault"
        ])
    );
    assert!(step["started_at"].is_string() && step["ended_at"].is_string());
    // Again: AWS already holds the setting (read back through the SDK), so
    // nothing changes.
    let r = svc.call(
        &ADMIN,
        "POST",
        "/api/v1/remediate",
        &ask("PB-013", json!({})),
    );
    let again = settled_run(&svc, r.body["remediation_id"].as_str().unwrap());
    assert_eq!(again["steps"][0]["changed"], false, "{again:?}");

    // The triggered run is rejected; approving it afterwards is a conflict.
    let auto_id = auto["id"].as_str().unwrap();
    let r = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/remediations/{auto_id}/reject"),
        br#"{"note": "root use was the break-glass drill"}"#,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "REJECTED");
    let r = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/remediations/{auto_id}/approve"),
        b"",
    );
    assert_eq!(r.status, 409, "{:?}", r.body);

    // Every call and every step is on the audit log.
    let audit = svc.call(&ADMIN, "GET", "/api/v1/audit?limit=1000", b"");
    let entries = audit.body["items"].as_array().unwrap();
    let has = |principal: &str, action: &str| {
        entries.iter().any(|e| {
            e["principal"].as_str().unwrap_or("").starts_with(principal)
                && e["action"].as_str().unwrap_or("").starts_with(action)
        })
    };
    assert!(has("ana", "remediate"), "{entries:?}");
    assert!(has("adm", "remediation reject"));
    assert!(has("vigil:engine", "playbook step succeeded"));
    assert!(has("vigil:auto", "playbook PB-006 started"));
    // The playbooks are listed.
    let pbs = svc.get("/api/v1/playbooks");
    assert_eq!(pbs["items"].as_array().unwrap().len(), 15);
}

#[test]
fn vigil_playbooks_run_carries_a_playbook_out_from_the_command_line() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let finding = json!({
        "version": "1.0", "id": "3f0b2c1e-0000-5000-8000-0000000000aa",
        "detail-type": "Security Finding", "source": "com.security.platform",
        "account": "123456789012", "time": now_rfc3339(), "region": "eu-west-1", "resources": [],
        "detail": {
            "finding_id": "sec-cli-0001", "severity": "HIGH", "confidence": 80,
            "title": "EBS encryption by default turned off", "description": "d", "category": "PolicyViolation",
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": now_rfc3339(), "last_seen": now_rfc3339(),
            "remediation": {"playbook": "PB-013", "automated": true, "status": "PENDING"},
            "evidence": {"source_ip": "203.0.113.9", "user_agent": "x", "api_call": "DisableEbsEncryptionByDefault", "aws_region": "eu-west-1"},
            "count": 1, "rule": {"id": "r", "title": "r", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": null, "event_ids": ["e1"]
        }
    });
    let file = dir.path().join("finding.json");
    std::fs::write(&file, finding.to_string()).unwrap();
    let data = dir.path().join("data");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(["playbooks", "run", "--finding"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .envs(moto.env());
        run_bounded(cmd, 120)
    };
    let out = run(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["playbook"], "PB-013");
    assert_eq!(rec["status"], "SUCCEEDED");
    assert_eq!(rec["region"], "eu-west-1");
    assert_eq!(rec["steps"][0]["changed"], true);
    // Recorded in the store, on the audit chain, which still verifies.
    let verify = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A snapshot of account 111122223333 with one bucket, whose policy denies
/// requests without TLS or not.
fn compliance_snapshot(tls_only: bool) -> String {
    let policy = tls_only.then(|| {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::ledger", "arn:aws:s3:::ledger/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    });
    json!({
        "version": 1,
        "collected_at": now_rfc3339(),
        "collector": "test",
        "accounts": [{
            "account_id": "111122223333",
            "regions": ["us-east-1"],
            "s3": {"buckets": [{"name": "ledger", "region": "us-east-1", "policy": policy}]},
            "regional": {"us-east-1": {}}
        }]
    })
    .to_string()
}

fn control_status(body: &Value, id: &str) -> String {
    body["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control_id"] == id)
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Compliance in the service: assessed at start, served in the API's shape and
/// in the metrics, and reassessed within seconds of a CloudTrail event that
/// changes a bucket's policy; the control that went from PASS to FAIL raises a
/// PolicyViolation finding.
#[test]
fn a_bucket_policy_change_is_reassessed_and_raises_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("inventory.json");
    std::fs::write(&snapshot, compliance_snapshot(true)).unwrap();
    let svc = Service::start_with(
        dir.path(),
        &[],
        &format!(
            "[compliance]\nenabled = true\ninterval = \"1h\"\nsnapshot = {:?}\n",
            snapshot.display().to_string()
        ),
    );
    let mut first = Value::Null;
    wait_for(30, "the first assessment", || {
        let r = svc.call(&ANALYST, "GET", "/api/v1/compliance/cis", b"");
        first = r.body;
        r.status == 200
    });
    assert_eq!(first["framework"], "CIS");
    assert_eq!(control_status(&first, "2.1.1"), "PASS", "{first:#}");
    let score = first["score"].as_f64().unwrap();
    assert!((0.0..100.0).contains(&score), "{score}");
    // Failed controls carry what docs/service.md names.
    let failed = first["failed_controls"].as_array().unwrap();
    assert!(!failed.is_empty());
    for c in failed {
        for k in ["control_id", "description", "status", "remediation"] {
            assert!(c.get(k).is_some(), "{k} missing in {c}");
        }
    }
    assert!(
        failed.iter().any(|c| c["control_id"] == "3.1"),
        "no trail: 3.1 fails"
    );
    // Any case; the account's own view; the KPI.
    assert_eq!(svc.get("/api/v1/compliance/CiS")["score"], first["score"]);
    assert_eq!(
        svc.get("/api/v1/compliance/cis?account=111122223333")["scope"],
        "111122223333"
    );
    assert_eq!(
        svc.get("/api/v1/metrics")["compliance_score"],
        first["score"]
    );
    let listed = svc.get("/api/v1/compliance");
    assert_eq!(listed["frameworks"][0]["framework"], "CIS");
    let none = svc.call(&ANALYST, "GET", "/api/v1/compliance/sox", b"");
    assert_eq!(none.status, 404, "{:?}", none.body);

    // The policy is deleted; CloudTrail says so.
    std::fs::write(&snapshot, compliance_snapshot(false)).unwrap();
    let event = json!({
        "eventVersion": "1.08", "eventTime": now_rfc3339(), "eventSource": "s3.amazonaws.com",
        "eventName": "DeleteBucketPolicy", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/2", "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333", "eventID": "policy-deleted-1",
        "requestParameters": {"bucketName": "ledger"}, "responseElements": null,
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                         "arn": "arn:aws:iam::111122223333:user/ops", "accountId": "111122223333",
                         "userName": "ops"}
    });
    let posted = Instant::now();
    let body = serde_json::to_vec(&json!({"Records": [event]})).unwrap();
    let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &body);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut now_body = Value::Null;
    wait_for(10, "the reassessment", || {
        now_body = svc.get("/api/v1/compliance/cis");
        control_status(&now_body, "2.1.1") == "FAIL"
    });
    eprintln!("event posted to control FAIL: {:?}", posted.elapsed());
    assert!(now_body["score"].as_f64().unwrap() < score);
    let history = svc.get("/api/v1/compliance/cis?history=10");
    assert_eq!(history["history"].as_array().unwrap().len(), 2);

    let mut regression = Value::Null;
    wait_for(10, "the regression finding", || {
        let list = svc.get("/api/v1/findings?category=PolicyViolation");
        regression = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["detail"]["rule"]["id"] == "vigil-compliance-cis-2.1.1")
            .cloned()
            .unwrap_or(Value::Null);
        !regression.is_null()
    });
    assert_eq!(regression["account"], "111122223333");
    assert_eq!(regression["detail"]["resource_arn"], "arn:aws:s3:::ledger");
    assert_eq!(regression["detail"]["detection_source"], "vigil-compliance");
}
