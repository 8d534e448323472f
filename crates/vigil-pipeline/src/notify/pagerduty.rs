//! `type = "pagerduty"`: Events API v2, following the incident's lifecycle.
//!
//! An incident opened, escalated or seen again triggers (PagerDuty folds every
//! trigger of one `dedup_key`, the Vigil incident id, into one alert);
//! acknowledged or remediating acknowledges; resolved or marked a false
//! positive resolves. Severity: CRITICAL → critical, HIGH → error, MEDIUM →
//! warning, else info.

use serde::Deserialize;
use serde_json::{json, Value};
use vigil_store::outbox::EventKind;

use super::http::{self, Secret};
use super::render::{self, cut};
use super::{BoxFuture, Build, Context, Delivery, Destination, Failure, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The integration's routing key.
    routing_key: Secret,
    #[serde(default = "default_url")]
    events_url: String,
}

fn default_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

pub struct PagerDuty {
    routing_key: Secret,
    url: String,
    client: reqwest::Client,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    if c.routing_key.expose().len() != 32 {
        return Err(PipelineError::Config(format!(
            "output `{}`: routing_key: an Events API v2 integration key is 32 characters",
            b.name
        )));
    }
    Ok(Box::new(PagerDuty {
        routing_key: c.routing_key,
        url: c.events_url,
        client: http::client(b.timeout),
    }))
}

const EVENTS: &[EventKind] = &[
    EventKind::IncidentOpened,
    EventKind::IncidentEscalated,
    EventKind::FindingOpened,
    EventKind::IncidentAcknowledged,
    EventKind::IncidentRemediating,
    EventKind::IncidentResolved,
    EventKind::IncidentFalsePositive,
];

fn severity(s: &str) -> &'static str {
    match s {
        "CRITICAL" => "critical",
        "HIGH" => "error",
        "MEDIUM" => "warning",
        _ => "info",
    }
}

impl Destination for PagerDuty {
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

impl PagerDuty {
    /// The Events v2 body for a delivery, or None when the change means
    /// nothing to a pager.
    pub(crate) fn body(&self, d: &Delivery, cx: &Context) -> Option<Value> {
        let e = &d.event;
        let i = e.incident.as_ref()?;
        let action = match e.kind()? {
            EventKind::IncidentAcknowledged | EventKind::IncidentRemediating => "acknowledge",
            EventKind::IncidentResolved | EventKind::IncidentFalsePositive => "resolve",
            k if k.is_finding() => "trigger",
            _ => return None,
        };
        let mut body = json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action,
            "dedup_key": i.id,
            "client": "Vigil",
        });
        if let Some(link) = cx.incident_link(&i.id) {
            body["client_url"] = link.clone().into();
            body["links"] = json!([{"href": link, "text": "Incident in Vigil"}]);
        }
        if action == "trigger" {
            let mut details = json!({
                "incident_id": i.id, "status": i.status, "category": i.category.as_str(),
                "findings": i.finding_count, "change": render::change_line(e), "delivery_id": d.key,
            });
            if let Some(f) = &e.finding {
                details["finding"] = json!({
                    "finding_id": f.detail.finding_id, "title": f.detail.title,
                    "rule": f.detail.rule.id, "count": f.detail.count,
                    "evidence": render::evidence(f).into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>(),
                });
            }
            body["payload"] = json!({
                "summary": cut(&render::summary(e), 1024),
                "source": i.account.clone().unwrap_or_else(|| "vigil".into()),
                "severity": severity(i.severity.as_str()),
                "timestamp": e.at.to_string(),
                "component": e.finding.as_ref().and_then(|f| f.detail.resource_type.clone()),
                "group": i.account,
                "class": i.category.as_str(),
                "custom_details": details,
            });
        }
        Some(body)
    }

    async fn one(&self, d: &Delivery, cx: &Context) -> Result<(), Failure> {
        let Some(body) = self.body(d, cx) else {
            return Ok(());
        };
        let req = self.client.post(&self.url).json(&body);
        let (status, headers, text) = http::send(&cx.pace, "PagerDuty", req).await?;
        if status.is_success() {
            return Ok(());
        }
        let mut f = http::refused(status, &headers, &text);
        f.message = format!("PagerDuty: {}", f.message);
        Err(f)
    }
}
