//! `type = "webhook"`: each change as a JSON POST, signed.
//!
//! The body is the change (`event`, `at`, `actor`, `note`, `incident`,
//! `finding`, `run`) with `delivery_id`. Headers: `X-Vigil-Delivery` (the same
//! on every try: receivers drop what they have seen), `X-Vigil-Event`,
//! `X-Vigil-Timestamp` (Unix seconds) and `X-Vigil-Signature: v1=<hex>`, the
//! HMAC-SHA256 under the shared secret of `<timestamp>.<body>`.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use vigil_store::outbox::EventKind;

use super::http::{self, Secret};
use super::{BoxFuture, Build, Context, Delivery, Destination, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: Secret,
    secret: Secret,
}

pub struct Webhook {
    url: Secret,
    secret: Secret,
    client: reqwest::Client,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    reqwest::Url::parse(c.url.expose())
        .map_err(|e| PipelineError::Config(format!("output `{}`: url: {e}", b.name)))?;
    if c.secret.expose().len() < 16 {
        return Err(PipelineError::Config(format!(
            "output `{}`: secret: use at least 16 characters",
            b.name
        )));
    }
    Ok(Box::new(Webhook {
        url: c.url,
        secret: c.secret,
        client: http::client(b.timeout),
    }))
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl Destination for Webhook {
    fn batch(&self) -> usize {
        10
    }

    fn default_events(&self) -> &'static [EventKind] {
        &EventKind::ALL
    }

    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>> {
        Box::pin(super::one_by_one(rows, move |d| self.one(d, cx)))
    }
}

impl Webhook {
    async fn one(&self, d: &Delivery, cx: &Context) -> Result<(), super::Failure> {
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(d.raw.get())
                .map_err(|e| super::Failure::permanent(e.to_string()))?;
        body.insert("delivery_id".into(), d.key.clone().into());
        let body =
            serde_json::to_vec(&body).map_err(|e| super::Failure::permanent(e.to_string()))?;
        let ts = crate::now().as_millis() / 1000;
        let req = self
            .client
            .post(self.url.expose())
            .header("content-type", "application/json")
            .header("x-vigil-delivery", &d.key)
            .header("x-vigil-event", &d.event.event)
            .header("x-vigil-timestamp", ts.to_string())
            .header(
                "x-vigil-signature",
                signature(self.secret.expose().as_bytes(), ts, &body),
            )
            .body(body);
        http::send_ok(&cx.pace, "webhook", req).await.map(|_| ())
    }
}
