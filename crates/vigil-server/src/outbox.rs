//! The outbox routes of `/api/v1`: what the outputs were told, what is still
//! to go, what went dead, and replaying a dead delivery once its destination
//! is fixed.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;
use vigil_store::outbox::State as DeliveryState;

use crate::api::{can_read, limit_of, record, to_json, ApiResult};
use crate::{now, ApiError, AppState, Principal};

type App = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/outbox", get(list))
        .route("/api/v1/outbox/{id}", get(one))
        .route("/api/v1/outbox/{id}/replay", post(replay))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    destination: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/outbox?state=dead&destination=…`: deliveries, newest first,
/// with every destination's counts.
async fn list(
    State(app): App,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    can_read(&p)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("state: {s:?} is not pending, done, folded or dead"))
        })?),
    };
    let limit = limit_of(q.limit)?;
    let (destination, cursor) = (q.destination, q.cursor);
    let (page, counts) = app
        .read(move |s| {
            Ok((
                s.outbox(state, destination.as_deref(), limit, cursor.as_deref())?,
                s.outbox_counts()?,
            ))
        })
        .await?;
    to_json(json!({"items": page.items, "next_cursor": page.next_cursor, "destinations": counts}))
}

fn id_of(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a delivery id")))
}

/// `GET /api/v1/outbox/{id}`.
async fn one(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    can_read(&p)?;
    let id = id_of(&id)?;
    match app.read(move |s| s.outbox_delivery(id)).await? {
        Some(d) => to_json(d),
        None => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}

/// `POST /api/v1/outbox/{id}/replay`: a dead delivery goes again, its tries
/// reset (admin: it re-sends to a third party).
async fn replay(
    State(app): App,
    Extension(p): Extension<Principal>,
    Path(raw): Path<String>,
) -> ApiResult {
    let result = async {
        if p.role != crate::Role::Admin {
            return Err(ApiError::denied(format!(
                "{} ({:?}) may not replay deliveries",
                p.name, p.role
            )));
        }
        let id = id_of(&raw)?;
        let actor = p.name.clone();
        match app.write(move |s| s.replay_outbox(id, &actor, now())).await {
            Ok(Some(d)) => to_json(d),
            Ok(None) => Err(ApiError::not_found(format!("no delivery {id}"))),
            Err(e) => Err(e),
        }
    }
    .await;
    record(&app, &p, "outbox replay".into(), raw.clone(), &result).await?;
    result
}
