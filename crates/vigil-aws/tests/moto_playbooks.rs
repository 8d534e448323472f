//! Every built-in playbook, end to end against moto_server: each test seeds the
//! emulated account with the compromise or misconfiguration, files the finding
//! (which opens an incident), runs the playbook through the engine — approving it
//! where it waits — and reads the changed AWS state back through the SDK. Then the
//! engine's promises: a dry run changes nothing, a gate holds until approved (and
//! a rejection changes nothing), production gates destructive steps, a transient
//! failure is retried, a missing resource fails cleanly, a failure rolls back,
//! two accounts are reached through AssumeRole, and a crash mid-run resumes
//! without running any step twice.

mod moto;
#[path = "../../vigil-respond/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{merge, now};

use aws_credential_types::Credentials;
use aws_sdk_iam::types::StatusType;
use moto::{
    described, key_status, launch as instance, s3, sdk, start_moto, test_credentials,
    user_with_key, Moto, HOME,
};
use serde_json::{json, Value};
use vigil_aws::{ActionError, Aws};
use vigil_detect::Finding;
use vigil_model::{Account, AccountRegistry, Environment};
use vigil_respond::exec::{ActionFuture, Executor};
use vigil_respond::{plan, Context, Engine, EngineConfig, Library, RunStatus, Start};
use vigil_store::{Grouping, IncidentStatus, RunRecord, SharedStore, Store};

const REGION: &str = "eu-west-1";

/// What a test injects between the engine and AWS.
#[derive(Clone)]
enum Fault {
    /// The action's first call fails as throttled, before reaching AWS.
    Throttle(&'static str),
    /// Every call of the action is refused, as if the response role lacked it.
    Deny(&'static str),
    /// The action's first call reaches AWS, then the process "dies": the call
    /// never returns.
    HangAfter(&'static str),
}

/// The real executor (`Aws` against moto), with faults injected and calls counted.
struct Faulty {
    aws: Aws,
    faults: Mutex<Vec<Fault>>,
    calls: Mutex<Vec<String>>,
    /// Told when an injected hang begins.
    hung: tokio::sync::Notify,
}

impl Faulty {
    async fn new(moto: &Moto, role: Option<&str>, faults: Vec<Fault>) -> Arc<Faulty> {
        Arc::new(Faulty {
            aws: moto::aws(moto, role).await,
            faults: Mutex::new(faults),
            calls: Mutex::new(Vec::new()),
            hung: tokio::sync::Notify::new(),
        })
    }

    fn calls_of(&self, action: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == action)
            .count()
    }
}

impl Executor for Faulty {
    fn execute<'a>(
        &'a self,
        name: &'a str,
        params: &'a Value,
        account: Option<&'a str>,
        region: Option<&'a str>,
    ) -> ActionFuture<'a> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(name.to_owned());
            let fault = {
                let mut faults = self.faults.lock().unwrap();
                let i = faults.iter().position(|f| match f {
                    Fault::Throttle(a) | Fault::Deny(a) | Fault::HangAfter(a) => *a == name,
                });
                match i.map(|i| faults[i].clone()) {
                    // A denial stays; the others happen once.
                    Some(f @ Fault::Deny(_)) => Some(f),
                    Some(f) => {
                        faults.retain(|g| !matches!((g, &f), (Fault::Throttle(a), Fault::Throttle(b)) | (Fault::HangAfter(a), Fault::HangAfter(b)) if a == b));
                        Some(f)
                    }
                    None => None,
                }
            };
            let op = name.to_owned();
            match fault {
                Some(Fault::Throttle(_)) => Err(ActionError::Transient {
                    op,
                    message: "ThrottlingException: Rate exceeded".into(),
                }),
                Some(Fault::Deny(_)) => Err(ActionError::Denied {
                    op,
                    message: "AccessDenied: not allowed".into(),
                }),
                Some(Fault::HangAfter(_)) => {
                    let _ = self.aws.run(name, params, account, region).await;
                    self.hung.notify_one();
                    std::future::pending().await
                }
                None => self.aws.run(name, params, account, region).await,
            }
        })
    }
}

/// moto, a store, and an engine over them.
struct Bed {
    moto: Moto,
    store: SharedStore,
    exec: Arc<Faulty>,
    engine: Engine,
}

async fn bed() -> Bed {
    bed_with(start_moto(), None, Vec::new(), AccountRegistry::default()).await
}

async fn bed_with(
    moto: Moto,
    role: Option<&str>,
    faults: Vec<Fault>,
    accounts: AccountRegistry,
) -> Bed {
    let grouping = Grouping {
        accounts,
        ..Grouping::default()
    };
    let store = SharedStore::new(Store::in_memory(grouping).unwrap());
    let exec = Faulty::new(&moto, role, faults).await;
    let engine = new_engine(&store, &exec);
    Bed {
        moto,
        store,
        exec,
        engine,
    }
}

