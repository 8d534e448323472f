//! `vigil serve` started as a user starts it, for the tests that need it
//! running: the real binary on a free loopback port, its address read from its
//! log; and moto_server, the AWS emulator `scripts/test` installs.

#![allow(dead_code)]

#[path = "../../../vigil-server/tests/support/mod.rs"]
pub mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{raw_call, signed, Key, Reply, Signing};

pub const ANALYST: Key = Key {
    id: "AKIATESTANALYST0001",
    secret: "test-analyst-secret-000000000000000000001",
};
pub const ADMIN: Key = Key {
    id: "AKIATESTADMIN000001",
    secret: "test-admin-secret-0000000000000000000001",
};
pub const FORWARDER: Key = Key {
    id: "AKIATESTFORWARDER01",
    secret: "test-forwarder-secret-000000000000000001",
};
pub const FIREHOSE_KEY: &str = "test-firehose-key-0123456789";

pub fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("vigil.toml");
    let text = format!(
        r#"[[sources]]
type = "inbox"
poll = "50ms"
[[sources]]
type = "http"
[api]
firehose_access_keys = ["{FIREHOSE_KEY}"]
[[api.keys]]
access_key_id = "{}"
secret_access_key = "{}"
principal = "ana"
role = "analyst"
[[api.keys]]
access_key_id = "{}"
secret_access_key = "{}"
principal = "adm"
role = "admin"
[[api.keys]]
access_key_id = "{}"
secret_access_key = "{}"
principal = "fwd"
role = "ingest"
[[accounts]]
id = "111122223333"
name = "payments-prod"
environment = "production"
owner = "payments"
"#,
        ANALYST.id, ANALYST.secret, ADMIN.id, ADMIN.secret, FORWARDER.id, FORWARDER.secret
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `vigil serve`; killed (and waited for) when dropped.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn start(dir: &Path, extra: &[&str]) -> Service {
        Service::start_with(dir, extra, "")
    }

    /// Started with `more` appended to the test configuration.
    pub fn start_with(dir: &Path, extra: &[&str], more: &str) -> Service {
        Service::start_env(dir, extra, more, &[])
    }

    /// Started with `more` appended to the configuration and `envs` set.
    pub fn start_env(dir: &Path, extra: &[&str], more: &str, envs: &[(&str, &str)]) -> Service {
        let config = write_config(dir);
        if !more.is_empty() {
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(more);
            std::fs::write(&config, text).unwrap();
        }
        let data = dir.join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // `… INFO vigil::serve: listening on http://ADDR` in the text log.
                let bound = line
                    .split_once("listening on http://")
                    .or_else(|| line.split_once("listening on https://"))
                    .map(|(_, a)| a.trim().parse::<SocketAddr>().unwrap());
                // Logged before the address is handed over, so that a test
                // that has the address also sees the line.
                sink.lock().unwrap().push(line);
                if let Some(a) = bound {
                    tx.send(a).ok();
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("vigil serve did not start: {:?}", log.lock().unwrap()));
        Service { child, addr, log }
    }

    /// Started with `--demo`, once the demo has been replayed.
    pub fn start_demo(dir: &Path) -> Service {
        let svc = Service::start(dir, &["--demo"]);
        wait_for(60, "the demo's replay", || {
            svc.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("demo: replayed"))
        });
        svc
    }

    pub fn call(&self, key: &Key, method: &str, pq: &str, body: &[u8]) -> Reply {
        let (pq, headers) = signed(self.addr, key, method, pq, &[], body, &Signing::default());
        raw_call(self.addr, method, &pq, &headers, body)
    }

    pub fn get(&self, pq: &str) -> Value {
        let r = self.call(&ANALYST, "GET", pq, b"");
        assert_eq!(r.status, 200, "{pq}: {:?}", r.body);
        r.body
    }

    /// Every finding's id and count, through the paged listing.
    pub fn finding_ids(&self) -> Vec<(String, u64)> {
        let mut ids = Vec::new();
        let mut pq = "/api/v1/findings?limit=1000".to_owned();
        for _ in 0..1000 {
            let page = self.get(&pq);
            for f in page["items"].as_array().unwrap() {
                let count = f["detail"]["count"].as_u64().unwrap();
                ids.push((f["id"].as_str().unwrap().to_owned(), count));
            }
            match page["next_cursor"].as_str() {
                Some(c) => pq = format!("/api/v1/findings?limit=1000&cursor={c}"),
                None => return ids,
            }
        }
        panic!("the findings listing does not end");
    }

    /// SIGTERM, and the exit status once it has stopped.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("vigil serve did not stop on SIGTERM");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Polls `ready` every 20 ms for up to `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A moto_server (the AWS emulator `scripts/test` installs) on a free loopback
/// port, stopped when dropped.
pub struct Moto {
    pub child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(vigil_testkit::python_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for(60, "moto_server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    /// An SDK configuration for the tests' own calls to it (setting up what
    /// Vigil then reads), with moto's test credentials.
    pub fn sdk_config(&self, rt: &tokio::runtime::Runtime) -> vigil_aws::SdkConfig {
        rt.block_on(vigil_aws::sdk_config(&vigil_aws::AwsSettings {
            endpoint_url: Some(self.url.clone()),
            home_region: Some("us-east-1".into()),
            credentials: Some(aws_credential_types::Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            )),
            ..Default::default()
        }))
    }

    /// What `vigil` needs to call it: the endpoint and moto's test credentials.
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("VIGIL_AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_REGION", "us-east-1"),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Now, in whole seconds, as CloudTrail writes times.
pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Whole seconds, as CloudTrail writes them.
    vigil_model::Timestamp::from_secs(ms / 1000).to_string()
}

/// A root console sign-in without MFA (PB-006 answers it).
pub fn root_login(event_id: &str) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": now_rfc3339(), "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
        "userAgent": "Mozilla/5.0", "eventType": "AwsConsoleSignIn", "recipientAccountId": "111122223333",
        "eventID": event_id, "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MFAUsed": "No"},
        "userIdentity": {"type": "Root", "principalId": "111122223333",
                         "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}
    })
}
