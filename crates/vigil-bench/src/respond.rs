//! `vigil-bench respond`: how long from the telemetry that shows a compromise to
//! the playbook that answers it having finished, for every full-automation
//! playbook, as deployed: the release `vigil serve` with response on, calling a
//! moto_server (the AWS emulator) on loopback. Each round seeds the emulated account
//! with the compromise or misconfiguration through the SDK (a new user, key,
//! policy, trail, security group, KMS key, snapshot… so that each round raises a new
//! finding in a new incident), posts the CloudTrail records (or the GuardDuty
//! finding) that show it to `/api/v1/ingest`, and polls `/api/v1/remediations`
//! until the run it started has ended. A round counts only if its run SUCCEEDED
//! and changed something. Times come from the run's own stored timestamps against
//! the bench's clock at the moment it sent the post (same machine), so the polling
//! interval does not enter them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_credential_types::Credentials;
use serde_json::{json, Value};

use crate::api::{connect, exchange, iso, now_ms, percentile, signed_request, start_with};

pub struct Spec {
    pub dir: PathBuf,
    pub vigil: PathBuf,
    pub moto: PathBuf,
    pub rounds: u64,
}

/// moto's account, which it gives any static test key.
const ACCOUNT: &str = "123456789012";
/// Regional resources live outside the home region, as in a real estate.
const REGION: &str = "eu-west-1";
pub(crate) const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The playbooks whose automation is `full`.
const PLAYBOOKS: [&str; 10] = [
    "PB-001", "PB-002", "PB-004", "PB-007", "PB-008", "PB-009", "PB-010", "PB-011", "PB-012",
    "PB-013",
];

pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub(crate) fn start_moto(path: &Path) -> Result<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(path)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!("moto_server did not listen within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

/// A client of SDK crate `$sdk` for the emulator in `$region`.
macro_rules! client {
    ($sdk:ident, $url:expr, $region:expr) => {{
        let conf = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new($region))
            .endpoint_url($url)
            .http_client(vigil_aws::http_client())
            .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "bench"))
            .build();
        $sdk::Client::from_conf(conf)
    }};
}

/// What seeds the emulated account, and what it made once for every round.
struct Seeder {
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
    trails: aws_sdk_cloudtrail::Client,
    guardduty: aws_sdk_guardduty::Client,
    kms: aws_sdk_kms::Client,
    image: String,
    detector: String,
}

/// `?` for SDK results, naming the call.
macro_rules! seed {
    ($what:expr, $call:expr) => {
        $call.await.map_err(|e| {
            anyhow!(
                "seeding moto: {}: {}",
                $what,
                aws_sdk_iam::error::DisplayErrorContext(&e)
            )
        })?
    };
}

