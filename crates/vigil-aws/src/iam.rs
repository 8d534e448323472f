//! The IAM actions. Each reads the state first where that makes it idempotent
//! (deactivating an inactive key changes nothing and says so), and reports the
//! state it found so that a rollback can put it back.

use aws_sdk_iam::types::StatusType;
use aws_sdk_iam::Client;
use serde_json::{json, Value};

use crate::{optional, param, sdk_error, ActionError, Outcome};

/// The inline policy that denies a principal everything.
pub const DENY_ALL_POLICY: &str = "VigilDenyAll";
/// The inline policy that denies a role's sessions issued before a time.
pub const REVOKE_SESSIONS_POLICY: &str = "VigilRevokeOlderSessions";

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "iam.deactivate_access_key" => set_key(client, p, StatusType::Inactive).await,
        "iam.activate_access_key" => set_key(client, p, StatusType::Active).await,
        "iam.attach_deny_all_policy" => deny_all(client, p).await,
        "iam.revoke_older_sessions" => revoke_sessions(client, p).await,
        "iam.remove_inline_policy" => remove_inline(client, p).await,
        "iam.detach_user_policy" => detach_user_policy(client, p).await,
        "iam.set_default_policy_version" => set_default_version(client, p).await,
        "iam.delete_login_profile" => delete_login_profile(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

async fn set_key(client: &Client, p: &Value, to: StatusType) -> Result<Outcome, ActionError> {
    let user = param(p, "user_name")?;
    let key = param(p, "access_key_id")?;
    let mut calls = vec!["iam:ListAccessKeys".to_owned()];
    let keys = client
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| sdk_error("iam:ListAccessKeys", e))?;
    let found = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .ok_or_else(|| ActionError::NotFound {
            op: "iam:ListAccessKeys".into(),
            message: format!("user {user} has no access key {key}"),
        })?;
    let before = found.status().map(|s| s.as_str().to_owned());
    if found.status() == Some(&to) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"user_name": user, "access_key_id": key, "status": before}),
        });
    }
    client
        .update_access_key()
        .user_name(user)
        .access_key_id(key)
        .status(to.clone())
        .send()
        .await
        .map_err(|e| sdk_error("iam:UpdateAccessKey", e))?;
    calls.push("iam:UpdateAccessKey".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"user_name": user, "access_key_id": key, "before": before, "status": to.as_str()}),
    })
}

/// A user's or role's name from its ARN (an assumed-role session names its role).
enum Principal<'a> {
    User(&'a str),
    Role(&'a str),
}

fn principal(arn: &str) -> Result<Principal<'_>, ActionError> {
    let bad = || ActionError::Parameter {
        name: "principal_arn".into(),
        message: format!("{arn:?} is not the ARN of an IAM user, role or assumed-role session"),
    };
    let res = arn.splitn(6, ':').nth(5).ok_or_else(bad)?;
    let (kind, rest) = res.split_once('/').ok_or_else(bad)?;
    let name = match kind {
        "assumed-role" => rest.split('/').next(),
        _ => rest.rsplit('/').next(),
    }
    .filter(|n| !n.is_empty())
    .ok_or_else(bad)?;
    match kind {
        "user" => Ok(Principal::User(name)),
        "role" | "assumed-role" => Ok(Principal::Role(name)),
        _ => Err(bad()),
    }
}

async fn put_inline(
    client: &Client,
    who: &Principal<'_>,
    policy_name: &str,
    document: &Value,
) -> Result<&'static str, ActionError> {
    let doc = document.to_string();
    match who {
        Principal::User(u) => {
            client
                .put_user_policy()
                .user_name(*u)
                .policy_name(policy_name)
                .policy_document(doc)
                .send()
                .await
                .map_err(|e| sdk_error("iam:PutUserPolicy", e))?;
            Ok("iam:PutUserPolicy")
        }
        Principal::Role(r) => {
            client
                .put_role_policy()
                .role_name(*r)
                .policy_name(policy_name)
                .policy_document(doc)
                .send()
                .await
                .map_err(|e| sdk_error("iam:PutRolePolicy", e))?;
            Ok("iam:PutRolePolicy")
        }
    }
}

async fn deny_all(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let arn = param(p, "principal_arn")?;
    let name = optional(p, "policy_name")?.unwrap_or(DENY_ALL_POLICY);
    let who = principal(arn)?;
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "VigilDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}]
    });
    let call = put_inline(client, &who, name, &doc).await?;
    Ok(Outcome {
        changed: true,
        calls: vec![call.into()],
        detail: json!({"principal_arn": arn, "policy_name": name}),
    })
}

async fn revoke_sessions(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let role = param(p, "role_name")?;
    let name = optional(p, "policy_name")?.unwrap_or(REVOKE_SESSIONS_POLICY);
    let before = match optional(p, "issued_before")? {
        Some(t) => t.to_owned(),
        None => now_iso(),
    };
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "VigilRevokeOlderSessions", "Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}}
        }]
    });
    let call = put_inline(client, &Principal::Role(role), name, &doc).await?;
    Ok(Outcome {
        changed: true,
        calls: vec![call.into()],
        detail: json!({"role_name": role, "policy_name": name, "issued_before": before}),
    })
}

