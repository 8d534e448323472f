//! What the service has loaded and watches: the accounts with their posture,
//! the playbooks, and the rules with their test cases and ATT&CK tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use maud::html;
use serde::{Deserialize, Serialize};
use vigil_model::Severity;

use super::pages::{not_found, page, percent};
use super::session::Session;
use crate::{now, AppState};

/// A rule or detector the pipeline runs, as the dashboard lists it (the
/// service builds these from its detector when it starts).
#[derive(Clone, Debug, Serialize)]
pub struct RuleCard {
    /// The key its findings carry (`detail.rule.id`): the rule's id, else its title.
    pub key: String,
    pub name: Option<String>,
    pub title: String,
    pub description: String,
    /// `sigma`, `correlation` or `native`.
    pub kind: String,
    pub severity: Severity,
    pub confidence: u8,
    pub category: String,
    pub playbook: Option<String>,
    pub tactics: Vec<String>,
    pub techniques: Vec<String>,
    pub falsepositives: Vec<String>,
    /// Where it was read from (`builtin:…`, a path, `native`).
    pub origin: String,
    /// Its matches only feed a correlation.
    pub silent: bool,
    pub cases: Vec<RuleCase>,
}

/// One test case of a rule: what it is fed and whether it must fire.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuleCase {
    pub name: String,
    pub expect_match: bool,
    /// The input as written (JSON lines or flow-log lines), cut at 16 KiB.
    pub input: String,
}

/// The filters of the rules list.
#[derive(Deserialize, Default)]
pub(super) struct RuleFilters {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    tactic: Option<String>,
    #[serde(default)]
    severity: Option<String>,
}

/// `GET /rules`: every rule and detector, searchable by words, tactic and severity.
pub(super) async fn rules(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    q: Result<Query<RuleFilters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = q.map(|q| q.0).unwrap_or_default();
    let words: Vec<String> =
        f.q.as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
    let tactic = f.tactic.clone().filter(|t| !t.is_empty());
    let severity = f.severity.clone().filter(|t| !t.is_empty());
    let mut tactics: Vec<&str> = app
        .rules
        .iter()
        .flat_map(|r| r.tactics.iter().map(String::as_str))
        .collect();
    tactics.sort_unstable();
    tactics.dedup();
    let shown: Vec<&RuleCard> = app
        .rules
        .iter()
        .filter(|r| {
            let hay = format!(
                "{} {} {} {} {}",
                r.title,
                r.name.as_deref().unwrap_or(""),
                r.key,
                r.techniques.join(" "),
                r.description
            )
            .to_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
                && tactic.as_ref().is_none_or(|t| r.tactics.contains(t))
                && severity.as_ref().is_none_or(|sv| r.severity.as_str() == sv)
        })
        .collect();
    let tested = app.rules.iter().filter(|r| !r.cases.is_empty()).count();
    let body = html! {
        h1 { "Rules" }
        p { (app.rules.len()) " rules and detectors loaded; " (tested) " with test cases." }
        form class="filters" method="get" action="/rules" {
            label { "Words " input name="q" value=(f.q.clone().unwrap_or_default()) size="22"; }
            label { "Tactic " select name="tactic" {
                option value="" { "any" }
                @for t in &tactics { option value=(t) selected[tactic.as_deref() == Some(*t)] { (t) } }
            } }
            label { "Severity " select name="severity" {
                option value="" { "any" }
                @for sv in ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"] { option value=(sv) selected[severity.as_deref() == Some(sv)] { (sv) } }
            } }
            button type="submit" { "Filter" }
        }
        table class="wide" id="rules-table" {
            thead { tr { th scope="col" { "Rule" } th scope="col" { "Severity" } th scope="col" { "Category" } th scope="col" { "ATT&CK" } th scope="col" { "Playbook" } th scope="col" { "Tests" } } }
            tbody {
                @for r in &shown {
                    tr {
                        td { a href=(format!("/rules/{}", percent(&r.key))) { (r.title) } @if r.silent { " " small { "(feeds a correlation)" } } }
                        td { (r.severity.as_str()) }
                        td { (r.category) }
                        td { (r.techniques.join(", ")) }
                        td { @if let Some(p) = &r.playbook { a href=(format!("/playbooks/{}", percent(p))) { (p) } } }
                        td { (r.cases.len()) }
                    }
                }
            }
        }
        @if shown.is_empty() { p { "No rule matches." } }
    };
    Html(page("Rules", Some(&s), body).into_string()).into_response()
}

