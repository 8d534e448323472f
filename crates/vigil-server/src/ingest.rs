//! Telemetry in over HTTP, handed to the pipeline the binary supplies:
//! - `POST /api/v1/ingest` (SigV4, role `ingest` or `admin`): a body holding
//!   anything `vigil scan` reads from a file — a CloudTrail log file or records,
//!   EventBridge events (CloudTrail, GuardDuty, Security Hub), GuardDuty or ASFF
//!   findings, flow-log text — plain or gzip;
//! - `POST /api/v1/firehose`: the Kinesis Data Firehose HTTP endpoint delivery
//!   format (JSON with base64 records, optionally gzip-encoded), authenticated by
//!   `X-Amz-Firehose-Access-Key` and answered in Firehose's response format, which
//!   Firehose needs to count a delivery as done.
//!
//! The answer comes after the pipeline has stored what the telemetry raised, so a
//! 200 means "queryable now".

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{now, ApiError, AppState, Principal};

/// A body of telemetry and the name it goes by in errors and checkpoints.
#[derive(Clone, Debug)]
pub struct IngestBatch {
    pub name: String,
    pub body: Vec<u8>,
}

/// What the pipeline made of a submission.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReceipt {
    /// Events decoded.
    pub events: u64,
    /// Events whose record was taken before (a retry, a redelivery): not
    /// counted again.
    #[serde(default)]
    pub duplicates: u64,
    /// Records refused, each naming the batch, the record and why.
    pub errors: Vec<String>,
    pub new_findings: u64,
    pub updated_findings: u64,
    pub new_incidents: u64,
}

/// Why a submission was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the pipeline has stopped")]
    Stopped,
    #[error("not stored: {0}")]
    NotStored(String),
}

/// The pipeline: decodes, detects and stores, then answers. Called off the async
/// threads; may block until the findings are stored.
pub trait Ingest: Send + Sync + 'static {
    fn submit(&self, batches: Vec<IngestBatch>) -> Result<IngestReceipt, IngestError>;
}

pub(crate) fn signed_routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/ingest", post(ingest))
}

pub(crate) fn firehose_routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/firehose", post(firehose))
}

async fn submit(app: &Arc<AppState>, batches: Vec<IngestBatch>) -> Result<IngestReceipt, ApiError> {
    let Some(pipeline) = app.ingest.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "this server takes no telemetry",
        ));
    };
    tokio::task::spawn_blocking(move || pipeline.submit(batches))
        .await
        .map_err(|e| ApiError::internal(format!("ingest task: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn ingest(
    State(app): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<Json<IngestReceipt>, ApiError> {
    let result = if !p.role.can_ingest() {
        Err(ApiError::denied(format!(
            "{} may not send telemetry",
            p.name
        )))
    } else if body.is_empty() {
        Err(ApiError::bad_request("the body is empty"))
    } else {
        let name = format!("http:{}:{}", p.name, now().as_millis());
        submit(
            &app,
            vec![IngestBatch {
                name,
                body: body.to_vec(),
            }],
        )
        .await
    };
    let outcome = match &result {
        Ok(r) => format!("200 events={} findings={}", r.events, r.new_findings),
        Err(e) => format!("{} {}", e.status.as_u16(), e.code),
    };
    let principal = format!("{} ({:?})", p.name, p.role).to_lowercase();
    let size = body.len();
    app.write(move |s| {
        s.audit(
            now(),
            &principal,
            "ingest",
            &format!("{size} bytes"),
            &outcome,
        )
    })
    .await?;
    let receipt = result?;
    if receipt.events == 0 && !receipt.errors.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no event could be read: {}",
            receipt.errors.join("; ")
        )));
    }
    Ok(Json(receipt))
}

/// Firehose's request body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FirehoseRequest {
    request_id: String,
    #[allow(dead_code)]
    timestamp: i64,
    records: Vec<FirehoseRecord>,
}

#[derive(Deserialize)]
struct FirehoseRecord {
    data: String,
}

fn firehose_answer(request_id: &str, status: StatusCode, error: Option<String>) -> Response {
    let mut body = json!({ "requestId": request_id, "timestamp": now().as_millis() });
    if let Some(e) = error {
        body["errorMessage"] = json!(e);
    }
    (status, Json(body)).into_response()
}

