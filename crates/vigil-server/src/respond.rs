//! The response routes of `/api/v1`: start a playbook for an incident (or plan it
//! dry), follow its runs step by step, approve or reject what waits, and list
//! the playbooks.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use vigil_model::Finding;
use vigil_model::{Severity, Timestamp};
use vigil_respond::EngineError;
use vigil_respond::{Engine, Start};

use crate::api::{body, can_read, limit_of, record, to_json, ApiResult};
use crate::{now, ApiError, AppState, Principal};

type App = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/remediate", post(remediate))
        .route("/api/v1/remediations", get(list))
        .route("/api/v1/remediations/{id}", get(run))
        .route("/api/v1/remediations/{id}/approve", post(approve))
        .route("/api/v1/remediations/{id}/reject", post(reject))
        .route("/api/v1/playbooks", get(playbooks))
        .route("/api/v1/playbooks/{id}", get(playbook))
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::NoPlaybook(_) | EngineError::NoRun(_) => {
                ApiError::not_found(e.to_string())
            }
            EngineError::NotWaiting { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ConflictException", e.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

fn engine(app: &AppState) -> Result<&Engine, ApiError> {
    app.engine.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "response is off: set [response] enabled = true in the serve configuration",
        )
    })
}

fn may_act(p: &Principal) -> Result<(), ApiError> {
    if p.role.can_act() {
        Ok(())
    } else {
        Err(ApiError::denied(format!(
            "{} ({:?}) may not run playbooks",
            p.name, p.role
        )))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemediateBody {
    incident_id: String,
    playbook: String,
    /// The resource to act on, when not the one of the incident's finding.
    resource_arn: Option<String>,
    /// The severity the caller saw: checked, and recorded with the request.
    severity: Option<String>,
    /// Which of the incident's findings the run answers (default: its newest).
    finding_id: Option<String>,
    /// Plan only: the exact calls and parameters, nothing changed.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/remediate`: starts (or, dry, plans) a playbook for an incident.
async fn remediate(
    State(app): App,
    Extension(p): Extension<Principal>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let parsed: Result<RemediateBody, ApiError> = if raw.iter().all(u8::is_ascii_whitespace) {
        Err(ApiError::bad_request(
            "body: incident_id and playbook are required",
        ))
    } else {
        body(&raw)
    };
    let target = parsed
        .as_ref()
        .map(|b| format!("{} {}", b.incident_id, b.playbook))
        .unwrap_or_default();
    let result = match (may_act(&p), parsed) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(b)) => start(&app, &p, b).await,
    };
    record(&app, &p, "remediate".into(), target, &result).await?;
    result
}

async fn start(app: &Arc<AppState>, p: &Principal, b: RemediateBody) -> ApiResult {
    let engine = engine(app)?.clone();
    if let Some(s) = &b.severity {
        s.parse::<Severity>()
            .map_err(|e| ApiError::bad_request(format!("severity: {e}")))?;
    }
    let pb = engine
        .library()
        .get(&b.playbook)
        .ok_or_else(|| ApiError::not_found(format!("no playbook {}", b.playbook)))?
        .clone();
    let id = b.incident_id.clone();
    let view = app
        .read(move |s| s.incident(&id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {} not found", b.incident_id)))?;
    let finding_id = match &b.finding_id {
        Some(f) if view.finding_ids.contains(f) => f.clone(),
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "finding {f} is not in incident {}",
                b.incident_id
            )))
        }
        None => view
            .finding_ids
            .last()
            .cloned()
            .ok_or_else(|| ApiError::bad_request("the incident has no finding"))?,
    };
    let key = finding_id.clone();
    let raw = app
        .read(move |s| s.finding(&key))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("finding {finding_id} not found")))?;
    let mut finding: Finding = serde_json::from_str(raw.get())
        .map_err(|e| ApiError::internal(format!("finding {finding_id}: {e}")))?;
    if let Some(arn) = &b.resource_arn {
        finding.detail.resource_type = vigil_respond::resource_type_of(arn)
            .map(str::to_owned)
            .or(finding.detail.resource_type.take());
        finding.detail.resource_arn = Some(arn.clone());
    }
    let start = Start {
        playbook: pb.id.clone(),
        finding,
        incident: serde_json::to_value(&view).ok(),
        incident_id: Some(b.incident_id.clone()),
        requested_by: p.name.clone(),
    };
    if b.dry_run {
        let plan = engine.dry_run(start).await?;
        return to_json(json!({"remediation_id": null, "status": "DRY_RUN", "plan": plan}));
    }
    let run = engine.create(start).await?;
    engine.spawn(run.id.clone());
    let eta = Timestamp::from_millis(now().as_millis() + pb.expected_duration.as_millis() as i64);
    let answer = json!({
        "remediation_id": run.id,
        "status": run.status,
        "estimated_completion": eta,
    });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    incident_id: Option<String>,
    status: Option<vigil_model::response::RunStatus>,
    limit: Option<usize>,
}

async fn list(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = limit_of(q.limit)?;
    let items = app
        .read(move |s| s.runs(q.incident_id.as_deref(), q.status, limit))
        .await?;
    to_json(json!({ "items": items }))
}

async fn run(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    can_read(&p)?;
    let missing = ApiError::not_found(format!("remediation {id} not found"));
    match app.read(move |s| s.run(&id)).await? {
        Some(r) => to_json(r),
        None => Err(missing),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    note: Option<String>,
}

/// `POST /api/v1/remediations/{id}/approve`: lets the waiting step run.
async fn approve(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let result = async {
        may_act(&p)?;
        let DecisionBody { note: _ } = body(&raw)?;
        let engine = engine(&app)?;
        let run = engine.approve(&id, &p.name).await?;
        engine.spawn(run.id.clone());
        to_json(run)
    }
    .await;
    record(&app, &p, "remediation approve".into(), id, &result).await?;
    result
}

/// `POST /api/v1/remediations/{id}/reject`: ends the run; nothing more runs.
async fn reject(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let result = async {
        may_act(&p)?;
        let DecisionBody { note } = body(&raw)?;
        let run = engine(&app)?.reject(&id, &p.name, note.as_deref()).await?;
        to_json(run)
    }
    .await;
    record(&app, &p, "remediation reject".into(), id, &result).await?;
    result
}

async fn playbooks(State(app): App, Extension(p): Extension<Principal>) -> ApiResult {
    can_read(&p)?;
    to_json(json!({ "items": app.library.all() }))
}

async fn playbook(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    can_read(&p)?;
    match app.library.get(&id) {
        Some(pb) => to_json(pb),
        None => Err(ApiError::not_found(format!("no playbook {id}"))),
    }
}
