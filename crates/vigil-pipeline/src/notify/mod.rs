//! Telling people and systems: the destinations of the outbox (EventBridge,
//! Security Hub, Slack, PagerDuty, Jira, Splunk HEC, webhooks), each an
//! `[[outputs]]` table of its `type`, and the workers that deliver to them.
//!
//! Nothing is sent from the pipeline's commit: the store queues one outbox row
//! per destination a change is routed to, in the change's own transaction (see
//! `vigil_store::outbox`), and a worker per destination claims due rows,
//! delivers them, and marks them done, for a later try, or dead. A crash between
//! sending and marking sends again; each destination's idempotency key (the
//! delivery id, the finding id, the incident's dedup key, the stored message or
//! issue) makes that harmless. `docs/outputs.md` is the user's reference.

#[cfg(feature = "aws")]
mod eventbridge;
mod http;
mod jira;
mod pagerduty;
mod render;
#[cfg(feature = "aws")]
mod securityhub;
mod slack;
mod splunk;
mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use vigil_model::duration::Span;
use vigil_model::finding::Category;
use vigil_model::{AccountRegistry, Finding, Incident, Severity, Timestamp};
use vigil_store::outbox::{Change, EventKind, OutboxRow, Outcome, Route, Router};
use vigil_store::SharedStore;

use crate::PipelineError;

pub use http::Secret;

/// For the fuzz target: a stored change read back and rendered by each HTTP
/// destination's renderer (Slack blocks, Jira's ADF, PagerDuty's event, the
/// shared summary lines); an error when it does not read.
#[doc(hidden)]
pub fn render_stored(text: &str) -> Result<usize, String> {
    let event: Event = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut n = render::summary(&event).len() + render::change_line(&event).len();
    n += slack::approval_blocks(&event).len();
    n += jira::description(&event, Some("https://vigil.example.com"))
        .to_string()
        .len();
    if let Some(f) = &event.finding {
        n += render::evidence(f).len();
    }
    if let Some(r) = &event.run {
        n += render::waiting_step(r).map(|s| s.0.len()).unwrap_or(0);
    }
    Ok(n)
}

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn config_err(name: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Config(format!("output `{name}`: {e}"))
}

/// The output types the outbox delivers to.
pub const KINDS: &[&str] = &[
    "eventbridge",
    "securityhub",
    "slack",
    "pagerduty",
    "jira",
    "splunk",
    "webhook",
];

/// Whether `[[outputs]]` type `kind` is an outbox destination.
pub fn is_destination(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// A change as a destination reads it back from its delivery.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub event: String,
    pub at: Timestamp,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub incident: Option<Incident>,
    #[serde(default)]
    pub finding: Option<Finding>,
    #[serde(default)]
    pub run: Option<serde_json::Value>,
}

impl Event {
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.event)
    }
}

/// One claimed delivery.
pub struct Delivery {
    pub id: i64,
    /// Tries so far, this one included.
    pub attempts: u32,
    /// The idempotency key receivers see (`X-Vigil-Delivery`, the event's
    /// `delivery_id`…): the same on every try.
    pub key: String,
    pub event: Event,
    /// The payload as stored (what webhooks send).
    pub raw: Box<serde_json::value::RawValue>,
}

