//! `type = "jira"`: Jira Cloud REST v3. One issue per incident: created when
//! the incident is first delivered (summary, priority from severity, an ADF
//! description with the finding and its evidence, labels `vigil` and
//! `vigil-<incident>`), commented on when findings recur or people act, and
//! moved by the `resolve_transition` when the incident is resolved or marked a
//! false positive. The issue key is kept in the outbox's references; a retry
//! that finds none first searches for the incident's label, so a crash after
//! the create does not open a second issue.

use serde::Deserialize;
use serde_json::{json, Value};
use vigil_store::outbox::EventKind;

use super::http::{self, Secret};
use super::render::{self, cut};
use super::{BoxFuture, Build, Context, Delivery, Destination, Event, Failure, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `https://your-domain.atlassian.net`
    base_url: String,
    /// The account the API token belongs to.
    email: String,
    api_token: Secret,
    /// The project key (`SEC`).
    project: String,
    #[serde(default = "default_type")]
    issue_type: String,
    /// Vigil severity → Jira priority name.
    #[serde(default)]
    priorities: Option<std::collections::BTreeMap<String, String>>,
    /// The transition (by name) that closes an issue.
    #[serde(default = "default_transition")]
    resolve_transition: String,
}

fn default_type() -> String {
    "Task".into()
}
fn default_transition() -> String {
    "Done".into()
}

