//! GuardDuty: the region's detector enabled again (or made, if it was deleted).

use aws_sdk_guardduty::types::DetectorStatus;
use aws_sdk_guardduty::Client;
use serde_json::{json, Value};

use crate::{optional, sdk_error, ActionError, Outcome};

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "guardduty.enable_detector" => enable(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

async fn enable(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let mut calls = Vec::new();
    let id = match optional(p, "detector_id")? {
        Some(id) => Some(id.to_owned()),
        None => {
            calls.push("guardduty:ListDetectors".to_owned());
            let out = client
                .list_detectors()
                .send()
                .await
                .map_err(|e| sdk_error("guardduty:ListDetectors", e))?;
            // A region has at most one detector.
            out.detector_ids().first().cloned()
        }
    };
    let Some(id) = id else {
        let made = client
            .create_detector()
            .enable(true)
            .send()
            .await
            .map_err(|e| sdk_error("guardduty:CreateDetector", e))?;
        calls.push("guardduty:CreateDetector".into());
        return Ok(Outcome {
            changed: true,
            calls,
            detail: json!({"detector_id": made.detector_id(), "created": true}),
        });
    };
    let found = client
        .get_detector()
        .detector_id(&id)
        .send()
        .await
        .map_err(|e| sdk_error("guardduty:GetDetector", e))?;
    calls.push("guardduty:GetDetector".into());
    let before = found.status().map(|s| s.as_str().to_owned());
    if found.status() == Some(&DetectorStatus::Enabled) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"detector_id": id, "status": before}),
        });
    }
    client
        .update_detector()
        .detector_id(&id)
        .enable(true)
        .send()
        .await
        .map_err(|e| sdk_error("guardduty:UpdateDetector", e))?;
    calls.push("guardduty:UpdateDetector".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"detector_id": id, "before": before, "status": "ENABLED"}),
    })
}
