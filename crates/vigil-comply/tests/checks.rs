//! Every check on snapshots: one account set up as the benchmark asks passes every
//! check; then, for each check, one change that breaks what it asks makes that
//! check FAIL (and names the resource), while an unread service makes the checks
//! that need it ERROR. The framework catalogue turns the same results into control
//! verdicts and a score.

use std::collections::BTreeMap;

use serde_json::json;
use vigil_comply::check::Status;
use vigil_comply::snapshot::*;
use vigil_comply::{checks, framework, run_checks, Snapshot, SNAPSHOT_VERSION};
use vigil_model::Timestamp;

const ACCOUNT: &str = "111122223333";
const NOW: &str = "2026-11-28T12:00:00Z";

fn t(s: &str) -> Option<Timestamp> {
    Some(Timestamp::parse(s).unwrap())
}

fn user(name: &str) -> CredentialRow {
    CredentialRow {
        user: name.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        user_creation_time: t("2026-01-01T00:00:00Z"),
        password_enabled: true,
        password_last_used: t("2026-11-27T09:00:00Z"),
        password_last_changed: t("2026-10-01T00:00:00Z"),
        mfa_active: true,
        access_key_1_active: true,
        access_key_1_last_rotated: t("2026-10-15T00:00:00Z"),
        access_key_1_last_used: t("2026-11-27T10:00:00Z"),
        ..Default::default()
    }
}