/// Why a delivery did not go through.
#[derive(Clone, Debug)]
pub struct Failure {
    /// A timeout, a 429, a 5xx, throttling: worth another try.
    pub retryable: bool,
    /// What the destination asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl Failure {
    pub fn retry(message: impl Into<String>) -> Failure {
        Failure {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// What delivering one row came to; `Untried` when an earlier row's failure
/// (a 429 asking to wait) stopped the batch before it.
pub enum Result1 {
    Ok,
    Failed(Failure),
    Untried,
}

/// A destination kind's fold key of a change.
type FoldKey = Box<dyn Fn(&Change<'_>) -> Option<String> + Send + Sync>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Delivers `rows` one request each, in order; a failure that asks the
/// destination to wait (a 429) leaves the rest untried.
pub(crate) async fn one_by_one<'a, F, Fut>(rows: &'a [Delivery], one: F) -> Vec<Result1>
where
    F: Fn(&'a Delivery) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        match one(d).await {
            Ok(()) => out.push(Result1::Ok),
            Err(f) => {
                let stop = f.retry_after.is_some();
                out.push(Result1::Failed(f));
                if stop {
                    break;
                }
            }
        }
    }
    out
}

/// A destination of the outbox.
pub trait Destination: Send + Sync {
    /// The most rows one call takes (1: one request per delivery).
    fn batch(&self) -> usize {
        10
    }

    /// The events it hears of unless its table's `events` says otherwise.
    fn default_events(&self) -> &'static [EventKind];

    /// Delivers `rows` (in order), one result per row.
    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>>;
}

/// What a destination delivers with.
pub struct Context {
    pub name: String,
    pub store: SharedStore,
    pub pace: http::Pace,
    /// Where people open an incident (`link_base` + `/incidents/<id>`).
    pub link_base: Option<String>,
}

impl Context {
    /// What this destination made of `subject` earlier.
    pub async fn reference(&self, subject: &str) -> Result<Option<String>, Failure> {
        let (store, name, subject) = (self.store.clone(), self.name.clone(), subject.to_owned());
        tokio::task::spawn_blocking(move || store.lock().outbox_ref(&name, &subject))
            .await
            .map_err(|e| Failure::retry(e.to_string()))?
            .map_err(|e| Failure::retry(format!("store: {e}")))
    }

    pub async fn set_reference(&self, subject: &str, reference: &str) -> Result<(), Failure> {
        let (store, name) = (self.store.clone(), self.name.clone());
        let (subject, reference) = (subject.to_owned(), reference.to_owned());
        tokio::task::spawn_blocking(move || {
            store
                .lock()
                .set_outbox_ref(&name, &subject, &reference, crate::now())
        })
        .await
        .map_err(|e| Failure::retry(e.to_string()))?
        .map_err(|e| Failure::retry(format!("store: {e}")))
    }

    /// The link to an incident, when `link_base` is set.
    pub fn incident_link(&self, id: &str) -> Option<String> {
        self.link_base
            .as_ref()
            .map(|b| format!("{}/incidents/{id}", b.trim_end_matches('/')))
    }
}

/// The routing filter and delivery settings every destination table has.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// Only findings and incidents at least this severe.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only these categories (any).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only these accounts.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Only accounts of these environments (`production`, …).
    #[serde(default)]
    pub environments: Vec<String>,
    /// Only findings of rules with one of these tags (`attack.t1078`,
    /// `attack.persistence`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only these events (see docs/outputs.md); default per type.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Tries before a delivery goes dead.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The first retry's wait, doubled per try (with jitter) up to `max_backoff`.
    #[serde(default = "default_backoff")]
    pub backoff: Span,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Span,
    /// Requests a second at most (default: the vendor's documented limit).
    #[serde(default)]
    pub rate: Option<f64>,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// Where people open an incident: the dashboard's or API's base URL.
    #[serde(default)]
    pub link_base: Option<String>,
}

fn default_attempts() -> u32 {
    8
}
fn default_backoff() -> Span {
    Span::from_secs(2)
}
fn default_max_backoff() -> Span {
    Span::from_secs(600)
}
fn default_timeout() -> Span {
    Span::from_secs(10)
}

const COMMON_KEYS: &[&str] = &[
    "min_severity",
    "categories",
    "accounts",
    "environments",
    "tags",
    "events",
    "max_attempts",
    "backoff",
    "max_backoff",
    "rate",
    "timeout",
    "link_base",
];

