//! AWS Organizations, from the management account: a service control policy that
//! denies a member account's root user everything, made once and attached to each
//! account that needs it.

use aws_sdk_organizations::types::PolicyType;
use aws_sdk_organizations::Client;
use serde_json::{json, Value};

use crate::{optional, param, sdk_error, ActionError, Outcome};

/// The policy's name unless a step names another.
pub const DENY_ROOT_POLICY: &str = "VigilDenyRootUser";

/// Denies every action to the root user of the accounts it is attached to.
pub fn deny_root_document() -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "VigilDenyRootUser",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringLike": {"aws:PrincipalArn": "arn:*:iam::*:root"}}
        }]
    })
    .to_string()
}

/// Pages of a listing asked for at most (a bound on a misbehaving endpoint).
const MAX_PAGES: usize = 100;

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "organizations.deny_root_user" => deny_root(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

/// The id of the service control policy named `name`, if there is one.
async fn find_policy(client: &Client, name: &str) -> Result<Option<String>, ActionError> {
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = client
            .list_policies()
            .filter(PolicyType::ServiceControlPolicy)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("organizations:ListPolicies", e))?;
        if let Some(p) = out.policies().iter().find(|p| p.name() == Some(name)) {
            return Ok(p.id().map(str::to_owned));
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(None)
}

/// Whether policy `id` is attached to `account`.
async fn attached(client: &Client, id: &str, account: &str) -> Result<bool, ActionError> {
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = client
            .list_policies_for_target()
            .target_id(account)
            .filter(PolicyType::ServiceControlPolicy)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("organizations:ListPoliciesForTarget", e))?;
        if out.policies().iter().any(|p| p.id() == Some(id)) {
            return Ok(true);
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(false)
}

async fn deny_root(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let account = param(p, "account_id")?;
    let name = optional(p, "policy_name")?.unwrap_or(DENY_ROOT_POLICY);
    let mut calls = vec!["organizations:ListPolicies".to_owned()];
    let id = match find_policy(client, name).await? {
        Some(id) => id,
        None => {
            let made = client
                .create_policy()
                .name(name)
                .description("Vigil: denies every action to the account's root user")
                .r#type(PolicyType::ServiceControlPolicy)
                .content(deny_root_document())
                .send()
                .await
                .map_err(|e| sdk_error("organizations:CreatePolicy", e))?;
            calls.push("organizations:CreatePolicy".into());
            made.policy()
                .and_then(|p| p.policy_summary())
                .and_then(|s| s.id())
                .map(str::to_owned)
                .ok_or_else(|| ActionError::Failed {
                    op: "organizations:CreatePolicy".into(),
                    message: "no policy id in the answer".into(),
                })?
        }
    };
    calls.push("organizations:ListPoliciesForTarget".into());
    if attached(client, &id, account).await? {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"account_id": account, "policy_id": id}),
        });
    }
    client
        .attach_policy()
        .policy_id(&id)
        .target_id(account)
        .send()
        .await
        .map_err(|e| sdk_error("organizations:AttachPolicy", e))?;
    calls.push("organizations:AttachPolicy".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"account_id": account, "policy_id": id, "attached": true}),
    })
}

/// A member account as AWS Organizations describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE` (the account's status).
    pub status: String,
    /// The organizational units from the root down to the account (names).
    pub ou_path: Vec<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// How deep an account may sit under the root (Organizations allows five
/// levels of OUs): a bound on a parent chain that does not end.
const MAX_DEPTH: usize = 10;

/// Every account of the organization, with its OU path and tags.
pub async fn members(client: &Client) -> Result<Vec<Member>, ActionError> {
    let mut out = Vec::new();
    let mut ou_names: std::collections::HashMap<String, (String, Option<String>)> =
        std::collections::HashMap::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .list_accounts()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("organizations:ListAccounts", e))?;
        for a in page.accounts() {
            let Some(id) = a.id() else { continue };
            let mut ou_path = Vec::new();
            let mut child = id.to_owned();
            for _ in 0..MAX_DEPTH {
                let parent = match ou_names.get(&child) {
                    Some((_, p)) => p.clone(),
                    None => parent_of(client, &child).await?,
                };
                let Some(ou) = parent else { break };
                if !ou_names.contains_key(&ou) {
                    let name = client
                        .describe_organizational_unit()
                        .organizational_unit_id(&ou)
                        .send()
                        .await
                        .map_err(|e| sdk_error("organizations:DescribeOrganizationalUnit", e))?
                        .organizational_unit()
                        .and_then(|u| u.name())
                        .unwrap_or(&ou)
                        .to_owned();
                    let up = parent_of(client, &ou).await?;
                    ou_names.insert(ou.clone(), (name, up));
                }
                let (name, _) = &ou_names[&ou];
                ou_path.insert(0, name.clone());
                child = ou;
            }
            let tags = client
                .list_tags_for_resource()
                .resource_id(id)
                .send()
                .await
                .map_err(|e| sdk_error("organizations:ListTagsForResource", e))?
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            out.push(Member {
                id: id.to_owned(),
                name: a.name().unwrap_or(id).to_owned(),
                status: a
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                ou_path,
                tags,
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The OU `child` (an account or an OU) sits in; None under the root.
async fn parent_of(client: &Client, child: &str) -> Result<Option<String>, ActionError> {
    let out = client
        .list_parents()
        .child_id(child)
        .send()
        .await
        .map_err(|e| sdk_error("organizations:ListParents", e))?;
    Ok(out.parents().iter().find_map(|p| {
        (p.r#type() == Some(&aws_sdk_organizations::types::ParentType::OrganizationalUnit))
            .then(|| p.id().map(str::to_owned))
            .flatten()
    }))
}