async fn remove_inline(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let arn = param(p, "principal_arn")?;
    let name = optional(p, "policy_name")?.unwrap_or(DENY_ALL_POLICY);
    let (call, result) = match principal(arn)? {
        Principal::User(u) => (
            "iam:DeleteUserPolicy",
            client
                .delete_user_policy()
                .user_name(u)
                .policy_name(name)
                .send()
                .await
                .map(drop)
                .map_err(|e| sdk_error("iam:DeleteUserPolicy", e)),
        ),
        Principal::Role(r) => (
            "iam:DeleteRolePolicy",
            client
                .delete_role_policy()
                .role_name(r)
                .policy_name(name)
                .send()
                .await
                .map(drop)
                .map_err(|e| sdk_error("iam:DeleteRolePolicy", e)),
        ),
    };
    let changed = gone_is_fine(result)?;
    Ok(Outcome {
        changed,
        calls: vec![call.into()],
        detail: json!({"principal_arn": arn, "policy_name": name}),
    })
}

/// Deleting what is already gone is done: `Ok(false)`.
fn gone_is_fine(r: Result<(), ActionError>) -> Result<bool, ActionError> {
    match r {
        Ok(()) => Ok(true),
        Err(ActionError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn detach_user_policy(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let user = param(p, "user_name")?;
    let policy = param(p, "policy_arn")?;
    let attached = client
        .list_attached_user_policies()
        .user_name(user)
        .send()
        .await
        .map_err(|e| sdk_error("iam:ListAttachedUserPolicies", e))?;
    let mut calls = vec!["iam:ListAttachedUserPolicies".to_owned()];
    let is_attached = attached
        .attached_policies()
        .iter()
        .any(|a| a.policy_arn() == Some(policy));
    if is_attached {
        client
            .detach_user_policy()
            .user_name(user)
            .policy_arn(policy)
            .send()
            .await
            .map_err(|e| sdk_error("iam:DetachUserPolicy", e))?;
        calls.push("iam:DetachUserPolicy".into());
    }
    Ok(Outcome {
        changed: is_attached,
        calls,
        detail: json!({"user_name": user, "policy_arn": policy}),
    })
}

async fn set_default_version(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let policy = param(p, "policy_arn")?;
    let versions = client
        .list_policy_versions()
        .policy_arn(policy)
        .send()
        .await
        .map_err(|e| sdk_error("iam:ListPolicyVersions", e))?;
    let mut calls = vec!["iam:ListPolicyVersions".to_owned()];
    let all = versions.versions();
    let current = all.iter().find(|v| v.is_default_version());
    let current_id = current.and_then(|v| v.version_id()).map(str::to_owned);
    let target = match optional(p, "version_id")? {
        Some(v) => {
            if !all.iter().any(|x| x.version_id() == Some(v)) {
                return Err(ActionError::NotFound {
                    op: "iam:ListPolicyVersions".into(),
                    message: format!("policy {policy} has no version {v}"),
                });
            }
            v.to_owned()
        }
        // The newest version older than the current default: versions are v1, v2…
        // in the order they were made, so by number.
        None => {
            let number =
                |id: Option<&str>| id.and_then(|s| s.trim_start_matches('v').parse::<u32>().ok());
            let cur = number(current_id.as_deref()).unwrap_or(u32::MAX);
            all.iter()
                .filter_map(|v| number(v.version_id()).map(|n| (n, v)))
                .filter(|(n, _)| *n < cur)
                .max_by_key(|(n, _)| *n)
                .and_then(|(_, v)| v.version_id())
                .map(str::to_owned)
                .ok_or_else(|| ActionError::NotFound {
                    op: "iam:ListPolicyVersions".into(),
                    message: format!(
                        "policy {policy} has no version earlier than its default {}",
                        current_id.as_deref().unwrap_or("?")
                    ),
                })?
        }
    };
    if current_id.as_deref() == Some(target.as_str()) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"policy_arn": policy, "default": target}),
        });
    }
    client
        .set_default_policy_version()
        .policy_arn(policy)
        .version_id(&target)
        .send()
        .await
        .map_err(|e| sdk_error("iam:SetDefaultPolicyVersion", e))?;
    calls.push("iam:SetDefaultPolicyVersion".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"policy_arn": policy, "before": current_id, "default": target}),
    })
}

async fn delete_login_profile(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let user = param(p, "user_name")?;
    let r = client
        .delete_login_profile()
        .user_name(user)
        .send()
        .await
        .map(drop)
        .map_err(|e| sdk_error("iam:DeleteLoginProfile", e));
    Ok(Outcome {
        changed: gone_is_fine(r)?,
        calls: vec!["iam:DeleteLoginProfile".into()],
        detail: json!({"user_name": user}),
    })
}

/// Now, as IAM condition keys want it (ISO 8601, UTC).
fn now_iso() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    vigil_model::Timestamp::from_millis(ms).to_string()
}