pub struct Jira {
    base: String,
    email: String,
    token: Secret,
    project: String,
    issue_type: String,
    priorities: std::collections::BTreeMap<String, String>,
    resolve_transition: String,
    client: reqwest::Client,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    reqwest::Url::parse(&c.base_url)
        .map_err(|e| PipelineError::Config(format!("output `{}`: base_url: {e}", b.name)))?;
    let priorities = c.priorities.unwrap_or_else(|| {
        [
            ("CRITICAL", "Highest"),
            ("HIGH", "High"),
            ("MEDIUM", "Medium"),
            ("LOW", "Low"),
            ("INFORMATIONAL", "Lowest"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    });
    Ok(Box::new(Jira {
        base: c.base_url.trim_end_matches('/').to_owned(),
        email: c.email,
        token: c.api_token,
        project: c.project,
        issue_type: c.issue_type,
        priorities,
        resolve_transition: c.resolve_transition,
        client: http::client(b.timeout),
    }))
}

const EVENTS: &[EventKind] = &[
    EventKind::IncidentOpened,
    EventKind::IncidentEscalated,
    EventKind::FindingOpened,
    EventKind::FindingUpdated,
    EventKind::IncidentAcknowledged,
    EventKind::IncidentResolved,
    EventKind::IncidentFalsePositive,
    EventKind::RunSucceeded,
    EventKind::RunFailed,
];

impl Destination for Jira {
    fn batch(&self) -> usize {
        5
    }

    fn default_events(&self) -> &'static [EventKind] {
        EVENTS
    }

    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>> {
        Box::pin(super::one_by_one(rows, move |d| self.one(d, cx)))
    }
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn para(parts: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": parts})
}

fn strong(t: &str) -> Value {
    json!({"type": "text", "text": t, "marks": [{"type": "strong"}]})
}

/// The issue's description: an Atlassian Document Format document.
pub(crate) fn description(e: &Event, link: Option<&str>) -> Value {
    let mut content = Vec::new();
    if let Some(i) = &e.incident {
        content.push(para(vec![
            strong("Incident: "),
            text(&format!(
                "{} ({}, {}, {} finding(s))",
                i.id,
                i.severity,
                i.category.as_str(),
                i.finding_count
            )),
        ]));
        if let Some(a) = &i.account {
            content.push(para(vec![strong("Account: "), text(a)]));
        }
    }
    if let Some(f) = &e.finding {
        let d = &f.detail;
        content.push(json!({"type": "heading", "attrs": {"level": 3}, "content": [text(&cut(&d.title, 250))]}));
        content.push(para(vec![text(&cut(&d.description, 2000))]));
        content.push(para(vec![
            strong("Rule: "),
            text(&d.rule.id),
            text(&format!(
                " · finding {} · seen {} time(s) · first {} · last {}",
                d.finding_id, d.count, d.first_seen, d.last_seen
            )),
        ]));
        let items: Vec<Value> = render::evidence(f)
            .into_iter()
            .map(|(k, v)| {
                json!({"type": "listItem", "content": [para(vec![strong(&format!("{k}: ")), json!({"type": "text", "text": cut(&v, 500), "marks": [{"type": "code"}]})])]})
            })
            .collect();
        if !items.is_empty() {
            content.push(
                json!({"type": "heading", "attrs": {"level": 4}, "content": [text("Evidence")]}),
            );
            content.push(json!({"type": "bulletList", "content": items}));
        }
        if let Some(p) = &d.remediation.playbook {
            content.push(para(vec![strong("Playbook: "), text(p)]));
        }
    }
    if let Some(l) = link {
        content.push(para(vec![json!({"type": "text", "text": "Open in Vigil", "marks": [{"type": "link", "attrs": {"href": l}}]})]));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

impl Jira {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.email, Some(self.token.expose()))
            .header("accept", "application/json")
    }

    async fn one(&self, d: &Delivery, cx: &Context) -> Result<(), Failure> {
        let e = &d.event;
        let Some(i) = &e.incident else {
            return Ok(());
        };
        let subject = format!("incident:{}", i.id);
        let mut key = cx.reference(&subject).await?;
        if key.is_none() && d.attempts > 1 {
            // An earlier try may have created it and died before keeping its key.
            key = self.find(cx, &i.id).await?;
            if let Some(k) = &key {
                cx.set_reference(&subject, k).await?;
            }
        }
        let kind = e.kind();
        if key.is_none() && !kind.map(EventKind::is_finding).unwrap_or(false) {
            // People acting on, or a playbook ending for, an incident that has
            // no issue: there is nothing to comment on or close.
            return Ok(());
        }
        let closing = matches!(
            kind,
            Some(EventKind::IncidentResolved) | Some(EventKind::IncidentFalsePositive)
        );
        let key = match key {
            Some(k) => {
                let mut words = vec![strong(&format!("{}: ", render::change_line(e)))];
                if let Some(f) = &e.finding {
                    words.push(text(&format!(
                        "{} (seen {} time(s), last {})",
                        f.detail.title, f.detail.count, f.detail.last_seen
                    )));
                } else if let Some(r) = &e.run {
                    words.push(text(&format!(
                        "playbook {} run {} is {}",
                        render::run_field(r, "playbook"),
                        render::run_field(r, "id"),
                        render::run_field(r, "status")
                    )));
                }
                let body = json!({"body": {"type": "doc", "version": 1, "content": [para(words)]}});
                let req = self
                    .req(
                        reqwest::Method::POST,
                        &format!("/rest/api/3/issue/{k}/comment"),
                    )
                    .json(&body);
                http::send_ok(&cx.pace, "Jira comment", req).await?;
                k
            }
            None => {
                let priority = self.priorities.get(i.severity.as_str()).cloned();
                let mut fields = json!({
                    "project": {"key": self.project},
                    "issuetype": {"name": self.issue_type},
                    "summary": cut(&render::summary(e), 255),
                    "description": description(e, cx.incident_link(&i.id).as_deref()),
                    "labels": ["vigil", label(&i.id)],
                });
                if let Some(p) = priority {
                    fields["priority"] = json!({"name": p});
                }
                let req = self
                    .req(reqwest::Method::POST, "/rest/api/3/issue")
                    .json(&json!({"fields": fields}));
                let (_, answer) = http::send_ok(&cx.pace, "Jira create issue", req).await?;
                let v: Value = serde_json::from_str(&answer).map_err(|e| {
                    Failure::retry(format!("Jira create issue: its answer is not JSON: {e}"))
                })?;
                let k = v
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Failure::permanent("Jira create issue: no key in the answer"))?
                    .to_owned();
                cx.set_reference(&subject, &k).await?;
                k
            }
        };
        if closing {
            self.close(cx, &key).await?;
        }
        Ok(())
    }

    /// The issue labelled for incident `id`, if any.
    async fn find(&self, cx: &Context, id: &str) -> Result<Option<String>, Failure> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{}\"",
            self.project,
            label(id)
        );
        let req = self
            .req(reqwest::Method::GET, "/rest/api/3/search/jql")
            .query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ]);
        let (_, answer) = http::send_ok(&cx.pace, "Jira search", req).await?;
        let v: Value = serde_json::from_str(&answer)
            .map_err(|e| Failure::retry(format!("Jira search: {e}")))?;
        Ok(v.get("issues")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|i| i.get("key"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Moves issue `key` by the resolve transition (none when it is already
    /// past it: nothing to do).
    async fn close(&self, cx: &Context, key: &str) -> Result<(), Failure> {
        let req = self.req(
            reqwest::Method::GET,
            &format!("/rest/api/3/issue/{key}/transitions"),
        );
        let (_, answer) = http::send_ok(&cx.pace, "Jira transitions", req).await?;
        let v: Value = serde_json::from_str(&answer)
            .map_err(|e| Failure::retry(format!("Jira transitions: {e}")))?;
        let id = v
            .get("transitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .map(|n| n.eq_ignore_ascii_case(&self.resolve_transition))
                    .unwrap_or(false)
                    || t.pointer("/to/name")
                        .and_then(Value::as_str)
                        .map(|n| n.eq_ignore_ascii_case(&self.resolve_transition))
                        .unwrap_or(false)
            })
            .and_then(|t| t.get("id").and_then(Value::as_str))
            .map(str::to_owned);
        let Some(id) = id else {
            tracing::info!(
                "Jira issue {key}: no `{}` transition from where it is; left as it is",
                self.resolve_transition
            );
            return Ok(());
        };
        let req = self
            .req(
                reqwest::Method::POST,
                &format!("/rest/api/3/issue/{key}/transitions"),
            )
            .json(&json!({"transition": {"id": id}}));
        http::send_ok(&cx.pace, "Jira transition", req)
            .await
            .map(|_| ())
    }
}

/// The label that names an incident's issue.
fn label(incident: &str) -> String {
    format!("vigil-{incident}")
}
