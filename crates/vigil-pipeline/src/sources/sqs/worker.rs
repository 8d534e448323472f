//! The SQS source at work: a receive loop with up to `concurrency` messages in
//! flight, each read, delivered to the pipeline, and deleted once committed.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_s3::Client as S3;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client as Sqs;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::message::{classify, ObjectRef, Work};
use super::Config;
use crate::component::{Checkpoint, Delivery, Inlet, Receipt, Source, Telemetry};
use crate::service::AwsConfig;
use crate::PipelineError;

/// Chunks of an object read ahead of the decoder.
const READ_AHEAD: usize = 16;
/// How long a stop waits for messages in flight to be committed.
const DRAIN: Duration = Duration::from_secs(30);

pub struct SqsSource {
    name: String,
    config: Config,
    aws: AwsConfig,
    stats: Arc<Stats>,
}

/// Counters for `GET /api/v1/sources`.
#[derive(Default)]
pub struct Stats {
    name: String,
    queue: String,
    received: AtomicU64,
    deleted: AtomicU64,
    skipped: AtomicU64,
    objects: AtomicU64,
    objects_done_before: AtomicU64,
    bytes: AtomicU64,
    events: AtomicU64,
    duplicates: AtomicU64,
    record_errors: AtomicU64,
    unreadable: AtomicU64,
    failed: AtomicU64,
    receive_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    fn error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    }
}

impl vigil_server::SourceStatus for Stats {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "type": "sqs",
            "queue_url": self.queue,
            "messages_received": n(&self.received),
            "messages_deleted": n(&self.deleted),
            "messages_skipped": n(&self.skipped),
            "messages_unreadable": n(&self.unreadable),
            "messages_failed": n(&self.failed),
            "objects_read": n(&self.objects),
            "objects_done_before": n(&self.objects_done_before),
            "bytes_read": n(&self.bytes),
            "events": n(&self.events),
            "duplicates": n(&self.duplicates),
            "record_errors": n(&self.record_errors),
            "receive_errors": n(&self.receive_errors),
            "last_error": *self.last_error.lock().unwrap_or_else(PoisonError::into_inner),
        })
    }
}

impl SqsSource {
    pub fn new(name: &str, config: Config, aws: AwsConfig) -> SqsSource {
        let stats = Arc::new(Stats {
            name: name.to_owned(),
            queue: config.queue_url.clone(),
            ..Stats::default()
        });
        SqsSource {
            name: name.to_owned(),
            config,
            aws,
            stats,
        }
    }
}

impl Source for SqsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&self) -> Option<Arc<dyn vigil_server::SourceStatus>> {
        Some(self.stats.clone())
    }

    fn start(
        self: Box<Self>,
        inlet: Inlet,
    ) -> Result<Option<std::thread::JoinHandle<()>>, PipelineError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name(format!("vigil-sqs-{}", self.name))
            .build()
            .map_err(|e| PipelineError::Io("starting the SQS source's runtime".into(), e))?;
        let t = std::thread::Builder::new()
            .name(format!("vigil-src-{}", self.name))
            .spawn(move || {
                rt.block_on(self.run(inlet));
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| PipelineError::Io("starting the SQS source".into(), e))?;
        Ok(Some(t))
    }
}

/// What every message's task shares: the reader, and the queue.
struct Shared {
    reader: Reader,
    sqs: Sqs,
    queue: String,
    visibility: i32,
    retry_delay: i32,
}

/// Reads what messages announce into the pipeline: the SQS source's and
/// Lambda mode's common part.
pub struct Reader {
    pub(crate) s3: S3,
    pub(crate) inlet: Inlet,
    pub(crate) source: Arc<str>,
    pub(crate) stats: Arc<Stats>,
    /// Names events carried in messages (`sqs:<queue>/<message id>`).
    pub(crate) label: String,
}

/// Why a message is not done with.
pub struct Failure {
    /// The message itself could not be read (else: what it announced failed).
    pub unreadable: bool,
    pub why: String,
}

/// An S3 client for `settings`; against an endpoint of one's own (an
/// emulator), buckets go in the path.
pub(crate) fn s3_client(base: &vigil_aws::SdkConfig, own_endpoint: bool) -> S3 {
    S3::from_conf(
        aws_sdk_s3::config::Builder::from(base)
            .force_path_style(own_endpoint)
            .build(),
    )
}