impl Seeder {
    async fn new(url: &str) -> Result<Seeder> {
        let ec2 = client!(aws_sdk_ec2, url, REGION);
        let images = seed!("DescribeImages", ec2.describe_images().send());
        let image = images
            .images()
            .first()
            .and_then(|i| i.image_id())
            .ok_or_else(|| anyhow!("moto lists no image"))?
            .to_owned();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new(REGION))
                .endpoint_url(url)
                .force_path_style(true)
                .http_client(vigil_aws::http_client())
                .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "bench"))
                .build(),
        );
        seed!(
            "CreateBucket",
            s3.create_bucket()
                .bucket("bench-trail-logs")
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
        );
        let guardduty = client!(aws_sdk_guardduty, url, REGION);
        let d = seed!(
            "CreateDetector",
            guardduty.create_detector().enable(true).send()
        );
        let detector = d
            .detector_id()
            .ok_or_else(|| anyhow!("no detector id"))?
            .to_owned();
        Ok(Seeder {
            iam: client!(aws_sdk_iam, url, "us-east-1"),
            ec2,
            trails: client!(aws_sdk_cloudtrail, url, REGION),
            guardduty,
            kms: client!(aws_sdk_kms, url, REGION),
            image,
            detector,
        })
    }

    async fn user_with_key(&self, user: &str) -> Result<String> {
        seed!("CreateUser", self.iam.create_user().user_name(user).send());
        let key = seed!(
            "CreateAccessKey",
            self.iam.create_access_key().user_name(user).send()
        );
        key.access_key()
            .map(|k| k.access_key_id().to_owned())
            .ok_or_else(|| anyhow!("no access key"))
    }

    /// Seeds the compromise `playbook` answers, new for `tag`, and returns the
    /// body to post that shows it.
    async fn seed(&self, playbook: &str, tag: &str) -> Result<Value> {
        let user = format!("bench-{}-{tag}", &playbook[3..]);
        let now = now_ms();
        let call = |source: &str, name: &str, key: &str, request: Value| {
            cloudtrail(now, tag, source, name, &user, key, request)
        };
        let key = "AKIABENCHNOKEY000000";
        Ok(match playbook {
            "PB-001" => {
                let key = self.user_with_key(&user).await?;
                let records: Vec<Value> = (0..10)
                    .map(|n| {
                        let mut r = call("s3.amazonaws.com", "ListBuckets", &key, json!({}));
                        r["eventID"] = json!(format!("bench-{tag}-{n}"));
                        r["errorCode"] = json!("AccessDenied");
                        r["errorMessage"] = json!("Access Denied");
                        r
                    })
                    .collect();
                json!({ "Records": records })
            }
            "PB-002" => {
                let out = seed!(
                    "RunInstances",
                    self.ec2
                        .run_instances()
                        .image_id(&self.image)
                        .min_count(1)
                        .max_count(1)
                        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                        .send()
                );
                let instance = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .ok_or_else(|| anyhow!("no instance"))?;
                guardduty_crypto(now, tag, instance)
            }
            "PB-004" => {
                let doc = |action: &str| {
                    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
                        .to_string()
                };
                let p = seed!(
                    "CreatePolicy",
                    self.iam
                        .create_policy()
                        .policy_name(&user)
                        .policy_document(doc("s3:GetObject"))
                        .send()
                );
                let arn = p
                    .policy()
                    .and_then(|p| p.arn())
                    .ok_or_else(|| anyhow!("no policy arn"))?
                    .to_owned();
                seed!(
                    "CreatePolicyVersion",
                    self.iam
                        .create_policy_version()
                        .policy_arn(&arn)
                        .policy_document(doc("*"))
                        .set_as_default(true)
                        .send()
                );
                let r = call(
                    "iam.amazonaws.com",
                    "CreatePolicyVersion",
                    key,
                    json!({"policyArn": arn, "policyDocument": doc("*"), "setAsDefault": true}),
                );
                json!({ "Records": [r] })
            }
            "PB-007" => {
                let t = seed!(
                    "CreateTrail",
                    self.trails
                        .create_trail()
                        .name(&user)
                        .s3_bucket_name("bench-trail-logs")
                        .send()
                );
                let arn = t.trail_arn().ok_or_else(|| anyhow!("no trail arn"))?;
                seed!(
                    "StartLogging",
                    self.trails.start_logging().name(&user).send()
                );
                seed!("StopLogging", self.trails.stop_logging().name(&user).send());
                let r = call(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    key,
                    json!({ "name": arn }),
                );
                json!({ "Records": [r] })
            }
            "PB-008" => {
                let g = seed!(
                    "CreateSecurityGroup",
                    self.ec2
                        .create_security_group()
                        .group_name(&user)
                        .description("bench admin ports")
                        .send()
                );
                let group = g.group_id().ok_or_else(|| anyhow!("no group id"))?;
                seed!(
                    "AuthorizeSecurityGroupIngress",
                    self.ec2
                        .authorize_security_group_ingress()
                        .group_id(group)
                        .ip_permissions(
                            aws_sdk_ec2::types::IpPermission::builder()
                                .ip_protocol("tcp")
                                .from_port(22)
                                .to_port(22)
                                .ip_ranges(
                                    aws_sdk_ec2::types::IpRange::builder()
                                        .cidr_ip("0.0.0.0/0")
                                        .build(),
                                )
                                .build(),
                        )
                        .send()
                );
                let r = call(
                    "ec2.amazonaws.com",
                    "AuthorizeSecurityGroupIngress",
                    key,
                    json!({"groupId": group, "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}),
                );
                json!({ "Records": [r] })
            }
            "PB-009" => {
                let key = self.user_with_key(&user).await?;
                let mut r = call("iam.amazonaws.com", "ListUsers", &key, json!({}));
                r["userAgent"] = json!("TruffleHog");
                json!({ "Records": [r] })
            }
            "PB-010" => {
                seed!(
                    "UpdateDetector",
                    self.guardduty
                        .update_detector()
                        .detector_id(&self.detector)
                        .enable(false)
                        .send()
                );
                let r = call(
                    "guardduty.amazonaws.com",
                    "UpdateDetector",
                    key,
                    json!({"detectorId": self.detector, "enable": false}),
                );
                json!({ "Records": [r] })
            }
            "PB-011" => {
                let k = seed!("CreateKey", self.kms.create_key().send());
                let id = k
                    .key_metadata()
                    .map(|m| m.key_id().to_owned())
                    .ok_or_else(|| anyhow!("no key id"))?;
                seed!(
                    "ScheduleKeyDeletion",
                    self.kms
                        .schedule_key_deletion()
                        .key_id(&id)
                        .pending_window_in_days(7)
                        .send()
                );
                let r = call(
                    "kms.amazonaws.com",
                    "ScheduleKeyDeletion",
                    key,
                    json!({"keyId": id, "pendingWindowInDays": 7}),
                );
                json!({ "Records": [r] })
            }
            "PB-012" => {
                let v = seed!(
                    "CreateVolume",
                    self.ec2
                        .create_volume()
                        .availability_zone(format!("{REGION}a"))
                        .size(1)
                        .send()
                );
                let volume = v.volume_id().ok_or_else(|| anyhow!("no volume id"))?;
                let s = seed!(
                    "CreateSnapshot",
                    self.ec2.create_snapshot().volume_id(volume).send()
                );
                let snapshot = s.snapshot_id().ok_or_else(|| anyhow!("no snapshot id"))?;
                seed!(
                    "ModifySnapshotAttribute",
                    self.ec2
                        .modify_snapshot_attribute()
                        .snapshot_id(snapshot)
                        .attribute(
                            aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission
                        )
                        .operation_type(aws_sdk_ec2::types::OperationType::Add)
                        .group_names("all")
                        .send()
                );
                let r = call(
                    "ec2.amazonaws.com",
                    "ModifySnapshotAttribute",
                    key,
                    json!({"snapshotId": snapshot, "attributeType": "CREATE_VOLUME_PERMISSION",
                        "createVolumePermission": {"add": {"items": [{"group": "all"}]}}}),
                );
                json!({ "Records": [r] })
            }
            "PB-013" => {
                seed!(
                    "DisableEbsEncryptionByDefault",
                    self.ec2.disable_ebs_encryption_by_default().send()
                );
                let r = call(
                    "ec2.amazonaws.com",
                    "DisableEbsEncryptionByDefault",
                    key,
                    json!({"DisableEbsEncryptionByDefaultRequest": ""}),
                );
                json!({ "Records": [r] })
            }
            other => bail!("no seeding for {other}"),
        })
    }
}

/// A CloudTrail record of IAM user `user` (key `key`) making call `name`.
fn cloudtrail(
    now: i64,
    tag: &str,
    source: &str,
    name: &str,
    user: &str,
    key: &str,
    request: Value,
) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": iso(now), "eventSource": source, "eventName": name,
        "awsRegion": REGION, "sourceIPAddress": "203.0.113.66", "userAgent": "aws-cli/2.15.0",
        "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT, "eventID": format!("bench-{tag}"),
        "requestParameters": request,
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{}", user.len()),
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"), "accountId": ACCOUNT,
            "accessKeyId": key, "userName": user}
    })
}