/// A built destination: its filter, its settings, and the thing itself.
pub struct Built {
    pub name: String,
    pub kind: String,
    settings: Settings,
    dest: Box<dyn Destination>,
}

struct Settings {
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    rate: f64,
    link_base: Option<String>,
}

struct Filter {
    min_severity: Option<Severity>,
    categories: Vec<Category>,
    accounts: Vec<String>,
    environments: Vec<String>,
    tags: Vec<String>,
    events: Vec<EventKind>,
}

/// What building a destination needs.
pub struct Build<'a> {
    pub name: &'a str,
    pub timeout: Duration,
    pub aws: &'a crate::service::AwsConfig,
}

/// Splits a destination's table into the common part and its own.
fn split_common(name: &str, mut table: toml::Table) -> Result<(Common, toml::Table)> {
    let mut common = toml::Table::new();
    for k in COMMON_KEYS {
        if let Some(v) = table.remove(*k) {
            common.insert((*k).to_owned(), v);
        }
    }
    let c: Common = crate::component::config_of("output", name, common)?;
    Ok((c, table))
}

/// Builds one destination from its `[[outputs]]` table (type and name taken
/// out), with the filter that routes changes to it.
fn build(
    kind: &str,
    name: &str,
    table: toml::Table,
    aws: &crate::service::AwsConfig,
) -> Result<(Filter, Built)> {
    let (common, own) = split_common(name, table)?;
    let b = Build {
        name,
        timeout: common.timeout.duration(),
        aws,
    };
    let (dest, rate): (Box<dyn Destination>, f64) = match kind {
        "slack" => (slack::build(&b, own)?, 1.0),
        "pagerduty" => (pagerduty::build(&b, own)?, 2.0),
        "jira" => (jira::build(&b, own)?, 5.0),
        "splunk" => (splunk::build(&b, own)?, 50.0),
        "webhook" => (webhook::build(&b, own)?, 50.0),
        #[cfg(feature = "aws")]
        "eventbridge" => (eventbridge::build(&b, own)?, 10.0),
        #[cfg(feature = "aws")]
        "securityhub" => (securityhub::build(&b, own)?, 10.0),
        #[cfg(not(feature = "aws"))]
        "eventbridge" | "securityhub" => {
            return Err(crate::service::without_aws(&format!("send to {kind}")))
        }
        other => {
            return Err(config_err(
                name,
                format!("unknown destination type `{other}`"),
            ))
        }
    };
    let mut categories = Vec::new();
    for c in &common.categories {
        categories.push(
            Category::parse(c)
                .ok_or_else(|| config_err(name, format!("categories: unknown category `{c}`")))?,
        );
    }
    let events = match &common.events {
        None => dest.default_events().to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for e in list {
                out.push(EventKind::parse(e).ok_or_else(|| {
                    config_err(
                        name,
                        format!(
                            "events: unknown event `{e}` (one of {})",
                            EventKind::ALL.map(EventKind::as_str).join(", ")
                        ),
                    )
                })?);
            }
            out
        }
    };
    let rate = common.rate.unwrap_or(rate);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(config_err(
            name,
            "rate: must be a positive number of requests a second",
        ));
    }
    if common.max_attempts == 0 {
        return Err(config_err(name, "max_attempts: must be at least 1"));
    }
    let filter = Filter {
        min_severity: common.min_severity,
        categories,
        accounts: common.accounts,
        environments: common.environments,
        tags: common.tags.iter().map(|t| t.to_ascii_lowercase()).collect(),
        events,
    };
    Ok((
        filter,
        Built {
            name: name.to_owned(),
            kind: kind.to_owned(),
            settings: Settings {
                max_attempts: common.max_attempts,
                backoff: common.backoff.duration(),
                max_backoff: common.max_backoff.duration(),
                rate,
                link_base: common.link_base,
            },
            dest,
        },
    ))
}

