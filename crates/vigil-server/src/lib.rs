//! Vigil's REST API over the store: findings, incidents and their lifecycle, the
//! KPIs, the account registry, the audit log, and telemetry ingest — every call
//! signed with AWS Signature Version 4 ([`sigv4`]) by a configured access key whose
//! principal has a role:
//!
//! | role | may |
//! |---|---|
//! | `analyst` | read everything but the audit log |
//! | `responder` | read, and act on incidents (acknowledge, resolve, note, assign…) |
//! | `admin` | all of that, read the audit log, and ingest telemetry |
//! | `ingest` | only send telemetry (for log forwarders) |
//!
//! A request whose signature is missing, malformed, wrong, from an unknown key or
//! outside the allowed clock skew gets 403 with an AWS-style JSON error and nothing
//! else. Every mutating call, allowed or not, is written to the audit log with its
//! principal. The one unsigned route is the Kinesis Data Firehose HTTP endpoint,
//! which authenticates with Firehose's own access-key header.
//!
//! What it is not: the pipeline. Telemetry posted here is handed to an [`Ingest`]
//! the binary supplies (decode → detect → store); this crate only reads the store.

mod api;
mod error;
mod ingest;
mod listen;
mod outbox;
mod respond;
pub mod sigv4;
pub mod slack;
pub mod web;
pub use slack::SlackConfig;
pub mod tls;

use std::sync::{Arc, Condvar, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use vigil_model::{Span, Timestamp};
use vigil_store::{SharedStore, Store};

pub use api::OPENAPI;
pub use error::ApiError;
pub use ingest::{Ingest, IngestBatch, IngestError, IngestReceipt};

/// For the fuzz target: the Firehose body parser (request id and batches, or why
/// the body was refused).
#[doc(hidden)]
pub fn firehose_batches(
    body: &[u8],
    gzip: bool,
    limit: usize,
) -> Result<(String, Vec<IngestBatch>), String> {
    ingest::firehose_batches(body, gzip, limit)
}
use sigv4::{Credential, SignedRequest, Verifier};

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Analyst,
    Responder,
    Admin,
    Ingest,
}

impl Role {
    pub fn can_read(self) -> bool {
        self != Role::Ingest
    }
    pub fn can_act(self) -> bool {
        matches!(self, Role::Responder | Role::Admin)
    }
    pub fn can_ingest(self) -> bool {
        matches!(self, Role::Ingest | Role::Admin)
    }
    pub fn can_audit(self) -> bool {
        self == Role::Admin
    }
}

/// Who signed a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// One configured access key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub principal: String,
    pub role: Role,
}

/// How the API authenticates and what it accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// The SigV4 scope callers sign for.
    pub region: String,
    pub service: String,
    /// How far a request's time may be from the server's.
    pub max_skew_seconds: i64,
    pub keys: Vec<AccessKey>,
    /// Access keys Kinesis Data Firehose sends in `X-Amz-Firehose-Access-Key`; the
    /// Firehose endpoint is off when there are none.
    pub firehose_access_keys: Vec<String>,
    /// The largest request body taken (telemetry batches are the large ones).
    pub max_body_bytes: usize,
    /// Read connections to the store, served side by side.
    pub readers: usize,
    /// Serve HTTPS (TLS 1.3) with this certificate and key instead of HTTP.
    pub tls: Option<tls::TlsFiles>,
    /// How long a client has to send a request's line and headers, and how long
    /// a keep-alive connection may sit idle between requests.
    pub header_timeout: Span,
    /// How long a client has to send a request's whole body.
    pub body_timeout: Span,
    /// Connections open at once; more wait, unaccepted, until one closes.
    pub max_connections: usize,
    /// How long a dashboard sign-in lasts (then the person signs in again).
    pub session_ttl: Span,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            region: "us-east-1".into(),
            service: "execute-api".into(),
            max_skew_seconds: 300,
            keys: Vec::new(),
            firehose_access_keys: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
            readers: 4,
            tls: None,
            header_timeout: Span::from_secs(10),
            body_timeout: Span::from_secs(60),
            max_connections: 512,
            session_ttl: Span::from_secs(8 * 3600),
        }
    }
}

/// A configuration the API cannot run with, or a store it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    #[error("the built-in playbooks: {0}")]
    Playbooks(String),
}

impl ApiConfig {
    /// Refuses a configuration that could not work, naming the bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(ConfigError::Invalid)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for k in &self.keys {
            if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                return Err(format!(
                    "api.keys: the key of principal {:?} has an empty id or secret",
                    k.principal
                ));
            }
            if !seen.insert(&k.access_key_id) {
                return Err(format!(
                    "api.keys: access key {} is listed twice",
                    k.access_key_id
                ));
            }
        }
        if self.max_skew_seconds <= 0 || self.max_skew_seconds > 3600 {
            return Err("api.max_skew_seconds must be 1–3600".into());
        }
        if self.session_ttl.as_millis() < 1000
            || self.session_ttl.as_millis() > 7 * 24 * 3600 * 1000
        {
            return Err("api.session_ttl must be from 1s to 7d".into());
        }
        if self.firehose_access_keys.iter().any(|k| k.len() < 16) {
            return Err("api.firehose_access_keys: each key must be at least 16 characters".into());
        }
        Ok(())
    }
}