/// `GET /rules/{key}`: one rule, its ATT&CK tags and its test cases.
pub(super) async fn rule(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    Path(key): Path<String>,
) -> Response {
    let Some(r) = app
        .rules
        .iter()
        .find(|r| r.key == key || r.name.as_deref() == Some(key.as_str()))
    else {
        return not_found(&s, "rule", &key);
    };
    let body = html! {
        p { a href="/rules" { "← Rules" } }
        h1 { (r.title) }
        dl class="facts" {
            dt { "Id" } dd { code { (r.key) } }
            @if let Some(n) = &r.name { dt { "Name" } dd { code { (n) } } }
            dt { "Kind" } dd { (r.kind) @if r.silent { " (feeds a correlation)" } }
            dt { "Severity" } dd { (r.severity.as_str()) " (confidence " (r.confidence) ")" }
            dt { "Category" } dd { (r.category) }
            dt { "ATT&CK tactics" } dd { (r.tactics.join(", ")) }
            dt { "ATT&CK techniques" } dd {
                @for (i, t) in r.techniques.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (t) }
                }
            }
            dt { "Playbook" } dd { @match &r.playbook { Some(p) => { a href=(format!("/playbooks/{}", percent(p))) { (p) } }, None => { "–" } } }
            dt { "Source" } dd { code { (r.origin) } }
        }
        p { (r.description) }
        @if !r.falsepositives.is_empty() {
            section aria-labelledby="fp-title" {
                h2 id="fp-title" { "Known false positives" }
                ul { @for x in &r.falsepositives { li { (x) } } }
            }
        }
        section aria-labelledby="cases-title" {
            h2 id="cases-title" { "Test cases (" (r.cases.len()) ")" }
            @if r.cases.is_empty() { p { "None." } }
            @for c in &r.cases {
                article class="card case" {
                    h3 { (c.name) " " small { @if c.expect_match { "must match" } @else { "must not match" } } }
                    pre class="raw" tabindex="0" { code { (c.input) } }
                }
            }
        }
    };
    Html(page(&r.title, Some(&s), body).into_string()).into_response()
}

/// `GET /playbooks`: what is loaded, what starts each, how automated.
pub(super) async fn playbooks(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
) -> Response {
    let by_playbook: BTreeMap<&str, usize> = app.rules.iter().fold(BTreeMap::new(), |mut m, r| {
        if let Some(p) = &r.playbook {
            *m.entry(p.as_str()).or_default() += 1;
        }
        m
    });
    let body = html! {
        h1 { "Playbooks" }
        p {
            @if app.engine.is_some() { "Response is on: these run against AWS." }
            @else { "Response is off (" code { "[response] enabled = false" } "): these are listed, not run." }
        }
        table class="wide" id="playbooks-table" {
            thead { tr { th scope="col" { "Playbook" } th scope="col" { "Name" } th scope="col" { "Automation" } th scope="col" { "Steps" } th scope="col" { "Rules" } th scope="col" { "Source" } } }
            tbody {
                @for p in app.library.all() {
                    tr {
                        td { a href=(format!("/playbooks/{}", percent(&p.id))) { (p.id) } }
                        td { (p.name) }
                        td { (automation(p.automation)) }
                        td { (p.steps.len()) }
                        td { (by_playbook.get(p.id.as_str()).copied().unwrap_or(0)) }
                        td { code { (p.source) } }
                    }
                }
            }
        }
    };
    Html(page("Playbooks", Some(&s), body).into_string()).into_response()
}

fn automation(a: vigil_respond::Automation) -> &'static str {
    use vigil_respond::Automation;
    match a {
        Automation::Full => "full",
        Automation::Semi => "semi (approved first)",
        Automation::Manual => "manual",
    }
}