/// Routing the service installs in the store: which destinations hear of a
/// change.
///
/// In Panther's order: a finding goes to the destinations its rule names
/// (`vigil.destinations`), else to those `[routing] rules` names for its rule,
/// else to every destination whose filter it passes. Incident and run changes
/// go by the filters.
pub struct Routes {
    outputs: Vec<(String, Filter, FoldKey)>,
    by_rule: HashMap<String, Vec<String>>,
    accounts: AccountRegistry,
    wake: Arc<Notify>,
}

impl Router for Routes {
    fn route(&self, c: &Change<'_>) -> Vec<Route> {
        let named: Option<&[String]> = c.finding.and_then(|f| {
            let own = &f.detail.rule.destinations;
            if !own.is_empty() {
                Some(own.as_slice())
            } else {
                self.by_rule.get(&f.detail.rule.id).map(Vec::as_slice)
            }
        });
        let mut out = Vec::new();
        for (name, filter, fold) in &self.outputs {
            if !filter.events.contains(&c.event) {
                continue;
            }
            let chosen = match named {
                Some(names) => names.iter().any(|n| n == name),
                None => self.passes(filter, c),
            };
            if chosen {
                out.push(Route {
                    destination: name.clone(),
                    fold: fold(c),
                });
            }
        }
        out
    }

    fn wake(&self) {
        self.wake.notify_waiters();
    }
}

impl Routes {
    fn passes(&self, f: &Filter, c: &Change<'_>) -> bool {
        let (severity, category, account) = match (c.finding, c.incident) {
            (Some(fi), inc) => (
                inc.map(|i| i.severity)
                    .unwrap_or(fi.detail.severity)
                    .max(fi.detail.severity),
                Some(fi.detail.category),
                fi.account.as_deref(),
            ),
            (None, Some(i)) => (i.severity, Some(i.category), i.account.as_deref()),
            (None, None) => (Severity::Informational, None, None),
        };
        if let Some(min) = f.min_severity {
            if severity < min {
                return false;
            }
        }
        if !f.categories.is_empty() && !category.map(|c| f.categories.contains(&c)).unwrap_or(false)
        {
            return false;
        }
        if !f.accounts.is_empty()
            && !account
                .map(|a| f.accounts.iter().any(|x| x == a))
                .unwrap_or(false)
        {
            return false;
        }
        if !f.environments.is_empty() {
            let env = account
                .and_then(|a| self.accounts.get(a))
                .map(|a| a.environment.as_str().to_owned());
            if !env.map(|e| f.environments.contains(&e)).unwrap_or(false) {
                return false;
            }
        }
        if !f.tags.is_empty() {
            let Some(fi) = c.finding else {
                return true;
            };
            let m = &fi.detail.mitre_attack;
            let tags: Vec<String> = m
                .techniques
                .iter()
                .chain(m.tactics.iter())
                .map(|t| format!("attack.{}", t.to_ascii_lowercase()))
                .collect();
            if !f.tags.iter().any(|t| tags.contains(t)) {
                return false;
            }
        }
        true
    }
}

/// `[routing]`: destinations chosen per rule (overriding the filters).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Rule id → destination names.
    #[serde(default)]
    pub rules: BTreeMap<String, Vec<String>>,
}

/// The outbox's side of the service: the router for the store and the
/// destinations for the workers.
pub struct Outbox {
    pub routes: Arc<Routes>,
    destinations: Vec<(Built, Context)>,
}

