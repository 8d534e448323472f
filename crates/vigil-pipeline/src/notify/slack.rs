//! `type = "slack"`: Block Kit messages.
//!
//! With a bot token (`chat:write`), one message per incident, posted with
//! `chat.postMessage` and edited with `chat.update` as the incident changes
//! (its `ts` is kept in the outbox's references); lifecycle changes are also
//! replied in its thread. A playbook step waiting for approval gets a message
//! of its own with Approve and Reject buttons (see `vigil_server::slack` for
//! the other half), edited to show who decided. With an incoming webhook
//! instead, each change is one message (no edits, no buttons).

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
    /// A bot token (`xoxb-…`).
    #[serde(default)]
    token: Option<Secret>,
    /// The channel id (`C0123…`) the bot posts in.
    #[serde(default)]
    channel: Option<String>,
    /// An incoming webhook URL, instead of a token and channel.
    #[serde(default)]
    webhook_url: Option<Secret>,
    /// Slack's Web API (tests point it elsewhere).
    #[serde(default = "default_api")]
    api_url: String,
}

fn default_api() -> String {
    "https://slack.com/api".into()
}

enum Via {
    Bot {
        token: Secret,
        channel: String,
        api: String,
    },
    Webhook(Secret),
}

pub struct Slack {
    via: Via,
    client: reqwest::Client,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    let bad = |m: &str| PipelineError::Config(format!("output `{}`: {m}", b.name));
    let via = match (c.token, c.channel, c.webhook_url) {
        (Some(token), Some(channel), None) => Via::Bot {
            token,
            channel,
            api: c.api_url.trim_end_matches('/').to_owned(),
        },
        (None, None, Some(url)) => {
            reqwest::Url::parse(url.expose()).map_err(|e| bad(&format!("webhook_url: {e}")))?;
            Via::Webhook(url)
        }
        (Some(_), None, _) => return Err(bad("a bot token needs the channel to post in")),
        _ => return Err(bad("give either token and channel, or webhook_url")),
    };
    Ok(Box::new(Slack {
        via,
        client: http::client(b.timeout),
    }))
}

const EVENTS: &[EventKind] = &[
    EventKind::IncidentOpened,
    EventKind::IncidentEscalated,
    EventKind::FindingOpened,
    EventKind::FindingUpdated,
    EventKind::IncidentAcknowledged,
    EventKind::IncidentRemediating,
    EventKind::IncidentResolved,
    EventKind::IncidentFalsePositive,
    EventKind::RunAwaitingApproval,
    EventKind::RunApproval,
    EventKind::RunInProgress,
    EventKind::RunSucceeded,
    EventKind::RunFailed,
    EventKind::RunRejected,
    EventKind::RunNeedsAttention,
];

impl Destination for Slack {
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

fn severity_mark(s: &str) -> &'static str {
    match s {
        "CRITICAL" => ":red_circle:",
        "HIGH" => ":large_orange_circle:",
        "MEDIUM" => ":large_yellow_circle:",
        _ => ":white_circle:",
    }
}

/// The incident's message.
fn incident_blocks(e: &Event, cx: &Context) -> Vec<Value> {
    let mut blocks = Vec::new();
    let Some(i) = &e.incident else {
        return blocks;
    };
    blocks.push(json!({"type": "header", "text": {"type": "plain_text",
        "text": cut(&format!("{} {}", i.severity, i.title), 150)}}));
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Severity*\n{} {}", severity_mark(i.severity.as_str()), i.severity)}),
        json!({"type": "mrkdwn", "text": format!("*Status*\n{}", i.status)}),
        json!({"type": "mrkdwn", "text": format!("*Category*\n{}", i.category.as_str())}),
        json!({"type": "mrkdwn", "text": format!("*Findings*\n{}", i.finding_count)}),
    ];
    if let Some(a) = &i.account {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Account*\n{a}")}));
    }
    if let Some(s) = &i.subject {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Subject*\n`{}`", cut(s, 200))}));
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    if let Some(f) = &e.finding {
        let d = &f.detail;
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": cut(&format!("*{}* ({}, seen {} time(s))\n{}", d.title, d.finding_id, d.count, d.description), 3000)}}));
        let ev: Vec<String> = render::evidence(f)
            .into_iter()
            .take(8)
            .map(|(k, v)| format!("*{k}*: `{}`", cut(&v, 120)))
            .collect();
        if !ev.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&ev.join("\n"), 3000)}}));
        }
    }
    let mut context = vec![
        json!({"type": "mrkdwn", "text": format!("Incident `{}` · {}", i.id, render::change_line(e))}),
    ];
    if let Some(link) = cx.incident_link(&i.id) {
        context.push(json!({"type": "mrkdwn", "text": format!("<{link}|Open in Vigil>")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    blocks
}

/// A run's message: what it waits for, with Approve and Reject buttons while
/// it waits, else who decided and how it went.
pub fn approval_blocks(e: &Event) -> Vec<Value> {
    let Some(run) = &e.run else {
        return Vec::new();
    };
    let id = render::run_field(run, "id");
    let playbook = render::run_field(run, "playbook");
    let status = render::run_field(run, "status");
    let mut blocks = Vec::new();
    let target = match (&e.incident, run.get("account").and_then(Value::as_str)) {
        (Some(i), _) => format!(" for incident *{}* (`{}`)", cut(&i.title, 200), i.id),
        (None, Some(a)) => format!(" in account {a}"),
        _ => String::new(),
    };
    let waiting = render::waiting_step(run);
    let head = match (&waiting, status) {
        (Some((step, action, _)), "AWAITING_APPROVAL") => {
            format!(":raised_hand: Playbook *{playbook}*{target} waits for approval of step *{step}* (`{action}`).")
        }
        _ => format!("Playbook *{playbook}*{target}: run `{id}` is *{status}*."),
    };
    blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&head, 3000)}}));
    let decided = render::change_line(e);
    if status == "AWAITING_APPROVAL" || e.event == "run.approval" {
        if e.event == "run.approval" {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&decided, 3000)}]}));
        }
        blocks.push(json!({"type": "actions", "block_id": format!("vigil-run:{id}"), "elements": [
            {"type": "button", "action_id": "vigil_approve", "style": "primary", "value": id,
             "text": {"type": "plain_text", "text": "Approve"},
             "confirm": {"title": {"type": "plain_text", "text": "Approve this step?"},
                         "text": {"type": "mrkdwn", "text": "Vigil will make the change in AWS."},
                         "confirm": {"type": "plain_text", "text": "Approve"},
                         "deny": {"type": "plain_text", "text": "Cancel"}}},
            {"type": "button", "action_id": "vigil_reject", "style": "danger", "value": id,
             "text": {"type": "plain_text", "text": "Reject"}}
        ]}));
    } else {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&decided, 3000)}]}));
    }
    blocks
}