impl SqsSource {
    async fn run(self, inlet: Inlet) {
        let region = self.config.region_of(self.aws.home_region.as_deref());
        let settings = vigil_aws::AwsSettings {
            endpoint_url: self.aws.endpoint_url.clone(),
            home_region: Some(region),
            ..Default::default()
        };
        let base = vigil_aws::sdk_config(&settings).await;
        let secs = |s: vigil_model::Span| (s.as_millis() / 1000).clamp(0, i32::MAX as i64) as i32;
        let shared = Arc::new(Shared {
            reader: Reader {
                s3: s3_client(&base, settings.endpoint_url.is_some()),
                inlet,
                source: Arc::from(self.name.as_str()),
                stats: Arc::clone(&self.stats),
                label: format!("sqs:{}", self.config.queue_url),
            },
            sqs: Sqs::new(&base),
            queue: self.config.queue_url.clone(),
            visibility: secs(self.config.visibility_timeout).max(1),
            retry_delay: secs(self.config.retry_delay),
        });
        tracing::info!(source = %self.name, queue = %shared.queue, "reading the queue");
        let wait = secs(self.config.wait);
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let mut failures = 0u32;
        while !shared.reader.inlet.stopping() {
            // Only as many as there are free slots, at most SQS's 10.
            let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let want = (slots.available_permits() + 1).min(10) as i32;
            let receive = shared
                .sqs
                .receive_message()
                .queue_url(&shared.queue)
                .max_number_of_messages(want)
                .wait_time_seconds(wait)
                .visibility_timeout(shared.visibility)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send();
            let out = tokio::select! {
                out = receive => out,
                () = stopped(&shared.reader.inlet) => break,
            };
            let messages = match out {
                Ok(out) => {
                    failures = 0;
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    failures += 1;
                    add(&shared.reader.stats.receive_errors, 1);
                    let e = format!("sqs:ReceiveMessage: {}", vigil_aws::error_text(&e));
                    tracing::warn!(source = %shared.reader.source, error = %e, "cannot receive; trying again");
                    shared.reader.stats.error(e);
                    let pause = Duration::from_millis(200 << failures.min(7));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {},
                        () = stopped(&shared.reader.inlet) => break,
                    }
                    continue;
                }
            };
            let mut first = Some(first);
            for m in messages {
                let slot = match first.take() {
                    Some(s) => s,
                    None => match Arc::clone(&slots).acquire_owned().await {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                };
                add(&shared.reader.stats.received, 1);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    shared.handle(m).await;
                    drop(slot);
                });
            }
        }
        // Let what is in flight be committed (and deleted) before the runtime
        // goes; what is not done by then comes back after its visibility.
        let all = self.config.concurrency as u32;
        if tokio::time::timeout(DRAIN, slots.acquire_many(all)).await.is_err() {
            tracing::warn!(source = %self.name, "messages still in flight at stop; the queue will deliver them again");
        }
    }
}

/// Resolves once the service is stopping.
async fn stopped(inlet: &Inlet) {
    while !inlet.stopping() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How an object or an event fared.
enum Outcome {
    Done,
    Failed(String),
}

impl Shared {
    async fn handle(&self, m: Message) {
        let id = m.message_id.clone().unwrap_or_default();
        let Some(receipt) = m.receipt_handle.clone() else {
            return;
        };
        let received: u32 = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let body = m.body.unwrap_or_default();
        let keep_alive = self.keep_visible(receipt.clone());
        let outcome = self.reader.process(&body, &id).await;
        keep_alive.abort();
        match outcome {
            Ok(()) => self.delete(&receipt, &id).await,
            Err(f) => {
                self.reader.failed(&f, &id, received);
                self.retry_later(&receipt, received).await;
            }
        }
    }

}

impl Shared {
    async fn delete(&self, receipt: &str, id: &str) {
        match self
            .sqs
            .delete_message()
            .queue_url(&self.queue)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => add(&self.reader.stats.deleted, 1),
            // Committed, so a redelivery is absorbed; just noisier.
            Err(e) => tracing::warn!(source = %self.reader.source, message = %id,
                error = %vigil_aws::error_text(&e), "committed, but not deleted; it will come again and be skipped"),
        }
    }

    /// Makes a failed message visible again after the retry delay, doubled
    /// with each receive (at most the visibility timeout).
    async fn retry_later(&self, receipt: &str, received: u32) {
        let delay = (self.retry_delay as i64)
            .saturating_mul(1i64 << received.saturating_sub(1).min(20))
            .min(self.visibility as i64) as i32;
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue)
            .receipt_handle(receipt)
            .visibility_timeout(delay)
            .send()
            .await
        {
            tracing::debug!(error = %vigil_aws::error_text(&e), "visibility not changed; the message comes back after its timeout");
        }
    }

    /// Extends the message's visibility every half timeout while it is worked on.
    fn keep_visible(&self, receipt: String) -> tokio::task::JoinHandle<()> {
        let (sqs, queue, vis) = (self.sqs.clone(), self.queue.clone(), self.visibility);
        tokio::spawn(async move {
            let every = Duration::from_secs((vis as u64 / 2).max(1));
            loop {
                tokio::time::sleep(every).await;
                let r = sqs
                    .change_message_visibility()
                    .queue_url(&queue)
                    .receipt_handle(&receipt)
                    .visibility_timeout(vis)
                    .send()
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %vigil_aws::error_text(&e), "visibility not extended");
                }
            }
        })
    }
}