fn monitoring(group: &str) -> (Vec<MetricFilter>, Vec<Alarm>) {
    let patterns: &[(&str, &str)] = &[
        ("unauth", r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#),
        ("nomfa", r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#),
        ("root", r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#),
        ("iam", "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}"),
        ("trail", "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }"),
        ("authfail", r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#),
        ("kms", "{($.eventSource = kms.amazonaws.com) && (($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion)) }"),
        ("s3", "{ ($.eventSource = s3.amazonaws.com) && (($.eventName = PutBucketAcl) || ($.eventName = PutBucketPolicy) || ($.eventName = PutBucketCors) || ($.eventName = PutBucketLifecycle) || ($.eventName = PutBucketReplication) || ($.eventName = DeleteBucketPolicy) || ($.eventName = DeleteBucketCors) || ($.eventName = DeleteBucketLifecycle) || ($.eventName = DeleteBucketReplication)) }"),
        ("config", "{ ($.eventSource = config.amazonaws.com) && (($.eventName=StopConfigurationRecorder)||($.eventName=DeleteDeliveryChannel)||($.eventName=PutDeliveryChannel)||($.eventName=PutConfigurationRecorder)) }"),
        ("sg", "{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }"),
        ("nacl", "{ ($.eventName = CreateNetworkAcl) || ($.eventName = CreateNetworkAclEntry) || ($.eventName = DeleteNetworkAcl) || ($.eventName = DeleteNetworkAclEntry) || ($.eventName = ReplaceNetworkAclEntry) || ($.eventName = ReplaceNetworkAclAssociation) }"),
        ("gw", "{ ($.eventName = CreateCustomerGateway) || ($.eventName = DeleteCustomerGateway) || ($.eventName = AttachInternetGateway) || ($.eventName = CreateInternetGateway) || ($.eventName = DeleteInternetGateway) || ($.eventName = DetachInternetGateway) }"),
        ("rt", "{ ($.eventSource = ec2.amazonaws.com) && (($.eventName = CreateRoute) || ($.eventName = CreateRouteTable) || ($.eventName = ReplaceRoute) || ($.eventName = ReplaceRouteTableAssociation) || ($.eventName = DeleteRouteTable) || ($.eventName = DeleteRoute) || ($.eventName = DisassociateRouteTable)) }"),
        ("vpc", "{ ($.eventName = CreateVpc) || ($.eventName = DeleteVpc) || ($.eventName = ModifyVpcAttribute) || ($.eventName = AcceptVpcPeeringConnection) || ($.eventName = CreateVpcPeeringConnection) || ($.eventName = DeleteVpcPeeringConnection) || ($.eventName = RejectVpcPeeringConnection) || ($.eventName = AttachClassicLinkVpc) || ($.eventName = DetachClassicLinkVpc) || ($.eventName = DisableVpcClassicLink) || ($.eventName = EnableVpcClassicLink) }"),
        ("org", "{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = AcceptHandshake) || ($.eventName = AttachPolicy) || ($.eventName = CreateAccount) || ($.eventName = CreateOrganizationalUnit) || ($.eventName = CreatePolicy) || ($.eventName = DeclineHandshake) || ($.eventName = DeleteOrganization) || ($.eventName = DeleteOrganizationalUnit) || ($.eventName = DeletePolicy) || ($.eventName = DetachPolicy) || ($.eventName = DisablePolicyType) || ($.eventName = EnablePolicyType) || ($.eventName = InviteAccountToOrganization) || ($.eventName = LeaveOrganization) || ($.eventName = MoveAccount) || ($.eventName = RemoveAccountFromOrganization) || ($.eventName = UpdatePolicy) || ($.eventName = UpdateOrganizationalUnit)) }"),
    ];
    let filters = patterns
        .iter()
        .map(|(n, p)| MetricFilter {
            log_group: group.into(),
            name: format!("cis-{n}"),
            pattern: (*p).into(),
            metric_name: format!("cis-{n}"),
            metric_namespace: "CISBenchmark".into(),
        })
        .collect();
    let alarms = patterns
        .iter()
        .map(|(n, _)| Alarm {
            name: format!("cis-{n}-alarm"),
            metric_name: Some(format!("cis-{n}")),
            namespace: Some("CISBenchmark".into()),
            actions: vec![format!("arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts")],
        })
        .collect();
    (filters, alarms)
}

fn region(name: &str) -> Regional {
    let vpc = format!("vpc-{name}");
    let mut r = Regional {
        access_analyzers: vec![AccessAnalyzer {
            name: "account".into(),
            arn: format!("arn:aws:access-analyzer:{name}:{ACCOUNT}:analyzer/account"),
            status: "ACTIVE".into(),
        }],
        ebs_encryption_by_default: Some(true),
        volumes: vec![Volume {
            id: format!("vol-{name}"),
            encrypted: true,
        }],
        instances: vec![Instance {
            id: format!("i-{name}"),
            state: "running".into(),
            http_tokens: Some("required".into()),
            http_endpoint: Some("enabled".into()),
            instance_profile: Some("app".into()),
        }],
        security_groups: vec![
            SecurityGroup {
                id: format!("sg-default-{name}"),
                name: "default".into(),
                vpc_id: Some(vpc.clone()),
                ..Default::default()
            },
            SecurityGroup {
                id: format!("sg-web-{name}"),
                name: "web".into(),
                vpc_id: Some(vpc.clone()),
                ingress: vec![
                    SgRule {
                        protocol: "tcp".into(),
                        from_port: Some(443),
                        to_port: Some(443),
                        ipv4: vec!["0.0.0.0/0".into()],
                        ipv6: vec!["::/0".into()],
                        others: vec![],
                    },
                    SgRule {
                        protocol: "tcp".into(),
                        from_port: Some(22),
                        to_port: Some(22),
                        ipv4: vec!["10.0.0.0/8".into()],
                        ..Default::default()
                    },
                ],
                egress: vec![SgRule {
                    protocol: "-1".into(),
                    ipv4: vec!["0.0.0.0/0".into()],
                    ..Default::default()
                }],
            },
        ],
        network_acls: vec![NetworkAcl {
            id: format!("acl-{name}"),
            vpc_id: Some(vpc.clone()),
            entries: vec![
                NaclEntry {
                    rule_number: 50,
                    egress: false,
                    action: "deny".into(),
                    protocol: "6".into(),
                    cidr: Some("0.0.0.0/0".into()),
                    from_port: Some(22),
                    to_port: Some(22),
                    ..Default::default()
                },
                NaclEntry {
                    rule_number: 60,
                    egress: false,
                    action: "deny".into(),
                    protocol: "6".into(),
                    cidr: Some("0.0.0.0/0".into()),
                    from_port: Some(3389),
                    to_port: Some(3389),
                    ..Default::default()
                },
                NaclEntry {
                    rule_number: 100,
                    egress: false,
                    action: "allow".into(),
                    protocol: "-1".into(),
                    cidr: Some("0.0.0.0/0".into()),
                    ..Default::default()
                },
                NaclEntry {
                    rule_number: 32767,
                    egress: false,
                    action: "deny".into(),
                    protocol: "-1".into(),
                    cidr: Some("0.0.0.0/0".into()),
                    ..Default::default()
                },
            ],
        }],
        vpcs: vec![Vpc {
            id: vpc.clone(),
            is_default: true,
        }],
        flow_logs: vec![FlowLog {
            id: format!("fl-{name}"),
            resource_id: vpc,
            status: Some("ACTIVE".into()),
        }],
        config_recorders: vec![ConfigRecorder {
            name: "default".into(),
            all_supported: true,
            include_global_resources: name == "us-east-1",
            recording: true,
            last_status: Some("Success".into()),
        }],
        kms_keys: vec![
            KmsKey {
                id: format!("k-{name}"),
                arn: format!("arn:aws:kms:{name}:{ACCOUNT}:key/k-{name}"),
                manager: "CUSTOMER".into(),
                spec: "SYMMETRIC_DEFAULT".into(),
                state: "Enabled".into(),
                rotation_enabled: Some(true),
            },
            KmsKey {
                id: format!("a-{name}"),
                arn: format!("arn:aws:kms:{name}:{ACCOUNT}:key/a-{name}"),
                manager: "AWS".into(),
                spec: "SYMMETRIC_DEFAULT".into(),
                state: "Enabled".into(),
                rotation_enabled: Some(false),
            },
        ],
        rds_instances: vec![RdsInstance {
            id: format!("db-{name}"),
            arn: format!("arn:aws:rds:{name}:{ACCOUNT}:db:db-{name}"),
            engine: "postgres".into(),
            storage_encrypted: true,
            auto_minor_version_upgrade: true,
            publicly_accessible: false,
        }],
        efs_file_systems: vec![EfsFileSystem {
            id: format!("fs-{name}"),
            arn: format!("arn:aws:elasticfilesystem:{name}:{ACCOUNT}:file-system/fs-{name}"),
            encrypted: true,
        }],
        security_hub_enabled: Some(true),
        guardduty_detectors: vec![GuardDutyDetector {
            id: "d".into(),
            status: "ENABLED".into(),
        }],
        ..Default::default()
    };
    if name == "us-east-1" {
        r.trails = vec![Trail {
            name: "org".into(),
            arn: format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org"),
            home_region: "us-east-1".into(),
            multi_region: true,
            log_file_validation: true,
            kms_key_id: Some(format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k-us-east-1")),
            s3_bucket: Some("trail-logs".into()),
            cloudwatch_log_group_arn: Some(format!(
                "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:trail:*"
            )),
            is_logging: true,
            management_events: Some("All".into()),
            s3_data_read_all: true,
            s3_data_write_all: true,
            ..Default::default()
        }];
        let (f, a) = monitoring("trail");
        r.metric_filters = f;
        r.alarms = a;
        r.sns_subscriptions = vec![SnsSubscription {
            topic_arn: format!("arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts"),
            protocol: "email".into(),
            endpoint: "soc@example.com".into(),
            subscription_arn: format!("arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts:1"),
        }];
    }
    r
}

fn tls_policy(bucket: &str) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
}

/// An account set up as the benchmark asks, in two regions.
fn good() -> AccountSnapshot {
    let block = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
    let bucket = |name: &str, logging: Option<&str>| Bucket {
        name: name.into(),
        region: "us-east-1".into(),
        policy: Some(tls_policy(name)),
        public_access_block: Some(block),
        versioning: Some("Enabled".into()),
        mfa_delete: true,
        logging_target: logging.map(str::to_owned),
        encryption: Some("AES256".into()),
        errors: vec![],
    };
    let mut regional = BTreeMap::new();
    for r in ["us-east-1", "eu-west-1"] {
        regional.insert(r.to_owned(), region(r));
    }
    AccountSnapshot {
        account_id: ACCOUNT.into(),
        regions: vec!["us-east-1".into(), "eu-west-1".into()],
        iam: Iam {
            credential_report: vec![
                CredentialRow {
                    user: "<root_account>".into(),
                    arn: format!("arn:aws:iam::{ACCOUNT}:root"),
                    password_enabled: true,
                    password_last_used: t("2026-06-01T00:00:00Z"),
                    mfa_active: true,
                    ..Default::default()
                },
                user("alice"),
                CredentialRow {
                    access_key_1_active: false,
                    access_key_1_last_rotated: None,
                    access_key_1_last_used: None,
                    ..user("bob")
                },
            ],
            password_policy: Some(PasswordPolicy {
                minimum_length: Some(14),
                reuse_prevention: Some(24),
                ..Default::default()
            }),
            account_summary: [
                ("AccountMFAEnabled".to_owned(), 1),
                ("AccountAccessKeysPresent".to_owned(), 0),
            ]
            .into(),
            virtual_mfa_devices: vec![VirtualMfa {
                serial_number: format!("arn:aws:iam::{ACCOUNT}:mfa/alice"),
                user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/alice")),
            }],
            users: vec![
                User {
                    name: "alice".into(),
                    arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
                    ..Default::default()
                },
                User {
                    name: "bob".into(),
                    arn: format!("arn:aws:iam::{ACCOUNT}:user/bob"),
                    ..Default::default()
                },
            ],
            policies: vec![ManagedPolicy {
                arn: format!("arn:aws:iam::{ACCOUNT}:policy/read"),
                name: "read".into(),
                aws_managed: false,
                attachment_count: 1,
                document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}),
            }],
            support_roles: vec!["support".into()],
            server_certificates: vec![ServerCertificate {
                name: "web".into(),
                arn: format!("arn:aws:iam::{ACCOUNT}:server-certificate/web"),
                expiration: t("2027-06-01T00:00:00Z"),
            }],
        },
        s3: S3 {
            account_public_access_block: Some(block),
            buckets: vec![
                bucket("trail-logs", Some("access-logs")),
                bucket("access-logs", None),
            ],
        },
        regional,
        errors: vec![],
    }
}

fn snapshot(account: AccountSnapshot) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        collected_at: Timestamp::parse(NOW).unwrap(),
        collector: "test".into(),
        accounts: vec![account],
    }
}

