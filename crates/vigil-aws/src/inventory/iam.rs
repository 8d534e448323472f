//! IAM: the credential report, password policy, account summary, MFA devices,
//! users and their policies, attached managed policies with their documents,
//! the support role and server certificates. Global: read in the home region.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_iam::types::{EntityType, PolicyScopeType, ReportStateType};
use aws_sdk_iam::Client;
use futures_util::stream::{self, StreamExt};
use vigil_comply::snapshot::{
    parse_credential_report, CollectError, CredentialRow, Iam, ManagedPolicy, PasswordPolicy,
    ServerCertificate, User, VirtualMfa,
};

use super::{all_items, client_in, failed, time};
use crate::Aws;

/// The AWS-managed policy whose attachment to a role makes it the support role.
const SUPPORT_POLICY: &str = "arn:aws:iam::aws:policy/AWSSupportAccess";

/// Calls to IAM made at once for per-user and per-policy reads.
const FAN_OUT: usize = 8;

pub async fn collect(aws: &Aws, account: &str) -> (Iam, Vec<CollectError>) {
    match read(aws, account).await {
        Ok(iam) => (iam, Vec::new()),
        Err(e) => (Iam::default(), vec![e]),
    }
}

fn err<E, R>(op: &str) -> impl Fn(aws_sdk_iam::error::SdkError<E, R>) -> CollectError + '_
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| failed("iam", None, op, &e)
}

async fn read(aws: &Aws, account: &str) -> Result<Iam, CollectError> {
    let c = client_in!(aws_sdk_iam, aws, account, None, "iam");
    let (report, policy, summary, mfa, users, policies, support, certs) = tokio::join!(
        credential_report(&c),
        password_policy(&c),
        account_summary(&c),
        virtual_mfa(&c),
        users(&c),
        policies(&c),
        support_roles(&c),
        server_certificates(&c),
    );
    Ok(Iam {
        credential_report: report?,
        password_policy: policy?,
        account_summary: summary?,
        virtual_mfa_devices: mfa?,
        users: users?,
        policies: policies?,
        support_roles: support?,
        server_certificates: certs?,
    })
}

/// Asks for a fresh report and waits (bounded) until IAM has made it.
async fn credential_report(c: &Client) -> Result<Vec<CredentialRow>, CollectError> {
    for _ in 0..40 {
        let g = c
            .generate_credential_report()
            .send()
            .await
            .map_err(err("GenerateCredentialReport"))?;
        if g.state() == Some(&ReportStateType::Complete) {
            let r = c
                .get_credential_report()
                .send()
                .await
                .map_err(err("GetCredentialReport"))?;
            let text = r
                .content()
                .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
                .unwrap_or_default();
            return parse_credential_report(&text).map_err(|message| CollectError {
                service: "iam".into(),
                region: None,
                operation: "GetCredentialReport".into(),
                message,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(CollectError {
        service: "iam".into(),
        region: None,
        operation: "GenerateCredentialReport".into(),
        message: "the report was not ready after 10 s".into(),
    })
}

async fn password_policy(c: &Client) -> Result<Option<PasswordPolicy>, CollectError> {
    match c.get_account_password_policy().send().await {
        Ok(out) => Ok(out.password_policy().map(|p| PasswordPolicy {
            minimum_length: p.minimum_password_length().map(i64::from),
            reuse_prevention: p.password_reuse_prevention().map(i64::from),
            max_age_days: p.max_password_age().map(i64::from),
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase: p.require_uppercase_characters(),
            require_lowercase: p.require_lowercase_characters(),
        })),
        // No policy set: AWS's defaults apply.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(failed("iam", None, "GetAccountPasswordPolicy", &e)),
    }
}

async fn account_summary(c: &Client) -> Result<BTreeMap<String, i64>, CollectError> {
    let out = c
        .get_account_summary()
        .send()
        .await
        .map_err(err("GetAccountSummary"))?;
    Ok(out
        .summary_map()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), i64::from(*v)))
        .collect())
}

async fn virtual_mfa(c: &Client) -> Result<Vec<VirtualMfa>, CollectError> {
    let devices = all_items!(c.list_virtual_mfa_devices(), err("ListVirtualMFADevices"))?;
    Ok(devices
        .into_iter()
        .map(|d| VirtualMfa {
            serial_number: d.serial_number().to_owned(),
            user_arn: d.user().map(|u| u.arn().to_owned()),
        })
        .collect())
}

async fn users(c: &Client) -> Result<Vec<User>, CollectError> {
    let all = all_items!(c.list_users(), err("ListUsers"))?;
    let read = stream::iter(all)
        .map(|u| async move {
            let name = u.user_name().to_owned();
            let attached = all_items!(
                c.list_attached_user_policies().user_name(&name),
                err("ListAttachedUserPolicies")
            )?;
            let inline = all_items!(
                c.list_user_policies().user_name(&name),
                err("ListUserPolicies")
            )?;
            Ok(User {
                arn: u.arn().to_owned(),
                name,
                attached_policies: attached
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_owned))
                    .collect(),
                inline_policies: inline,
            })
        })
        .buffered(FAN_OUT)
        .collect::<Vec<Result<User, CollectError>>>()
        .await;
    read.into_iter().collect()
}