impl Slack {
    async fn one(&self, d: &Delivery, cx: &Context) -> Result<(), Failure> {
        let e = &d.event;
        let (subject, blocks) = if e.run.is_some() {
            let id = e
                .run
                .as_ref()
                .map(|r| render::run_field(r, "id"))
                .unwrap_or("");
            (format!("run:{id}"), approval_blocks(e))
        } else if let Some(i) = &e.incident {
            (format!("incident:{}", i.id), incident_blocks(e, cx))
        } else {
            return Ok(());
        };
        let text = cut(
            &format!("{} — {}", render::summary(e), render::change_line(e)),
            3000,
        );
        let metadata = json!({"event_type": "vigil_delivery",
            "event_payload": {"delivery_id": d.key, "event": e.event}});
        match &self.via {
            Via::Webhook(url) => {
                let body = json!({"text": text, "blocks": blocks});
                let req = self.client.post(url.expose()).json(&body);
                http::send_ok(&cx.pace, "Slack webhook", req)
                    .await
                    .map(|_| ())
            }
            Via::Bot {
                token,
                channel,
                api,
            } => {
                let existing = cx.reference(&subject).await?;
                let lifecycle =
                    !e.kind().map(EventKind::is_finding).unwrap_or(false) && e.run.is_none();
                match existing {
                    Some(r) => {
                        let (ch, ts) = r.split_once(' ').unwrap_or((channel.as_str(), r.as_str()));
                        let body = json!({"channel": ch, "ts": ts, "text": text, "blocks": blocks, "metadata": metadata});
                        self.call(cx, api, token, "chat.update", &body).await?;
                        if lifecycle {
                            let reply = json!({"channel": ch, "thread_ts": ts,
                                "text": cut(&render::change_line(e), 3000), "metadata": metadata});
                            self.call(cx, api, token, "chat.postMessage", &reply)
                                .await?;
                        }
                        Ok(())
                    }
                    None if e.run.is_some()
                        && !matches!(
                            e.kind(),
                            Some(
                                EventKind::RunAwaitingApproval
                                    | EventKind::RunSucceeded
                                    | EventKind::RunFailed
                                    | EventKind::RunNeedsAttention
                            )
                        ) =>
                    {
                        // A run resumed or rejected that never asked Slack:
                        // nothing to edit, and not worth a message.
                        Ok(())
                    }
                    None => {
                        // A run that ended without a message of its own, or
                        // a lifecycle change of an incident never posted:
                        // post it now (its message carries its state).
                        let body = json!({"channel": channel, "text": text, "blocks": blocks,
                            "metadata": metadata, "unfurl_links": false});
                        let answer = self.call(cx, api, token, "chat.postMessage", &body).await?;
                        let ts = answer.get("ts").and_then(Value::as_str).ok_or_else(|| {
                            Failure::permanent("chat.postMessage answered ok without a ts")
                        })?;
                        let ch = answer
                            .get("channel")
                            .and_then(Value::as_str)
                            .unwrap_or(channel);
                        cx.set_reference(&subject, &format!("{ch} {ts}")).await
                    }
                }
            }
        }
    }

    /// Calls a Web API method; its answer when `ok`.
    async fn call(
        &self,
        cx: &Context,
        api: &str,
        token: &Secret,
        method: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        let req = self
            .client
            .post(format!("{api}/{method}"))
            .bearer_auth(token.expose())
            .header("content-type", "application/json; charset=utf-8")
            .json(body);
        let (_, text) = http::send_ok(&cx.pace, method, req).await?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::retry(format!("{method}: its answer is not JSON: {e}")))?;
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let error = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        let message = format!("{method}: {error}");
        Err(match error {
            "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout" => Failure::retry(message),
            _ => Failure::permanent(message),
        })
    }
}