/// Each check's worst status, and what failed.
fn verdicts(a: AccountSnapshot) -> BTreeMap<String, (Status, Vec<String>)> {
    let mut out: BTreeMap<String, (Status, Vec<String>)> = BTreeMap::new();
    for r in run_checks(&snapshot(a)) {
        let e = out
            .entry(r.check.clone())
            .or_insert((Status::Pass, Vec::new()));
        let rank = |s: Status| match s {
            Status::NotApplicable => 0,
            Status::Pass => 1,
            Status::Error => 2,
            Status::Fail => 3,
        };
        if rank(r.status) >= rank(e.0) && r.status != Status::Pass {
            if rank(r.status) > rank(e.0) {
                e.1.clear();
            }
            e.0 = r.status;
            e.1.push(r.resource_arn.clone());
        }
    }
    out
}

#[test]
fn an_account_set_up_as_the_benchmark_asks_passes_every_check() {
    let v = verdicts(good());
    for c in checks::all() {
        let (status, resources) = v
            .get(c.id)
            .unwrap_or_else(|| panic!("{} gave no result", c.id));
        assert_eq!(*status, Status::Pass, "{}: {resources:?}", c.id);
    }
}

/// Breaks `good()` with `change`: exactly the checks in `failing` fail, and each
/// names `resource` among what failed.
fn breaks(change: impl FnOnce(&mut AccountSnapshot), failing: &[&str], resource: &str) {
    let mut a = good();
    change(&mut a);
    let v = verdicts(a);
    let failed: Vec<&str> = v
        .iter()
        .filter(|(_, (s, _))| *s == Status::Fail)
        .map(|(k, _)| k.as_str())
        .collect();
    let mut want = failing.to_vec();
    want.sort();
    assert_eq!(failed, want, "{v:?}");
    for f in failing {
        assert!(
            v[*f].1.iter().any(|r| r.contains(resource)),
            "{f}: {resource} not among {:?}",
            v[*f].1
        );
    }
}

