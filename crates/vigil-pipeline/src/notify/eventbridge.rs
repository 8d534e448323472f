//! `type = "eventbridge"`: `PutEvents` on a named bus.
//!
//! A finding goes as the seed's `Security Finding` event: `source` (default
//! `com.security.platform`), `detail-type` `Security Finding`, `time`,
//! `resources` and the finding's `detail`; EventBridge fills in `id`, `account`
//! and `region`. The detail also carries `event_id`, the delivery's key, the
//! same on every try, for consumers to drop repeats by. Incident and run
//! changes (when the table's `events` names them) go as `Vigil Incident` and
//! `Vigil Playbook Run` with the change as detail. Up to 10 entries and 256 KB
//! a call; an entry refused for throttling or an internal failure is tried
//! again, any other refusal is final.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use vigil_store::outbox::EventKind;

use super::{BoxFuture, Build, Context, Delivery, Destination, Failure, Result1};
use crate::component::config_of;
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_bus")]
    bus: String,
    #[serde(default = "default_source")]
    source: String,
    /// The bus's region, when not `[aws] home_region`.
    #[serde(default)]
    region: Option<String>,
}

fn default_bus() -> String {
    "default".into()
}
fn default_source() -> String {
    vigil_model::finding::FINDING_SOURCE.into()
}

/// PutEvents' limits.
const MAX_ENTRIES: usize = 10;
const MAX_BYTES: usize = 256 * 1024;

pub struct EventBridge {
    bus: String,
    source: String,
    settings: vigil_aws::AwsSettings,
    client: OnceCell<aws_sdk_eventbridge::Client>,
}

pub fn build(b: &Build<'_>, table: toml::Table) -> Result<Box<dyn Destination>, PipelineError> {
    let c: Config = config_of("output", b.name, table)?;
    if c.source.starts_with("aws.") {
        return Err(PipelineError::Config(format!(
            "output `{}`: source: `aws.` sources are AWS's own",
            b.name
        )));
    }
    let mut settings = b.aws.settings(None);
    if c.region.is_some() {
        settings.home_region = c.region;
    }
    Ok(Box::new(EventBridge {
        bus: c.bus,
        source: c.source,
        settings,
        client: OnceCell::new(),
    }))
}

const EVENTS: &[EventKind] = &[
    EventKind::FindingOpened,
    EventKind::FindingUpdated,
    EventKind::IncidentOpened,
    EventKind::IncidentEscalated,
];

/// Sorts an SDK error: the transport, timeouts and throttling are retried.
pub(super) fn sdk_failure<E>(
    op: &str,
    e: aws_sdk_eventbridge::error::SdkError<E, aws_sdk_eventbridge::config::http::HttpResponse>,
) -> Failure
where
    E: aws_sdk_eventbridge::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_eventbridge::error::SdkError;
    let retry = match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            code.contains("Throttl")
                || code.contains("TooManyRequests")
                || code.contains("Internal")
                || code.contains("ServiceUnavailable")
                || code == "LimitExceededException"
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let message = format!("{op}: {}", vigil_aws::error_text(&e));
    if retry {
        Failure::retry(message)
    } else {
        Failure::permanent(message)
    }
}

impl EventBridge {
    /// The entry of a delivery, and its size as PutEvents counts it.
    fn entry(&self, d: &Delivery) -> Result<(PutEventsRequestEntry, usize), Failure> {
        let e = &d.event;
        let (detail_type, mut detail, resources, time) = match &e.finding {
            Some(f) => (
                f.detail_type.clone(),
                serde_json::to_value(&f.detail).map_err(|e| Failure::permanent(e.to_string()))?,
                f.resources.clone(),
                f.time,
            ),
            None => {
                let kind = if e.run.is_some() {
                    "Vigil Playbook Run"
                } else {
                    "Vigil Incident"
                };
                let v: Value = serde_json::from_str(d.raw.get())
                    .map_err(|e| Failure::permanent(e.to_string()))?;
                (kind.to_owned(), v, Vec::new(), e.at)
            }
        };
        if let Value::Object(m) = &mut detail {
            m.insert("event_id".into(), d.key.clone().into());
        }
        let detail = detail.to_string();
        let size = self.source.len()
            + detail_type.len()
            + detail.len()
            + resources.iter().map(String::len).sum::<usize>()
            + 14;
        if size > MAX_BYTES {
            return Err(Failure::permanent(format!(
                "the event is {size} bytes; PutEvents takes at most {MAX_BYTES}"
            )));
        }
        let when = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(time.as_millis().max(0) as u64);
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail)
            .set_resources(Some(resources))
            .time(aws_sdk_eventbridge::primitives::DateTime::from(when))
            .build();
        Ok((entry, size))
    }

    async fn put(&self, cx: &Context, entries: Vec<PutEventsRequestEntry>) -> Vec<Result1> {
        let n = entries.len();
        let client = self
            .client
            .get_or_init(|| async {
                aws_sdk_eventbridge::Client::new(&vigil_aws::sdk_config(&self.settings).await)
            })
            .await;
        cx.pace.turn().await;
        match client.put_events().set_entries(Some(entries)).send().await {
            Err(e) => {
                let f = sdk_failure("events:PutEvents", e);
                (0..n).map(|_| Result1::Failed(f.clone())).collect()
            }
            Ok(out) => {
                let results = out.entries();
                (0..n)
                    .map(|i| match results.get(i) {
                        Some(r) if r.error_code().is_none() && r.event_id().is_some() => {
                            Result1::Ok
                        }
                        Some(r) => {
                            let code = r.error_code().unwrap_or("unknown");
                            let message = format!(
                                "events:PutEvents: {code}: {}",
                                r.error_message().unwrap_or("entry refused")
                            );
                            Result1::Failed(
                                if code.contains("Throttl") || code.contains("Internal") {
                                    Failure::retry(message)
                                } else {
                                    Failure::permanent(message)
                                },
                            )
                        }
                        None => Result1::Failed(Failure::retry(
                            "events:PutEvents: fewer results than entries",
                        )),
                    })
                    .collect()
            }
        }
    }
}

impl Destination for EventBridge {
    fn batch(&self) -> usize {
        MAX_ENTRIES
    }

    fn default_events(&self) -> &'static [EventKind] {
        EVENTS
    }

    fn deliver<'a>(&'a self, rows: &'a [Delivery], cx: &'a Context) -> BoxFuture<'a, Vec<Result1>> {
        Box::pin(async move {
            let mut out: Vec<Option<Result1>> = rows.iter().map(|_| None).collect();
            let mut chunk: Vec<(usize, PutEventsRequestEntry)> = Vec::new();
            let mut bytes = 0;
            let mut chunks = Vec::new();
            for (i, d) in rows.iter().enumerate() {
                match self.entry(d) {
                    Err(f) => out[i] = Some(Result1::Failed(f)),
                    Ok((entry, size)) => {
                        if chunk.len() == MAX_ENTRIES || bytes + size > MAX_BYTES {
                            chunks.push(std::mem::take(&mut chunk));
                            bytes = 0;
                        }
                        bytes += size;
                        chunk.push((i, entry));
                    }
                }
            }
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
            for c in chunks {
                let (idx, entries): (Vec<usize>, Vec<_>) = c.into_iter().unzip();
                for (i, r) in idx.into_iter().zip(self.put(cx, entries).await) {
                    out[i] = Some(r);
                }
            }
            out.into_iter()
                .map(|r| r.unwrap_or(Result1::Untried))
                .collect()
        })
    }
}
