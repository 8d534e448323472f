//! EventBridge: a Vigil event (the finding, its incident and the run) put on a
//! bus, for whatever rules route it on (a ticket, a pager, another account).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde_json::{json, Value};

use crate::{optional, sdk_error, ActionError, Outcome};

/// The `source` of every event Vigil puts.
pub const SOURCE: &str = "vigil";

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "events.emit" => emit(client, p).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

async fn emit(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let detail_type = optional(p, "detail_type")?.unwrap_or("Vigil Response");
    let bus = optional(p, "bus")?.unwrap_or("default");
    let detail = match p.get("detail") {
        None | Some(Value::Null) => json!({}),
        Some(d @ Value::Object(_)) => d.clone(),
        Some(_) => {
            return Err(ActionError::Parameter {
                name: "detail".into(),
                message: "must be an object".into(),
            })
        }
    };
    let entry = PutEventsRequestEntry::builder()
        .source(SOURCE)
        .detail_type(detail_type)
        .event_bus_name(bus)
        .detail(detail.to_string())
        .build();
    let out = client
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|e| sdk_error("events:PutEvents", e))?;
    // PutEvents answers 200 and reports a refused entry in the body.
    if out.failed_entry_count() > 0 {
        let e = out.entries().first();
        let code = e.and_then(|e| e.error_code()).unwrap_or("unknown");
        let message = format!(
            "{code}: {}",
            e.and_then(|e| e.error_message()).unwrap_or("entry refused")
        );
        let op = "events:PutEvents".to_owned();
        return Err(if code.contains("Throttl") || code == "InternalFailure" {
            ActionError::Transient { op, message }
        } else {
            ActionError::Failed { op, message }
        });
    }
    let id = out.entries().first().and_then(|e| e.event_id());
    Ok(Outcome {
        changed: true,
        calls: vec!["events:PutEvents".into()],
        detail: json!({"bus": bus, "detail_type": detail_type, "event_id": id}),
    })
}
