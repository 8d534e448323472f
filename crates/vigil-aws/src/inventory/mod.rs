//! The compliance inventory collector (`vigil comply collect`): reads, through
//! aws-sdk-rust, what `vigil-comply`'s checks judge, in every account asked for
//! (member accounts through the audit role, assumed with STS) and every region
//! enabled there, and returns it as a [`Snapshot`].
//!
//! Read-only: every call is a Describe, List or Get. A call that fails leaves its
//! part of the snapshot empty and is named in the account's `errors` (service,
//! region, operation, AWS's message), so that the checks reading it report ERROR
//! instead of judging on facts that were never read. Accounts, regions and the
//! services within a region are read concurrently.

mod iam;
mod regional;
mod s3;

use std::fmt::Debug;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use futures_util::future::join_all;
use vigil_comply::snapshot::{AccountSnapshot, CollectError, Snapshot, SNAPSHOT_VERSION};
use vigil_model::Timestamp;

use crate::Aws;

/// What to collect.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The accounts; empty: the account of Vigil's own credentials.
    pub accounts: Vec<String>,
    /// The regions; empty: every region enabled in each account (EC2
    /// DescribeRegions).
    pub regions: Vec<String>,
}

/// Every service name errors are filed under, as the checks look them up.
pub const SERVICES: &[&str] = &[
    "iam",
    "s3",
    "s3control",
    "ec2",
    "cloudtrail",
    "config",
    "kms",
    "logs",
    "cloudwatch",
    "sns",
    "rds",
    "efs",
    "securityhub",
    "guardduty",
    "accessanalyzer",
];

/// Reads the inventory of every account in `scope`.
pub async fn collect(aws: &Aws, scope: &Scope) -> Snapshot {
    let accounts = if scope.accounts.is_empty() {
        match aws.account_id(None).await {
            Ok(a) => vec![a],
            Err(e) => {
                // Without knowing whose account it is there is nothing to file
                // the failure under but an unnamed one.
                let mut a = AccountSnapshot::default();
                unreadable(&mut a, "sts", &e.to_string());
                return snapshot(vec![a]);
            }
        }
    } else {
        scope.accounts.clone()
    };
    let all = join_all(accounts.iter().map(|a| account(aws, a, &scope.regions))).await;
    snapshot(all)
}

fn snapshot(accounts: Vec<AccountSnapshot>) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        collected_at: Timestamp::now(),
        collector: concat!("vigil ", env!("CARGO_PKG_VERSION")).into(),
        accounts,
    }
}

/// Marks every service unread in `a` (the account could not be entered).
fn unreadable(a: &mut AccountSnapshot, operation: &str, message: &str) {
    for s in SERVICES {
        a.errors.push(CollectError {
            service: (*s).into(),
            region: None,
            operation: operation.into(),
            message: message.into(),
        });
    }
}

async fn account(aws: &Aws, id: &str, regions: &[String]) -> AccountSnapshot {
    let mut a = AccountSnapshot {
        account_id: id.to_owned(),
        ..AccountSnapshot::default()
    };
    // Enter the account once up front: a role that cannot be assumed is one
    // error, not one per call.
    if let Err(e) = aws.credentials_for(Some(id)).await {
        unreadable(&mut a, "sts:AssumeRole", &e.to_string());
        return a;
    }
    a.regions = if regions.is_empty() {
        match regional::enabled_regions(aws, id).await {
            Ok(r) => r,
            Err(e) => {
                // No region list: every regional service is unread.
                for s in SERVICES {
                    if !matches!(*s, "iam" | "s3" | "s3control") {
                        a.errors.push(CollectError {
                            region: None,
                            service: (*s).into(),
                            ..e.clone()
                        });
                    }
                }
                Vec::new()
            }
        }
    } else {
        regions.to_vec()
    };
    let home = aws.home_region_name();
    let (iam, s3, per_region) = tokio::join!(
        iam::collect(aws, id),
        s3::collect(aws, id, &home),
        join_all(a.regions.iter().map(|r| regional::collect(aws, id, r))),
    );
    let (iam, mut errors) = iam;
    a.iam = iam;
    a.errors.append(&mut errors);
    let (s3, mut errors) = s3;
    a.s3 = s3;
    a.errors.append(&mut errors);
    for (region, (r, mut errors)) in a.regions.iter().zip(per_region) {
        a.regional.insert(region.clone(), r);
        a.errors.append(&mut errors);
    }
    a
}

/// A failed call as the snapshot records it.
pub(crate) fn failed<E, R>(
    service: &str,
    region: Option<&str>,
    operation: &str,
    e: &SdkError<E, R>,
) -> CollectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + 'static,
{
    let message = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => chain(e),
    };
    CollectError {
        service: service.into(),
        region: region.map(str::to_owned),
        operation: operation.into(),
        message,
    }
}

