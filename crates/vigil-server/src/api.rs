//! The read and incident routes of `/api/v1`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_model::finding::Category;
use vigil_model::{Severity, Timestamp};
use vigil_store::{FindingQuery, IncidentQuery, IncidentStatus};

use crate::{now, ApiError, AppState, Principal};

type App = State<Arc<AppState>>;
/// A JSON answer, serialized straight from its Rust value (never through a
/// `serde_json::Value`, whose maps would re-parse stored finding bodies).
pub(crate) type ApiResult = Result<axum::response::Response, ApiError>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/metrics/threats", get(threats))
        .route("/api/v1/accounts", get(accounts))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/findings/{id}", get(finding))
        .route("/api/v1/findings/{id}/records", get(finding_records))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/{step}", post(lifecycle))
        .route("/api/v1/incidents/{id}/notes", post(note))
        .route("/api/v1/incidents/{id}/assign", post(assign))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/compliance", get(compliance_list))
        .route("/api/v1/compliance/{framework}", get(compliance))
        .route("/api/v1/sources", get(sources))
        .route("/api/v1/openapi.json", get(openapi))
}

/// Each configured source that reports on itself: its counters and last error.
async fn sources(State(app): App, Extension(p): Extension<Principal>) -> ApiResult {
    can_read(&p)?;
    let items: Vec<Value> = app
        .sources
        .iter()
        .map(|s| {
            let mut v = s.status();
            if let Some(o) = v.as_object_mut() {
                o.insert("name".into(), Value::from(s.name()));
            }
            v
        })
        .collect();
    to_json(json!({ "sources": items }))
}

/// The API's OpenAPI 3 document, checked in beside this crate.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi(Extension(p): Extension<Principal>) -> Result<axum::response::Response, ApiError> {
    can_read(&p)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub(crate) fn can_read(p: &Principal) -> Result<(), ApiError> {
    if p.role.can_read() {
        Ok(())
    } else {
        Err(ApiError::denied(format!("{} may not read", p.name)))
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

async fn health(State(app): App, Extension(p): Extension<Principal>) -> ApiResult {
    can_read(&p)?;
    let (findings, checkpoints) = app
        .read(|s| Ok((s.finding_count()?, s.checkpoint_count()?)))
        .await?;
    to_json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "findings": findings,
        "checkpoints": checkpoints,
        "ingest": app.ingest.is_some(),
        "principal": p,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParam {
    account: Option<String>,
}

fn account_param(
    q: Result<Query<AccountParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Option<String>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(q.account)
}

async fn metrics(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<AccountParam>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let account = account_param(q)?;
    let m = app
        .read(move |s| s.metrics(account.as_deref(), now()))
        .await?;
    to_json(m)
}

async fn threats(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<AccountParam>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let account = account_param(q)?;
    let rows = app
        .read(move |s| s.threat_table(account.as_deref(), now()))
        .await?;
    to_json(json!({ "days": 30, "categories": rows }))
}

async fn accounts(State(app): App, Extension(p): Extension<Principal>) -> ApiResult {
    can_read(&p)?;
    let list: Vec<Value> = app
        .read(|s| {
            Ok(s.accounts()
                .list()
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect())
        })
        .await?;
    to_json(json!({ "items": list }))
}

/// Query parameters of the listings: lists are comma-separated.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    severity: Option<String>,
    category: Option<String>,
    status: Option<String>,
    account: Option<String>,
    since: Option<String>,
    until: Option<String>,
    incident: Option<String>,
    assignee: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn list_of<T>(
    name: &str,
    v: &Option<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse(s).ok_or_else(|| ApiError::bad_request(format!("{name}: unknown value {s:?}")))
        })
        .collect()
}

fn time_of(name: &str, v: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.as_deref()
        .map(|s| Timestamp::parse(s).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
        .transpose()
}

pub(crate) fn limit_of(v: Option<usize>) -> Result<usize, ApiError> {
    match v {
        Some(n) if n == 0 || n > vigil_store::MAX_PAGE => Err(ApiError::bad_request(format!(
            "limit: must be 1–{}",
            vigil_store::MAX_PAGE
        ))),
        Some(n) => Ok(n),
        None => Ok(100),
    }
}

fn params(
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    allowed: &[&str],
) -> Result<ListParams, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let given = [
        ("status", q.status.is_some()),
        ("since", q.since.is_some()),
        ("until", q.until.is_some()),
        ("incident", q.incident.is_some()),
        ("assignee", q.assignee.is_some()),
    ];
    for (name, set) in given {
        if set && !allowed.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "{name}: not a filter of this listing"
            )));
        }
    }
    Ok(q)
}

