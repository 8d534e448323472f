//! Shared by the moto tests: a moto_server on a free loopback port, stopped when
//! dropped, and an `Aws` pointed at it.

#![allow(dead_code, unused_macros, unused_imports)]

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
    vigil_testkit::python_tool("moto_server")
}

pub fn start_moto() -> Moto {
    start_moto_with(&[])
}

/// A moto_server with settings of its own (`MOTO_IAM_LOAD_MANAGED_POLICIES`…).
pub fn start_moto_with(env: &[(&str, &str)]) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .envs(env.iter().copied())
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

/// A client of SDK crate `$sdk` for seeding and reading back the emulator, in
/// `$region`, with the home account's credentials (or those given).
macro_rules! sdk {
    ($sdk:ident, $moto:expr, $region:expr) => {
        sdk!($sdk, $moto, $region, $crate::moto::test_credentials())
    };
    ($sdk:ident, $moto:expr, $region:expr, $creds:expr) => {{
        let conf = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new($region))
            .endpoint_url(&$moto.url)
            .http_client(vigil_aws::http_client())
            .credentials_provider($creds)
            .build();
        $sdk::Client::from_conf(conf)
    }};
}
pub(crate) use sdk;

/// An S3 client for the emulator (buckets in the path: its host has no bucket
/// subdomains).
pub fn s3(moto: &Moto, region: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(region.to_owned()))
        .endpoint_url(&moto.url)
        .force_path_style(true)
        .http_client(vigil_aws::http_client())
        .credentials_provider(test_credentials())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn user_with_key(iam: &aws_sdk_iam::Client, user: &str) -> String {
    iam.create_user().user_name(user).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    key.access_key().unwrap().access_key_id().to_owned()
}

pub async fn key_status(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key: &str,
) -> aws_sdk_iam::types::StatusType {
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    keys.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status().cloned())
        .unwrap()
}

/// A running instance of one of moto's images.
pub async fn launch(ec2: &aws_sdk_ec2::Client) -> aws_sdk_ec2::types::Instance {
    let images = ec2.describe_images().send().await.unwrap();
    let image = images.images()[0].image_id().unwrap().to_owned();
    let out = ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .send()
        .await
        .unwrap();
    out.instances()[0].clone()
}

pub async fn described(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}
