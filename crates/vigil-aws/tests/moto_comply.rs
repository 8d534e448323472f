//! The compliance collector against moto_server: two emulated accounts, one
//! hardened and one with a known failure for each check (seeded by
//! `scripts/lib/seed-comply.py`, the member account through AssumeRole),
//! collected with `vigil_aws::inventory` through the audit role and judged by
//! `vigil-comply`'s checks. Every check moto can emulate must PASS in the first
//! account and FAIL in the second.
//!
//! What moto cannot hold, and so is judged here only as moto shows it (each is
//! covered both ways by the snapshot tests in `crates/vigil-comply/tests`):
//! - the root user: moto's credential report has no root row, its account
//!   summary always says no root MFA and no root keys, and nothing can give the
//!   root user a key or MFA device;
//! - time: keys and passwords cannot be back-dated, so nothing is unused for 45
//!   days or unrotated for 90;
//! - S3 versioning and MFA delete: moto ignores MFADelete, and answers
//!   GetBucketVersioning under a root element the SDK refuses
//!   (`GetBucketVersioningResponse`, not `VersioningConfiguration`), so the
//!   check reports ERROR;
//! - IAM Access Analyzer: not emulated at all (its reads fail, and the check
//!   reports ERROR rather than a verdict);
//! - CloudWatch alarms: aws-sdk-rust speaks CloudWatch's Smithy RPC v2 CBOR
//!   protocol, which moto 5.2.5 does not serve (boto3 picks JSON), so alarms go
//!   unread and the fifteen monitoring checks report ERROR here.

mod moto;

use std::collections::BTreeMap;
use std::process::Command;

use moto::*;
use vigil_aws::inventory::{collect, Scope};
use vigil_comply::{run_checks, Snapshot, Status};

const MEMBER: &str = "222233334444";
const REGION: &str = "us-east-1";

/// The seeder, run to completion.
fn seed(moto: &Moto, state: &str, account: Option<&str>) -> std::process::Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/lib/seed-comply.py"
    );
    let mut c = Command::new(vigil_testkit::python_tool("python"));
    c.args([
        script,
        "--endpoint",
        &moto.url,
        "--state",
        state,
        "--region",
        REGION,
    ]);
    if let Some(a) = account {
        c.args(["--account", a]);
    }
    c.spawn().expect("the seeder starts")
}

/// A check's verdict in an account: FAIL if any result fails, else ERROR if any
/// errs, else PASS if any passes, else NOT_APPLICABLE; NONE without results.
fn verdicts(snapshot: &Snapshot) -> BTreeMap<(String, String), &'static str> {
    let mut all: BTreeMap<(String, String), Vec<Status>> = BTreeMap::new();
    for r in run_checks(snapshot) {
        all.entry((r.account.clone(), r.check.clone()))
            .or_default()
            .push(r.status);
    }
    let mut out = BTreeMap::new();
    for c in vigil_comply::checks::all() {
        for a in [HOME, MEMBER] {
            let s = all.get(&(a.to_owned(), c.id.to_owned()));
            let v = match s {
                None => "NONE",
                Some(s) if s.contains(&Status::Fail) => "FAIL",
                Some(s) if s.contains(&Status::Error) => "ERROR",
                Some(s) if s.contains(&Status::Pass) => "PASS",
                Some(_) => "NOT_APPLICABLE",
            };
            out.insert((a.to_owned(), c.id.to_owned()), v);
        }
    }
    out
}