fn root(a: &mut AccountSnapshot) -> &mut CredentialRow {
    a.iam
        .credential_report
        .iter_mut()
        .find(|r| r.is_root())
        .unwrap()
}

fn east(a: &mut AccountSnapshot) -> &mut Regional {
    a.regional.get_mut("us-east-1").unwrap()
}

fn west(a: &mut AccountSnapshot) -> &mut Regional {
    a.regional.get_mut("eu-west-1").unwrap()
}

#[test]
fn each_iam_check_fails_on_what_it_looks_for() {
    breaks(
        |a| {
            a.iam
                .account_summary
                .insert("AccountAccessKeysPresent".into(), 1);
        },
        &["iam_root_no_access_key"],
        ":root",
    );
    breaks(
        |a| {
            a.iam.account_summary.insert("AccountMFAEnabled".into(), 0);
        },
        &["iam_root_mfa", "iam_root_hardware_mfa"],
        ":root",
    );
    breaks(
        |a| {
            a.iam.virtual_mfa_devices.push(VirtualMfa {
                serial_number: format!("arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"),
                user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
            })
        },
        &["iam_root_hardware_mfa"],
        ":root",
    );
    breaks(
        |a| root(a).password_last_used = t("2026-11-28T08:00:00Z"),
        &["iam_root_not_used"],
        ":root",
    );
    breaks(
        |a| a.iam.password_policy.as_mut().unwrap().minimum_length = Some(8),
        &["iam_password_min_length_14"],
        "account-password-policy",
    );
    breaks(
        |a| a.iam.password_policy = None,
        &["iam_password_min_length_14", "iam_password_reuse_24"],
        "account-password-policy",
    );
    breaks(
        |a| a.iam.password_policy.as_mut().unwrap().reuse_prevention = Some(5),
        &["iam_password_reuse_24"],
        "account-password-policy",
    );
    breaks(
        |a| a.iam.credential_report[1].mfa_active = false,
        &["iam_console_user_mfa"],
        "user/alice",
    );
    breaks(
        |a| a.iam.credential_report[1].access_key_1_last_used = None,
        &["iam_no_initial_access_key"],
        "user/alice",
    );
    breaks(
        |a| a.iam.credential_report[1].password_last_used = t("2026-09-01T00:00:00Z"),
        &["iam_credentials_unused_45_days"],
        "user/alice",
    );
    breaks(
        |a| a.iam.credential_report[1].access_key_1_last_used = t("2026-10-01T00:00:00Z"),
        &["iam_credentials_unused_45_days"],
        "user/alice",
    );
    breaks(
        |a| {
            let u = &mut a.iam.credential_report[1];
            u.access_key_2_active = true;
            u.access_key_2_last_rotated = t("2026-11-20T00:00:00Z");
            u.access_key_2_last_used = t("2026-11-27T00:00:00Z");
        },
        &["iam_single_active_key"],
        "user/alice",
    );
    breaks(
        |a| a.iam.credential_report[1].access_key_1_last_rotated = t("2026-06-01T00:00:00Z"),
        &["iam_keys_rotated_90_days"],
        "user/alice",
    );
    breaks(
        |a| a.iam.users[1].inline_policies.push("extra".into()),
        &["iam_no_user_policies"],
        "user/bob",
    );
    breaks(
        |a| {
            a.iam.policies.push(ManagedPolicy {
                arn: "arn:aws:iam::aws:policy/AdministratorAccess".into(),
                name: "AdministratorAccess".into(),
                aws_managed: true,
                attachment_count: 2,
                document: json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
            })
        },
        &["iam_no_full_admin_policies"],
        "AdministratorAccess",
    );
    breaks(
        |a| a.iam.support_roles.clear(),
        &["iam_support_role"],
        "AWSSupportAccess",
    );
    breaks(
        |a| a.iam.server_certificates[0].expiration = t("2026-01-01T00:00:00Z"),
        &["iam_no_expired_server_certificates"],
        "server-certificate/web",
    );
    breaks(
        |a| west(a).access_analyzers[0].status = "DISABLED".into(),
        &["accessanalyzer_enabled"],
        "eu-west-1",
    );
}