/// Whether `given` is one of `keys`, comparing every key in constant time.
fn key_matches(keys: &[String], given: &[u8]) -> bool {
    keys.iter()
        .fold(false, |hit, k| hit | bool::from(k.as_bytes().ct_eq(given)))
}

async fn firehose(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let key = headers
        .get("x-amz-firehose-access-key")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if app.firehose_keys.is_empty() || !key_matches(&app.firehose_keys, key) {
        return firehose_answer(
            &request_id,
            StatusCode::UNAUTHORIZED,
            Some("the X-Amz-Firehose-Access-Key is missing or not known".into()),
        );
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let batches = match firehose_batches(&body, gzip, app.max_body) {
        Ok((id, b)) => {
            if !request_id.is_empty() && id != request_id {
                return firehose_answer(
                    &request_id,
                    StatusCode::BAD_REQUEST,
                    Some("the body's requestId differs from X-Amz-Firehose-Request-Id".into()),
                );
            }
            b
        }
        Err(e) => return firehose_answer(&request_id, StatusCode::BAD_REQUEST, Some(e)),
    };
    let outcome = match submit(&app, batches).await {
        Ok(r) => {
            if !r.errors.is_empty() {
                tracing::warn!(
                    "firehose request {request_id}: {} records refused: {}",
                    r.errors.len(),
                    r.errors.join("; ")
                );
            }
            format!("200 events={} findings={}", r.events, r.new_findings)
        }
        Err(e) => {
            return firehose_answer(&request_id, e.status, Some(e.message));
        }
    };
    let target = format!("firehose request {request_id}");
    let audited = app
        .write(move |s| s.audit(now(), "firehose", "ingest", &target, &outcome))
        .await;
    match audited {
        Ok(_) => firehose_answer(&request_id, StatusCode::OK, None),
        Err(e) => firehose_answer(&request_id, e.status, Some(e.message)),
    }
}

/// The request id and the telemetry of a Firehose body: records that are gzip
/// (CloudWatch Logs subscriptions send them so) each make a batch; the rest are
/// joined one per line.
pub(crate) fn firehose_batches(
    body: &[u8],
    gzip: bool,
    limit: usize,
) -> Result<(String, Vec<IngestBatch>), String> {
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("the gzip body does not inflate: {e}"))?;
        if out.len() > limit {
            return Err(format!("the body inflates to more than {limit} bytes"));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let req: FirehoseRequest = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a Firehose request: {e}"))?;
    let mut lines = Vec::new();
    let mut batches = Vec::new();
    for (i, r) in req.records.iter().enumerate() {
        let data = base64::engine::general_purpose::STANDARD
            .decode(r.data.trim())
            .map_err(|e| format!("records[{i}].data is not base64: {e}"))?;
        if data.starts_with(&[0x1f, 0x8b]) {
            batches.push(IngestBatch {
                name: format!("firehose:{}:{i}", req.request_id),
                body: data,
            });
        } else {
            lines.extend_from_slice(&data);
            if !data.ends_with(b"\n") {
                lines.push(b'\n');
            }
        }
    }
    if !lines.is_empty() {
        batches.insert(
            0,
            IngestBatch {
                name: format!("firehose:{}", req.request_id),
                body: lines,
            },
        );
    }
    Ok((req.request_id, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehose_records_become_batches() {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let body = json!({
            "requestId": "r-1", "timestamp": 1,
            "records": [{"data": b64(b"{\"a\":1}")}, {"data": b64(b"{\"b\":2}\n")},
                        {"data": b64(&[0x1f, 0x8b, 8, 0])}]
        });
        let (id, batches) = firehose_batches(body.to_string().as_bytes(), false, 1 << 20).unwrap();
        assert_eq!(id, "r-1");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].body, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(batches[1].name, "firehose:r-1:2");
        let bad = json!({"requestId": "r", "timestamp": 1, "records": [{"data": "!!"}]});
        let err = firehose_batches(bad.to_string().as_bytes(), false, 1 << 20).unwrap_err();
        assert!(err.contains("records[0]"), "{err}");
    }

    #[test]
    fn only_configured_firehose_keys_match() {
        let keys = vec!["k".repeat(20), "z".repeat(20)];
        assert!(key_matches(&keys, "z".repeat(20).as_bytes()));
        assert!(!key_matches(&keys, b"zzz"));
        assert!(!key_matches(&[], b""));
    }
}
