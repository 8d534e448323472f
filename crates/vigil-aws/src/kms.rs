//! KMS: a key's scheduled deletion cancelled, and the key enabled again (a
//! cancelled key is left disabled by KMS).

use aws_sdk_kms::types::KeyState;
use aws_sdk_kms::Client;
use serde_json::{json, Value};

use crate::{param, sdk_error, ActionError, Outcome};

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "kms.cancel_key_deletion" => cancel_deletion(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

async fn cancel_deletion(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let key = param(p, "key_id")?;
    let mut calls = vec!["kms:DescribeKey".to_owned()];
    let described = client
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| sdk_error("kms:DescribeKey", e))?;
    let meta = described.key_metadata();
    let state = meta.and_then(|m| m.key_state()).cloned();
    let deletion = meta.and_then(|m| m.deletion_date()).map(|d| d.to_string());
    if !matches!(
        state,
        Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion)
    ) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"key_id": key, "state": state.map(|s| s.as_str().to_owned())}),
        });
    }
    client
        .cancel_key_deletion()
        .key_id(key)
        .send()
        .await
        .map_err(|e| sdk_error("kms:CancelKeyDeletion", e))?;
    calls.push("kms:CancelKeyDeletion".into());
    client
        .enable_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| sdk_error("kms:EnableKey", e))?;
    calls.push("kms:EnableKey".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"key_id": key, "before": "PendingDeletion", "deletion_date": deletion, "state": "Enabled"}),
    })
}