#[test]
fn each_storage_check_fails_on_what_it_looks_for() {
    breaks(
        |a| a.s3.buckets[1].policy = None,
        &["s3_bucket_tls_only"],
        "access-logs",
    );
    breaks(
        |a| {
            a.s3.buckets[1].policy = Some(
                json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}),
            )
        },
        &["s3_bucket_tls_only"],
        "access-logs",
    );
    breaks(
        |a| a.s3.buckets[0].mfa_delete = false,
        &["s3_bucket_mfa_delete"],
        "trail-logs",
    );
    breaks(
        |a| {
            a.s3.account_public_access_block
                .as_mut()
                .unwrap()
                .restrict_public_buckets = false
        },
        &["s3_account_public_access_block"],
        "account-public-access-block",
    );
    // A bucket without its own block is covered only by a complete account block.
    breaks(
        |a| {
            a.s3.account_public_access_block = None;
            a.s3.buckets[0].public_access_block = None;
        },
        &[
            "s3_account_public_access_block",
            "s3_bucket_public_access_block",
        ],
        "",
    );
    breaks(
        |a| {
            a.s3.account_public_access_block = None;
            a.s3.buckets[0]
                .public_access_block
                .as_mut()
                .unwrap()
                .block_public_policy = false;
        },
        &[
            "s3_account_public_access_block",
            "s3_bucket_public_access_block",
        ],
        "",
    );
    let mut a = good();
    a.s3.account_public_access_block = None;
    a.s3.buckets[0].public_access_block = None;
    let failing: Vec<String> = run_checks(&snapshot(a))
        .into_iter()
        .filter(|r| r.check == "s3_bucket_public_access_block" && r.status == Status::Fail)
        .map(|r| r.resource_arn)
        .collect();
    assert_eq!(failing, ["arn:aws:s3:::trail-logs"]);
    breaks(
        |a| west(a).ebs_encryption_by_default = Some(false),
        &["ec2_ebs_default_encryption"],
        "eu-west-1",
    );
    breaks(
        |a| west(a).volumes[0].encrypted = false,
        &["ec2_ebs_volumes_encrypted"],
        "vol-eu-west-1",
    );
    breaks(
        |a| east(a).rds_instances[0].storage_encrypted = false,
        &["rds_storage_encrypted"],
        "db-us-east-1",
    );
    breaks(
        |a| east(a).rds_instances[0].auto_minor_version_upgrade = false,
        &["rds_auto_minor_version_upgrade"],
        "db-us-east-1",
    );
    breaks(
        |a| east(a).rds_instances[0].publicly_accessible = true,
        &["rds_not_public"],
        "db-us-east-1",
    );
    breaks(
        |a| west(a).efs_file_systems[0].encrypted = false,
        &["efs_encrypted"],
        "fs-eu-west-1",
    );
}

