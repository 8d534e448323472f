//! CloudTrail: start a trail logging again.

use aws_sdk_cloudtrail::Client;
use serde_json::{json, Value};

use crate::{param, sdk_error, ActionError, Outcome};

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "cloudtrail.start_logging" => start_logging(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

async fn start_logging(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    // A trail's name or ARN.
    let trail = param(p, "trail")?;
    let mut calls = vec!["cloudtrail:GetTrailStatus".to_owned()];
    let status = client
        .get_trail_status()
        .name(trail)
        .send()
        .await
        .map_err(|e| sdk_error("cloudtrail:GetTrailStatus", e))?;
    if status.is_logging() == Some(true) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"trail": trail, "logging": true}),
        });
    }
    client
        .start_logging()
        .name(trail)
        .send()
        .await
        .map_err(|e| sdk_error("cloudtrail:StartLogging", e))?;
    calls.push("cloudtrail:StartLogging".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({
            "trail": trail,
            "logging": true,
            "stopped_at": status.stop_logging_time().map(|t| t.to_string()),
        }),
    })
}