/// Every managed policy attached to something, with its default version's
/// document (URL-encoded JSON as IAM returns it).
async fn policies(c: &Client) -> Result<Vec<ManagedPolicy>, CollectError> {
    let all = all_items!(
        c.list_policies()
            .scope(PolicyScopeType::All)
            .only_attached(true),
        err("ListPolicies")
    )?;
    let read = stream::iter(all)
        .map(|p| async move {
            let arn = p.arn().unwrap_or_default().to_owned();
            let version = p.default_version_id().unwrap_or("v1");
            let v = c
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(version)
                .send()
                .await
                .map_err(err("GetPolicyVersion"))?;
            let raw = v
                .policy_version()
                .and_then(|v| v.document())
                .unwrap_or("{}");
            let text = percent_decode(raw);
            let document = serde_json::from_str(&text).map_err(|e| CollectError {
                service: "iam".into(),
                region: None,
                operation: "GetPolicyVersion".into(),
                message: format!("{arn} {version}: the document is not JSON: {e}"),
            })?;
            Ok(ManagedPolicy {
                aws_managed: arn.contains(":iam::aws:policy/"),
                name: p.policy_name().unwrap_or_default().to_owned(),
                attachment_count: p.attachment_count().map_or(0, i64::from),
                arn,
                document,
            })
        })
        .buffered(FAN_OUT)
        .collect::<Vec<Result<ManagedPolicy, CollectError>>>()
        .await;
    read.into_iter().collect()
}

/// `%XX` escapes decoded (IAM's policy documents are URL-encoded; `+` is not a
/// space there).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn support_roles(c: &Client) -> Result<Vec<String>, CollectError> {
    let out = c
        .list_entities_for_policy()
        .policy_arn(SUPPORT_POLICY)
        .entity_filter(EntityType::Role)
        .send()
        .await;
    match out {
        Ok(o) => Ok(o
            .policy_roles()
            .iter()
            .filter_map(|r| r.role_name().map(str::to_owned))
            .collect()),
        // The policy is unknown to this partition (or emulator): no role has it.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(failed("iam", None, "ListEntitiesForPolicy", &e)),
    }
}

async fn server_certificates(c: &Client) -> Result<Vec<ServerCertificate>, CollectError> {
    let all = all_items!(c.list_server_certificates(), err("ListServerCertificates"))?;
    Ok(all
        .into_iter()
        .map(|m| ServerCertificate {
            name: m.server_certificate_name().to_owned(),
            arn: m.arn().to_owned(),
            expiration: m.expiration().map(time),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(
            percent_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
    }
}
