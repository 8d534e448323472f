//! The seams: a [`Source`] delivers telemetry and learns when what it delivered
//! is durable; an [`Output`] takes what each delivery changed. Each is built from
//! its table in the configuration (`[[sources]]`, `[[outputs]]`) by the builder
//! registered under its `type` (see `sources/mod.rs` and `outputs/mod.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use serde::Serialize;
use vigil_detect::Finding;
use vigil_model::{Event, Timestamp};
use vigil_store::{SeenRecord, SharedStore};

use crate::PipelineError;

/// A piece of telemetry: a file to read, a body received, or a stream already
/// opened (`name` stands for it in errors and, when it is an S3 key or an
/// `AWSLogs/…` path, gives the account and region).
pub enum Telemetry {
    File(PathBuf),
    Bytes {
        name: String,
        body: Vec<u8>,
    },
    Reader {
        name: String,
        reader: Box<dyn std::io::Read + Send>,
    },
}

impl Telemetry {
    /// The name it goes by in errors and logs.
    pub fn name(&self) -> String {
        match self {
            Telemetry::File(p) => p.display().to_string(),
            Telemetry::Bytes { name, .. } | Telemetry::Reader { name, .. } => name.clone(),
        }
    }
}

/// Where a source got to, committed with the findings of what it delivered: the
/// source's key in the store and its position there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub key: String,
    pub position: String,
}

/// What the pipeline made of a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Events decoded and detected on.
    pub events: u64,
    /// Events skipped because their record was taken before.
    pub duplicates: u64,
    /// Records refused, each naming the batch, the record and why (the first
    /// [`ERRORS_LISTED`]).
    pub errors: Vec<String>,
    pub new_findings: u64,
    pub updated_findings: u64,
    pub new_incidents: u64,
}

/// How many record errors a receipt lists.
pub const ERRORS_LISTED: usize = 20;

/// Called once the delivery is committed (or could not be).
pub type Ack = Box<dyn FnOnce(Result<Receipt, PipelineError>) + Send>;

/// One unit of work from a source: telemetry, the position it brings the source
/// to, and whom to tell when it is durable.
///
/// The contract that makes at-least-once sources safe: the checkpoint is
/// committed in the same transaction as the findings, and `ack` is called only
/// after that commit. A source advances (deletes a queue message, answers its
/// client 200, moves past a file) only on an `Ok` ack; anything delivered but not
/// acknowledged when the process dies is delivered again, and record identity
/// makes the repeat harmless.
pub struct Delivery {
    pub source: Arc<str>,
    pub items: Vec<Telemetry>,
    pub checkpoint: Option<Checkpoint>,
    /// Whether what was read is all there is to read, judged before the
    /// commit: when not (a download that broke, an object that did not decode),
    /// the findings and record identities are committed but the checkpoint is
    /// not, so the source may deliver it again. None: always.
    pub complete: Option<Complete>,
    pub ack: Option<Ack>,
}

/// See [`Delivery::complete`].
pub type Complete = Box<dyn FnOnce(&Receipt) -> bool + Send>;

/// What a source holds to deliver: the pipeline's inlet, and whether to stop.
#[derive(Clone)]
pub struct Inlet {
    pub(crate) tx: SyncSender<Delivery>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) store: SharedStore,
}

impl Inlet {
    /// Hands a delivery to the pipeline (waits while the pipeline is busy with
    /// earlier ones: back-pressure). An error when the pipeline has stopped.
    pub fn deliver(&self, d: Delivery) -> Result<(), PipelineError> {
        self.tx.send(d).map_err(|_| PipelineError::Stopped)
    }

    /// Whether the service is stopping: a source's loop ends when it is.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A source's committed position, if any.
    pub fn checkpoint(&self, key: &str) -> Result<Option<String>, PipelineError> {
        Ok(self.store.lock().checkpoint(key)?)
    }
}

/// A source of telemetry.
pub trait Source: Send {
    /// Its name (the `name` of its configuration table, else its type).
    fn name(&self) -> &str;

    /// Starts delivering through `inlet`: a source that polls or listens on
    /// its own spawns a thread and returns it; one driven from outside (HTTP
    /// ingest, whose handler lives in the API) keeps the inlet and returns None.
    fn start(
        self: Box<Self>,
        inlet: Inlet,
    ) -> Result<Option<std::thread::JoinHandle<()>>, PipelineError>;

    /// For HTTP ingest: the handle the API's ingest routes submit through.
    fn ingest(&self) -> Option<Arc<dyn vigil_server::Ingest>> {
        None
    }

    /// What the source reports about itself in `GET /api/v1/sources`.
    fn status(&self) -> Option<Arc<dyn vigil_server::SourceStatus>> {
        None
    }
}

/// A change to an incident a delivery made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncidentChange {
    /// A finding opened this incident (its id).
    Opened(String),
}

/// Everything one delivery changed, handed to every output in turn.
pub struct Commit<'a> {
    /// Findings opened or updated: as detected, until the store (which runs
    /// first) puts them as stored (folded into another writer's finding of the
    /// same detection, numbered by the store).
    pub findings: std::borrow::Cow<'a, [Finding]>,
    /// How much of each finding's count was committed before (the store adds
    /// the rest).
    pub committed: &'a [u64],
    /// The dedup window: a finding folds into a stored one of its key within it.
    pub dedup_window_ms: i64,
    /// The last record-identity row of the store the pipeline has read; filled
    /// by the store with the row it added.
    pub records_after: Option<i64>,
    pub records_seq: Option<i64>,
    pub checkpoint: Option<&'a Checkpoint>,
    /// Record identities first taken by this delivery.
    pub records: &'a [SeenRecord],
    /// Record identities older than this may be forgotten.
    pub forget_before: Option<i64>,
    pub now: Timestamp,
    /// Counts, filled by the store.
    pub receipt: &'a mut Receipt,
    /// What the delivery did to incidents, filled by the store (which runs
    /// first) for the outputs after it.
    pub incidents: Vec<IncidentChange>,
}

/// A sink of findings (and, through the store, incident changes).
pub trait Output: Send {
    fn name(&self) -> &str;

    /// Makes what a delivery changed durable (or sends it on). An error leaves
    /// the delivery unacknowledged, so its source delivers it again.
    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError>;

    /// Whether [`Output::event`] wants every event (most outputs want only the
    /// findings).
    fn wants_events(&self) -> bool {
        false
    }

    /// Sees each event taken (a record delivered again is not shown again): for
    /// example, to recheck compliance when a change to what it judges goes by.
    fn event(&mut self, _e: &Event) {}

    /// Whether this output is the store: the one that commits checkpoints and
    /// record identities, and runs first.
    fn is_store(&self) -> bool {
        false
    }

    /// At shutdown, after the last delivery.
    fn close(&mut self) {}
}

/// What a component's builder is given besides its table.
pub struct BuildContext<'a> {
    /// Its name (the table's `name`, else its type).
    pub name: String,
    pub data_dir: &'a std::path::Path,
    pub store: &'a SharedStore,
    /// How the service reaches AWS (`[aws]`).
    pub aws: &'a crate::service::AwsConfig,
}

/// Reads a component's table into its configuration struct, naming the
/// component in errors (unknown keys are refused by the struct's
/// `deny_unknown_fields`).
pub fn config_of<T: serde::de::DeserializeOwned>(
    kind: &str,
    name: &str,
    table: toml::Table,
) -> Result<T, PipelineError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| PipelineError::Config(format!("{kind} `{name}`: {e}")))
}