async fn findings(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let q = params(q, &["since", "until", "incident"])?;
    let query = FindingQuery {
        severities: list_of("severity", &q.severity, |s| s.parse::<Severity>().ok())?,
        categories: list_of("category", &q.category, Category::parse)?,
        account: q.account,
        since: time_of("since", &q.since)?,
        until: time_of("until", &q.until)?,
        incident: q.incident,
        limit: limit_of(q.limit)?,
        cursor: q.cursor,
    };
    let page = app.read(move |s| s.findings(&query)).await?;
    Ok(json_page(&page))
}

/// A page of stored JSON texts as `{"items": [...], "next_cursor": ...}`, the
/// texts copied in as they are.
fn json_page(page: &vigil_store::Page<String>) -> axum::response::Response {
    let size: usize = page.items.iter().map(|i| i.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"{\"items\":[");
    for (n, item) in page.items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.as_bytes());
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    match &page.next_cursor {
        Some(c) => out.extend_from_slice(Value::from(c.as_str()).to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

async fn finding(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    can_read(&p)?;
    let missing = ApiError::not_found(format!("finding {id} not found"));
    match app.read(move |s| s.finding(&id)).await? {
        Some(raw) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            raw.get().to_owned(),
        )
            .into_response()),
        None => Err(missing),
    }
}

/// `GET /api/v1/findings/{id}/records`: the first records behind a finding
/// as they arrived (a JSON object each, or a flow-log line as a string).
async fn finding_records(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    can_read(&p)?;
    let missing = ApiError::not_found(format!("finding {id} not found"));
    let Some(records) = app.read(move |s| records_of(s, &id)).await? else {
        return Err(missing);
    };
    let items: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let record = serde_json::from_str::<Value>(&r.text)
                .unwrap_or_else(|_| Value::String(r.text.into()));
            json!({"event_id": r.event_id, "record": record})
        })
        .collect();
    to_json(json!({ "items": items }))
}

/// The records of the finding `key` (its id or `sec-…` number); `None` when
/// there is no such finding.
pub(crate) fn records_of(
    s: &vigil_store::Store,
    key: &str,
) -> Result<Option<Vec<vigil_model::finding::RawRecord>>, vigil_store::StoreError> {
    let Some(raw) = s.finding(key)? else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let id = serde_json::from_str::<Id>(raw.get())
        .map(|x| x.id)
        .unwrap_or_else(|_| key.to_owned());
    s.finding_records(&id).map(Some)
}

async fn incidents(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let q = params(q, &["status", "assignee"])?;
    let query = IncidentQuery {
        statuses: list_of("status", &q.status, IncidentStatus::parse)?,
        severities: list_of("severity", &q.severity, |s| s.parse::<Severity>().ok())?,
        categories: list_of("category", &q.category, Category::parse)?,
        account: q.account,
        assignee: q.assignee,
        limit: limit_of(q.limit)?,
        cursor: q.cursor,
    };
    let page = app.read(move |s| s.incidents(&query)).await?;
    to_json(page)
}

async fn incident(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    can_read(&p)?;
    let missing = ApiError::not_found(format!("incident {id} not found"));
    match app.read(move |s| s.incident(&id)).await? {
        Some(v) => to_json(v),
        None => Err(missing),
    }
}

/// A mutating call: checked against the principal's role, run, and written to the
/// audit log with its outcome whether it was allowed or not.
async fn act<R: serde::Serialize + Send + 'static>(
    app: &Arc<AppState>,
    p: &Principal,
    action: String,
    target: String,
    allowed: bool,
    f: impl FnOnce(&mut vigil_store::Store) -> Result<R, vigil_store::StoreError> + Send + 'static,
) -> ApiResult {
    let result = if allowed {
        app.write(f).await.and_then(to_json)
    } else {
        Err(ApiError::denied(format!(
            "{} ({:?}) may not act on incidents",
            p.name, p.role
        )))
    };
    record(app, p, action, target, &result).await?;
    result
}

/// Writes a mutating call to the audit log with its outcome (status and error
/// code), whether it was allowed or not.
pub(crate) fn record<'a>(
    app: &'a Arc<AppState>,
    p: &'a Principal,
    action: String,
    target: String,
    result: &ApiResult,
) -> impl std::future::Future<Output = Result<(), ApiError>> + Send + 'a {
    // Worked out before the write (not in it): a response is not `Sync`, so no
    // reference to one may be held across an await.
    let outcome = match result {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => format!("{} {}", e.status.as_u16(), e.code),
    };
    write_audit(app, p, action, target, outcome)
}

