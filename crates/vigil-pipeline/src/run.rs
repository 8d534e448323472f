//! The pipeline thread: takes deliveries from every source in turn, decodes and
//! detects, hands what changed to the outputs (the store first), and then, only
//! then, acknowledges the delivery to its source.
//!
//! The store is the commit point. A delivery whose store commit fails is not
//! acknowledged (its record identities are given back, so its redelivery is
//! taken); once the store has committed, the delivery is acknowledged even if a
//! later output fails, since delivering it again could not make that output
//! see it any more surely than its own retries (the outbox of the outputs is
//! what makes them durable), and would risk nothing but noise.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_ingest::{DecodeOptions, Item};
use vigil_model::Timestamp;
use vigil_store::SharedStore;

use crate::component::{
    Commit, Delivery, Inlet, Output, Receipt, Source, Telemetry, ERRORS_LISTED,
};
use crate::detect::{Detect, Observed};
use crate::PipelineError;

/// How often learned baselines are written to disk (and at shutdown).
const BASELINE_SAVE: Duration = Duration::from_secs(30);
/// How often record identities past their window are forgotten.
const EXPIRE: Duration = Duration::from_secs(60);
/// Deliveries waiting for the pipeline before sources are held back.
const QUEUE: usize = 64;

/// The wall clock.
pub fn now() -> Timestamp {
    vigil_server::now()
}

/// Detection and the outputs, before they run.
pub struct Pipeline {
    detect: Detect,
    outputs: Vec<Box<dyn Output>>,
    decode: DecodeOptions,
    /// Where open findings are taken back from after a failed commit.
    store: Option<SharedStore>,
}

/// A running pipeline and its sources.
pub struct Running {
    inlet: Inlet,
    sources: Vec<JoinHandle<()>>,
    pipeline: Option<JoinHandle<()>>,
    ingest: Option<Arc<dyn vigil_server::Ingest>>,
    statuses: Vec<Arc<dyn vigil_server::SourceStatus>>,
}

impl Pipeline {
    /// Detection, then `outputs` (the store, if among them, runs first).
    pub fn new(detect: Detect, mut outputs: Vec<Box<dyn Output>>) -> Pipeline {
        outputs.sort_by_key(|o| !o.is_store());
        Pipeline {
            detect,
            outputs,
            decode: DecodeOptions::default(),
            store: None,
        }
    }