fn new_engine(store: &SharedStore, exec: &Arc<Faulty>) -> Engine {
    Engine::new(
        store.clone(),
        Arc::clone(exec) as Arc<dyn Executor>,
        Arc::new(Library::load(None).unwrap()),
        EngineConfig::default(),
    )
}

/// A finding in the home account and `REGION`, with `v` merged over it.
fn finding(playbook: &str, v: Value) -> Finding {
    support::finding(HOME, REGION, playbook, v)
}

impl Bed {
    /// Files `f` (opening its incident) and makes a run of `playbook` for it.
    async fn start(&self, playbook: &str, f: &Finding) -> RunRecord {
        let incident = {
            let mut s = self.store.lock();
            s.record_findings(std::slice::from_ref(f), now()).unwrap();
            s.incident_of(&f.id).unwrap()
        };
        self.engine
            .create(Start {
                playbook: playbook.into(),
                finding: f.clone(),
                incident: None,
                incident_id: incident,
                requested_by: "test".into(),
            })
            .await
            .unwrap()
    }

    fn run(&self, id: &str) -> RunRecord {
        self.store.lock().run(id).unwrap().unwrap()
    }

    fn incident_status(&self, run: &RunRecord) -> IncidentStatus {
        let s = self.store.lock();
        let id = run.incident_id.as_deref().unwrap();
        s.incident(id).unwrap().unwrap().incident.status
    }

    /// Runs `playbook` for `f` to its end, approving each gate as a responder
    /// would; the run, which must have succeeded.
    async fn remediate(&self, playbook: &str, f: &Finding) -> RunRecord {
        let run = self.start(playbook, f).await;
        for _ in 0..10 {
            match self.engine.drive(&run.id).await.unwrap() {
                RunStatus::AwaitingApproval => {
                    self.engine.approve(&run.id, "alice").await.unwrap();
                }
                _ => break,
            }
        }
        let done = self.run(&run.id);
        assert_eq!(done.status.as_str(), "SUCCEEDED", "{}", describe(&done));
        assert_eq!(self.incident_status(&done), IncidentStatus::Resolved);
        done
    }
}

/// A run's steps, for assertion messages.
fn describe(run: &RunRecord) -> String {
    let mut out = format!("run {} {} ({:?})\n", run.id, run.status, run.note);
    for s in &run.steps {
        out += &format!(
            "  {} {} {} {} attempts={} calls={:?} error={:?}\n",
            s.phase, s.step_id, s.action, s.status, s.attempts, s.calls, s.error
        );
    }
    out
}

fn step<'a>(run: &'a RunRecord, id: &str) -> &'a vigil_store::StepRecord {
    run.steps
        .iter()
        .find(|s| s.step_id == id && s.phase.as_str() == "step")
        .unwrap_or_else(|| panic!("no step {id}: {}", describe(run)))
}

// --- seeding helpers -------------------------------------------------------

async fn inline_policies(iam: &aws_sdk_iam::Client, user: &str) -> Vec<String> {
    let out = iam
        .list_user_policies()
        .user_name(user)
        .send()
        .await
        .unwrap();
    out.policy_names().to_vec()
}

fn instance_finding(playbook: &str, id: &str, extra: Value) -> Finding {
    let mut v = json!({"detail": {
        "category": "Cryptojacking",
        "resource_type": "AWS::EC2::Instance",
        "resource_arn": format!("arn:aws:ec2:{REGION}:{HOME}:instance/{id}"),
    }});
    merge(&mut v, extra);
    finding(playbook, v)
}

async fn snapshots_of(ec2: &aws_sdk_ec2::Client, volume: &str) -> usize {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("volume-id")
                .values(volume)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.snapshots().len()
}

fn root_volume(i: &aws_sdk_ec2::types::Instance) -> String {
    i.block_device_mappings()[0]
        .ebs()
        .and_then(|e| e.volume_id())
        .unwrap()
        .to_owned()
}