/// A GuardDuty finding of an instance querying a mining pool's domain.
fn guardduty_crypto(now: i64, tag: &str, instance: &str) -> Value {
    let id = format!("bench-gd-{tag}");
    json!({
        "schemaVersion": "2.0", "accountId": ACCOUNT, "region": REGION, "partition": "aws", "id": id,
        "arn": format!("arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/bench/finding/{id}"),
        "type": "CryptoCurrency:EC2/BitcoinTool.B!DNS",
        "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": instance, "instanceType": "t3.micro"}},
        "service": {"serviceName": "guardduty", "detectorId": "bench", "count": 1, "archived": false,
            "action": {"actionType": "DNS_REQUEST", "dnsRequestAction": {"domain": "xmr.pool.minergate.com"}},
            "eventFirstSeen": iso(now), "eventLastSeen": iso(now)},
        "severity": 8, "createdAt": iso(now), "updatedAt": iso(now),
        "title": "Bitcoin-related domain queried", "description": "An EC2 instance is querying a domain name associated with Bitcoin mining."
    })
}

/// One round's times, in milliseconds.
struct Times {
    /// Post sent → run finished: telemetry to response done.
    total: f64,
    /// Post sent → run created: ingest, detection, the trigger.
    to_start: f64,
    /// Run created → finished: the AWS calls.
    run: f64,
}

fn ms_of(v: &Value, field: &str) -> Result<i64> {
    let s = v[field]
        .as_str()
        .ok_or_else(|| anyhow!("run has no {field}: {v}"))?;
    Ok(vigil_model::Timestamp::parse(s)?.as_millis())
}

fn terminal(status: &str) -> bool {
    !matches!(status, "IN_PROGRESS" | "ROLLING_BACK")
}

