//! Shared by the moto tests: a moto_server on a free loopback port, stopped when
//! dropped, and an `Aws` pointed at it.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use vigil_aws::{Aws, AwsSettings};

/// moto's default account: what its emulator treats static test keys as.
pub const HOME: &str = "123456789012";

/// A moto_server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn moto_server() -> PathBuf {
    let dir = std::env::var("VIGIL_PY_BIN").unwrap_or_else(|_| {
        panic!("VIGIL_PY_BIN is not set: run scripts/test, which installs moto_server")
    });
    let p = Path::new(&dir).join("moto_server");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test, which installs it",
        p.display()
    );
    p
}

pub fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let until = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "moto_server did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

pub fn test_credentials() -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "test",
    )
}

pub async fn aws(moto: &Moto, role: Option<&str>) -> Aws {
    Aws::new(AwsSettings {
        endpoint_url: Some(moto.url.clone()),
        response_role: role.map(str::to_owned),
        external_id: role.map(|_| "vigil-test-external-id".to_owned()),
        home_account: Some(HOME.into()),
        home_region: None,
        credentials: Some(test_credentials()),
    })
    .await
}