#[test]
fn each_logging_check_fails_on_what_it_looks_for() {
    // A single-region trail loses the multi-region verdict, the data events and
    // every alarm (which count only on a complete trail).
    let monitors: Vec<&str> = checks::logging::MONITORS.iter().map(|c| c.id).collect();
    let mut all = vec![
        "cloudtrail_multi_region",
        "cloudtrail_s3_data_events_read",
        "cloudtrail_s3_data_events_write",
    ];
    all.extend(&monitors);
    breaks(|a| east(a).trails[0].multi_region = false, &all, ":root");
    breaks(
        |a| east(a).trails[0].log_file_validation = false,
        &["cloudtrail_log_validation"],
        "trail/org",
    );
    breaks(
        |a| west(a).config_recorders[0].recording = false,
        &["config_recorder_all_regions"],
        "eu-west-1",
    );
    breaks(
        |a| a.s3.buckets[0].logging_target = None,
        &["cloudtrail_bucket_access_logging"],
        "trail/org",
    );
    breaks(
        |a| east(a).trails[0].kms_key_id = None,
        &["cloudtrail_kms_encryption"],
        "trail/org",
    );
    breaks(
        |a| west(a).kms_keys[0].rotation_enabled = Some(false),
        &["kms_key_rotation"],
        "key/k-eu-west-1",
    );
    breaks(
        |a| west(a).flow_logs.clear(),
        &["vpc_flow_logs"],
        "vpc/vpc-eu-west-1",
    );
    breaks(
        |a| east(a).trails[0].s3_data_write_all = false,
        &["cloudtrail_s3_data_events_write"],
        ":root",
    );
    breaks(
        |a| east(a).trails[0].s3_data_read_all = false,
        &["cloudtrail_s3_data_events_read"],
        ":root",
    );
    breaks(
        |a| west(a).security_hub_enabled = Some(false),
        &["securityhub_enabled"],
        "eu-west-1",
    );
    // Each alarm, by its filter matching something else.
    for (i, id) in monitors.iter().enumerate() {
        breaks(
            |a| {
                let f = &mut east(a).metric_filters[i];
                let first = checks::logging::MONITORS[i].id;
                assert_eq!(first, *id);
                f.pattern = "{ $.eventName = ListBuckets }".into();
            },
            &[id],
            ":root",
        );
    }
    // An alarm nobody confirmed receiving fails them all.
    breaks(
        |a| east(a).sns_subscriptions[0].subscription_arn = "PendingConfirmation".into(),
        &monitors,
        ":root",
    );
}