impl Outbox {
    /// Builds the destinations of `tables` (the `[[outputs]]` of outbox types).
    pub fn build(
        tables: Vec<(String, String, toml::Table)>,
        routing: &RoutingConfig,
        accounts: AccountRegistry,
        store: &SharedStore,
        aws: &crate::service::AwsConfig,
    ) -> Result<Option<Outbox>> {
        if tables.is_empty() {
            return Ok(None);
        }
        let mut built = Vec::new();
        for (kind, name, table) in tables {
            built.push(build(&kind, &name, table, aws)?);
        }
        for (rule, names) in &routing.rules {
            for n in names {
                if !built.iter().any(|(_, b)| &b.name == n) {
                    return Err(PipelineError::Config(format!(
                        "routing.rules.{rule}: no output is named `{n}`"
                    )));
                }
            }
        }
        let wake = Arc::new(Notify::new());
        let mut outputs = Vec::new();
        let mut destinations = Vec::new();
        for (filter, b) in built {
            let kind = b.kind.clone();
            let fold: FoldKey = Box::new(move |c| fold_of(&kind, c));
            outputs.push((b.name.clone(), filter, fold));
            let cx = Context {
                name: b.name.clone(),
                store: store.clone(),
                pace: http::Pace::new(b.settings.rate),
                link_base: b.settings.link_base.clone(),
            };
            destinations.push((b, cx));
        }
        let routes = Arc::new(Routes {
            outputs,
            by_rule: routing.rules.clone().into_iter().collect(),
            accounts,
            wake,
        });
        store.lock().set_router(routes.clone());
        Ok(Some(Outbox {
            routes,
            destinations,
        }))
    }

    /// Starts a worker per destination on the current runtime, and the task
    /// that forgets deliveries done more than [`RETENTION`] ago; they stop
    /// when `stop` is notified.
    pub fn start(
        self,
        stop: Arc<tokio::sync::watch::Receiver<bool>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let wake = self.routes.wake.clone();
        if let Some((_, cx)) = self.destinations.first() {
            tokio::spawn(prune(cx.store.clone(), (*stop).clone()));
        }
        self.destinations
            .into_iter()
            .map(|(b, cx)| {
                let (wake, stop) = (wake.clone(), stop.clone());
                tokio::spawn(async move { worker(b, cx, wake, stop).await })
            })
            .collect()
    }
}

/// How long a delivery done (or folded) is kept, listed, before it is
/// forgotten; dead ones are kept until replayed.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

