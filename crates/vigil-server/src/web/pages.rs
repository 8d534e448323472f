//! The pages, rendered on the server with maud (which escapes every value).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use vigil_store::{IncidentQuery, IncidentStatus};

use super::charts;
use super::session::Session;
use crate::{now, AppState};

/// A page: the head (the stylesheet, the session's CSRF token for the
/// script), the navigation and `body`.
pub(super) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " · Vigil" }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                @if session.is_some() {
                    script src="/assets/app.js" defer {}
                } @else {
                    script src="/assets/login.js" defer {}
                }
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "Vigil" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            @for (href, label) in [
                                ("/", "Overview"),
                                ("/incidents", "Incidents"),
                                ("/findings", "Findings"),
                                ("/compliance", "Compliance"),
                                ("/accounts", "Accounts"),
                                ("/playbooks", "Playbooks"),
                                ("/rules", "Rules"),
                            ] {
                                @if title == label {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                        span class="who" { (s.principal.name) " · " (format!("{:?}", s.principal.role).to_lowercase()) }
                        button type="button" id="sign-out" class="link" { "Sign out" }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// A 404 page: there is no `what` `id`.
pub(super) fn not_found(s: &Session, what: &str, id: &str) -> Response {
    let body = html! { h1 { "Not found" } p { "There is no " (what) " " code { (id) } "." } };
    (
        axum::http::StatusCode::NOT_FOUND,
        Html(page("Not found", Some(s), body).into_string()),
    )
        .into_response()
}

/// `GET /login`.
pub(super) async fn login() -> Response {
    Html(
        page(
            "Sign in",
            None,
            html! {
                section class="card narrow" aria-labelledby="signin-title" {
                    h1 id="signin-title" { "Sign in" }
                    p { "With an access key of this service. The secret never leaves the page: it signs a one-time challenge." }
                    form id="sign-in" {
                        label for="access-key" { "Access key id" }
                        input id="access-key" name="access_key_id" autocomplete="username" required;
                        label for="secret" { "Secret access key" }
                        input id="secret" name="secret" type="password" autocomplete="current-password" required;
                        button type="submit" { "Sign in" }
                        p id="sign-in-error" class="error" role="alert" {}
                    }
                }
            },
        )
        .into_string(),
    )
    .into_response()
}

/// What the overview shows, read in one go.
struct Overview {
    metrics: vigil_store::Metrics,
    trend: Vec<vigil_store::DayPoint>,
    threats: Vec<vigil_store::ThreatRow>,
    open: vigil_store::OpenIncidents,
    accounts: usize,
    regions: usize,
}

/// `GET /`: the status line, the KPI tiles, threat statistics, open incidents.
pub(super) async fn overview(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
) -> Response {
    let read = app
        .read(|st| {
            let t = now();
            let accounts = st.accounts().list();
            let regions: std::collections::BTreeSet<String> = accounts
                .iter()
                .flat_map(|a| a.regions.iter().cloned())
                .collect();
            let open = st.open_incidents()?;
            // Accounts monitored: the registry's, and any its open incidents
            // came from without being registered.
            let mut ids: std::collections::BTreeSet<String> =
                accounts.iter().map(|a| a.id.clone()).collect();
            ids.extend(open.counts.iter().filter_map(|c| c.1.clone()));
            Ok(Overview {
                metrics: st.metrics(None, t)?,
                trend: st.kpi_trend(None, t)?,
                threats: st.threat_table(None, t)?,
                open,
                accounts: ids.len(),
                regions: regions.len(),
            })
        })
        .await;
    let o = match read {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    Html(page("Overview", Some(&s), overview_body(&o)).into_string()).into_response()
}

/// The KPI tiles: label, headline value, unit and the 30 days behind it.
fn tiles(o: &Overview) -> Vec<(&'static str, String, &'static str, Vec<charts::Point>)> {
    let m = &o.metrics;
    let series = |pick: fn(&vigil_store::DayPoint) -> Option<f64>| -> Vec<charts::Point> {
        o.trend.iter().map(|d| (d.day, pick(d))).collect()
    };
    vec![
        ("MTTD", or_dash(m.mttd.clone()), "min", series(|d| d.mttd)),
        ("MTTR", or_dash(m.mttr.clone()), "min", series(|d| d.mttr)),
        (
            "False positives",
            or_dash(m.false_positive_rate.map(|v| format!("{v:.1}"))),
            "%",
            series(|d| d.false_positive_rate),
        ),
        (
            "Compliance",
            or_dash(m.compliance_score.map(|v| format!("{v:.1}"))),
            "%",
            series(|d| d.compliance_score),
        ),
        (
            "Incidents, 24 h",
            m.incidents_last_24h.to_string(),
            "",
            series(|d| Some(d.opened as f64)),
        ),
    ]
}

/// What a trend chart says, for a screen reader.
fn trend_label(label: &str, unit: &str, series: &[charts::Point]) -> String {
    let known: Vec<f64> = series.iter().filter_map(|p| p.1).collect();
    let what = if label.starts_with("Incidents") {
        "Incidents opened"
    } else {
        label
    };
    match (known.iter().copied().reduce(f64::min), known.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) => format!(
            "{what} per day over 30 days: {} days measured, from {lo:.1} to {hi:.1} {unit}, latest {:.1}",
            known.len(),
            known.last().copied().unwrap_or_default()
        ),
        _ => format!("{what} per day over 30 days: nothing measured yet"),
    }
}

/// Accounts listed by name in the overview's open incidents.
const TOP_ACCOUNTS: usize = 15;

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".into())
}

fn overview_body(o: &Overview) -> Markup {
    let last = o.open.newest.as_ref();
    let mut by_severity: BTreeMap<vigil_model::Severity, u64> = BTreeMap::new();
    let mut by_account: BTreeMap<String, u64> = BTreeMap::new();
    for (severity, account, n) in &o.open.counts {
        *by_severity.entry(*severity).or_default() += n;
        *by_account
            .entry(account.clone().unwrap_or_else(|| "–".into()))
            .or_default() += n;
    }
    // The accounts with most open incidents first; an organization's long
    // tail is on the accounts page.
    let mut ranked: Vec<(&String, &u64)> = by_account.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top = &ranked[..ranked.len().min(TOP_ACCOUNTS)];
    let rest = ranked.len() - top.len();
    let rest_n: u64 = ranked[top.len()..].iter().map(|x| *x.1).sum();
    html! {
        h1 { "Overview" }
        p class="status" id="status-line" data-live="" {
            (o.accounts) @if o.accounts == 1 { " account" } @else { " accounts" } " monitored · "
            @if o.regions > 0 { (o.regions) @if o.regions == 1 { " region · " } @else { " regions · " } }
            @match last {
                Some(i) => { "last open incident " strong { (i.title) } " (" (i.severity.as_str()) ", " (i.opened_at.to_string()) ")" }
                None => { "no open incident" }
            }
        }
        section aria-labelledby="kpi-title" id="kpis" data-live="" {
            h2 id="kpi-title" { "Key figures (30 days)" }
            ul class="tiles" {
                @for (label, value, unit, series) in tiles(o) {
                    li class="tile" {
                        span class="label" { (label) }
                        span class="value" { (value) " " (unit) }
                        (PreEscaped(charts::labelled(&series, 200, 72, &trend_label(label, unit, &series))))
                    }
                }
            }
        }
        section aria-labelledby="threats-title" id="threats" data-live="" {
            h2 id="threats-title" { "Threat statistics (30 days)" }
            table {
                thead { tr { th scope="col" { "Category" } th scope="col" { "Detections" } th scope="col" { "Automated responses" } th scope="col" { "Manual interventions" } th scope="col" { "False positives" } } }
                tbody {
                    @for t in &o.threats {
                        tr { th scope="row" { (t.category.as_str()) } td { (t.detections) } td { (t.automated_responses) } td { (t.manual_interventions) } td { (t.false_positives) } }
                    }
                }
            }
        }
        section aria-labelledby="open-title" id="open" data-live="" {
            h2 id="open-title" { "Open incidents (" (o.open.total()) ")" }
            div class="split" {
                table {
                    caption { "By severity" }
                    thead { tr { th scope="col" { "Severity" } th scope="col" { "Incidents" } } }
                    tbody { @for (sev, n) in by_severity.iter().rev() { tr { th scope="row" { (sev.as_str()) } td { (n) } } } }
                }
                table {
                    caption { "By account" @if rest > 0 { " (the " (TOP_ACCOUNTS) " with most)" } }
                    thead { tr { th scope="col" { "Account" } th scope="col" { "Incidents" } } }
                    tbody {
                        @for (acct, n) in top {
                            tr { th scope="row" { a href=(format!("/incidents?account={}", percent(acct))) { (acct) } } td { (n) } }
                        }
                        @if rest > 0 { tr { th scope="row" { a href="/accounts" { (rest) " more accounts" } } td { (rest_n) } } }
                    }
                }
            }
        }
    }
}

/// A list's filters (`?status=OPEN&severity=HIGH…`); `q` (findings) is a
/// finding's id or `sec-…` number.
#[derive(serde::Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

impl Filters {
    fn get(v: &Option<String>) -> Option<String> {
        v.clone().filter(|x| !x.trim().is_empty())
    }

    /// The severity, category and account fields of a filter form.
    fn fields(&self) -> Markup {
        let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
        html! {
            label { "Severity " select name="severity" {
                option value="" { "any" }
                @for sv in ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"] { option value=(sv) selected[sel(&self.severity, sv)] { (sv) } }
            } }
            label { "Category " select name="category" {
                option value="" { "any" }
                @for c in ["UnauthorizedAccess", "Cryptojacking", "PolicyViolation", "NetworkAttack", "DataExfiltration"] { option value=(c) selected[sel(&self.category, c)] { (c) } }
            } }
            label { "Account " input name="account" value=(self.account.clone().unwrap_or_default()) size="14"; }
        }
    }

    /// The link to the page after, keeping the filters.
    fn next(&self, path: &str, cursor: &str) -> String {
        let mut q = url_query(&[
            ("status", self.status.as_deref()),
            ("severity", self.severity.as_deref()),
            ("category", self.category.as_deref()),
            ("account", self.account.as_deref()),
            ("assignee", self.assignee.as_deref()),
        ]);
        q.push_str(&format!("&cursor={}", percent(cursor)));
        format!("{path}?{q}")
    }
}

/// `GET /incidents`: the list, filtered, a page at a time.
pub(super) async fn incidents(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    q: Result<axum::extract::Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = q.map(|q| q.0).unwrap_or_default();
    let nonempty = Filters::get;
    let query = IncidentQuery {
        statuses: nonempty(&f.status)
            .and_then(|x| IncidentStatus::parse(&x))
            .into_iter()
            .collect(),
        severities: nonempty(&f.severity)
            .and_then(|x| x.parse().ok())
            .into_iter()
            .collect(),
        categories: nonempty(&f.category)
            .and_then(|x| vigil_model::finding::Category::parse(&x))
            .into_iter()
            .collect(),
        account: nonempty(&f.account),
        assignee: nonempty(&f.assignee),
        limit: 50,
        cursor: nonempty(&f.cursor),
    };
    let page_of = match app.read(move |st| st.incidents(&query)).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let sel = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let next = page_of
        .next_cursor
        .as_ref()
        .map(|c| f.next("/incidents", c));
    let body = html! {
        h1 { "Incidents" }
        form class="filters" method="get" action="/incidents" {
            label { "Status " select name="status" {
                option value="" { "any" }
                @for st in IncidentStatus::ALL { option value=(st.as_str()) selected[sel(&f.status, st.as_str())] { (st.as_str()) } }
            } }
            (f.fields())
            label { "Assignee " input name="assignee" value=(f.assignee.clone().unwrap_or_default()) size="10"; }
            button type="submit" { "Filter" }
        }
        table class="wide" id="list" data-live="" {
            thead { tr { th scope="col" { "Incident" } th scope="col" { "Severity" } th scope="col" { "Status" } th scope="col" { "Category" } th scope="col" { "Account" } th scope="col" { "Assignee" } th scope="col" { "Findings" } th scope="col" { "Opened" } } }
            tbody {
                @for i in &page_of.items {
                    tr {
                        td { a href=(format!("/incidents/{}", i.id)) { (i.title) } }
                        td { (i.severity.as_str()) } td { (i.status.as_str()) } td { (i.category.as_str()) }
                        td { (i.account.clone().unwrap_or_default()) } td { (i.assignee.clone().unwrap_or_default()) }
                        td { (i.finding_count) } td { (i.opened_at.to_string()) }
                    }
                }
            }
        }
        @if page_of.items.is_empty() { p { "No incident matches." } }
        @if let Some(n) = next { p { a href=(n) rel="next" { "Next page" } } }
    };
    Html(page("Incidents", Some(&s), body).into_string()).into_response()
}

/// `GET /incidents/{id}`: the incident, its timeline, its findings with their
/// evidence, its playbook runs; the actions the session's role allows.
pub(super) async fn incident(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let key = id.clone();
    let read = app
        .read(move |st| {
            let Some(view) = st.incident(&key)? else {
                return Ok(None);
            };
            let mut findings = Vec::new();
            for fid in view.finding_ids.iter().take(50) {
                if let Some(raw) = st.finding(fid)? {
                    if let Ok(f) = serde_json::from_str::<vigil_model::Finding>(raw.get()) {
                        findings.push(f);
                    }
                }
            }
            let runs = st.runs(Some(&key), None, 50)?;
            Ok(Some((view, findings, runs)))
        })
        .await;
    let (view, findings, runs) = match read {
        Ok(Some(x)) => x,
        Ok(None) => {
            return not_found(&s, "incident", &id);
        }
        Err(e) => return e.into_response(),
    };
    let i = &view.incident;
    let acts = s.principal.role.can_act();
    // The playbook the newest finding's rule names, preselected.
    let suggested = findings
        .iter()
        .rev()
        .find_map(|f| f.detail.remediation.playbook.clone());
    let mut principals: Vec<&String> = app
        .principals
        .iter()
        .filter(|(_, r)| r.can_act())
        .map(|(p, _)| p)
        .collect();
    principals.sort();
    let moves: Vec<(&str, &str)> = [
        (IncidentStatus::Acknowledged, "acknowledge", "Acknowledge"),
        (IncidentStatus::Remediating, "remediating", "Remediating"),
        (IncidentStatus::Resolved, "resolve", "Resolve"),
        (
            IncidentStatus::FalsePositive,
            "false-positive",
            "Mark false positive",
        ),
    ]
    .into_iter()
    .filter(|(to, _, _)| i.status.can_become(*to))
    .map(|(_, path, label)| (path, label))
    .collect();
    let body = html! {
        p { a href="/incidents" { "← Incidents" } }
        h1 { (i.title) }
        dl class="facts" id="facts" data-live="" {
            dt { "Status" } dd id="incident-status" { (i.status.as_str()) }
            dt { "Severity" } dd { (i.severity.as_str()) }
            dt { "Category" } dd { (i.category.as_str()) }
            dt { "Account" } dd { (i.account.clone().unwrap_or_default()) }
            dt { "Subject" } dd { code { (i.subject.clone().unwrap_or_default()) } }
            dt { "Assignee" } dd { (i.assignee.clone().unwrap_or_else(|| "–".into())) }
            dt { "Opened" } dd { (i.opened_at.to_string()) }
        }
        @if acts {
            section class="actions" aria-labelledby="actions-title" data-incident=(i.id) {
                h2 id="actions-title" { "Actions" }
                div class="buttons" id="moves" data-live="" {
                    @for (path, label) in &moves { button type="button" data-move=(path) { (label) } }
                }
                div class="row" {
                    div {
                        label for="note-text" { "Note" }
                        textarea id="note-text" rows="2" {}
                        button type="button" data-note="" { "Add note" }
                    }
                    div {
                        label for="assignee" { "Assign to" }
                        input id="assignee" list="principals" value=(i.assignee.clone().unwrap_or_default()) size="16";
                        datalist id="principals" { @for p in &principals { option value=(p) {} } }
                        button type="button" data-assign="" { "Assign" }
                    }
                }
                @if app.engine.is_some() {
                    fieldset class="start" {
                        legend { "Start a playbook" }
                        label for="playbook" { "Playbook" }
                        select id="playbook" {
                            @for p in app.library.all() {
                                option value=(p.id) selected[suggested.as_deref() == Some(p.id.as_str())] { (p.id) " · " (p.name) }
                            }
                        }
                        label for="resource-arn" { "Resource (optional)" }
                        input id="resource-arn" size="40" placeholder="the finding's own";
                        button type="button" id="plan-button" { "Plan (dry run)" }
                        button type="button" id="start-button" disabled { "Start playbook" }
                        div id="plan" aria-live="polite" {}
                    }
                } @else {
                    p { "Response is off (" code { "[response] enabled = false" } "): playbooks are not run." }
                }
                p id="action-error" class="error" role="alert" {}
            }
        }
        section aria-labelledby="runs-title" id="runs" data-live="" {
            h2 id="runs-title" { "Remediation runs" }
            @if runs.is_empty() { p { "None." } }
            @for r in &runs {
                article class="card run" data-run=(r.id) {
                    h3 { (r.playbook) " · " span class="run-status" { (r.status.as_str()) } }
                    p { small { "Started by " (r.requested_by) " at " (r.created_at.to_string()) @if let Some(n) = &r.note { " · " (n) } } }
                    ol class="steps" {
                        @for st in &r.steps {
                            li data-step=(st.step_id) {
                                (st.step_id) " (" code { (st.action) } "): "
                                span class="step-status" { (st.status.as_str()) }
                                @if let Some(by) = &st.approved_by { " · approved by " (by) }
                                @if !st.calls.is_empty() { " · " code { (st.calls.join(", ")) } }
                                @if let Some(e) = &st.error { " · " span class="error" { (e) } }
                            }
                        }
                    }
                    @if acts && r.status == vigil_model::response::RunStatus::AwaitingApproval {
                        div class="buttons" {
                            button type="button" data-approve=(r.id) { "Approve" }
                            button type="button" data-reject=(r.id) { "Reject" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="timeline-title" id="timeline" data-live="" {
            h2 id="timeline-title" { "Timeline" }
            ol class="timeline" {
                @for t in &view.timeline {
                    li { time { (t.at.to_string()) } " · " (t.kind.as_str()) @if let Some(a) = &t.actor { " · " (a) } ": " (t.text) }
                }
            }
        }
        section aria-labelledby="findings-title" id="findings" data-live="" {
            h2 id="findings-title" { "Findings (" (view.finding_ids.len()) ")" }
            @for f in &findings {
                article class="card finding" {
                    h3 { a href=(format!("/findings/{}", f.id)) { (f.detail.title) } " " small { "(" (f.detail.finding_id) ", " (f.detail.severity.as_str()) ", seen " (f.detail.count) " time(s))" } }
                    p { (f.detail.description) }
                    dl class="facts" {
                        @for (k, v) in evidence_pairs(f) { dt { (k) } dd { code { (v) } } }
                    }
                }
            }
        }
    };
    Html(page(&i.title, Some(&s), body).into_string()).into_response()
}

/// `text` indented when it is JSON, else as it is (a flow-log line).
fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_owned())
}

/// A finding's evidence as pairs, the schema's four first.
fn evidence_pairs(f: &vigil_model::Finding) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&f.detail.evidence) {
        for (k, v) in m {
            if !v.is_null() {
                out.push((
                    k,
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                ));
            }
        }
    }
    out
}

/// What a URL's path segment or query value keeps as it is: RFC 3986's
/// unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

fn url_query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", percent(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /compliance`: each framework's current score.
pub(super) async fn compliance(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
) -> Response {
    let all = match app
        .read(|st| st.current_assessments(vigil_store::compliance::ALL_SCOPE))
        .await
    {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Compliance" }
        @if all.is_empty() {
            p { "Nothing assessed yet: turn on " code { "[compliance]" } " in the configuration (docs/compliance.md)." }
        } @else {
            table class="wide" {
                thead { tr { th scope="col" { "Framework" } th scope="col" { "Score" } th scope="col" { "Passed" } th scope="col" { "Failed" } th scope="col" { "Errors" } th scope="col" { "Assessed" } } }
                tbody {
                    @for a in &all {
                        tr {
                            td { a href=(format!("/compliance/{}", percent(&a.framework))) { (a.framework) } }
                            td { (a.score.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "–".into())) }
                            td { (a.passed) } td { (a.failed) } td { (a.errors) } td { (a.assessed_at.to_string()) }
                        }
                    }
                }
            }
        }
    };
    Html(page("Compliance", Some(&s), body).into_string()).into_response()
}

/// `GET /compliance/{framework}`: the score and its history, and each failed
/// control with its resources, evidence, the fix and the playbook that fixes it.
pub(super) async fn framework(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let key = name.clone();
    let read = app
        .read(move |st| {
            let scope = vigil_store::compliance::ALL_SCOPE;
            Ok((
                st.assessment(&key, scope)?,
                st.score_history(&key, scope, 30)?,
            ))
        })
        .await;
    let (latest, history) = match read {
        Ok((Some(a), h)) => (a, h),
        Ok((None, _)) => {
            return not_found(&s, "assessment of", &name);
        }
        Err(e) => return e.into_response(),
    };
    let body: serde_json::Value = serde_json::from_str(&latest.body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_default();
    let failed = body["failed_controls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let markup = html! {
        p { a href="/compliance" { "← Compliance" } }
        h1 { (text(&body["name"])) " " small { (text(&body["version"])) } }
        dl class="facts" {
            dt { "Score" } dd id="framework-score" { (latest.score.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "–".into())) }
            dt { "Controls" } dd { (latest.passed) " passed, " (latest.failed) " failed, " (latest.errors) " errors" }
            dt { "Assessed" } dd { (latest.assessed_at.to_string()) }
        }
        section aria-labelledby="history-title" {
            h2 id="history-title" { "Score history" }
            table {
                thead { tr { th scope="col" { "Assessed" } th scope="col" { "Score" } th scope="col" { "Passed" } th scope="col" { "Failed" } } }
                tbody {
                    @for p in &history {
                        tr { td { (p.assessed_at.to_string()) } td { (p.score.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "–".into())) } td { (p.passed) } td { (p.failed) } }
                    }
                }
            }
        }
        section aria-labelledby="failed-title" {
            h2 id="failed-title" { "Failed controls (" (failed.len()) ")" }
            @for c in &failed {
                article class="card control" {
                    h3 { (text(&c["control_id"])) " " small { (text(&c["status"])) } }
                    p { (text(&c["description"])) }
                    @if let Some(fix) = c["remediation"].as_str() { p { strong { "Fix: " } (fix) } }
                    @let playbooks: Vec<String> = c["playbooks"].as_array().into_iter().flatten().map(text).collect();
                    @if !playbooks.is_empty() { p { strong { "Playbook: " } (playbooks.join(", ")) } }
                    table class="wide" {
                        thead { tr { th scope="col" { "Check" } th scope="col" { "Account" } th scope="col" { "Region" } th scope="col" { "Resource" } th scope="col" { "Evidence" } } }
                        tbody {
                            @for r in c["resources"].as_array().into_iter().flatten() {
                                tr {
                                    td { code { (text(&r["check"])) } } td { (text(&r["account"])) } td { (text(&r["region"])) }
                                    td { code { (text(&r["resource_arn"])) } } td { (text(&r["evidence"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Html(page(&latest.framework, Some(&s), markup).into_string()).into_response()
}

/// `GET /findings`: the list, filtered, a page at a time; `q` opens one.
pub(super) async fn findings(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    q: Result<axum::extract::Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = q.map(|q| q.0).unwrap_or_default();
    let nonempty = Filters::get;
    if let Some(wanted) = nonempty(&f.q) {
        let key = wanted.trim().to_owned();
        let found = app.read(move |st| Ok(st.finding(&key)?.is_some())).await;
        if let Ok(true) = found {
            return axum::response::Redirect::to(&format!("/findings/{}", percent(wanted.trim())))
                .into_response();
        }
    }
    let query = vigil_store::FindingQuery {
        severities: nonempty(&f.severity)
            .and_then(|x| x.parse().ok())
            .into_iter()
            .collect(),
        categories: nonempty(&f.category)
            .and_then(|x| vigil_model::finding::Category::parse(&x))
            .into_iter()
            .collect(),
        account: nonempty(&f.account),
        limit: 50,
        cursor: nonempty(&f.cursor),
        ..Default::default()
    };
    let page_of = match app.read(move |st| st.findings(&query)).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let items: Vec<vigil_model::Finding> = page_of
        .items
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let next = page_of.next_cursor.as_ref().map(|c| f.next("/findings", c));
    let body = html! {
        h1 { "Findings" }
        form class="filters" method="get" action="/findings" {
            label { "Id or number " input name="q" value=(f.q.clone().unwrap_or_default()) size="22"; }
            (f.fields())
            button type="submit" { "Search" }
        }
        @if nonempty(&f.q).is_some() { p class="error" role="status" { "No finding has that id or number." } }
        table class="wide" id="list" data-live="" {
            thead { tr { th scope="col" { "Finding" } th scope="col" { "Severity" } th scope="col" { "Category" } th scope="col" { "Account" } th scope="col" { "Count" } th scope="col" { "Last seen" } } }
            tbody {
                @for x in &items {
                    tr {
                        td { a href=(format!("/findings/{}", x.id)) { (x.detail.title) } " " small { (x.detail.finding_id) } }
                        td { (x.detail.severity.as_str()) } td { (x.detail.category.as_str()) }
                        td { (x.account.clone().unwrap_or_default()) } td { (x.detail.count) } td { (x.detail.last_seen.to_string()) }
                    }
                }
            }
        }
        @if items.is_empty() { p { "No finding matches." } }
        @if let Some(n) = next { p { a href=(n) rel="next" { "Next page" } } }
    };
    Html(page("Findings", Some(&s), body).into_string()).into_response()
}

/// `GET /findings/{id}` (its id or `sec-…` number): the finding, its incident,
/// its evidence and the whole record as stored.
pub(super) async fn finding(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let key = id.clone();
    let read = app
        .read(move |st| {
            let Some(raw) = st.finding(&key)? else {
                return Ok(None);
            };
            let f: Option<vigil_model::Finding> = serde_json::from_str(raw.get()).ok();
            let incident = match &f {
                Some(f) => st.incident_of(&f.id)?,
                None => None,
            };
            let records = match &f {
                Some(f) => st.finding_records(&f.id)?,
                None => Vec::new(),
            };
            Ok(Some((raw.get().to_owned(), f, incident, records)))
        })
        .await;
    let (raw, f, incident, records) = match read {
        Ok(Some((raw, Some(f), inc, records))) => (raw, f, inc, records),
        Ok(_) => {
            return not_found(&s, "finding", &id);
        }
        Err(e) => return e.into_response(),
    };
    let pretty = pretty_json(&raw);
    let d = &f.detail;
    let body = html! {
        p { a href="/findings" { "← Findings" } }
        h1 { (d.title) }
        dl class="facts" {
            dt { "Number" } dd { (d.finding_id) }
            dt { "Severity" } dd { (d.severity.as_str()) " (confidence " (d.confidence) ")" }
            dt { "Category" } dd { (d.category.as_str()) }
            dt { "Rule" } dd { (d.rule.title) " " code { (d.rule.id) } }
            dt { "ATT&CK" } dd { (d.mitre_attack.tactics.join(", ")) " " (d.mitre_attack.techniques.join(", ")) }
            dt { "Account" } dd { (f.account.clone().unwrap_or_default()) }
            dt { "Seen" } dd { (d.count) " time(s), " (d.first_seen.to_string()) " – " (d.last_seen.to_string()) }
            @if let Some(i) = &incident { dt { "Incident" } dd { a href=(format!("/incidents/{i}")) { (i) } } }
            dt { "Events" } dd { code { (d.event_ids.join(", ")) } }
        }
        p { (d.description) }
        section aria-labelledby="evidence-title" {
            h2 id="evidence-title" { "Evidence" }
            dl class="facts" { @for (k, v) in evidence_pairs(&f) { dt { (k) } dd { code { (v) } } } }
        }
        section aria-labelledby="records-title" {
            h2 id="records-title" { "Records as they arrived (" (records.len()) ")" }
            @if records.is_empty() { p { "None kept: the finding came from an assessment, or from before its records were kept." } }
            @for r in &records {
                h3 { "Event " code { (r.event_id) } }
                pre class="raw record" tabindex="0" aria-label=(format!("record {}", r.event_id)) { code { (pretty_json(&r.text)) } }
            }
            @if f.detail.event_ids.len() > records.len() {
                p { small { "The first " (records.len()) " of its records are kept; its event ids name the rest." } }
            }
        }
        section aria-labelledby="raw-title" {
            h2 id="raw-title" { "The finding as stored" }
            pre class="raw finding-body" tabindex="0" aria-label="the finding as stored" { code { (pretty) } }
        }
    };
    Html(page(&d.title, Some(&s), body).into_string()).into_response()
}