#[test]
fn each_network_check_fails_on_what_it_looks_for() {
    breaks(
        |a| west(a).network_acls[0].entries[0].rule_number = 200,
        &["ec2_nacl_no_admin_ingress_from_internet"],
        "acl-eu-west-1",
    );
    breaks(
        |a| {
            west(a).security_groups[1].ingress[1]
                .ipv4
                .push("0.0.0.0/0".into())
        },
        &["ec2_sg_no_admin_ingress_from_ipv4_internet"],
        "sg-web-eu-west-1",
    );
    breaks(
        |a| {
            west(a).security_groups[1].ingress.push(SgRule {
                protocol: "-1".into(),
                ipv6: vec!["::/0".into()],
                ..Default::default()
            })
        },
        &[
            "ec2_sg_no_admin_ingress_from_ipv6_internet",
            "ec2_sg_no_cifs_from_internet",
        ],
        "sg-web-eu-west-1",
    );
    breaks(
        |a| {
            west(a).security_groups[1].ingress.push(SgRule {
                protocol: "tcp".into(),
                from_port: Some(400),
                to_port: Some(500),
                ipv4: vec!["0.0.0.0/0".into()],
                ..Default::default()
            })
        },
        &["ec2_sg_no_cifs_from_internet"],
        "sg-web-eu-west-1",
    );
    breaks(
        |a| {
            west(a).security_groups[0].egress.push(SgRule {
                protocol: "-1".into(),
                ipv4: vec!["0.0.0.0/0".into()],
                ..Default::default()
            })
        },
        &["ec2_default_sg_closed"],
        "sg-default-eu-west-1",
    );
    breaks(
        |a| east(a).instances[0].http_tokens = Some("optional".into()),
        &["ec2_imdsv2_required"],
        "i-us-east-1",
    );
    breaks(
        |a| east(a).instances[0].instance_profile = None,
        &["ec2_instance_profile"],
        "i-us-east-1",
    );
}

#[test]
fn an_unread_service_is_an_error_not_a_verdict() {
    let mut a = good();
    a.errors.push(CollectError {
        service: "rds".into(),
        region: Some("eu-west-1".into()),
        operation: "DescribeDBInstances".into(),
        message: "AccessDenied".into(),
    });
    let results = run_checks(&snapshot(a));
    let rds: Vec<_> = results
        .iter()
        .filter(|r| r.check == "rds_not_public")
        .collect();
    assert!(
        rds.iter().any(|r| r.status == Status::Error
            && r.region.as_deref() == Some("eu-west-1")
            && r.evidence.contains("AccessDenied")),
        "{rds:?}"
    );
    assert!(rds
        .iter()
        .any(|r| r.status == Status::Pass && r.region.as_deref() == Some("us-east-1")));

    // In the framework, the control is in error, not passed, and not scored.
    let cis = framework::builtin().unwrap().remove(0);
    let v = framework::assess(&cis, &results);
    let c = v.controls.iter().find(|c| c.control_id == "2.3.3").unwrap();
    assert_eq!(c.status, "ERROR");
    // (The RDS error leaves all three RDS controls in error.)
    assert_eq!(v.errors, 3);
}

#[test]
fn the_cis_catalogue_scores_passing_and_failing_controls() {
    let cis = framework::builtin().unwrap().remove(0);
    assert_eq!(cis.controls.len(), 62);
    let all = framework::assess(&cis, &run_checks(&snapshot(good())));
    assert_eq!(
        all.failed,
        0,
        "{:?}",
        all.controls
            .iter()
            .filter(|c| c.status != "PASS")
            .collect::<Vec<_>>()
    );
    assert_eq!(all.score, Some(100.0));
    assert_eq!(all.manual, 8);
    // Every automated control of CIS 3.0 has a Vigil check.
    assert_eq!(
        all.not_assessed,
        0,
        "{:?}",
        all.controls
            .iter()
            .filter(|c| c.status == "NOT_ASSESSED")
            .map(|c| &c.control_id)
            .collect::<Vec<_>>()
    );
    assert_eq!(all.passed, 54);

    let mut a = good();
    east(&mut a).rds_instances[0].publicly_accessible = true;
    west(&mut a).security_groups[1].ingress[1]
        .ipv4
        .push("0.0.0.0/0".into());
    let v = framework::assess(&cis, &run_checks(&snapshot(a)));
    let failed: Vec<&str> = v
        .controls
        .iter()
        .filter(|c| c.status == "FAIL")
        .map(|c| c.control_id.as_str())
        .collect();
    assert_eq!(failed, ["2.3.3", "5.2"]);
    assert_eq!(v.score, Some((52.0f64 / 54.0 * 1000.0).round() / 10.0));
    let c = v.controls.iter().find(|c| c.control_id == "5.2").unwrap();
    assert_eq!(c.playbooks, ["PB-008"]);
    assert!(c.remediation.as_deref().unwrap().contains("Revoke"));
    assert!(c
        .failures
        .iter()
        .all(|f| f.resource_arn.contains("sg-web-eu-west-1")));
}