async fn prune(store: SharedStore, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let s = store.clone();
        let before =
            Timestamp::from_millis(crate::now().as_millis() - RETENTION.as_millis() as i64);
        match tokio::task::spawn_blocking(move || s.lock().prune_outbox(before)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!("outbox: forgot {n} deliveries done over 7 days ago")
            }
            Ok(Err(e)) => tracing::warn!("outbox: pruning: {e}"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The fold key of a change for a destination kind (kept apart from the
/// destinations so that the router needs none of them).
fn fold_of(kind: &str, c: &Change<'_>) -> Option<String> {
    let incident = c.incident.map(|i| i.id.clone());
    match kind {
        // One message per incident, edited as it changes; a run's approval
        // message is its own.
        "slack" => match c.run {
            Some(r) => Some(format!("run:{}", r.id)),
            None if c.event.is_finding() => incident.map(|i| format!("incident:{i}")),
            None => None,
        },
        // The incident's alert: its newest state is what counts.
        "pagerduty" => incident,
        // Recurrences comment: fold bursts of findings into one comment.
        "jira" if c.event.is_finding() => incident,
        // A finding's newest state replaces the older ones.
        "eventbridge" | "securityhub" | "splunk" | "webhook" if c.event.is_finding() => {
            c.finding.map(|f| format!("finding:{}", f.id))
        }
        _ => None,
    }
}

/// How long a claim lasts before another worker (or this one, after a crash)
/// may take the rows again; renewed every third of it while they are worked on.
const LEASE: Duration = Duration::from_secs(30);

/// The wait before try `attempts + 1`: `base` doubled per try, capped, with
/// full jitter on its upper half, never less than what the destination asked.
fn backoff(attempts: u32, base: Duration, cap: Duration, asked: Option<Duration>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(cap);
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    match asked {
        Some(a) => jittered.max(a),
        None => jittered,
    }
}

async fn worker(
    b: Built,
    cx: Context,
    wake: Arc<Notify>,
    stop: Arc<tokio::sync::watch::Receiver<bool>>,
) {
    let batch = b.dest.batch().max(1);
    let lease = LEASE;
    let mut stop = (*stop).clone();
    tracing::info!(output = %b.name, kind = %b.kind, "delivering to {}", b.name);
    loop {
        if *stop.borrow() {
            break;
        }
        // Registered before the claim, so a commit between the claim and the
        // wait is not missed.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let store = cx.store.clone();
        let name = b.name.clone();
        let claimed = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .claim_outbox(&name, crate::now(), batch, lease.as_millis() as i64)
        })
        .await;
        let rows = match claimed {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::error!(output = %b.name, "claiming deliveries: {e}");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(output = %b.name, "claiming deliveries: {e}");
                Vec::new()
            }
        };
        if rows.is_empty() {
            // Woken by a commit, else look again in a while (retries fall
            // due, other processes queue rows).
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        deliver_rows(&b, &cx, rows).await;
    }
    tracing::info!(output = %b.name, "delivery stopped");
}

async fn deliver_rows(b: &Built, cx: &Context, rows: Vec<OutboxRow>) {
    let mut ready = Vec::new();
    let mut outcomes: Vec<(i64, Outcome)> = Vec::new();
    for r in rows {
        match serde_json::from_str::<Event>(r.payload.get()) {
            Ok(event) => ready.push(Delivery {
                id: r.id,
                attempts: r.attempts,
                key: format!("vigil-{}-{}", b.name, r.id),
                event,
                raw: r.payload,
            }),
            Err(e) => outcomes.push((
                r.id,
                Outcome::Dead {
                    error: format!("its stored change does not read: {e}"),
                },
            )),
        }
    }
    let results = if ready.is_empty() {
        Vec::new()
    } else {
        // Renew the claim while the batch is worked on (a paced or slow
        // destination may take longer than one lease).
        let ids: Vec<i64> = ready.iter().map(|d| d.id).collect();
        let store = cx.store.clone();
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let (store, ids) = (store.clone(), ids.clone());
                let until =
                    Timestamp::from_millis(crate::now().as_millis() + LEASE.as_millis() as i64);
                let _ =
                    tokio::task::spawn_blocking(move || store.lock().extend_outbox(&ids, until))
                        .await;
            }
        });
        let results = b.dest.deliver(&ready, cx).await;
        renew.abort();
        results
    };
    let now = crate::now();
    for (d, r) in ready.iter().zip(
        results
            .into_iter()
            .chain(std::iter::repeat_with(|| Result1::Untried)),
    ) {
        let outcome = match r {
            Result1::Ok => Outcome::Done,
            Result1::Untried => Outcome::Release {
                at: Timestamp::from_millis(now.as_millis() + cx.pace.paused_ms()),
            },
            Result1::Failed(f) if f.retryable && d.attempts < b.settings.max_attempts => {
                let wait = backoff(
                    d.attempts,
                    b.settings.backoff,
                    b.settings.max_backoff,
                    f.retry_after,
                );
                tracing::warn!(
                    output = %b.name, delivery = d.id, attempt = d.attempts,
                    "delivery failed, retrying in {:.1}s: {}", wait.as_secs_f64(), f.message
                );
                Outcome::Retry {
                    at: Timestamp::from_millis(now.as_millis() + wait.as_millis() as i64),
                    error: f.message,
                }
            }
            Result1::Failed(f) => {
                tracing::error!(
                    output = %b.name, delivery = d.id, attempt = d.attempts,
                    "delivery dead ({}): {}",
                    if f.retryable { "out of tries" } else { "refused" },
                    f.message
                );
                Outcome::Dead { error: f.message }
            }
        };
        outcomes.push((d.id, outcome));
    }
    let store = cx.store.clone();
    let name = b.name.clone();
    let settled =
        tokio::task::spawn_blocking(move || store.lock().settle_outbox(&outcomes, crate::now()))
            .await;
    match settled {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(output = %name, "recording deliveries: {e}"),
        Err(e) => tracing::error!(output = %name, "recording deliveries: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, severity: &str, category: &str, own: &[&str]) -> Finding {
        serde_json::from_value(serde_json::json!({
            "version": "1.0", "id": "f1", "detail-type": "Security Finding",
            "source": "com.security.platform", "account": "111122223333",
            "time": "2026-12-01T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "finding_id": "sec-2026-12-01-001", "severity": severity, "confidence": 80,
                "title": "t", "description": "d", "category": category,
                "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
                "first_seen": "2026-12-01T10:00:00Z", "last_seen": "2026-12-01T10:00:00Z",
                "remediation": {"playbook": null, "automated": false, "status": "PENDING"},
                "evidence": {"source_ip": null, "user_agent": null, "api_call": null, "aws_region": null},
                "count": 1, "rule": {"id": rule, "title": "r", "kind": "sigma", "destinations": own},
                "mitre_attack": {"tactics": ["persistence"], "techniques": ["T1098.001"]},
                "principal": null, "event_ids": []
            }
        }))
        .unwrap()
    }

    fn filter(min: Option<Severity>, tags: &[&str]) -> Filter {
        Filter {
            min_severity: min,
            categories: Vec::new(),
            accounts: Vec::new(),
            environments: Vec::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            events: EventKind::ALL.to_vec(),
        }
    }

    fn routes() -> Routes {
        let none = || -> FoldKey { Box::new(|_| None) };
        Routes {
            outputs: vec![
                (
                    "pager".into(),
                    filter(Some(Severity::Critical), &[]),
                    none(),
                ),
                ("chat".into(), filter(Some(Severity::Medium), &[]), none()),
                (
                    "persistence".into(),
                    filter(None, &["attack.persistence"]),
                    none(),
                ),
                ("t1078".into(), filter(None, &["attack.t1078"]), none()),
            ],
            by_rule: [("overridden".to_owned(), vec!["pager".to_owned()])]
                .into_iter()
                .collect(),
            accounts: AccountRegistry::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    fn routed(r: &Routes, f: &Finding) -> Vec<String> {
        let c = Change {
            event: EventKind::FindingOpened,
            at: Timestamp::from_millis(0),
            actor: None,
            note: None,
            incident: None,
            finding: Some(f),
            run: None,
        };
        r.route(&c).into_iter().map(|x| x.destination).collect()
    }

    #[test]
    fn a_rule_names_its_destinations_then_overrides_then_filters() {
        let r = routes();
        // Filters: severity and ATT&CK tags.
        assert_eq!(
            routed(&r, &finding("plain", "HIGH", "PolicyViolation", &[])),
            ["chat", "persistence"]
        );
        assert_eq!(
            routed(&r, &finding("plain", "CRITICAL", "PolicyViolation", &[])),
            ["pager", "chat", "persistence"]
        );
        // The service's override for the rule, whatever the filters say.
        assert_eq!(
            routed(&r, &finding("overridden", "LOW", "PolicyViolation", &[])),
            ["pager"]
        );
        // The rule's own list first, over the override.
        assert_eq!(
            routed(
                &r,
                &finding("overridden", "LOW", "PolicyViolation", &["t1078"])
            ),
            ["t1078"]
        );
    }

    #[test]
    fn backoff_doubles_within_jitter_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 1..=8u32 {
            let full = (base * 2u32.pow(attempt - 1)).min(cap);
            let b = backoff(attempt, base, cap, None);
            assert!(
                b >= full / 2 && b <= full,
                "try {attempt}: {b:?} outside {full:?}"
            );
        }
        let asked = Duration::from_secs(30);
        assert!(backoff(1, base, cap, Some(asked)) >= asked);
    }
}