/// Read connections to the store: a read takes whichever is free, and waits for
/// one only when all are busy (not behind one busy connection while others idle).
struct Readers {
    conns: Vec<Mutex<Store>>,
    /// The indexes in `conns` no read holds.
    free: Mutex<Vec<usize>>,
    returned: Condvar,
}

impl Readers {
    fn new(conns: Vec<Store>) -> Readers {
        Readers {
            free: Mutex::new((0..conns.len()).collect()),
            conns: conns.into_iter().map(Mutex::new).collect(),
            returned: Condvar::new(),
        }
    }

    /// Runs `f` on a free connection, waiting for one if all are busy.
    fn with<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let i = loop {
            match free.pop() {
                Some(i) => break i,
                None => free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner()),
            }
        };
        drop(free);
        self.on(i, f)
    }

    /// Runs `f` on a free connection, or gives `None` at once if all are busy.
    fn try_with<R>(&self, f: impl FnOnce(&Store) -> R) -> Option<R> {
        let i = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        Some(self.on(i, f))
    }

    /// Runs `f` on connection `i`, taken from the free list, and gives it back.
    fn on<R>(&self, i: usize, f: impl FnOnce(&Store) -> R) -> R {
        // Handed back even if `f` panics, so the pool never shrinks.
        struct Back<'a>(&'a Readers, usize);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
                free.push(self.1);
                self.0.returned.notify_one();
            }
        }
        let _back = Back(self, i);
        let store = self.conns[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&store)
    }
}

/// How many SQLite steps a read may take on an async thread before it is moved
/// off it: a page of 100 findings or the KPIs take a few thousand, a listing
/// whose filter no index serves can take millions.
const INLINE_STEPS: u32 = 100_000;
/// The most past scores one compliance answer carries.
pub(crate) const MAX_HISTORY: usize = 1000;

/// What every handler shares.
pub struct AppState {
    readers: Readers,
    writer: SharedStore,
    verifier: Verifier<Principal>,
    firehose_keys: Vec<String>,
    ingest: Option<Arc<dyn Ingest>>,
    max_body: usize,
    body_timeout: std::time::Duration,
    limits: listen::Limits,
    /// The playbook engine, when response is on.
    engine: Option<vigil_respond::Engine>,
    /// The playbooks listed (the engine's, else the built-in ones).
    library: Arc<vigil_respond::Library>,
    /// What the pipeline's sources report (`GET /api/v1/sources`).
    sources: Vec<Arc<dyn SourceStatus>>,
    /// Slack's approval buttons (`POST /slack/interactions`), when configured.
    slack: Option<slack::SlackConfig>,
    /// Every configured principal's role.
    principals: std::collections::HashMap<String, Role>,
    /// The dashboard's signed-in browsers.
    sessions: web::session::Sessions,
    /// Whether session cookies are `Secure` (the API serves TLS).
    secure_cookies: bool,
    /// The rules the pipeline runs, for the dashboard's rules pages.
    rules: Arc<Vec<web::RuleCard>>,
    /// Set when the server stops, so that long-lived responses (the
    /// dashboard's event streams) end at once rather than hold the drain.
    closing: tokio::sync::watch::Sender<bool>,
}

/// What a source of the pipeline reports about itself: its counters and its
/// last error, shown by `GET /api/v1/sources`.
pub trait SourceStatus: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// A JSON object: the source's `type` and its counters.
    fn status(&self) -> serde_json::Value;
}