// --- one test per playbook -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb001_unauthorized_access_cuts_the_key_denies_the_user_and_publishes() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    let key = user_with_key(&iam, "mallory").await;
    // Vigil's events reach a queue through a rule on the default bus.
    let sqs = sdk!(aws_sdk_sqs, bed.moto, "us-east-1");
    let queue = sqs
        .create_queue()
        .queue_name("vigil-events")
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = format!("arn:aws:sqs:us-east-1:{HOME}:vigil-events");
    let events = sdk!(aws_sdk_eventbridge, bed.moto, "us-east-1");
    events
        .put_rule()
        .name("vigil")
        .event_pattern(json!({"source": ["vigil"]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("vigil")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let f = finding(
        "PB-001",
        json!({"detail": {
            "principal": format!("arn:aws:iam::{HOME}:user/mallory"),
            "evidence": {"access_key_id": key},
        }}),
    );
    let run = bed.remediate("PB-001", &f).await;
    assert_eq!(
        key_status(&iam, "mallory", &key).await,
        StatusType::Inactive
    );
    assert_eq!(inline_policies(&iam, "mallory").await, ["VigilDenyAll"]);
    assert_eq!(
        step(&run, "revoke-role-sessions").status.as_str(),
        "SKIPPED"
    );
    assert_eq!(step(&run, "publish").calls, ["events:PutEvents"]);

    let got = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["source"], "vigil");
    assert_eq!(body["detail"]["run"]["id"], run.id.as_str());
    assert_eq!(body["detail"]["run"]["playbook"], "PB-001");
    assert_eq!(
        body["detail"]["finding"]["detail"]["finding_id"],
        f.detail.finding_id.as_str()
    );
    assert_eq!(body["detail"]["run"]["steps"][0]["status"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb002_cryptojacking_snapshots_quarantines_tags_and_stops_the_instance() {
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap().to_owned();
    let run = bed
        .remediate("PB-002", &instance_finding("PB-002", &id, json!({})))
        .await;
    let after = described(&ec2, &id).await;
    let groups: Vec<&str> = after
        .security_groups()
        .iter()
        .filter_map(|g| g.group_name())
        .collect();
    assert_eq!(groups, ["vigil-quarantine"]);
    assert!(matches!(
        after.state().and_then(|s| s.name()),
        Some(
            aws_sdk_ec2::types::InstanceStateName::Stopped
                | aws_sdk_ec2::types::InstanceStateName::Stopping
        )
    ));
    let tag = after
        .tags()
        .iter()
        .find(|t| t.key() == Some("vigil:quarantined-by"))
        .and_then(|t| t.value());
    assert_eq!(tag, Some(run.id.as_str()));
    assert_eq!(snapshots_of(&ec2, &root_volume(&i)).await, 1);
}

const PUBLIC_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::exposed-data/*"},
    {"Sid": "Vpce", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::exposed-data/*",
     "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}]}"#;

async fn public_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_policy()
        .bucket(name)
        .policy(PUBLIC_POLICY.replace("exposed-data", name))
        .send()
        .await
        .unwrap();
}

async fn bucket_block(s3: &aws_sdk_s3::Client, name: &str) -> Option<[bool; 4]> {
    let out = s3
        .get_public_access_block()
        .bucket(name)
        .send()
        .await
        .ok()?;
    let c = out.public_access_block_configuration()?;
    Some([
        c.block_public_acls()?,
        c.ignore_public_acls()?,
        c.block_public_policy()?,
        c.restrict_public_buckets()?,
    ])
}

fn bucket_finding(playbook: &str, bucket: &str, extra: Value) -> Finding {
    let mut v = json!({"detail": {
        "category": "PolicyViolation",
        "resource_type": "AWS::S3::Bucket",
        "resource_arn": format!("arn:aws:s3:::{bucket}"),
    }});
    merge(&mut v, extra);
    finding(playbook, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb003_public_bucket_is_blocked_and_its_policy_cleaned_after_approval() {
    let bed = bed().await;
    let s3 = s3(&bed.moto, REGION);
    public_bucket(&s3, "exposed-data").await;
    let run = bed
        .remediate(
            "PB-003",
            &bucket_finding("PB-003", "exposed-data", json!({})),
        )
        .await;
    assert_eq!(
        step(&run, "block-public-access").approved_by.as_deref(),
        Some("alice")
    );
    assert_eq!(bucket_block(&s3, "exposed-data").await, Some([true; 4]));
    let policy = s3
        .get_bucket_policy()
        .bucket("exposed-data")
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    assert_eq!(sids, ["Vpce"]);
    assert_eq!(
        step(&run, "block-account-public-access").status.as_str(),
        "SKIPPED"
    );

    // The account-wide setting turned off through S3 Control: on again.
    let f = finding(
        "PB-003",
        json!({"detail": {"category": "PolicyViolation", "evidence": {"api_call": "DeleteAccountPublicAccessBlock"}}}),
    );
    let run = bed.remediate("PB-003", &f).await;
    let calls = &step(&run, "block-account-public-access").calls;
    assert_eq!(
        calls,
        &[
            "s3control:GetPublicAccessBlock",
            "s3control:PutPublicAccessBlock"
        ]
    );
    let conf = aws_sdk_s3control::Config::builder()
        .behavior_version(aws_sdk_s3control::config::BehaviorVersion::latest())
        .region(aws_sdk_s3control::config::Region::new(REGION))
        .endpoint_resolver(vigil_aws::FixedEndpoint(bed.moto.url.clone()))
        .http_client(vigil_aws::http_client())
        .credentials_provider(test_credentials())
        .build();
    let got = aws_sdk_s3control::Client::from_conf(conf)
        .get_public_access_block()
        .account_id(HOME)
        .send()
        .await
        .unwrap();
    let c = got.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb004_drifted_policy_gets_its_previous_version_back() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    let v1 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
    let v2 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let made = iam
        .create_policy()
        .policy_name("app-read")
        .policy_document(v1.to_string())
        .send()
        .await
        .unwrap();
    let arn = made.policy().unwrap().arn().unwrap().to_owned();
    iam.create_policy_version()
        .policy_arn(&arn)
        .policy_document(v2.to_string())
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    let f = finding(
        "PB-004",
        json!({"detail": {"category": "PolicyViolation", "resource_type": "AWS::IAM::Policy", "resource_arn": arn}}),
    );
    bed.remediate("PB-004", &f).await;
    let p = iam.get_policy().policy_arn(&arn).send().await.unwrap();
    assert_eq!(p.policy().unwrap().default_version_id(), Some("v1"));
}

async fn nacl_entries(ec2: &aws_sdk_ec2::Client, subnet: &str) -> Vec<(String, i32, bool)> {
    let out = ec2
        .describe_network_acls()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("association.subnet-id")
                .values(subnet)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| e.rule_action() == Some(&aws_sdk_ec2::types::RuleAction::Deny))
        .map(|e| {
            (
                e.cidr_block().unwrap_or("").to_owned(),
                e.rule_number().unwrap_or(0),
                e.egress().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb005_scanning_source_is_denied_at_the_subnet_after_approval() {
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap();
    let subnet = i.subnet_id().unwrap();
    let f = instance_finding(
        "PB-005",
        id,
        json!({"detail": {"category": "NetworkAttack", "evidence": {"source_ip": "198.51.100.7"}}}),
    );
    let run = bed.remediate("PB-005", &f).await;
    assert_eq!(
        step(&run, "deny-source-at-interface").status.as_str(),
        "SKIPPED"
    );
    let denies = nacl_entries(&ec2, subnet).await;
    assert!(
        denies
            .iter()
            .any(|(c, n, egress)| c == "198.51.100.7/32" && *n < 100 && !egress),
        "{denies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb006_root_use_attaches_a_deny_root_policy_to_the_member_account() {
    let bed = bed().await;
    let org = sdk!(aws_sdk_organizations, bed.moto, "us-east-1");
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let made = org
        .create_account()
        .email("member@example.com")
        .account_name("member")
        .send()
        .await
        .unwrap();
    let member = made
        .create_account_status()
        .and_then(|s| s.account_id())
        .unwrap()
        .to_owned();
    let f = finding(
        "PB-006",
        json!({"account": member, "detail": {"principal": format!("arn:aws:iam::{member}:root")}}),
    );
    let run = bed.remediate("PB-006", &f).await;
    assert_eq!(step(&run, "deny-root").changed, Some(true));
    let attached = org
        .list_policies_for_target()
        .target_id(&member)
        .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = attached
        .policies()
        .iter()
        .filter_map(|p| p.name())
        .collect();
    assert!(names.contains(&"VigilDenyRootUser"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb007_stopped_trail_logs_again() {
    let bed = bed().await;
    let s3 = s3(&bed.moto, REGION);
    s3.create_bucket()
        .bucket("trail-logs")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ct = sdk!(aws_sdk_cloudtrail, bed.moto, REGION);
    let trail = ct
        .create_trail()
        .name("main")
        .s3_bucket_name("trail-logs")
        .send()
        .await
        .unwrap();
    let arn = trail.trail_arn().unwrap().to_owned();
    ct.start_logging().name("main").send().await.unwrap();
    ct.stop_logging().name("main").send().await.unwrap();
    let f = finding(
        "PB-007",
        json!({"detail": {"category": "PolicyViolation", "resource_type": "AWS::CloudTrail::Trail", "resource_arn": arn}}),
    );
    bed.remediate("PB-007", &f).await;
    let status = ct.get_trail_status().name("main").send().await.unwrap();
    assert_eq!(status.is_logging(), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb008_world_open_admin_ports_are_closed_and_other_rules_kept() {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let g = ec2
        .create_security_group()
        .group_name("admin")
        .description("admin ports")
        .send()
        .await
        .unwrap();
    let gid = g.group_id().unwrap().to_owned();
    let rule = |port: i32| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
    };
    ec2.authorize_security_group_ingress()
        .group_id(&gid)
        .ip_permissions(
            rule(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .ip_permissions(
            rule(3389)
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                .build(),
        )
        .ip_permissions(
            rule(443)
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let f = finding(
        "PB-008",
        json!({"detail": {"category": "NetworkAttack", "resource_type": "AWS::EC2::SecurityGroup",
            "resource_arn": format!("arn:aws:ec2:{REGION}:{HOME}:security-group/{gid}")}}),
    );
    let run = bed.remediate("PB-008", &f).await;
    let out = ec2
        .describe_security_groups()
        .group_ids(&gid)
        .send()
        .await
        .unwrap();
    let sg = &out.security_groups()[0];
    let mut open = Vec::new();
    for p in sg.ip_permissions() {
        for r in p.ip_ranges() {
            open.push(format!("{:?}:{}", p.from_port(), r.cidr_ip().unwrap_or("")));
        }
        for r in p.ipv6_ranges() {
            open.push(format!(
                "{:?}:{}",
                p.from_port(),
                r.cidr_ipv6().unwrap_or("")
            ));
        }
    }
    assert_eq!(open, ["Some(443):10.0.0.0/8"]);
    let tagged = sg
        .tags()
        .iter()
        .any(|t| t.key() == Some("vigil:ingress-revoked-by") && t.value() == Some(run.id.as_str()));
    assert!(tagged, "{:?}", sg.tags());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb009_exposed_key_is_deactivated() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    let key = user_with_key(&iam, "ci-bot").await;
    let f = finding(
        "PB-009",
        json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/ci-bot"), "evidence": {"access_key_id": key}}}),
    );
    let run = bed.remediate("PB-009", &f).await;
    assert_eq!(key_status(&iam, "ci-bot", &key).await, StatusType::Inactive);
    // The rollback step was not needed.
    let rb = run
        .steps
        .iter()
        .find(|s| s.phase.as_str() == "rollback")
        .unwrap();
    assert_eq!(rb.status.as_str(), "NOT_RUN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb010_disabled_guardduty_detector_is_enabled_again() {
    let bed = bed().await;
    let gd = sdk!(aws_sdk_guardduty, bed.moto, REGION);
    let d = gd.create_detector().enable(true).send().await.unwrap();
    let id = d.detector_id().unwrap().to_owned();
    gd.update_detector()
        .detector_id(&id)
        .enable(false)
        .send()
        .await
        .unwrap();
    let f = finding("PB-010", json!({"detail": {"category": "PolicyViolation"}}));
    bed.remediate("PB-010", &f).await;
    let got = gd.get_detector().detector_id(&id).send().await.unwrap();
    assert_eq!(
        got.status(),
        Some(&aws_sdk_guardduty::types::DetectorStatus::Enabled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb011_key_scheduled_for_deletion_is_kept_and_enabled() {
    let bed = bed().await;
    let kms = sdk!(aws_sdk_kms, bed.moto, REGION);
    let k = kms.create_key().send().await.unwrap();
    let meta = k.key_metadata().unwrap();
    let (id, arn) = (meta.key_id().to_owned(), meta.arn().unwrap().to_owned());
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let f = finding(
        "PB-011",
        json!({"detail": {"category": "PolicyViolation", "resource_type": "AWS::KMS::Key", "resource_arn": arn}}),
    );
    bed.remediate("PB-011", &f).await;
    let got = kms.describe_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        got.key_metadata().unwrap().key_state(),
        Some(&aws_sdk_kms::types::KeyState::Enabled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb012_public_snapshot_and_image_are_made_private() {
    use aws_sdk_ec2::types::{
        LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
        SnapshotAttributeName,
    };
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let snap = ec2
        .create_snapshot()
        .volume_id(root_volume(&i))
        .send()
        .await
        .unwrap();
    let sid = snap.snapshot_id().unwrap().to_owned();
    ec2.modify_snapshot_attribute()
        .snapshot_id(&sid)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .operation_type(OperationType::Add)
        .group_names("all")
        .send()
        .await
        .unwrap();
    let f = finding(
        "PB-012",
        json!({"detail": {"category": "DataExfiltration", "resource_type": "AWS::EC2::Snapshot",
            "resource_arn": format!("arn:aws:ec2:{REGION}::snapshot/{sid}")}}),
    );
    bed.remediate("PB-012", &f).await;
    let attr = ec2
        .describe_snapshot_attribute()
        .snapshot_id(&sid)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .unwrap();
    assert!(attr.create_volume_permissions().is_empty(), "{attr:?}");

    let image = ec2
        .create_image()
        .instance_id(i.instance_id().unwrap())
        .name("golden")
        .send()
        .await
        .unwrap();
    let ami = image.image_id().unwrap().to_owned();
    ec2.modify_image_attribute()
        .image_id(&ami)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(
                    LaunchPermission::builder()
                        .group(PermissionGroup::All)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let f = finding(
        "PB-012",
        json!({"detail": {"category": "DataExfiltration", "resource_type": "AWS::EC2::Image",
            "resource_arn": format!("arn:aws:ec2:{REGION}::image/{ami}")}}),
    );
    bed.remediate("PB-012", &f).await;
    let attr = ec2
        .describe_image_attribute()
        .image_id(&ami)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    assert!(attr.launch_permissions().is_empty(), "{attr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb013_ebs_default_encryption_is_turned_on() {
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let before = ec2.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(before.ebs_encryption_by_default(), Some(false));
    let f = finding("PB-013", json!({"detail": {"category": "PolicyViolation"}}));
    bed.remediate("PB-013", &f).await;
    let after = ec2.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(after.ebs_encryption_by_default(), Some(true));
}

async fn user_with_password(iam: &aws_sdk_iam::Client, user: &str) {
    iam.create_user().user_name(user).send().await.unwrap();
    iam.create_login_profile()
        .user_name(user)
        .password("Correct-Horse-9")
        .send()
        .await
        .unwrap();
}

async fn has_password(iam: &aws_sdk_iam::Client, user: &str) -> bool {
    iam.get_login_profile().user_name(user).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb014_console_login_without_mfa_loses_its_password_after_approval() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    user_with_password(&iam, "dave").await;
    let f = finding(
        "PB-014",
        json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/dave")}}),
    );
    bed.remediate("PB-014", &f).await;
    assert!(!has_password(&iam, "dave").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb015_exfiltration_denies_the_user_and_blocks_the_bucket() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    iam.create_user().user_name("eve").send().await.unwrap();
    let s3 = s3(&bed.moto, REGION);
    public_bucket(&s3, "customer-exports").await;
    let f = bucket_finding(
        "PB-015",
        "customer-exports",
        json!({"detail": {"category": "DataExfiltration", "principal": format!("arn:aws:iam::{HOME}:user/eve")}}),
    );
    bed.remediate("PB-015", &f).await;
    assert_eq!(inline_policies(&iam, "eve").await, ["VigilDenyAll"]);
    assert_eq!(bucket_block(&s3, "customer-exports").await, Some([true; 4]));
}

// --- the engine's promises -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_the_calls_and_changes_nothing() {
    let bed = bed().await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap().to_owned();
    let f = instance_finding("PB-002", &id, json!({}));
    let lib = Library::load(None).unwrap();
    let p = plan(
        lib.get("PB-002").unwrap(),
        &Context::new(&f, None, "dry-run"),
        None,
    );
    let stop = p.steps.iter().find(|s| s.id == "stop").unwrap();
    assert_eq!(stop.calls, ["ec2:DescribeInstances", "ec2:StopInstances"]);
    assert_eq!(stop.parameters, Some(json!({"instance_id": id})));
    assert_eq!(stop.region.as_deref(), Some(REGION));
    // Nothing was called and nothing changed.
    assert!(bed.exec.calls.lock().unwrap().is_empty());
    let after = described(&ec2, &id).await;
    assert_eq!(
        after.state().and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Running)
    );
    assert_eq!(after.security_groups(), i.security_groups());
    assert_eq!(snapshots_of(&ec2, &root_volume(&i)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_holds_until_approved_and_a_rejection_changes_nothing() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    user_with_password(&iam, "dave").await;
    user_with_password(&iam, "erin").await;
    let f = |u: &str| {
        finding(
            "PB-014",
            json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/{u}")}}),
        )
    };

    let run = bed.start("PB-014", &f("dave")).await;
    assert_eq!(bed.incident_status(&run), IncidentStatus::Remediating);
    for _ in 0..2 {
        assert_eq!(
            bed.engine.drive(&run.id).await.unwrap(),
            RunStatus::AwaitingApproval
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(has_password(&iam, "dave").await, "changed before approval");
    assert!(bed.exec.calls.lock().unwrap().is_empty());
    let waiting = bed.run(&run.id);
    assert_eq!(
        step(&waiting, "delete-password").status.as_str(),
        "AWAITING_APPROVAL"
    );
    bed.engine.approve(&run.id, "alice").await.unwrap();
    assert_eq!(
        bed.engine.drive(&run.id).await.unwrap(),
        RunStatus::Succeeded
    );
    assert!(!has_password(&iam, "dave").await);
    // Approving what waits for nothing is refused.
    assert!(bed.engine.approve(&run.id, "alice").await.is_err());

    let run = bed.start("PB-014", &f("erin")).await;
    assert_eq!(
        bed.engine.drive(&run.id).await.unwrap(),
        RunStatus::AwaitingApproval
    );
    bed.engine
        .reject(&run.id, "bob", Some("erin is travelling"))
        .await
        .unwrap();
    let done = bed.run(&run.id);
    assert_eq!(done.status.as_str(), "REJECTED");
    assert!(done.note.as_deref().unwrap().contains("erin is travelling"));
    assert_eq!(step(&done, "delete-password").status.as_str(), "REJECTED");
    assert_eq!(step(&done, "publish").status.as_str(), "NOT_RUN");
    assert!(has_password(&iam, "erin").await);
    assert_eq!(bed.incident_status(&done), IncidentStatus::Acknowledged);
    // Every move is on the audit chain, the approver's under their name.
    let s = bed.store.lock();
    assert!(s.verify_audit().unwrap().broken.is_none());
    let log = s.audit_log(0, 1000).unwrap();
    assert!(log
        .iter()
        .any(|e| e.principal == "alice" && e.target.ends_with("/delete-password")));
    assert!(log
        .iter()
        .any(|e| e.principal == "bob" && e.action.contains("rejected")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_production_a_destructive_step_of_a_full_playbook_waits_for_approval() {
    let accounts = AccountRegistry::new(vec![Account {
        id: HOME.into(),
        name: "payments-prod".into(),
        environment: Environment::Production,
        owner: None,
        regions: Vec::new(),
        ou: None,
    }])
    .unwrap();
    let bed = bed_with(start_moto(), None, Vec::new(), accounts).await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap().to_owned();
    let run = bed
        .start("PB-002", &instance_finding("PB-002", &id, json!({})))
        .await;
    assert_eq!(
        bed.engine.drive(&run.id).await.unwrap(),
        RunStatus::AwaitingApproval
    );
    let waiting = bed.run(&run.id);
    // Evidence and containment ran; stopping the instance waits.
    assert_eq!(step(&waiting, "quarantine").status.as_str(), "SUCCEEDED");
    assert_eq!(step(&waiting, "stop").status.as_str(), "AWAITING_APPROVAL");
    assert_eq!(step(&waiting, "stop").plan["gate"], "environment");
    let state = described(&ec2, &id).await;
    assert_eq!(
        state.state().and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Running)
    );
    bed.engine.approve(&run.id, "alice").await.unwrap();
    assert_eq!(
        bed.engine.drive(&run.id).await.unwrap(),
        RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried() {
    let bed = bed_with(
        start_moto(),
        None,
        vec![Fault::Throttle("iam.deactivate_access_key")],
        AccountRegistry::default(),
    )
    .await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    let key = user_with_key(&iam, "ci-bot").await;
    let f = finding(
        "PB-009",
        json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/ci-bot"), "evidence": {"access_key_id": key}}}),
    );
    let run = bed.remediate("PB-009", &f).await;
    let s = step(&run, "deactivate-key");
    assert_eq!(s.attempts, 2, "{}", describe(&run));
    assert_eq!(bed.exec.calls_of("iam.deactivate_access_key"), 2);
    assert_eq!(key_status(&iam, "ci-bot", &key).await, StatusType::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_resource_fails_the_run_cleanly() {
    let bed = bed().await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    iam.create_user().user_name("ci-bot").send().await.unwrap();
    let f = finding(
        "PB-009",
        json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/ci-bot"), "evidence": {"access_key_id": "AKIANOSUCHKEY0000000"}}}),
    );
    let run = bed.start("PB-009", &f).await;
    assert_eq!(bed.engine.drive(&run.id).await.unwrap(), RunStatus::Failed);
    let done = bed.run(&run.id);
    let s = step(&done, "deactivate-key");
    assert_eq!(s.status.as_str(), "FAILED");
    // Not found is final: one attempt, no retries.
    assert_eq!(s.attempts, 1);
    let error = s.error.as_deref().unwrap();
    assert!(
        error.starts_with("not_found: ") && error.contains("AKIANOSUCHKEY0000000"),
        "{error}"
    );
    assert_eq!(step(&done, "publish").status.as_str(), "NOT_RUN");
    assert!(done.note.as_deref().unwrap().contains("deactivate-key"));
    assert_eq!(bed.incident_status(&done), IncidentStatus::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_marked_rollback_undoes_the_steps_that_changed_something() {
    let bed = bed_with(
        start_moto(),
        None,
        vec![Fault::Deny("iam.attach_deny_all_policy")],
        AccountRegistry::default(),
    )
    .await;
    let iam = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    let key = user_with_key(&iam, "mallory").await;
    let f = finding(
        "PB-001",
        json!({"detail": {"principal": format!("arn:aws:iam::{HOME}:user/mallory"), "evidence": {"access_key_id": key}}}),
    );
    let run = bed.start("PB-001", &f).await;
    assert_eq!(
        bed.engine.drive(&run.id).await.unwrap(),
        RunStatus::RolledBack
    );
    let done = bed.run(&run.id);
    let rb: Vec<(&str, &str)> = done
        .steps
        .iter()
        .filter(|s| s.phase.as_str() == "rollback")
        .map(|s| (s.step_id.as_str(), s.status.as_str()))
        .collect();
    // The key was deactivated, so it is activated again; the deny policy was
    // never put, so there is nothing to remove.
    assert_eq!(
        rb,
        [("deactivate-key", "SUCCEEDED"), ("deny-user", "NOT_RUN")],
        "{}",
        describe(&done)
    );
    assert_eq!(key_status(&iam, "mallory", &key).await, StatusType::Active);
    assert!(step(&done, "deny-user")
        .error
        .as_deref()
        .unwrap()
        .starts_with("denied: "));
}

/// Credentials of `role` in `account`, assumed from the home account.
async fn assumed(moto: &Moto, account: &str) -> Credentials {
    let sts = sdk!(aws_sdk_sts, moto, "us-east-1");
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/Admin"))
        .role_session_name("seed")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().into()),
        None,
        "seed",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_member_accounts_are_reached_through_assume_role() {
    let bed = bed_with(
        start_moto(),
        Some("VigilResponder"),
        Vec::new(),
        AccountRegistry::default(),
    )
    .await;
    let mut seeded = Vec::new();
    for account in ["222233334444", "555566667777"] {
        let iam = sdk!(
            aws_sdk_iam,
            bed.moto,
            "us-east-1",
            assumed(&bed.moto, account).await
        );
        let key = user_with_key(&iam, "intruder").await;
        seeded.push((account, iam, key));
    }
    for (account, _, key) in &seeded {
        let f = finding(
            "PB-009",
            json!({"account": account, "detail": {"principal": format!("arn:aws:iam::{account}:user/intruder"), "evidence": {"access_key_id": key}}}),
        );
        let run = bed.remediate("PB-009", &f).await;
        assert_eq!(step(&run, "deactivate-key").plan["account"], *account);
    }
    for (_, iam, key) in &seeded {
        assert_eq!(key_status(iam, "intruder", key).await, StatusType::Inactive);
    }
    // Vigil's own account has no such user: each call went to its member account.
    let home = sdk!(aws_sdk_iam, bed.moto, "us-east-1");
    assert!(home.get_user().user_name("intruder").send().await.is_err());
}

/// Runs until `drive` hangs in the injected call, then drops it: the process
/// "died" mid-step.
async fn crash(bed: &Bed, run: &str) {
    tokio::select! {
        r = bed.engine.drive(run) => panic!("the run should have hung in the injected call: {r:?}"),
        _ = bed.exec.hung.notified() => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_run_resumes_without_running_any_step_twice() {
    // Cut off in a repeatable step (tagging): on restart it runs again (it changes
    // nothing more), and the steps done before are not called again.
    let moto = start_moto();
    let bed = bed_with(
        moto,
        None,
        vec![Fault::HangAfter("ec2.tag_resources")],
        AccountRegistry::default(),
    )
    .await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap().to_owned();
    let run = bed
        .start("PB-002", &instance_finding("PB-002", &id, json!({})))
        .await;
    crash(&bed, &run.id).await;
    assert_eq!(step(&bed.run(&run.id), "tag").status.as_str(), "RUNNING");

    // A new engine (a restarted process) over the same store.
    let restarted = Faulty::new(&bed.moto, None, Vec::new()).await;
    let engine = new_engine(&bed.store, &restarted);
    assert_eq!(engine.drive(&run.id).await.unwrap(), RunStatus::Succeeded);
    assert_eq!(restarted.calls_of("ec2.snapshot_volumes"), 0);
    assert_eq!(restarted.calls_of("ec2.quarantine_instance"), 0);
    assert_eq!(restarted.calls_of("ec2.tag_resources"), 1);
    assert_eq!(restarted.calls_of("ec2.stop_instance"), 1);
    assert_eq!(snapshots_of(&ec2, &root_volume(&i)).await, 1);

    // Cut off in a step that is not repeatable (a snapshot): never run again;
    // the run waits for a person, who can reject it.
    let bed = bed_with(
        start_moto(),
        None,
        vec![Fault::HangAfter("ec2.snapshot_volumes")],
        AccountRegistry::default(),
    )
    .await;
    let ec2 = sdk!(aws_sdk_ec2, bed.moto, REGION);
    let i = instance(&ec2).await;
    let id = i.instance_id().unwrap().to_owned();
    let run = bed
        .start("PB-002", &instance_finding("PB-002", &id, json!({})))
        .await;
    crash(&bed, &run.id).await;
    let restarted = Faulty::new(&bed.moto, None, Vec::new()).await;
    let engine = new_engine(&bed.store, &restarted);
    assert_eq!(
        engine.resume_all().await.unwrap(),
        std::slice::from_ref(&run.id)
    );
    let mut status = String::new();
    for _ in 0..100 {
        status = bed.run(&run.id).status.to_string();
        if status != "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "NEEDS_ATTENTION");
    let stopped = bed.run(&run.id);
    assert_eq!(step(&stopped, "snapshot").status.as_str(), "UNKNOWN");
    assert!(restarted.calls.lock().unwrap().is_empty());
    assert_eq!(snapshots_of(&ec2, &root_volume(&i)).await, 1);
    assert_eq!(bed.incident_status(&stopped), IncidentStatus::Acknowledged);
    engine
        .reject(&run.id, "alice", Some("snapshot exists; handled by hand"))
        .await
        .unwrap();
    assert_eq!(bed.run(&run.id).status.as_str(), "REJECTED");
}