impl Reader {
    /// Reads what a message announces: `Ok` once all of it is committed (or
    /// there was nothing to read).
    pub async fn process(&self, body: &str, id: &str) -> Result<(), Failure> {
        let work = classify(body).map_err(|e| Failure {
            unreadable: true,
            why: format!("message {id}: {e}"),
        })?;
        let mut failed = None;
        match work {
            Work::Skip(why) => {
                tracing::debug!(source = %self.source, message = %id, "skipped: {why}");
                add(&self.stats.skipped, 1);
            }
            Work::Event(text) => {
                let name = format!("{}/{id}", self.label);
                let item = Telemetry::Bytes {
                    name: name.clone(),
                    body: text.into_bytes(),
                };
                if let Outcome::Failed(e) = self.deliver(item, None, None, &name).await {
                    failed = Some(e);
                }
            }
            Work::Objects(objects) => {
                for o in objects {
                    if let Outcome::Failed(e) = self.object(&o).await {
                        failed = Some(e);
                    }
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(why) => Err(Failure {
                unreadable: false,
                why,
            }),
        }
    }

    /// Logs and counts a message that is not done with.
    pub fn failed(&self, f: &Failure, id: &str, received: u32) {
        if f.unreadable {
            add(&self.stats.unreadable, 1);
            tracing::error!(source = %self.source, message = %id, received, error = %f.why,
                "message unreadable; left for the dead-letter queue");
        } else {
            add(&self.stats.failed, 1);
            tracing::error!(source = %self.source, message = %id, received, error = %f.why,
                "message failed; it comes back, and after the queue's receive count goes to its dead-letter queue");
        }
        self.stats.error(f.why.clone());
    }

    /// Reads one object (unless done before) through the pipeline.
    async fn object(&self, o: &ObjectRef) -> Outcome {
        let (key, position) = o.checkpoint();
        if let Some(why) = o.holds_no_telemetry() {
            tracing::debug!(source = %self.source, object = %key, "skipped: {why}");
            return Outcome::Done;
        }
        let inlet = self.inlet.clone();
        let k = key.clone();
        let done = tokio::task::spawn_blocking(move || inlet.checkpoint(&k)).await;
        if let Ok(Ok(Some(p))) = &done {
            if *p == position {
                add(&self.stats.objects_done_before, 1);
                return Outcome::Done;
            }
        }
        let got = self
            .s3
            .get_object()
            .bucket(&o.bucket)
            .key(&o.key)
            .set_version_id(o.version_id.clone())
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) => {
                return Outcome::Failed(format!(
                    "{key}: s3:GetObject: {}",
                    vigil_aws::error_text(&e)
                ))
            }
        };
        add(&self.stats.objects, 1);
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let broke = Arc::new(Mutex::new(None));
        let stats = Arc::clone(&self.stats);
        let mut body = out.body;
        let pump = tokio::spawn(async move {
            loop {
                let chunk = match body.next().await {
                    Some(Ok(b)) => {
                        add(&stats.bytes, b.len() as u64);
                        Chunk::Data(b)
                    }
                    Some(Err(e)) => Chunk::Broke(format!("the download broke: {e}")),
                    None => Chunk::End,
                };
                let last = !matches!(chunk, Chunk::Data(_));
                if tx.send(chunk).await.is_err() || last {
                    return;
                }
            }
        });
        let reader = ObjectReader {
            rx,
            current: bytes::Bytes::new(),
            ended: false,
            broke: Arc::clone(&broke),
        };
        let item = Telemetry::Reader {
            // The key, with the bucket: the decoders take account and region
            // from an `AWSLogs/…` key.
            name: key.clone(),
            reader: Box::new(reader),
        };
        let checkpoint = Checkpoint {
            key: key.clone(),
            position,
        };
        let outcome = self
            .deliver(item, Some(checkpoint), Some(broke), &key)
            .await;
        pump.abort();
        outcome
    }