async fn write_audit(
    app: &Arc<AppState>,
    p: &Principal,
    action: String,
    target: String,
    outcome: String,
) -> Result<(), ApiError> {
    let principal = format!("{} ({:?})", p.name, p.role).to_lowercase();
    app.write(move |s| s.audit(now(), &principal, &action, &target, &outcome))
        .await?;
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: Option<String>,
}

pub(crate) fn body<T: serde::de::DeserializeOwned + Default>(
    raw: &axum::body::Bytes,
) -> Result<T, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// `POST /api/v1/incidents/{id}/{move}`: acknowledge, remediating, resolve or
/// false-positive, with an optional `{"note": …}`.
async fn lifecycle(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path((id, step)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let to = match step.as_str() {
        "acknowledge" => IncidentStatus::Acknowledged,
        "remediating" => IncidentStatus::Remediating,
        "resolve" => IncidentStatus::Resolved,
        "false-positive" => IncidentStatus::FalsePositive,
        _ => return Err(ApiError::not_found("no such route")),
    };
    let NoteBody { note } = body(&raw)?;
    let action = format!("incident {}", to.as_str().to_lowercase());
    let actor = p.name.clone();
    act(&app, &p, action, id.clone(), p.role.can_act(), move |s| {
        s.transition(&id, to, &actor, note.as_deref(), now())
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

async fn note(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let TextBody { text } = body(&raw)?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("text: a note needs text"));
    }
    let actor = p.name.clone();
    act(
        &app,
        &p,
        "incident note".into(),
        id.clone(),
        p.role.can_act(),
        move |s| {
            s.add_note(&id, &actor, &text, now())?;
            Ok(json!({ "incident_id": id, "noted": true }))
        },
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    assignee: Option<String>,
}

async fn assign(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let AssignBody { assignee } = body(&raw)?;
    let actor = p.name.clone();
    act(
        &app,
        &p,
        "incident assign".into(),
        id.clone(),
        p.role.can_act(),
        move |s| s.assign(&id, assignee.as_deref(), &actor, now()),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    after: Option<i64>,
    limit: Option<usize>,
}

async fn audit(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    if !p.role.can_audit() {
        return Err(ApiError::denied(format!(
            "{} may not read the audit log",
            p.name
        )));
    }
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = limit_of(q.limit)?;
    let after = q.after.unwrap_or(0);
    let items = app.read(move |s| s.audit_log(after, limit)).await?;
    to_json(json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceParams {
    account: Option<String>,
    /// How many past scores to add, newest first (at most 1000).
    history: Option<usize>,
}

/// The newest assessment of every framework: score and counts.
async fn compliance_list(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<AccountParam>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let scope = account_param(q)?.unwrap_or_else(|| vigil_store::compliance::ALL_SCOPE.into());
    let all = app.read(move |s| s.current_assessments(&scope)).await?;
    let list: Vec<Value> = all
        .into_iter()
        .map(|a| {
            json!({
                "framework": a.framework,
                "scope": a.scope,
                "assessment_date": a.assessed_at,
                "score": a.score,
                "passed": a.passed,
                "failed": a.failed,
                "errors": a.errors,
            })
        })
        .collect();
    to_json(json!({ "frameworks": list }))
}

/// `GET /api/v1/compliance/{framework}` (CIS, NIST-CSF, PCI-DSS, HIPAA, GDPR; any
/// case): the newest assessment, for all accounts or `?account=`, with
/// `?history=N` past scores.
async fn compliance(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(framework): Path<String>,
    q: Result<Query<ComplianceParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let scope = q
        .account
        .unwrap_or_else(|| vigil_store::compliance::ALL_SCOPE.into());
    let history = q.history.unwrap_or(0).min(crate::MAX_HISTORY);
    let missing = ApiError::not_found(format!(
        "no assessment of {framework} yet{}",
        if scope == vigil_store::compliance::ALL_SCOPE {
            String::new()
        } else {
            format!(" for account {scope}")
        }
    ));
    let (latest, past) = app
        .read(move |s| {
            let latest = s.assessment(&framework, &scope)?;
            let past = if history > 0 {
                s.score_history(&framework, &scope, history)?
            } else {
                Vec::new()
            };
            Ok((latest, past))
        })
        .await?;
    let Some(a) = latest else {
        return Err(missing);
    };
    let mut body: Value = serde_json::from_str(&a.body).map_err(ApiError::internal)?;
    if history > 0 {
        body["history"] = json!(past);
    }
    to_json(body)
}
