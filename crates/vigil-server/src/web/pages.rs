//! The pages, rendered on the server with maud (which escapes every value).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use vigil_store::{IncidentQuery, IncidentStatus};

use super::session::Session;
use crate::{now, AppState};

/// A page: the head (the stylesheet, the session's CSRF token for the
/// script), the navigation and `body`.
fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
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
                            a href="/" aria-current="page" { "Overview" }
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
    threats: Vec<vigil_store::ThreatRow>,
    open: Vec<vigil_model::Incident>,
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
            let open = st
                .incidents(&IncidentQuery {
                    statuses: vec![
                        IncidentStatus::Open,
                        IncidentStatus::Acknowledged,
                        IncidentStatus::Remediating,
                    ],
                    limit: vigil_store::MAX_PAGE,
                    ..Default::default()
                })?
                .items;
            // Accounts monitored: the registry's, and any its findings came
            // from without being registered.
            let mut ids: std::collections::BTreeSet<String> =
                accounts.iter().map(|a| a.id.clone()).collect();
            ids.extend(open.iter().filter_map(|i| i.account.clone()));
            Ok(Overview {
                metrics: st.metrics(None, t)?,
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

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".into())
}

fn overview_body(o: &Overview) -> Markup {
    let m = &o.metrics;
    let last = o.open.iter().max_by_key(|i| i.opened_at);
    let mut by_severity: BTreeMap<vigil_model::Severity, usize> = BTreeMap::new();
    let mut by_account: BTreeMap<String, usize> = BTreeMap::new();
    for i in &o.open {
        *by_severity.entry(i.severity).or_default() += 1;
        *by_account
            .entry(i.account.clone().unwrap_or_else(|| "–".into()))
            .or_default() += 1;
    }
    html! {
        h1 { "Overview" }
        p class="status" id="status-line" {
            (o.accounts) " accounts monitored · "
            @if o.regions > 0 { (o.regions) " regions · " }
            @match last {
                Some(i) => { "last open incident " strong { (i.title) } " (" (i.severity.as_str()) ", " (i.opened_at.to_string()) ")" }
                None => { "no open incident" }
            }
        }
        section aria-labelledby="kpi-title" {
            h2 id="kpi-title" { "Key figures (30 days)" }
            ul class="tiles" {
                li class="tile" { span class="label" { "MTTD" } span class="value" { (or_dash(m.mttd.clone())) " min" } }
                li class="tile" { span class="label" { "MTTR" } span class="value" { (or_dash(m.mttr.clone())) " min" } }
                li class="tile" { span class="label" { "False positives" } span class="value" { (or_dash(m.false_positive_rate.map(|v| format!("{v:.1}")))) " %" } }
                li class="tile" { span class="label" { "Compliance" } span class="value" { (or_dash(m.compliance_score.map(|v| format!("{v:.1}")))) " %" } }
                li class="tile" { span class="label" { "Incidents, 24 h" } span class="value" { (m.incidents_last_24h) } }
            }
        }
        section aria-labelledby="threats-title" {
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
        section aria-labelledby="open-title" {
            h2 id="open-title" { "Open incidents (" (o.open.len()) ")" }
            div class="split" {
                table {
                    caption { "By severity" }
                    thead { tr { th scope="col" { "Severity" } th scope="col" { "Incidents" } } }
                    tbody { @for (sev, n) in by_severity.iter().rev() { tr { th scope="row" { (sev.as_str()) } td { (n) } } } }
                }
                table {
                    caption { "By account" }
                    thead { tr { th scope="col" { "Account" } th scope="col" { "Incidents" } } }
                    tbody { @for (acct, n) in &by_account { tr { th scope="row" { (acct) } td { (n) } } } }
                }
            }
        }
    }
}