/// An error and its causes, by their messages (not the SDK's debug dump of the
/// whole response), cut to a readable length.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut at = e.source();
    while let Some(s) = at {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        at = s.source();
    }
    if out.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// An AWS time as a snapshot time.
pub(crate) fn time(t: &aws_smithy_types::DateTime) -> Timestamp {
    Timestamp::from_millis(t.to_millis().unwrap_or(0))
}

/// Every item of a paginated request, or the error mapped by `$err`.
macro_rules! all_items {
    ($request:expr, $err:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err($err)
    };
}
pub(crate) use all_items;

/// A client of SDK crate `$sdk` in `$account` and `$region` (an
/// `Option<&str>`; None: the home region), or, from the enclosing function, the
/// error of entering the account, filed under `$service`.
macro_rules! client_in {
    ($sdk:ident, $aws:expr, $account:expr, $region:expr, $service:expr) => {{
        let region: Option<&str> = $region;
        let t = $aws.target(Some($account), region).await.map_err(|e| {
            vigil_comply::snapshot::CollectError {
                service: $service.into(),
                region: region.map(str::to_owned),
                operation: "sts:AssumeRole".into(),
                message: e.to_string(),
            }
        })?;
        $crate::with_target!($sdk, $aws, t)
    }};
}
pub(crate) use client_in;

/// A part of an account's inventory that one change can alter, re-read alone
/// when a CloudTrail event says it changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// Everything IAM.
    Iam,
    /// The account-wide S3 Block Public Access.
    S3Account,
    /// The bucket list and every bucket (a bucket made or deleted).
    S3,
    /// One bucket.
    Bucket(String),
    /// Every regional service of one region.
    Region(String),
}

/// The part a successful write call changes, or None for reads and for services
/// no check looks at. `service` is CloudTrail's short service name (`s3` for
/// `s3.amazonaws.com`), `bucket` the request's `bucketName` where it has one.
pub fn part_changed_by(
    service: &str,
    operation: &str,
    region: Option<&str>,
    bucket: Option<&str>,
) -> Option<Part> {
    let read = [
        "Get", "List", "Describe", "Head", "Lookup", "Search", "Batch",
    ]
    .iter()
    .any(|p| operation.starts_with(p))
        || operation == "GenerateCredentialReport";
    if read {
        return None;
    }
    match service {
        "iam" => Some(Part::Iam),
        "s3" => match operation {
            "PutAccountPublicAccessBlock" | "DeleteAccountPublicAccessBlock" => {
                Some(Part::S3Account)
            }
            "CreateBucket" | "DeleteBucket" => Some(Part::S3),
            op if op.starts_with("PutBucket") || op.starts_with("DeleteBucket") => bucket
                .map(|b| Part::Bucket(b.to_owned()))
                .or(Some(Part::S3)),
            _ => None,
        },
        "ec2" | "cloudtrail" | "config" | "kms" | "logs" | "monitoring" | "sns" | "rds"
        | "elasticfilesystem" | "securityhub" | "guardduty" | "access-analyzer" => {
            region.map(|r| Part::Region(r.to_owned()))
        }
        _ => None,
    }
}

/// Re-reads `part` of `account` into `snapshot` (its errors with it). An
/// account or region the snapshot does not cover is left alone.
pub async fn refresh(aws: &Aws, snapshot: &mut Snapshot, account: &str, part: &Part) {
    let Some(a) = snapshot
        .accounts
        .iter_mut()
        .find(|a| a.account_id == account)
    else {
        return;
    };
    match part {
        Part::Iam => {
            let (iam, errors) = iam::collect(aws, account).await;
            a.iam = iam;
            replace_errors(a, |e| e.service == "iam", errors);
        }
        Part::S3 | Part::S3Account => {
            let (s3, errors) = s3::collect(aws, account, &aws.home_region_name()).await;
            a.s3 = s3;
            replace_errors(a, |e| e.service == "s3" || e.service == "s3control", errors);
        }
        Part::Bucket(name) => match s3::one(aws, account, &aws.home_region_name(), name).await {
            Some(b) => match a.s3.buckets.iter_mut().find(|x| &x.name == name) {
                Some(slot) => *slot = b,
                None => a.s3.buckets.push(b),
            },
            None => a.s3.buckets.retain(|x| &x.name != name),
        },
        Part::Region(region) => {
            if !a.regions.contains(region) {
                return;
            }
            let (r, errors) = regional::collect(aws, account, region).await;
            a.regional.insert(region.clone(), r);
            replace_errors(a, |e| e.region.as_deref() == Some(region.as_str()), errors);
        }
    }
}

fn replace_errors(
    a: &mut AccountSnapshot,
    stale: impl Fn(&CollectError) -> bool,
    fresh: Vec<CollectError>,
) {
    a.errors.retain(|e| !stale(e));
    a.errors.extend(fresh);
}
