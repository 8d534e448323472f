//! `type = "splunk"`: the HTTP Event Collector. Up to `batch` changes a
//! request, each one HEC event (`time`, `host`, `source`, `sourcetype`,
//! `index`, the change as `event`, and the delivery id and event name as
//! indexed `fields`), with `Authorization: Splunk <token>`. With `ack = true`
//! the request names a channel (`X-Splunk-Request-Channel`) and a batch is
//! done only when the indexer acknowledges its `ackId`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use vigil_store::outbox::EventKind;

use super::http::{self, Secret};
use super::{BoxFuture, Build, Context, Delivery, Destination, Failure, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `https://splunk.example.com:8088`
    url: String,
    token: Secret,
    #[serde(default = "default_sourcetype")]
    sourcetype: String,
    #[serde(default)]
    index: Option<String>,
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_batch")]
    batch: usize,
    /// Wait for indexer acknowledgement.
    #[serde(default)]
    ack: bool,
    /// The channel (a GUID) acknowledgements are asked on; a new one per
    /// start when unset.
    #[serde(default)]
    channel: Option<String>,
    #[serde(default = "default_ack_timeout")]
    ack_timeout: vigil_model::duration::Span,
}

fn default_sourcetype() -> String {
    "vigil:finding".into()
}
fn default_source() -> String {
    "vigil".into()
}
fn default_batch() -> usize {
    100
}
fn default_ack_timeout() -> vigil_model::duration::Span {
    vigil_model::duration::Span::from_secs(30)
}

pub struct Splunk {
    url: String,
    token: Secret,
    sourcetype: String,
    index: Option<String>,
    source: String,
    host: String,
    batch: usize,
    ack: Option<(String, Duration)>,
    client: reqwest::Client,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    reqwest::Url::parse(&c.url)
        .map_err(|e| PipelineError::Config(format!("output `{}`: url: {e}", b.name)))?;
    if c.batch == 0 || c.batch > 1000 {
        return Err(PipelineError::Config(format!(
            "output `{}`: batch: 1 to 1000 events",
            b.name
        )));
    }
    let ack = c.ack.then(|| {
        let channel = c.channel.unwrap_or_else(|| {
            let r = fastrand::u128(..);
            let h = format!("{r:032x}");
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        });
        (channel, c.ack_timeout.duration())
    });
    Ok(Box::new(Splunk {
        url: c.url.trim_end_matches('/').to_owned(),
        token: c.token,
        sourcetype: c.sourcetype,
        index: c.index,
        source: c.source,
        host: hostname(),
        batch: c.batch,
        ack,
        client: http::client(b.timeout),
    }))
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "vigil".into())
}

const EVENTS: &[EventKind] = &EventKind::ALL;

impl Destination for Splunk {
    fn batch(&self) -> usize {
        self.batch
    }

    fn default_events(&self) -> &'static [EventKind] {
        EVENTS
    }

    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>> {
        Box::pin(async move {
            match self.send(rows, cx).await {
                Ok(()) => rows.iter().map(|_| Result1::Ok).collect(),
                Err(f) => rows.iter().map(|_| Result1::Failed(f.clone())).collect(),
            }
        })
    }
}

impl Splunk {
    /// The HEC event of a delivery.
    fn event(&self, d: &Delivery) -> Value {
        let time = d
            .event
            .finding
            .as_ref()
            .map(|f| f.detail.last_seen)
            .unwrap_or(d.event.at)
            .as_millis() as f64
            / 1000.0;
        let sourcetype = if d.event.finding.is_some() {
            self.sourcetype.clone()
        } else {
            format!(
                "{}:{}",
                self.sourcetype.split(':').next().unwrap_or("vigil"),
                d.event.event.split('.').next().unwrap_or("event")
            )
        };
        let body: Value = serde_json::from_str(d.raw.get()).unwrap_or(Value::Null);
        let mut e = json!({
            "time": time,
            "host": self.host,
            "source": self.source,
            "sourcetype": sourcetype,
            "event": body,
            "fields": {"vigil_delivery": d.key, "vigil_event": d.event.event},
        });
        if let Some(i) = &self.index {
            e["index"] = i.clone().into();
        }
        e
    }

    async fn send(&self, rows: &[Delivery], cx: &Context) -> Result<(), Failure> {
        let mut body = Vec::new();
        for d in rows {
            serde_json::to_writer(&mut body, &self.event(d))
                .map_err(|e| Failure::permanent(e.to_string()))?;
            body.push(b'\n');
        }
        let mut req = self
            .client
            .post(format!("{}/services/collector/event", self.url))
            .header("authorization", format!("Splunk {}", self.token.expose()))
            .header("content-type", "application/json")
            .body(body);
        if let Some((channel, _)) = &self.ack {
            req = req.header("x-splunk-request-channel", channel);
        }
        let (status, headers, text) = http::send(&cx.pace, "Splunk HEC", req).await?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            // HEC's own code: 9 (server busy) is worth another try.
            let code = answer.get("code").and_then(Value::as_i64);
            let mut f = http::refused(status, &headers, &text);
            if code == Some(9) {
                f.retryable = true;
            }
            f.message = format!("Splunk HEC: {}", f.message);
            return Err(f);
        }
        let Some((channel, timeout)) = &self.ack else {
            return Ok(());
        };
        let ack_id = answer
            .get("ackId")
            .and_then(Value::as_i64)
            .ok_or_else(|| Failure::permanent("Splunk HEC: acknowledgement is on but the answer has no ackId (is it enabled on the token?)"))?;
        let until = std::time::Instant::now() + *timeout;
        let mut wait = Duration::from_millis(200);
        while std::time::Instant::now() < until {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            let req = self
                .client
                .post(format!("{}/services/collector/ack", self.url))
                .header("authorization", format!("Splunk {}", self.token.expose()))
                .header("x-splunk-request-channel", channel)
                .query(&[("channel", channel.as_str())])
                .json(&json!({"acks": [ack_id]}));
            let (_, answer) = http::send_ok(&cx.pace, "Splunk HEC ack", req).await?;
            let v: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
            if v.pointer(&format!("/acks/{ack_id}"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                return Ok(());
            }
        }
        Err(Failure::retry(format!(
            "Splunk HEC: ackId {ack_id} not acknowledged within {}s",
            timeout.as_secs()
        )))
    }
}