impl AppState {
    /// The state over `writer` (shared with the pipeline, which writes findings
    /// through it) and read connections beside it.
    pub fn new(
        config: &ApiConfig,
        writer: SharedStore,
        ingest: Option<Arc<dyn Ingest>>,
    ) -> Result<AppState, ConfigError> {
        config.validate()?;
        let mut verifier = Verifier::new(&config.region, &config.service, config.max_skew_seconds);
        for k in &config.keys {
            verifier.add_key(
                &k.access_key_id,
                Credential {
                    secret: k.secret_access_key.clone(),
                    principal: Principal {
                        name: k.principal.clone(),
                        role: k.role,
                    },
                },
            );
        }
        let conns = {
            let w = writer.lock();
            (0..config.readers.max(1))
                .map(|_| w.open_reader())
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(AppState {
            readers: Readers::new(conns),
            writer,
            verifier,
            firehose_keys: config.firehose_access_keys.clone(),
            ingest,
            max_body: config.max_body_bytes,
            body_timeout: config.body_timeout.duration(),
            limits: listen::Limits {
                max_connections: config.max_connections,
                header_timeout: config.header_timeout.duration(),
            },
            engine: None,
            sources: Vec::new(),
            slack: None,
            sessions: web::session::Sessions::with_ttl(config.session_ttl.duration()),
            secure_cookies: config.tls.is_some(),
            rules: Arc::default(),
            closing: tokio::sync::watch::channel(false).0,
            principals: config
                .keys
                .iter()
                .map(|k| (k.principal.clone(), k.role))
                .collect(),
            library: Arc::new(
                vigil_respond::Library::load(None)
                    .map_err(|e| ConfigError::Playbooks(format!("{e:?}")))?,
            ),
        })
    }

    /// The sources `GET /api/v1/sources` reports on.
    pub fn with_sources(mut self, sources: Vec<Arc<dyn SourceStatus>>) -> AppState {
        self.sources = sources;
        self
    }

    /// The rules the dashboard lists (the pipeline's, with their test cases).
    pub fn with_rules(mut self, rules: Vec<web::RuleCard>) -> AppState {
        self.rules = Arc::new(rules);
        self
    }

    /// Turns on `POST /slack/interactions` (when a signing secret is set).
    pub fn with_slack(mut self, slack: slack::SlackConfig) -> AppState {
        if slack.signing_secret.is_some() {
            self.slack = Some(slack);
        }
        self
    }

    /// Turns response on: remediation routes run playbooks with `engine`.
    pub fn with_engine(mut self, engine: vigil_respond::Engine) -> AppState {
        self.library = Arc::clone(engine.library());
        self.engine = Some(engine);
        self
    }

    /// Runs a read on a store connection. A short read (most are: an indexed page,
    /// the KPI sums) runs right here, on the async thread, since handing it to
    /// another thread and back costs more than the read; one that is still going
    /// after [`INLINE_STEPS`] SQLite steps, or finds every connection busy, is
    /// started again off the async threads, where it may take as long as it needs.
    async fn read<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Store) -> Result<R, vigil_store::StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        if let Some(done) = self.readers.try_with(|s| s.bounded(INLINE_STEPS, &f)) {
            if let Some(r) = done? {
                return Ok(r);
            }
        }
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || app.readers.with(f))
            .await
            .map_err(|e| ApiError::internal(format!("read task: {e}")))?
            .map_err(ApiError::from)
    }

    /// Runs a write on the writer connection, off the async threads.
    async fn write<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<R, vigil_store::StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut w = app.writer.lock();
            f(&mut w)
        })
        .await
        .map_err(|e| ApiError::internal(format!("write task: {e}")))?
        .map_err(ApiError::from)
    }
}

/// The wall clock as a [`Timestamp`].
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// Every route, in one place.
pub fn router(app: Arc<AppState>) -> Router {
    let signed = api::routes()
        .merge(respond::routes())
        .merge(outbox::routes())
        .merge(ingest::signed_routes())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            authenticate,
        ));
    // The dashboard's pages, and the same handlers under `/ui` behind a
    // browser session instead of a signature.
    let ui_api = api::routes()
        .merge(respond::routes())
        .merge(outbox::routes());
    signed
        .merge(web::routes(Arc::clone(&app), ui_api))
        .merge(ingest::firehose_routes())
        .route(
            "/slack/interactions",
            axum::routing::post(slack::interactions),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            read_body,
        ))
        .with_state(app)
}

/// Checks the signature of every request to a signed route; the handler gets the
/// [`Principal`] and the body, already read (the signature covers it).
async fn authenticate(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, app.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::too_large(app.max_body).into_response();
        }
    };
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body: &bytes,
    };
    let principal = match app.verifier.verify(&signed, now().as_secs()) {
        Ok(v) => v.principal.clone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Reads every request's body in full before routing, within the body deadline
/// and the size limit: a client that stops half-way through a body is answered
/// 408 and its connection freed, rather than held by a handler waiting for bytes.
async fn read_body(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Nothing to wait for (a GET): no deadline to keep.
    if axum::body::HttpBody::size_hint(req.body()).exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, app.max_body);
    let bytes = match tokio::time::timeout(app.body_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return ApiError::too_large(app.max_body).into_response(),
        Err(_) => {
            tracing::debug!(path = parts.uri.path(), "request body timed out");
            return ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                format!(
                    "the request body did not arrive within {}",
                    Span::from_millis(app.body_timeout.as_millis() as u64)
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Serves the API on `tcp` (TLS 1.3 first, with `tls`) until `shutdown`
/// resolves, with the connection limits of the configuration (`listen`).
pub async fn serve(
    tcp: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = app.limits;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let closing = app.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
    listen::serve_connections(tcp, tls, router(app), limits, shutdown).await
}
