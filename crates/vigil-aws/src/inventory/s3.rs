//! S3: the account's Block Public Access (S3 Control) and each bucket's
//! location, policy, Block Public Access, versioning and MFA delete, access
//! logging and default encryption. A bucket field that cannot be read is named
//! in that bucket's `errors`; the bucket list failing leaves all of S3 unread.

use aws_sdk_s3::error::ProvideErrorMetadata;
use futures_util::stream::{self, StreamExt};
use vigil_comply::snapshot::{Bucket, CollectError, PublicAccessBlock, S3};

use super::failed;
use crate::Aws;

/// Buckets read at once.
const FAN_OUT: usize = 8;

pub async fn collect(aws: &Aws, account: &str, home: &str) -> (S3, Vec<CollectError>) {
    let mut errors = Vec::new();
    let (account_block, buckets) =
        tokio::join!(account_block(aws, account), buckets(aws, account, home));
    let mut s3 = S3::default();
    match account_block {
        Ok(b) => s3.account_public_access_block = b,
        Err(e) => errors.push(e),
    }
    match buckets {
        Ok(b) => s3.buckets = b,
        Err(e) => errors.push(e),
    }
    (s3, errors)
}

fn entering(service: &str, e: crate::ActionError) -> CollectError {
    CollectError {
        service: service.into(),
        region: None,
        operation: "sts:AssumeRole".into(),
        message: e.to_string(),
    }
}

/// The account-wide Block Public Access; None when none is set.
async fn account_block(
    aws: &Aws,
    account: &str,
) -> Result<Option<PublicAccessBlock>, CollectError> {
    let c = aws
        .s3control(Some(account), None)
        .await
        .map_err(|e| entering("s3control", e))?;
    match c.get_public_access_block().account_id(account).send().await {
        Ok(out) => Ok(out
            .public_access_block_configuration()
            .map(|p| PublicAccessBlock {
                block_public_acls: p.block_public_acls().unwrap_or(false),
                ignore_public_acls: p.ignore_public_acls().unwrap_or(false),
                block_public_policy: p.block_public_policy().unwrap_or(false),
                restrict_public_buckets: p.restrict_public_buckets().unwrap_or(false),
            })),
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => Ok(None),
        Err(e) => Err(failed("s3control", None, "GetPublicAccessBlock", &e)),
    }
}

async fn buckets(aws: &Aws, account: &str, home: &str) -> Result<Vec<Bucket>, CollectError> {
    let c = aws
        .s3(Some(account), None)
        .await
        .map_err(|e| entering("s3", e))?;
    let list = c
        .list_buckets()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| failed("s3", None, "ListBuckets", &e))?;
    let names: Vec<String> = list
        .iter()
        .flat_map(|page| page.buckets())
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    let c = &c;
    Ok(stream::iter(names)
        .map(|name| async move { bucket(aws, c, account, home, name).await })
        .buffered(FAN_OUT)
        .collect()
        .await)
}

/// One bucket by name, or None if it no longer exists.
pub async fn one(aws: &Aws, account: &str, home: &str, name: &str) -> Option<Bucket> {
    let c = match aws.s3(Some(account), None).await {
        Ok(c) => c,
        Err(e) => {
            return Some(Bucket {
                name: name.to_owned(),
                errors: vec![format!("sts:AssumeRole: {e}")],
                ..Bucket::default()
            })
        }
    };
    let b = bucket(aws, &c, account, home, name.to_owned()).await;
    let gone = b
        .errors
        .iter()
        .any(|e| e.starts_with("GetBucketLocation: NoSuchBucket"));
    (!gone).then_some(b)
}

/// One bucket, read in its own region.
async fn bucket(
    aws: &Aws,
    home_client: &aws_sdk_s3::Client,
    account: &str,
    home: &str,
    name: String,
) -> Bucket {
    let mut b = Bucket {
        name,
        ..Bucket::default()
    };
    let note = |errors: &mut Vec<String>, op: &str, e: &dyn std::fmt::Display| {
        errors.push(format!("{op}: {e}"));
    };
    b.region = match home_client
        .get_bucket_location()
        .bucket(&b.name)
        .send()
        .await
    {
        Ok(out) => match out.location_constraint().map(|l| l.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(r) => r.to_owned(),
        },
        Err(e) => {
            note(&mut b.errors, "GetBucketLocation", &message(&e));
            home.to_owned()
        }
    };
    let c = match aws.s3(Some(account), Some(&b.region)).await {
        Ok(c) => c,
        Err(e) => {
            b.errors.push(format!("sts:AssumeRole: {e}"));
            return b;
        }
    };
    let n = b.name.clone();
    let (policy, block, versioning, logging, encryption) = tokio::join!(
        c.get_bucket_policy().bucket(&n).send(),
        c.get_public_access_block().bucket(&n).send(),
        c.get_bucket_versioning().bucket(&n).send(),
        c.get_bucket_logging().bucket(&n).send(),
        c.get_bucket_encryption().bucket(&n).send(),
    );
    match policy {
        Ok(out) => match out.policy().map(serde_json::from_str::<serde_json::Value>) {
            Some(Ok(p)) => b.policy = Some(p),
            Some(Err(e)) => note(&mut b.errors, "GetBucketPolicy", &format!("not JSON: {e}")),
            None => {}
        },
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => {}
        Err(e) => note(&mut b.errors, "GetBucketPolicy", &message(&e)),
    }
    match block {
        Ok(out) => {
            b.public_access_block =
                out.public_access_block_configuration()
                    .map(|p| PublicAccessBlock {
                        block_public_acls: p.block_public_acls().unwrap_or(false),
                        ignore_public_acls: p.ignore_public_acls().unwrap_or(false),
                        block_public_policy: p.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: p.restrict_public_buckets().unwrap_or(false),
                    })
        }
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => {}
        Err(e) => note(&mut b.errors, "GetPublicAccessBlock", &message(&e)),
    }
    match versioning {
        Ok(out) => {
            b.versioning = out.status().map(|s| s.as_str().to_owned());
            b.mfa_delete = out.mfa_delete().is_some_and(|m| m.as_str() == "Enabled");
        }
        Err(e) => note(&mut b.errors, "GetBucketVersioning", &message(&e)),
    }
    match logging {
        Ok(out) => b.logging_target = out.logging_enabled().map(|l| l.target_bucket().to_owned()),
        Err(e) => note(&mut b.errors, "GetBucketLogging", &message(&e)),
    }
    match encryption {
        Ok(out) => {
            b.encryption = out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_owned())
        }
        Err(e) if e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") => {}
        Err(e) => note(&mut b.errors, "GetBucketEncryption", &message(&e)),
    }
    b
}

fn message<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    failed("s3", None, "", e).message
}