    /// Hands `item` to the pipeline and waits until it is committed.
    async fn deliver(
        &self,
        item: Telemetry,
        checkpoint: Option<Checkpoint>,
        broke: Option<Arc<Mutex<Option<String>>>>,
        what: &str,
    ) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let judged = broke.clone();
        let delivery = Delivery {
            source: Arc::clone(&self.source),
            items: vec![item],
            checkpoint,
            // The object is done (its checkpoint committed) only if read whole.
            complete: Some(Box::new(move |r| unfinished(r, judged.as_deref()).is_none())),
            ack: Some(Box::new(move |r| {
                tx.send(r).ok();
            })),
        };
        let inlet = self.inlet.clone();
        match tokio::task::spawn_blocking(move || inlet.deliver(delivery)).await {
            Ok(Ok(())) => {}
            _ => return Outcome::Failed(format!("{what}: the pipeline has stopped")),
        }
        let result = match rx.await {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(format!("{what}: the pipeline has stopped")),
        };
        self.judge(what, result, broke.as_deref())
    }

    /// Whether a committed delivery is done with (see [`unfinished`]).
    fn judge(
        &self,
        what: &str,
        r: Result<Receipt, PipelineError>,
        broke: Option<&Mutex<Option<String>>>,
    ) -> Outcome {
        let r = match r {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("{what}: not committed: {e}")),
        };
        add(&self.stats.events, r.events);
        add(&self.stats.duplicates, r.duplicates);
        add(&self.stats.record_errors, r.errors.len() as u64);
        if let Some(why) = unfinished(&r, broke) {
            return Outcome::Failed(format!("{what}: {why}"));
        }
        for e in &r.errors {
            tracing::warn!(source = %self.source, object = %what, error = %e, "record refused");
        }
        tracing::debug!(source = %self.source, object = %what, events = r.events,
            duplicates = r.duplicates, new_findings = r.new_findings, "committed");
        Outcome::Done
    }

}

/// Why an object read is not done with, if it is not: the download broke
/// (the rest was never read), or nothing in it decoded (a corrupt object, or
/// not telemetry at all). Record errors in an object that otherwise decoded
/// are the record's problem: reading it again would not help.
fn unfinished(r: &Receipt, broke: Option<&Mutex<Option<String>>>) -> Option<String> {
    if let Some(b) = broke.and_then(|b| b.lock().unwrap_or_else(PoisonError::into_inner).clone()) {
        return Some(b);
    }
    if r.events == 0 && r.duplicates == 0 && !r.errors.is_empty() {
        return Some(format!("nothing decoded: {}", r.errors[0]));
    }
    None
}

enum Chunk {
    Data(bytes::Bytes),
    End,
    Broke(String),
}

/// An S3 object's body as the decoders read it: chunks from the download task.
/// A download that ends without saying so, or breaks, is an error here and is
/// noted, so that the object is read again rather than taken as complete.
struct ObjectReader {
    rx: mpsc::Receiver<Chunk>,
    current: bytes::Bytes,
    ended: bool,
    broke: Arc<Mutex<Option<String>>>,
}

impl ObjectReader {
    fn fail(&self, why: String) -> std::io::Error {
        *self.broke.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.clone());
        std::io::Error::other(why)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.current.is_empty() {
                let n = buf.len().min(self.current.len());
                buf[..n].copy_from_slice(&self.current.split_to(n));
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => self.current = b,
                Some(Chunk::End) => {
                    self.ended = true;
                    return Ok(0);
                }
                Some(Chunk::Broke(why)) => return Err(self.fail(why)),
                None => return Err(self.fail("the download stopped".into())),
            }
        }
    }
}