/// The checks moto cannot show both ways, and what it shows: (check, in the
/// hardened account, in the failing one).
const MOTO_LIMITS: &[(&str, &str, &str)] = &[
    ("iam_root_no_access_key", "PASS", "PASS"),
    ("iam_root_mfa", "FAIL", "FAIL"),
    ("iam_root_hardware_mfa", "FAIL", "FAIL"),
    ("iam_root_not_used", "ERROR", "ERROR"),
    ("iam_credentials_unused_45_days", "PASS", "PASS"),
    ("iam_keys_rotated_90_days", "PASS", "PASS"),
    ("s3_bucket_mfa_delete", "ERROR", "ERROR"),
    ("accessanalyzer_enabled", "ERROR", "ERROR"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_emulated_check_passes_in_a_hardened_account_and_fails_in_a_broken_one() {
    let moto = start_moto_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let mut good = seed(&moto, "good", None);
    let mut bad = seed(&moto, "bad", Some(MEMBER));
    assert!(
        good.wait().unwrap().success(),
        "seeding the hardened account"
    );
    assert!(bad.wait().unwrap().success(), "seeding the failing account");

    let aws = aws(&moto, Some("VigilAudit")).await;
    let scope = Scope {
        accounts: vec![HOME.into(), MEMBER.into()],
        regions: vec![REGION.into()],
    };
    let snapshot = collect(&aws, &scope).await;
    assert_eq!(snapshot.accounts.len(), 2);

    // What could not be read: Access Analyzer (moto has none) and CloudWatch
    // (not in the SDK's protocol).
    for a in &snapshot.accounts {
        let unread: Vec<_> = a
            .errors
            .iter()
            .filter(|e| e.service != "accessanalyzer" && e.service != "cloudwatch")
            .collect();
        assert!(unread.is_empty(), "{}: {unread:#?}", a.account_id);
        assert!(a.error_for("accessanalyzer", Some(REGION)).is_some());
        assert!(a.error_for("cloudwatch", Some(REGION)).is_some());
    }
    // The member account was read through the role: its own resources, not the
    // home account's.
    let member = &snapshot.accounts[1];
    assert_eq!(member.account_id, MEMBER);
    assert!(member.iam.users.iter().any(|u| u.name == "bob"));
    assert!(!member.iam.users.iter().any(|u| u.name == "alice"));
    assert!(member.s3.buckets.iter().all(|b| b.name.ends_with(MEMBER)));

    // The snapshot survives its own file format.
    let text = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(Snapshot::parse(&text, "collected").unwrap(), snapshot);

    let got = verdicts(&snapshot);
    let mut wrong = Vec::new();
    let mut emulated = 0;
    for c in vigil_comply::checks::all() {
        // Without a trail sending to CloudWatch Logs, the monitors fail before
        // any alarm is read.
        let (want_good, want_bad) = if c.id.starts_with("cloudwatch_alarm_") {
            ("ERROR", "FAIL")
        } else {
            MOTO_LIMITS
                .iter()
                .find(|(id, _, _)| *id == c.id)
                .map_or(("PASS", "FAIL"), |(_, g, b)| (*g, *b))
        };
        if (want_good, want_bad) == ("PASS", "FAIL") {
            emulated += 1;
        }
        let g = match got[&(HOME.to_owned(), c.id.to_owned())] {
            // Nothing to judge (no server certificate at all) passes.
            "NOT_APPLICABLE" => "PASS",
            v => v,
        };
        let b = got[&(MEMBER.to_owned(), c.id.to_owned())];
        if (g, b) != (want_good, want_bad) {
            wrong.push(format!(
                "{}: hardened {g} (want {want_good}), broken {b} (want {want_bad})",
                c.id
            ));
        }
    }
    if !wrong.is_empty() {
        let detail: Vec<String> = run_checks(&snapshot)
            .into_iter()
            .filter(|r| {
                wrong
                    .iter()
                    .any(|w| w.starts_with(&format!("{}:", r.check)))
            })
            .map(|r| {
                format!(
                    "  {} {} {} {}: {}",
                    r.account,
                    r.check,
                    r.status.as_str(),
                    r.resource_arn,
                    r.evidence
                )
            })
            .collect();
        panic!("{}\n{}", wrong.join("\n"), detail.join("\n"));
    }
    assert_eq!(
        emulated + MOTO_LIMITS.len() + vigil_comply::checks::logging::MONITORS.len(),
        vigil_comply::checks::all().count()
    );
    assert!(emulated >= 35, "{emulated} checks emulated both ways");

    // A bucket policy deleted: re-reading that one bucket turns the verdict.
    let bucket = format!("data-good-{HOME}");
    s3(&moto, REGION)
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut snapshot = snapshot;
    let part = vigil_aws::inventory::part_changed_by(
        "s3",
        "DeleteBucketPolicy",
        Some(REGION),
        Some(&bucket),
    )
    .unwrap();
    vigil_aws::inventory::refresh(&aws, &mut snapshot, HOME, &part).await;
    let tls: Vec<_> = run_checks(&snapshot)
        .into_iter()
        .filter(|r| {
            r.check == "s3_bucket_tls_only" && r.account == HOME && r.status == Status::Fail
        })
        .collect();
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0].resource_arn, format!("arn:aws:s3:::{bucket}"));
}

/// With AWS out of reach nothing is judged on facts never read: every check
/// reports ERROR (or nothing), never PASS or FAIL.
#[tokio::test]
async fn nothing_is_judged_when_nothing_could_be_read() {
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let aws = vigil_aws::Aws::new(vigil_aws::AwsSettings {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        home_account: Some(HOME.into()),
        credentials: Some(test_credentials()),
        ..Default::default()
    })
    .await;
    let scope = Scope {
        accounts: vec![HOME.into()],
        regions: vec![REGION.into()],
    };
    let snapshot = collect(&aws, &scope).await;
    let a = &snapshot.accounts[0];
    for s in vigil_aws::inventory::SERVICES {
        assert!(
            a.error_for(s, Some(REGION)).is_some(),
            "{s} not marked unread"
        );
    }
    for r in run_checks(&snapshot) {
        assert_eq!(r.status, Status::Error, "{} {}", r.check, r.evidence);
    }
}