    /// Starts the pipeline thread and every source.
    pub fn start(
        mut self,
        sources: Vec<Box<dyn Source>>,
        store: SharedStore,
    ) -> Result<Running, PipelineError> {
        self.store = Some(store.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Delivery>(QUEUE);
        let inlet = Inlet {
            tx,
            stop: Arc::new(AtomicBool::new(false)),
            store,
        };
        let pipeline = std::thread::Builder::new()
            .name("vigil-pipeline".into())
            .spawn(move || self.run(rx))
            .map_err(|e| PipelineError::Io("starting the pipeline thread".into(), e))?;
        let mut running = Running {
            inlet: inlet.clone(),
            sources: Vec::new(),
            pipeline: Some(pipeline),
            ingest: None,
            statuses: Vec::new(),
        };
        for s in sources {
            if let Some(i) = s.ingest() {
                running.ingest = Some(i);
            }
            running.statuses.extend(s.status());
            let name = s.name().to_owned();
            tracing::debug!(source = %name, "source starting");
            if let Some(t) = s.start(inlet.clone())? {
                running.sources.push(t);
            }
        }
        Ok(running)
    }

    fn run(mut self, rx: Receiver<Delivery>) {
        let mut last_save = Instant::now();
        let mut last_expire = Instant::now();
        let mut forget_before = None;
        while let Ok(d) = rx.recv() {
            if last_expire.elapsed() >= EXPIRE {
                last_expire = Instant::now();
                if let Some(seen) = self.detect.seen() {
                    forget_before = Some(seen.expire(now().as_millis()));
                }
            }
            let forgot = forget_before.take();
            if let Some(forgot_before) = self.handle(d, forgot) {
                // Not committed: try forgetting again with the next delivery.
                forget_before = forgot_before;
            }
            if last_save.elapsed() >= BASELINE_SAVE {
                last_save = Instant::now();
                self.detect.save_baselines();
            }
        }
        self.detect.save_baselines();
        for o in &mut self.outputs {
            o.close();
        }
    }

    /// Decodes `item` and runs its events through detection.
    fn read(&mut self, item: Telemetry, receipt: &mut Receipt, source: &str) {
        let now = now();
        let decoder = match item {
            Telemetry::File(path) => vigil_ingest::open(&path, &self.decode),
            Telemetry::Bytes { name, body } => vigil_ingest::open_reader(
                Path::new(&name),
                Box::new(std::io::Cursor::new(body)),
                &self.decode,
            ),
            Telemetry::Reader { name, reader } => {
                vigil_ingest::open_reader(Path::new(&name), reader, &self.decode)
            }
        };
        let mut decoder = match decoder {
            Ok(d) => d,
            Err(e) => {
                note_error(receipt, source, e.to_string());
                return;
            }
        };
        let taps: Vec<usize> = (0..self.outputs.len())
            .filter(|&i| self.outputs[i].wants_events())
            .collect();
        for item in decoder.by_ref() {
            match item {
                Item::Event(e) => match self.detect.observe(&e, now, &mut |_, _| {}) {
                    Observed::Detected => {
                        receipt.events += 1;
                        for &i in &taps {
                            self.outputs[i].event(&e);
                        }
                    }
                    Observed::Duplicate => receipt.duplicates += 1,
                },
                Item::Error(e) => note_error(receipt, source, e.to_string()),
            }
        }
    }

    /// Runs one delivery and acknowledges it; when it was not committed, the
    /// forgetting it carried, to carry over.
    fn handle(&mut self, d: Delivery, forget_before: Option<i64>) -> Option<Option<i64>> {
        // What other writers of the store took since the last delivery is
        // skipped here (a commit that races one of them fails, and comes again).
        if let Some(store) = &self.store {
            if let Err(e) = self.detect.catch_up(&store.lock()) {
                tracing::warn!(error = %e, "other writers' record identities not read");
            }
        }
        let mut receipt = Receipt::default();
        for item in d.items {
            self.read(item, &mut receipt, &d.source);
        }
        let complete = d.complete.is_none_or(|c| c(&receipt));
        let mut changed = Vec::new();
        self.detect.take_changed(&mut changed);
        let records = self
            .detect
            .seen()
            .map(|s| s.pending().to_vec())
            .unwrap_or_default();
        let committed = self.detect.committed_of(&changed);
        let mut commit = Commit {
            findings: std::borrow::Cow::Borrowed(&changed),
            committed: &committed,
            dedup_window_ms: self.detect.findings().window_ms(),
            records_after: self.detect.records_after(),
            records_seq: None,
            checkpoint: d.checkpoint.as_ref().filter(|_| complete),
            records: &records,
            forget_before,
            now: now(),
            receipt: &mut receipt,
            incidents: Vec::new(),
        };
        let mut result = Ok(());
        for o in &mut self.outputs {
            match o.commit(&mut commit) {
                Ok(()) => {}
                Err(e) if o.is_store() => {
                    result = Err(e);
                    break;
                }
                Err(e) => {
                    tracing::warn!(output = o.name(), error = %e, "output failed");
                }
            }
        }
        let undone = result.is_err();
        let records_seq = commit.records_seq;
        let stored = commit.findings;
        if undone {
            self.roll_back();
        } else {
            self.detect.on_committed(&changed, &stored, records_seq);
            if let Some(seen) = self.detect.seen() {
                seen.committed();
            }
        }
        match &result {
            Ok(()) => tracing::debug!(
                source = %d.source,
                events = receipt.events,
                duplicates = receipt.duplicates,
                new_findings = receipt.new_findings,
                "delivery committed"
            ),
            Err(e) => tracing::error!(source = %d.source, error = %e, "delivery not committed"),
        }
        if let Some(ack) = d.ack {
            ack(result.map(|()| receipt));
        }
        undone.then_some(forget_before)
    }
}

impl Pipeline {
    /// Undoes what a delivery that was not committed did to detection.
    fn roll_back(&mut self) {
        let window = self.detect.findings().window_ms();
        let stored = match &self.store {
            Some(s) => s.lock().recent_findings(window),
            None => Ok(Vec::new()),
        };
        match stored {
            Ok(stored) => self.detect.roll_back(stored),
            Err(e) => {
                tracing::error!(error = %e, "open findings not taken back after a failed commit");
                self.detect.roll_back(Vec::new());
            }
        }
    }
}

fn note_error(receipt: &mut Receipt, source: &str, e: String) {
    if receipt.errors.len() < ERRORS_LISTED {
        receipt.errors.push(e);
    } else if receipt.errors.len() == ERRORS_LISTED {
        tracing::debug!(source, "more record errors than a receipt lists");
    }
}

impl Running {
    /// The handle the API's ingest routes submit through, when an HTTP source
    /// is configured.
    pub fn ingest(&self) -> Option<Arc<dyn vigil_server::Ingest>> {
        self.ingest.clone()
    }

    /// What the sources report about themselves.
    pub fn statuses(&self) -> Vec<Arc<dyn vigil_server::SourceStatus>> {
        self.statuses.clone()
    }

    /// Somewhere to deliver from outside a source (tests, tools).
    pub fn inlet(&self) -> Inlet {
        self.inlet.clone()
    }

    /// Stops the sources, lets the pipeline finish what was delivered, and
    /// waits for both.
    pub fn stop(mut self) {
        self.inlet.stop.store(true, Ordering::Relaxed);
        for t in self.sources.drain(..) {
            t.join().ok();
        }
        // The pipeline ends when the last inlet is gone.
        let Running {
            inlet,
            pipeline,
            ingest,
            ..
        } = self;
        drop(ingest);
        drop(inlet);
        if let Some(p) = pipeline {
            p.join().ok();
        }
    }
}