pub fn run(spec: &Spec) -> Result<()> {
    let moto = start_moto(&spec.moto)?;
    let data_dir = spec.dir.join("respond-store");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    std::fs::create_dir_all(&data_dir)?;
    let svc = start_with(
        &spec.vigil,
        &spec.dir,
        &data_dir,
        "[response]\nenabled = true\n",
        &[
            ("VIGIL_AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "us-east-1"),
        ],
    )?;
    let addr = svc.addr.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let seeder = Seeder::new(&moto.url).await?;
        let mut conn = connect(&addr).await?;
        let mut seen: HashSet<String> = HashSet::new();
        println!(
            "\nfinding to playbook completed: release vigil serve with response on, moto_server 5.2.5 on loopback, {} round(s) per playbook after one warm-up, one at a time\n",
            spec.rounds
        );
        println!("| playbook | runs | p50 ms | p99 ms | max ms | of which before the run starts, p50 ms | the run itself, p50 ms | warm-up ms |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut all = Vec::new();
        let batch = now_ms();
        for playbook in PLAYBOOKS {
            let mut times = Vec::new();
            let mut warm = 0.0;
            for round in 0..=spec.rounds {
                let tag = format!("{batch}-{round}");
                let body = seeder.seed(playbook, &tag).await?.to_string();
                let t = one(&mut conn, &addr, playbook, body.as_bytes(), &mut seen)
                    .await
                    .with_context(|| format!("{playbook}, round {round}"))?;
                if round == 0 {
                    warm = t.total;
                } else {
                    times.push(t);
                }
            }
            let mut total: Vec<Duration> = times.iter().map(|t| dur(t.total)).collect();
            let mut start: Vec<Duration> = times.iter().map(|t| dur(t.to_start)).collect();
            let mut run: Vec<Duration> = times.iter().map(|t| dur(t.run)).collect();
            total.sort();
            start.sort();
            run.sort();
            println!(
                "| {playbook} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {warm:.0} |",
                total.len(),
                percentile(&total, 0.5),
                percentile(&total, 0.99),
                percentile(&total, 1.0),
                percentile(&start, 0.5),
                percentile(&run, 0.5),
            );
            all.extend(total);
        }
        all.sort();
        println!(
            "| all | {} | {:.0} | {:.0} | {:.0} | | | |",
            all.len(),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0)
        );
        anyhow::Ok(())
    })?;
    drop(svc);
    drop(moto);
    Ok(())
}

fn dur(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// Posts `body`, waits for the `playbook` run it starts to end, and checks that it
/// succeeded and changed something.
async fn one(
    conn: &mut tokio::io::BufStream<tokio::net::TcpStream>,
    addr: &str,
    playbook: &str,
    body: &[u8],
    seen: &mut HashSet<String>,
) -> Result<Times> {
    let post = signed_request(addr, "POST", "/api/v1/ingest", body)?;
    let sent = now_ms();
    let (status, reply) = exchange(conn, &post).await?;
    if status != 200 {
        bail!("ingest: {status}: {}", String::from_utf8_lossy(&reply));
    }
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let list = signed_request(addr, "GET", "/api/v1/remediations?limit=5", b"")?;
        let (status, page) = exchange(conn, &list).await?;
        if status != 200 {
            bail!("remediations: {status}: {}", String::from_utf8_lossy(&page));
        }
        let page: Value = serde_json::from_slice(&page)?;
        let new: Vec<&Value> = page["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let ours: Vec<&Value> = new
            .into_iter()
            .filter(|r| r["playbook"] == playbook)
            .filter(|r| r["id"].as_str().is_some_and(|id| !seen.contains(id)))
            .collect();
        if !ours.is_empty()
            && ours
                .iter()
                .all(|r| r["status"].as_str().is_some_and(terminal))
        {
            let mut times = None;
            for r in ours {
                seen.insert(r["id"].as_str().unwrap_or_default().to_owned());
                if r["status"] != "SUCCEEDED" {
                    bail!("the run did not succeed: {r}");
                }
                let changed = r["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["changed"] == true));
                if !changed {
                    bail!("the run changed nothing: {r}");
                }
                let (created, finished) = (ms_of(r, "created_at")?, ms_of(r, "finished_at")?);
                times = Some(Times {
                    total: (finished - sent) as f64,
                    to_start: (created - sent) as f64,
                    run: (finished - created) as f64,
                });
            }
            return times.ok_or_else(|| anyhow!("no run"));
        }
        if Instant::now() > until {
            bail!("no {playbook} run ended within 60 s of the post: {page}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
