//! The S3 actions: Block Public Access on a bucket and on the account (S3
//! Control), and taking the statements that let anyone in out of a bucket policy.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::Client;
use serde_json::{json, Value};

use crate::{param, sdk_error, ActionError, Outcome};

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "s3.block_bucket_public_access" => block_bucket(client, p).await,
        "s3.remove_public_statements" => remove_public(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

/// The four settings of a `PublicAccessBlockConfiguration` (S3's or S3
/// Control's: the same fields) as found; no configuration reads as all off.
macro_rules! settings_of {
    ($config:expr) => {{
        let c = $config;
        json!({
            "block_public_acls": c.and_then(|c| c.block_public_acls()).unwrap_or(false),
            "ignore_public_acls": c.and_then(|c| c.ignore_public_acls()).unwrap_or(false),
            "block_public_policy": c.and_then(|c| c.block_public_policy()).unwrap_or(false),
            "restrict_public_buckets": c.and_then(|c| c.restrict_public_buckets()).unwrap_or(false),
        })
    }};
}

/// The error code S3 answers when a bucket or account has no Block Public Access
/// configuration: the same, for this action, as one with every setting off.
const NO_BLOCK: &str = "NoSuchPublicAccessBlockConfiguration";

/// With the settings found `before` (and the calls made to read them): nothing to
/// do when all four are on, else `put` turns them all on. `scope` names what
/// they are of (`("bucket", name)` or `("account", id)`).
async fn turn_all_on<F, Fut>(
    scope: (&str, &str),
    mut calls: Vec<String>,
    before: Value,
    put_op: &str,
    put: F,
) -> Result<Outcome, ActionError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), ActionError>>,
{
    let all_on = before
        .as_object()
        .is_some_and(|m| m.values().all(|b| b == &Value::Bool(true)));
    if all_on {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({scope.0: scope.1, "public_access_block": before}),
        });
    }
    put().await?;
    calls.push(put_op.into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({scope.0: scope.1, "before": before}),
    })
}

async fn block_bucket(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let bucket = param(p, "bucket")?;
    let calls = vec!["s3:GetPublicAccessBlock".to_owned()];
    let before = match client.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => settings_of!(out.public_access_block_configuration()),
        Err(e) if e.code() == Some(NO_BLOCK) => {
            settings_of!(None::<&aws_sdk_s3::types::PublicAccessBlockConfiguration>)
        }
        Err(e) => return Err(sdk_error("s3:GetPublicAccessBlock", e)),
    };
    let put = || async {
        let conf = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        client
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(conf)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("s3:PutPublicAccessBlock", e))
    };
    turn_all_on(
        ("bucket", bucket),
        calls,
        before,
        "s3:PutPublicAccessBlock",
        put,
    )
    .await
}

/// The account-wide settings of `account`, through S3 Control.
pub async fn block_account(
    client: &aws_sdk_s3control::Client,
    account: &str,
) -> Result<Outcome, ActionError> {
    use aws_sdk_s3control::types::PublicAccessBlockConfiguration as Config;
    let calls = vec!["s3control:GetPublicAccessBlock".to_owned()];
    let got = client
        .get_public_access_block()
        .account_id(account)
        .send()
        .await;
    let before = match got {
        Ok(out) => settings_of!(out.public_access_block_configuration()),
        Err(e) if e.code() == Some(NO_BLOCK) => settings_of!(None::<&Config>),
        Err(e) => return Err(sdk_error("s3control:GetPublicAccessBlock", e)),
    };
    let put = || async {
        let conf = Config::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        client
            .put_public_access_block()
            .account_id(account)
            .public_access_block_configuration(conf)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("s3control:PutPublicAccessBlock", e))
    };
    let op = "s3control:PutPublicAccessBlock";
    turn_all_on(("account", account), calls, before, op, put).await
}

async fn remove_public(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let bucket = param(p, "bucket")?;
    let mut calls = vec!["s3:GetBucketPolicy".to_owned()];
    let text = match client.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => out.policy().unwrap_or_default().to_owned(),
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => String::new(),
        Err(e) => return Err(sdk_error("s3:GetBucketPolicy", e)),
    };
    if text.is_empty() {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"bucket": bucket, "policy": null}),
        });
    }
    let policy: Value = serde_json::from_str(&text).map_err(|e| ActionError::Failed {
        op: "s3:GetBucketPolicy".into(),
        message: format!("bucket {bucket}'s policy is not JSON: {e}"),
    })?;
    let (kept, removed) = split_public(&policy);
    if removed.is_empty() {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"bucket": bucket, "removed": []}),
        });
    }
    if kept.is_empty() {
        client
            .delete_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk_error("s3:DeleteBucketPolicy", e))?;
        calls.push("s3:DeleteBucketPolicy".into());
    } else {
        let mut rest = policy.clone();
        rest["Statement"] = Value::Array(kept);
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(rest.to_string())
            .send()
            .await
            .map_err(|e| sdk_error("s3:PutBucketPolicy", e))?;
        calls.push("s3:PutBucketPolicy".into());
    }
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"bucket": bucket, "removed": removed, "before": policy}),
    })
}

/// A policy's statements split into those kept and those that allow anyone.
pub fn split_public(policy: &Value) -> (Vec<Value>, Vec<Value>) {
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements.into_iter().partition(|s| !allows_anyone(s))
}

/// An `Allow` to the principal `*` (or `{"AWS": "*"}`) that no condition narrows
/// to known callers or networks.
fn allows_anyone(s: &Value) -> bool {
    let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
    let anyone = match s.get("Principal") {
        Some(p) => is_wildcard(p) || p.get("AWS").is_some_and(is_wildcard),
        None => false,
    };
    allow && anyone && !narrowed(s.get("Condition"))
}

fn is_wildcard(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "*",
        Value::Array(a) => a.iter().any(is_wildcard),
        _ => false,
    }
}

/// Condition keys that tie a request to a caller, an organization or a network.
const NARROWING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:userid",
    "aws:username",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

/// Whether a condition names a narrowing key with a value other than `*`.
fn narrowed(condition: Option<&Value>) -> bool {
    let Some(Value::Object(ops)) = condition else {
        return false;
    };
    ops.values()
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.iter())
        .any(|(k, v)| NARROWING_KEYS.contains(&k.to_ascii_lowercase().as_str()) && !is_wildcard(v))
}

/// S3 Control's endpoint when it is given (an emulator): as is, without the
/// account host prefix.
#[derive(Debug)]
pub struct FixedEndpoint(pub String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        _: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        let e = aws_sdk_s3control::config::endpoint::Endpoint::builder()
            .url(self.0.clone())
            .build();
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_statements_are_the_unconditioned_allows_to_anyone() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "a", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "b", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:root", "*"]}, "Action": "s3:*", "Resource": "*"},
            {"Sid": "c", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}},
            {"Sid": "d", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"StringLike": {"aws:PrincipalOrgID": "*"}}},
            {"Sid": "e", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "f", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/r"}, "Action": "s3:*", "Resource": "*"},
            {"Sid": "g", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
        ]});
        let (kept, removed) = split_public(&policy);
        fn sids(v: &[Value]) -> Vec<&str> {
            v.iter().map(|s| s["Sid"].as_str().unwrap_or("")).collect()
        }
        assert_eq!(sids(&removed), ["a", "b", "d", "g"]);
        assert_eq!(sids(&kept), ["c", "e", "f"]);
    }

    #[test]
    fn a_single_statement_object_is_read_too() {
        let policy =
            json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*"}});
        let (kept, removed) = split_public(&policy);
        assert_eq!((kept.len(), removed.len()), (0, 1));
    }
}