/// The other four frameworks: their catalogues load, their controls resolve to
/// Vigil's checks where the mapping names ones Vigil runs, a hardened account
/// scores 100 on each, and one unencrypted database fails the controls of each
/// that look at it.
#[test]
fn nist_pci_hipaa_and_gdpr_are_scored_from_the_same_checks() {
    let all = framework::builtin().unwrap();
    let ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["CIS", "NIST-CSF", "PCI-DSS", "HIPAA", "GDPR"]);
    let sizes: Vec<usize> = all.iter().map(|f| f.controls.len()).collect();
    assert_eq!(sizes, [62, 78, 107, 32, 3]);
    let results = run_checks(&snapshot(good()));
    let mut broken = good();
    east(&mut broken).rds_instances[0].storage_encrypted = false;
    let broken_results = run_checks(&snapshot(broken));
    for f in &all[1..] {
        let v = framework::assess(f, &results);
        assert!(v.passed > 0, "{}: nothing assessed", f.id);
        assert_eq!((v.failed, v.errors), (0, 0), "{}", f.id);
        assert_eq!(v.score, Some(100.0), "{}", f.id);
        // Controls judged on part of their checks say which are missing.
        for c in v
            .controls
            .iter()
            .filter(|c| !c.unassessed_checks.is_empty())
        {
            assert!(!c.checks.is_empty(), "{} {}", f.id, c.control_id);
        }
        assert_eq!(
            v.partial,
            v.controls
                .iter()
                .filter(|c| c.status == "PASS" && !c.unassessed_checks.is_empty())
                .count()
        );
        let b = framework::assess(f, &broken_results);
        let failing: Vec<&framework::ControlResult> =
            b.controls.iter().filter(|c| c.status == "FAIL").collect();
        assert!(
            !failing.is_empty(),
            "{}: an unencrypted database fails nothing",
            f.id
        );
        for c in &failing {
            assert!(
                c.checks.iter().any(|x| x == "rds_storage_encrypted"),
                "{}",
                c.control_id
            );
            assert!(c
                .failures
                .iter()
                .all(|r| r.check == "rds_storage_encrypted"));
        }
        assert!(b.score.unwrap() < 100.0);
    }
    // A few facts of the mapping, as the catalogues hold them.
    let pci = &all[2];
    let c = pci.controls.iter().find(|c| c.id == "1.3.1").unwrap();
    assert!(c
        .checks
        .iter()
        .any(|x| x == "rds_instance_no_public_access"));
    let hipaa = &all[3];
    assert!(hipaa.controls.iter().any(|c| c.id == "164.312(a)(2)(iv)"));
    let nist = &all[1];
    assert!(nist.controls.iter().any(|c| c.id == "ID.SC-04"));
}

#[test]
fn a_snapshot_round_trips_and_bad_files_are_named() {
    let s = snapshot(good());
    let text = serde_json::to_string_pretty(&s).unwrap();
    assert_eq!(Snapshot::parse(&text, "s.json").unwrap(), s);
    let newer = text.replacen(
        &format!("\"version\": {SNAPSHOT_VERSION}"),
        "\"version\": 99",
        1,
    );
    let e = Snapshot::parse(&newer, "s.json").unwrap_err().to_string();
    assert!(e.contains("s.json") && e.contains("version 99"), "{e}");
    let typo = text.replacen("\"mfa_active\"", "\"mfa_actve\"", 1);
    let e = Snapshot::parse(&typo, "s.json").unwrap_err().to_string();
    assert!(
        e.contains("s.json: line ") && e.contains("mfa_actve"),
        "{e}"
    );
}

#[test]
fn a_metric_filter_must_mention_every_term_of_its_control() {
    use vigil_comply::checks::logging::pattern_covers;
    let terms = ["$.errorCode", "UnauthorizedOperation", "AccessDenied"];
    assert!(pattern_covers(
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        &terms
    ));
    assert!(pattern_covers(
        r#"{($.errorCode="*UnauthorizedOperation")||($.errorCode="AccessDenied*")}"#,
        &terms
    ));
    assert!(!pattern_covers(
        r#"{ $.errorCode = "*UnauthorizedOperation" }"#,
        &terms
    ));
    // Values are case-sensitive in CloudTrail, so are the terms.
    assert!(!pattern_covers(
        r#"{ ($.errorCode = "*unauthorizedoperation") || ($.errorCode = "accessdenied*") }"#,
        &terms
    ));
}