/// `GET /playbooks/{id}`: its steps, what each calls, its gates and triggers.
pub(super) async fn playbook(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Some(p) = app.library.get(&id) else {
        return not_found(&s, "playbook", &id);
    };
    let rules: Vec<&RuleCard> = app
        .rules
        .iter()
        .filter(|r| r.playbook.as_deref() == Some(p.id.as_str()))
        .collect();
    let body = html! {
        p { a href="/playbooks" { "← Playbooks" } }
        h1 { (p.id) " · " (p.name) }
        p { (p.description) }
        dl class="facts" {
            dt { "Automation" } dd { (automation(p.automation)) }
            dt { "Expected duration" } dd { (format!("{:?}", p.expected_duration)) }
            dt { "Started by rules" } dd { (p.triggers.rules.join(", ")) }
            dt { "GuardDuty types" } dd { (p.triggers.guardduty_types.join(", ")) }
            dt { "Categories" } dd { (p.triggers.categories.join(", ")) }
            dt { "Source" } dd { code { (p.source) } }
        }
        section aria-labelledby="steps-title" {
            h2 id="steps-title" { "Steps" }
            ol class="steps" {
                @for st in &p.steps {
                    li {
                        strong { (st.id) } " · " code { (st.action.name) }
                        @if st.approval || st.action.destructive { " · " span class="badge" { "approval" } }
                        p { (st.description.as_deref().unwrap_or(st.action.summary)) }
                        p { "Calls: " code { (st.action.calls.join(", ")) } }
                        @if let Some(w) = &st.when { p { "When: " code { (json(w)) } } }
                        @if !st.parameters.is_empty() { p { "Parameters: " code { (json(&st.parameters)) } } }
                    }
                }
            }
        }
        @if !p.rollback.is_empty() {
            section aria-labelledby="rollback-title" {
                h2 id="rollback-title" { "Rollback" }
                ol { @for st in &p.rollback { li { strong { (st.id) } " · " code { (st.action.name) } } } }
            }
        }
        section aria-labelledby="rules-title" {
            h2 id="rules-title" { "Rules that name it (" (rules.len()) ")" }
            ul { @for r in &rules { li { a href=(format!("/rules/{}", percent(&r.key))) { (r.title) } } } }
        }
    };
    Html(page(&p.id, Some(&s), body).into_string()).into_response()
}

/// A value as one line of JSON, for the pages.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// One account's posture on the accounts page.
struct Posture {
    id: String,
    /// Its registry entry; `None` for an account findings came from that is
    /// not registered.
    account: Option<vigil_model::Account>,
    open: BTreeMap<Severity, u64>,
    metrics: vigil_store::Metrics,
}

/// `GET /accounts`: the registry, each account with its open incidents by
/// severity, its incidents in 24 h, its MTTR and its CIS score.
pub(super) async fn accounts(
    State(app): State<Arc<AppState>>,
    Extension(s): Extension<Session>,
) -> Response {
    let read = app
        .read(|st| {
            let t = now();
            let open = st.open_incidents()?;
            let mut all: BTreeMap<String, Option<vigil_model::Account>> = st
                .accounts()
                .list()
                .into_iter()
                .map(|a| (a.id.clone(), Some(a)))
                .collect();
            for (_, account, _) in &open.counts {
                if let Some(id) = account {
                    all.entry(id.clone()).or_insert(None);
                }
            }
            let mut out = Vec::new();
            for (id, account) in all {
                let mut by_severity = BTreeMap::new();
                for (severity, _, n) in open.counts.iter().filter(|c| c.1.as_deref() == Some(&id)) {
                    *by_severity.entry(*severity).or_default() += n;
                }
                out.push(Posture {
                    metrics: st.metrics(Some(&id), t)?,
                    id,
                    account,
                    open: by_severity,
                });
            }
            Ok(out)
        })
        .await;
    let list = match read {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let count = |p: &Posture, sv: &[Severity]| -> u64 {
        sv.iter().map(|x| p.open.get(x).copied().unwrap_or(0)).sum()
    };
    let body = html! {
        h1 { "Accounts" }
        @if list.is_empty() { p { "No account registered yet: see " code { "[[accounts]]" } " and " code { "[organizations]" } " in docs/service.md." } }
        table class="wide" id="accounts-table" {
            thead { tr {
                th scope="col" { "Account" } th scope="col" { "Name" } th scope="col" { "Environment" } th scope="col" { "Unit" }
                th scope="col" { "Regions" } th scope="col" { "Open: critical, high" } th scope="col" { "Open: other" }
                th scope="col" { "Incidents, 24 h" } th scope="col" { "MTTR (min)" } th scope="col" { "CIS score" }
            } }
            tbody {
                @for p in &list {
                    tr {
                        th scope="row" { a href=(format!("/incidents?account={}", percent(&p.id))) { (p.id) } }
                        @match &p.account {
                            Some(a) => {
                                td { (a.name) } td { (a.environment.as_str()) }
                                td { (a.ou.clone().unwrap_or_default()) } td { (a.regions.join(", ")) }
                            }
                            None => { td { em { "not registered" } } td {} td {} td {} }
                        }
                        td { (count(p, &[Severity::Critical, Severity::High])) }
                        td { (count(p, &[Severity::Medium, Severity::Low, Severity::Informational])) }
                        td { (p.metrics.incidents_last_24h) }
                        td { (p.metrics.mttr.clone().unwrap_or_else(|| "–".into())) }
                        td { (p.metrics.compliance_score.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "–".into())) }
                    }
                }
            }
        }
    };
    Html(page("Accounts", Some(&s), body).into_string()).into_response()
}
