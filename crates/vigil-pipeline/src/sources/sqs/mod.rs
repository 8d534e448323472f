//! `type = "sqs"`: telemetry announced on an SQS queue. One queue may carry any
//! mix of what AWS puts there (see [`message`]): S3 event notifications, sent
//! directly, through SNS, or as EventBridge `Object Created` events, whose
//! objects are then streamed from S3 through the decoders; and EventBridge
//! events that are telemetry themselves (CloudTrail API calls, GuardDuty and
//! Security Hub findings), forwarded by a rule.
//!
//! ```toml
//! [[sources]]
//! type = "sqs"
//! queue_url = "https://sqs.us-east-1.amazonaws.com/111122223333/vigil-telemetry"
//! wait = "20s"               # long poll (at most 20s)
//! concurrency = 10           # messages in flight in this process
//! visibility_timeout = "5m"  # asked at each receive, extended while reading
//! retry_delay = "10s"        # a failed message comes back after this, doubling
//! ```
//!
//! The queue is at-least-once, and several `vigil serve` processes may share it:
//! - a message is deleted only after everything it announced is committed to
//!   the store (its findings, the object's checkpoint, its records' identities);
//! - an object whose checkpoint (`s3://bucket/key` at its version id or ETag)
//!   is committed already is not read again; a record whose identity is
//!   committed (by any process on the store) counts once;
//! - a message that cannot be read, or whose object fails (S3 refuses it, the
//!   download breaks, nothing in it decodes), is left on the queue and comes
//!   back after `retry_delay`, doubled at each receive; after the queue's
//!   `maxReceiveCount` SQS moves it to the dead-letter queue. Each failure is
//!   logged with the message, the object and the error, and counted in
//!   `GET /api/v1/sources`. Neighbouring messages go on meanwhile.

pub mod message;
#[cfg(feature = "aws")]
pub(crate) mod worker;

use serde::Deserialize;
use vigil_model::Span;

use crate::component::{config_of, BuildContext, Source};
use crate::PipelineError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub queue_url: String,
    /// The queue's region; else the one its URL names, else `[aws]
    /// home_region`, else us-east-1.
    pub region: Option<String>,
    #[serde(default = "default_wait")]
    pub wait: Span,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_visibility")]
    pub visibility_timeout: Span,
    #[serde(default = "default_retry")]
    pub retry_delay: Span,
}

fn default_wait() -> Span {
    Span::from_secs(20)
}
fn default_concurrency() -> usize {
    10
}
fn default_visibility() -> Span {
    Span::from_secs(300)
}
fn default_retry() -> Span {
    Span::from_secs(10)
}

impl Config {
    fn check(&self, name: &str) -> Result<(), PipelineError> {
        let bad = |why: &str| Err(PipelineError::Config(format!("source `{name}`: {why}")));
        if !self.queue_url.starts_with("https://") && !self.queue_url.starts_with("http://") {
            return bad("queue_url must be the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>)");
        }
        if self.wait.as_millis() > 20_000 {
            return bad("wait is at most 20s (SQS's longest poll)");
        }
        if !(1..=1000).contains(&self.concurrency) {
            return bad("concurrency is from 1 to 1000");
        }
        let vis = self.visibility_timeout.as_millis();
        if !(1000..=12 * 3_600_000).contains(&vis) {
            return bad("visibility_timeout is from 1s to 12h (SQS's limits)");
        }
        Ok(())
    }

    /// The region the queue is in.
    pub fn region_of(&self, home: Option<&str>) -> String {
        if let Some(r) = &self.region {
            return r.clone();
        }
        let host = self
            .queue_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        let mut parts = host.split('.');
        match (parts.next(), parts.next()) {
            (Some("sqs"), Some(r)) if r.contains('-') => r.to_owned(),
            _ => home.unwrap_or("us-east-1").to_owned(),
        }
    }
}

pub fn build(ctx: &BuildContext<'_>, table: toml::Table) -> Result<Box<dyn Source>, PipelineError> {
    let c: Config = config_of("source", &ctx.name, table)?;
    c.check(&ctx.name)?;
    #[cfg(feature = "aws")]
    {
        Ok(Box::new(worker::SqsSource::new(&ctx.name, c, ctx.aws.clone())))
    }
    #[cfg(not(feature = "aws"))]
    {
        Err(crate::service::without_aws("read an SQS queue"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(t: &str) -> Config {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn the_region_comes_from_the_url_unless_named() {
        let c = config(r#"queue_url = "https://sqs.eu-west-1.amazonaws.com/1/q""#);
        assert_eq!(c.region_of(Some("us-east-2")), "eu-west-1");
        let c = config(r#"queue_url = "http://127.0.0.1:5000/1/q""#);
        assert_eq!(c.region_of(Some("us-east-2")), "us-east-2");
        assert_eq!(c.region_of(None), "us-east-1");
        let c = config("queue_url = \"http://x/1/q\"\nregion = \"ap-south-1\"");
        assert_eq!(c.region_of(None), "ap-south-1");
    }

    #[test]
    fn limits_are_checked() {
        for (t, why) in [
            ("queue_url = \"q\"", "queue_url"),
            ("queue_url = \"https://q\"\nwait = \"21s\"", "wait"),
            ("queue_url = \"https://q\"\nconcurrency = 0", "concurrency"),
            ("queue_url = \"https://q\"\nvisibility_timeout = \"13h\"", "visibility_timeout"),
        ] {
            let e = config(t).check("s").unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("`s`"), "{e}");
        }
    }
}
