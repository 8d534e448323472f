//! The web dashboard `vigil serve` serves at `/`: pages rendered on the server
//! (maud), their styles and scripts embedded in the binary (nothing from a
//! CDN), a strict Content-Security-Policy with no inline script, and browser
//! sessions (see [`session`]).
//!
//! The pages' actions call the same handlers as the signed API, mounted under
//! `/ui` behind the session instead of SigV4: the same role checks, the same
//! audit entries. The signed API is unchanged for machines.

mod catalog;
mod charts;
mod live;
mod pages;
pub mod session;

pub use catalog::{RuleCard, RuleCase};

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{now, ApiError, AppState, Principal, Role};

/// The policy every page is served under: scripts, styles, images and
/// connections from this origin only; no inline script or style, no framing,
/// no plugins, forms posting nowhere else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes: the pages, their assets, sign-in and sign-out, and
/// the API's handlers under `/ui` behind the session.
pub(crate) fn routes(app: Arc<AppState>, api: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    let behind_session = Router::new()
        .route("/", get(pages::overview))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{id}", get(pages::incident))
        .route("/findings", get(pages::findings))
        .route("/findings/{id}", get(pages::finding))
        .route("/compliance", get(pages::compliance))
        .route("/compliance/{framework}", get(pages::framework))
        .route("/accounts", get(catalog::accounts))
        .route("/playbooks", get(catalog::playbooks))
        .route("/playbooks/{id}", get(catalog::playbook))
        .route("/rules", get(catalog::rules))
        .route("/rules/{key}", get(catalog::rule))
        .route("/ui/events", get(live::events))
        .nest("/ui", api)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            require_session,
        ));
    Router::new()
        .route("/login", get(pages::login))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/ui/nonce", post(nonce))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .merge(behind_session)
        .layer(axum::middleware::from_fn(security_headers))
}

/// Adds the security headers to every dashboard response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

/// The embedded assets.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/login.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../assets/icon.svg"),
    ),
];

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Browsers ask for `/favicon.ico` whatever the page says: the icon.
async fn favicon() -> Response {
    asset(axum::extract::Path("icon.svg".to_owned())).await
}

/// The session of a request's cookie.
fn session_of(
    app: &AppState,
    req_headers: &axum::http::HeaderMap,
) -> Option<(String, session::Session)> {
    let cookie = req_headers.get(header::COOKIE)?.to_str().ok()?;
    let token = session::token_of(cookie)?;
    app.sessions.get(token).map(|s| (token.to_owned(), s))
}

/// Lets a request through with its session's principal, or refuses it: pages
/// go to the sign-in, API calls get 401. A mutation must carry the session's
/// CSRF token in `X-CSRF-Token`.
async fn require_session(
    State(app): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let is_api = req.uri().path().starts_with("/ui/");
    let Some((token, s)) = session_of(&app, req.headers()) else {
        return if is_api {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedException",
                "sign in first",
            )
            .into_response()
        } else {
            Redirect::to("/login").into_response()
        };
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let given = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), s.csrf.as_bytes()).into();
        if !ok {
            let who = s.principal.clone();
            let target = req.uri().path().to_owned();
            audit(
                &app,
                &who,
                "ui refused",
                &target,
                "403 missing or wrong CSRF token",
            )
            .await;
            return ApiError::denied("the request lacks this session's CSRF token").into_response();
        }
    }
    req.extensions_mut().insert(s.principal.clone());
    req.extensions_mut().insert(s);
    req.extensions_mut().insert(SessionToken(token));
    next.run(req).await
}

/// The session cookie's token of a request behind the session.
#[derive(Clone)]
pub(crate) struct SessionToken(pub String);

async fn audit(app: &Arc<AppState>, p: &Principal, action: &str, target: &str, outcome: &str) {
    let principal = format!("{} ({:?})", p.name, p.role).to_lowercase();
    let (action, target, outcome) = (action.to_owned(), target.to_owned(), outcome.to_owned());
    if let Err(e) = app
        .write(move |s| s.audit(now(), &principal, &action, &target, &outcome))
        .await
    {
        tracing::error!("audit of a dashboard action failed: {}", e.message);
    }
}

/// `POST /ui/nonce`: a nonce for one sign-in.
async fn nonce(State(app): State<Arc<AppState>>) -> Response {
    Json(json!({"nonce": app.sessions.nonce()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    access_key_id: String,
    nonce: String,
    proof: String,
}

/// `POST /ui/login`: a session for whoever proves an access key's secret.
async fn login(State(app): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let refused = |why: &str| ApiError::denied(format!("sign-in refused: {why}")).into_response();
    let Ok(b) = serde_json::from_slice::<LoginBody>(&body) else {
        return ApiError::bad_request("body: access_key_id, nonce and proof are required")
            .into_response();
    };
    let anonymous = Principal {
        name: format!(
            "key {}",
            b.access_key_id.chars().take(32).collect::<String>()
        ),
        role: Role::Analyst,
    };
    if !app.sessions.take_nonce(&b.nonce) {
        audit(
            &app,
            &anonymous,
            "ui login",
            "-",
            "403 unknown or used nonce",
        )
        .await;
        return refused("the nonce is unknown, used or stale: sign in again");
    }
    let found = app
        .verifier
        .credential(&b.access_key_id)
        .map(|c| (c.secret.clone(), c.principal.clone()));
    let Some((secret, principal)) = found else {
        audit(&app, &anonymous, "ui login", "-", "403 unknown access key").await;
        return refused("wrong access key id or secret");
    };
    if !session::Sessions::proves(&secret, &b.nonce, &b.access_key_id, &b.proof) {
        audit(&app, &principal, "ui login", "-", "403 wrong secret").await;
        return refused("wrong access key id or secret");
    }
    if principal.role == Role::Ingest {
        audit(
            &app,
            &principal,
            "ui login",
            "-",
            "403 an ingest key has no dashboard",
        )
        .await;
        return refused("an ingest key sends telemetry only");
    }
    audit(&app, &principal, "ui login", "-", "200").await;
    let (token, _) = app.sessions.open(principal.clone());
    (
        [(
            header::SET_COOKIE,
            session::cookie(&token, app.sessions.ttl(), app.secure_cookies),
        )],
        Json(json!({"principal": principal.name, "role": principal.role})),
    )
        .into_response()
}

/// `POST /ui/logout`: ends the session (with its CSRF token).
async fn logout(State(app): State<Arc<AppState>>, req: Request) -> Response {
    if let Some((token, s)) = session_of(&app, req.headers()) {
        let given = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given != s.csrf {
            return ApiError::denied("the request lacks this session's CSRF token").into_response();
        }
        app.sessions.close(&token);
        audit(&app, &s.principal, "ui logout", "-", "200").await;
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::cleared(app.secure_cookies))],
    )
        .into_response()
}
