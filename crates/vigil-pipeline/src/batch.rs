//! Batch mode (`vigil scan`): files and directories read once, through the same
//! decoders and the same detect stage ([`Detect`]) as the service, on one or
//! several workers, and summed up in a [`Summary`]; findings stream out as they
//! close (JSON lines, or a spool the JSON document is made from), so memory stays
//! flat however many a scan raises.
//!
//! Files are shared out by account (the `AWSLogs/<account>` part of the path,
//! else the directory), so an account's baselines, correlations and dedup stay in
//! one worker.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use vigil_detect::finding::Update;
use vigil_detect::{Finding, Findings};
use vigil_ingest::{DecodeOptions, FileReport, Item, RecordError};
use vigil_model::{Event, SourceKind, Timestamp};

use crate::detect::Detect;
use crate::PipelineError;

/// What streams out while the scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Nothing: the summary keeps the most severe findings.
    Nothing,
    /// Every finding as a JSON line on stdout, as it closes.
    Findings,
    /// Every finding to a spool, for the JSON document.
    Document,
    /// Every normalized event as a JSON line on stdout.
    Events,
}

/// A scan to run.
pub struct BatchConfig {
    pub paths: Vec<PathBuf>,
    pub decode: DecodeOptions,
    /// Workers (files are shared out by account).
    pub jobs: usize,
    /// How many errors the summary lists (all are counted).
    pub show_errors: usize,
    /// How many findings the summary keeps (all are counted).
    pub show_findings: usize,
    /// Detection; None: decode only.
    pub detect: Option<DetectSetup>,
    pub stream: Stream,
}

/// A finished scan.
pub struct Scanned {
    pub summary: Summary,
    pub spool: Option<Spool>,
}

fn write_error(e: std::io::Error) -> PipelineError {
    PipelineError::Io("writing the output".into(), e)
}

/// Runs detection over every event and folds the alerts into findings.
struct Detection {
    detect: Detect,
    closed: Vec<Finding>,
    /// Findings are written as they close (to stdout for jsonl, to the spool the
    /// JSON document is assembled from for json); the table keeps the most severe
    /// `keep` of them. Memory stays flat however many findings a scan raises.
    stream: Option<LineSink>,
    kept: Vec<Finding>,
    keep: usize,
    by_severity: BTreeMap<&'static str, u64>,
    by_category: BTreeMap<&'static str, u64>,
    /// Keyed by the rule's address: rules live as long as the detector.
    per_rule: HashMap<usize, RuleCount>,
    now: Timestamp,
    seen: u64,
}

#[derive(Serialize, Clone)]
pub struct RuleCount {
    pub rule: String,
    pub rule_id: String,
    pub alerts: u64,
    pub findings: u64,
}

/// The counts of a rule, made on its first alert.
fn rule_count<'m>(
    per_rule: &'m mut HashMap<usize, RuleCount>,
    rule: &Arc<vigil_detect::finding::RuleInfo>,
) -> &'m mut RuleCount {
    per_rule
        .entry(Arc::as_ptr(rule) as usize)
        .or_insert_with(|| RuleCount {
            rule: rule.title.clone(),
            rule_id: rule.key.clone(),
            alerts: 0,
            findings: 0,
        })
}

impl Detection {
    fn observe(&mut self, event: &Event) -> Result<(), PipelineError> {
        let per_rule = &mut self.per_rule;
        self.detect.observe(event, self.now, &mut |rule, update| {
            let c = rule_count(per_rule, rule);
            c.alerts += 1;
            if update == Update::New {
                c.findings += 1;
            }
        });
        self.seen += 1;
        if self.seen % 4096 == 0 {
            self.detect.findings().drain_closed(&mut self.closed);
            self.emit()?;
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<(), PipelineError> {
        for f in &self.closed {
            *self
                .by_severity
                .entry(f.detail.severity.as_str())
                .or_default() += 1;
            *self
                .by_category
                .entry(f.detail.category.as_str())
                .or_default() += 1;
        }
        match &mut self.stream {
            Some(w) => {
                for f in self.closed.drain(..) {
                    w.line(&f)?;
                }
            }
            None => {
                self.kept.append(&mut self.closed);
                if self.kept.len() > 2 * self.keep + 256 {
                    most_severe_first(&mut self.kept);
                    self.kept.truncate(self.keep);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), PipelineError> {
        self.detect.findings().finish(&mut self.closed);
        self.emit()?;
        if let Some(w) = &mut self.stream {
            w.flush()?;
        }
        Ok(())
    }
}

/// Orders findings for people: most severe first, then oldest.
pub fn most_severe_first(v: &mut [Finding]) {
    v.sort_by(|a, b| {
        b.detail
            .severity
            .cmp(&a.detail.severity)
            .then(a.detail.first_seen.cmp(&b.detail.first_seen))
            .then(a.detail.finding_id.cmp(&b.detail.finding_id))
    });
}

#[derive(Serialize, Default)]
pub struct FindingTotals {
    pub findings: u64,
    pub by_severity: BTreeMap<&'static str, u64>,
    pub by_category: BTreeMap<&'static str, u64>,
    pub rules: Vec<RuleCount>,
}

/// Where the workers write lines: stdout, or the findings spool.
type SharedOut = Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>;

/// JSON lines for stdout, buffered per worker and written whole under the lock, so
/// lines from several workers never interleave.
struct LineSink {
    buf: Vec<u8>,
    out: SharedOut,
}

impl LineSink {
    fn new(out: &SharedOut) -> LineSink {
        LineSink {
            buf: Vec::with_capacity(256 * 1024),
            out: out.clone(),
        }
    }

    fn line<T: Serialize>(&mut self, v: &T) -> Result<(), PipelineError> {
        serde_json::to_writer(&mut self.buf, v).map_err(|e| write_error(e.into()))?;
        self.buf.push(b'\n');
        if self.buf.len() >= 240 * 1024 {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<(), PipelineError> {
        let mut o = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        o.write_all(&self.buf).map_err(write_error)?;
        self.buf.clear();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PipelineError> {
        self.write_out()?;
        let mut o = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        o.flush().map_err(write_error)
    }
}

#[derive(Serialize)]
pub struct FileSummary {
    pub path: String,
    pub layout: String,
    pub gzip: bool,
    pub records: u64,
    pub events: u64,
    pub errors: u64,
    pub bytes_on_disk: u64,
    pub bytes_decoded: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct ErrorSummary {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte: Option<u64>,
    pub message: String,
}

#[derive(Serialize, Default)]
pub struct Totals {
    pub files: u64,
    pub files_failed: u64,
    pub records: u64,
    pub events: u64,
    pub errors: u64,
    pub bytes_on_disk: u64,
    pub bytes_decoded: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub decoded_mb_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
}

#[derive(Serialize)]
pub struct Summary {
    pub totals: Totals,
    pub sources: BTreeMap<&'static str, u64>,
    pub files: Vec<FileSummary>,
    pub errors: Vec<ErrorSummary>,
    pub errors_not_listed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<FindingTotals>,
    /// For the table (the most severe); the JSON document streams every finding
    /// from the spool instead.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// Matching events that came too late (in event time) to be correlated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_late_events: Option<u64>,
}

/// What detection needs to start each worker's detector.
pub struct DetectSetup {
    /// Its configuration (`builtin`: whether the built-in rules run).
    pub config: vigil_detect::DetectorConfig,
    /// Rule files and directories besides the built-ins.
    pub rules: Vec<PathBuf>,
    /// The dedup window, in milliseconds of event time.
    pub dedup_ms: i64,
    /// Baselines learned before (every worker starts from them).
    pub baseline: Option<vigil_detect::native::BaselineState>,
    /// Where the merged baselines are written after the scan.
    pub baseline_out: Option<PathBuf>,
    /// Detection time for the findings' `time`.
    pub now: Timestamp,
}

impl DetectSetup {
    /// Detection for worker `index` of `of`; rule problems are reported once.
    fn detection(
        &self,
        keep: usize,
        index: usize,
        of: usize,
        out: Option<&SharedOut>,
    ) -> Result<Detection, PipelineError> {
        let (mut detector, issues) = vigil_detect::files::build_detector(&self.rules, &self.config);
        if index == 0 {
            for i in &issues {
                tracing::warn!("rule skipped: {i}");
            }
        }
        if detector.rule_set().is_empty() && !self.config.builtin {
            return Err(PipelineError::Config(format!(
                "no usable rules in {}",
                self.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(b) = &self.baseline {
            detector.natives_mut().state = b.clone();
        }
        Ok(Detection {
            detect: Detect::new(
                detector,
                Findings::shared(self.dedup_ms, index as u32, of as u32),
            ),
            closed: Vec::new(),
            stream: out.map(LineSink::new),
            kept: Vec::new(),
            keep,
            by_severity: BTreeMap::new(),
            by_category: BTreeMap::new(),
            per_rule: HashMap::new(),
            now: self.now,
            seen: 0,
        })
    }
}

/// The account a file belongs to (`AWSLogs/<account>/…`, or an organization trail's
/// `AWSLogs/o-…/<account>/…`), else its directory: the unit files are shared out by.
fn shard_key(p: &Path) -> String {
    let parts: Vec<&std::ffi::OsStr> = p.iter().collect();
    if let Some(i) = parts.iter().position(|c| *c == "AWSLogs") {
        let mut next = parts.get(i + 1);
        if next.is_some_and(|c| c.to_string_lossy().starts_with("o-")) {
            next = parts.get(i + 2).or(next);
        }
        if let Some(acct) = next {
            return acct.to_string_lossy().into_owned();
        }
    }
    p.parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// Shares `files` out to `n` workers: whole shards, biggest first, each to the worker
/// with the fewest bytes so far; each worker keeps the files in walk order.
fn share_out(files: Vec<PathBuf>, n: usize) -> Vec<Vec<PathBuf>> {
    if n <= 1 {
        return vec![files];
    }
    let mut shards: BTreeMap<String, (u64, Vec<(usize, PathBuf)>)> = BTreeMap::new();
    for (i, f) in files.into_iter().enumerate() {
        let size = std::fs::metadata(&f).map_or(0, |m| m.len());
        let e = shards.entry(shard_key(&f)).or_default();
        e.0 += size;
        e.1.push((i, f));
    }
    let mut shards: Vec<(u64, Vec<(usize, PathBuf)>)> = shards.into_values().collect();
    shards.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut load = vec![0u64; n];
    let mut parts: Vec<Vec<(usize, PathBuf)>> = vec![Vec::new(); n];
    for (size, fs) in shards {
        let w = (0..n).min_by_key(|&w| load[w]).unwrap_or(0);
        load[w] += size;
        parts[w].extend(fs);
    }
    parts
        .into_iter()
        .map(|mut p| {
            p.sort_by_key(|(i, _)| *i);
            p.into_iter().map(|(_, f)| f).collect()
        })
        .collect()
}

/// What one worker found.
#[derive(Default)]
struct Part {
    totals: Totals,
    files: Vec<FileSummary>,
    errors: Vec<ErrorSummary>,
    errors_not_listed: u64,
    per_source: [u64; SourceKind::ALL.len()],
    detection: Option<Detection>,
}

impl Part {
    fn note_error(&mut self, e: ErrorSummary, show: usize) {
        self.totals.errors += 1;
        if self.errors.len() < show {
            self.errors.push(e);
        } else {
            self.errors_not_listed += 1;
        }
    }
}

/// Events are decoded this many at a time before detection sees them. Decoding and
/// detecting a CloudTrail record together run more code than a core's instruction
/// cache holds; taking turns by the batch keeps each one's code (and data) cached:
/// in a cache simulation of this machine's L1, a third fewer instruction and data
/// misses per record, for about as many more L2 misses (events are held a little
/// longer). Small, so that a batch's events stay near the core.
const BATCH: usize = 16;

/// Runs detection and the event sink over `batch`, in order, and empties it.
fn use_batch(
    batch: &mut Vec<vigil_model::Event>,
    detection: &mut Option<Detection>,
    events: &mut Option<LineSink>,
) -> Result<(), PipelineError> {
    for event in batch.drain(..) {
        if let Some(d) = detection {
            d.observe(&event)?;
        }
        if let Some(sink) = events {
            sink.line(&event)?;
        }
    }
    Ok(())
}

fn scan_files(
    files: Vec<PathBuf>,
    opts: &DecodeOptions,
    show_errors: usize,
    mut detection: Option<Detection>,
    mut events: Option<LineSink>,
) -> Result<Part, PipelineError> {
    let mut part = Part::default();
    let mut batch = Vec::with_capacity(BATCH);
    for path in files {
        part.totals.files += 1;
        let mut decoder = match vigil_ingest::open(&path, opts) {
            Ok(d) => d,
            Err(e) => {
                part.totals.files_failed += 1;
                let message = e.to_string();
                let message = message
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&message)
                    .to_owned();
                part.note_error(
                    ErrorSummary {
                        file: path.display().to_string(),
                        record: None,
                        line: None,
                        byte: None,
                        message,
                    },
                    show_errors,
                );
                continue;
            }
        };
        for item in decoder.by_ref() {
            match item {
                Item::Event(event) => {
                    part.per_source[event.source as usize] += 1;
                    batch.push(event);
                    if batch.len() == BATCH {
                        use_batch(&mut batch, &mut detection, &mut events)?;
                    }
                }
                Item::Error(e) => part.note_error(error_summary(&e), show_errors),
            }
        }
        use_batch(&mut batch, &mut detection, &mut events)?;
        let r = decoder.report();
        let t = &mut part.totals;
        t.records += r.records;
        t.events += r.events;
        t.bytes_on_disk += r.file_bytes;
        t.bytes_decoded += r.decoded_bytes;
        part.files.push(file_summary(r));
    }
    if let Some(sink) = &mut events {
        sink.flush()?;
    }
    if let Some(d) = &mut detection {
        d.finish()?;
    }
    part.detection = detection;
    Ok(part)
}

/// Scans `cfg.paths` and returns the summary (and the spool of every finding,
/// for [`Stream::Document`]).
pub fn scan(cfg: BatchConfig) -> Result<Scanned, PipelineError> {
    for p in &cfg.paths {
        if !p.exists() {
            return Err(PipelineError::Config(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    if cfg.jobs == 0 {
        return Err(PipelineError::Config("--jobs: must be at least 1".into()));
    }
    let opts = &cfg.decode;
    let setup = cfg.detect;
    let out: SharedOut = Arc::new(Mutex::new(BufWriter::with_capacity(
        256 * 1024,
        Box::new(std::io::stdout()),
    )));
    // The JSON document lists every finding: they are spooled to a temporary file as
    // they close and streamed into the document at the end.
    let spool = match (&setup, cfg.stream) {
        (Some(_), Stream::Document) => Some(Spool::new()?),
        _ => None,
    };

    let started = Instant::now();
    let mut summary = Summary {
        totals: Totals::default(),
        sources: BTreeMap::new(),
        files: Vec::new(),
        errors: Vec::new(),
        errors_not_listed: 0,
        detection: None,
        findings: Vec::new(),
        correlation_late_events: None,
    };
    let mut files = Vec::new();
    let mut walk_part = Part::default();
    for root in &cfg.paths {
        let mut walk_errors = Vec::new();
        vigil_ingest::walk(root, &mut |p| files.push(p), &mut |e| walk_errors.push(e));
        for e in walk_errors {
            walk_part.note_error(
                ErrorSummary {
                    file: e.path.display().to_string(),
                    record: None,
                    line: None,
                    byte: None,
                    message: e.source.to_string(),
                },
                cfg.show_errors,
            );
        }
    }
    let shares = share_out(files, cfg.jobs.min(64));
    let n = shares.len();
    let mut workers = Vec::with_capacity(n);
    for (i, share) in shares.into_iter().enumerate() {
        let detection = match &setup {
            Some(s) => {
                let sink = match (&spool, cfg.stream) {
                    (Some(sp), _) => Some(&sp.out),
                    (None, Stream::Findings) => Some(&out),
                    _ => None,
                };
                Some(s.detection(cfg.show_findings, i, n, sink)?)
            }
            None => None,
        };
        let events = (cfg.stream == Stream::Events).then(|| LineSink::new(&out));
        workers.push((share, detection, events));
    }
    let parts: Vec<Result<Part, PipelineError>> = if n == 1 {
        let (share, detection, events) = workers.pop().expect("one worker");
        vec![scan_files(share, opts, cfg.show_errors, detection, events)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .map(|(share, detection, events)| {
                    scope.spawn(move || scan_files(share, opts, cfg.show_errors, detection, events))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(PipelineError::Config("a scan worker panicked".into()))
                    })
                })
                .collect()
        })
    };
    let mut per_source = [0u64; SourceKind::ALL.len()];
    let mut detections = Vec::new();
    let mut all_parts = vec![walk_part];
    for p in parts {
        all_parts.push(p?);
    }
    for mut p in all_parts {
        let t = &mut summary.totals;
        t.files += p.totals.files;
        t.files_failed += p.totals.files_failed;
        t.records += p.totals.records;
        t.events += p.totals.events;
        t.errors += p.totals.errors;
        t.bytes_on_disk += p.totals.bytes_on_disk;
        t.bytes_decoded += p.totals.bytes_decoded;
        summary.files.append(&mut p.files);
        for e in p.errors {
            if summary.errors.len() < cfg.show_errors {
                summary.errors.push(e);
            } else {
                summary.errors_not_listed += 1;
            }
        }
        summary.errors_not_listed += p.errors_not_listed;
        for (a, b) in per_source.iter_mut().zip(p.per_source) {
            *a += b;
        }
        if let Some(d) = p.detection {
            detections.push(d);
        }
    }
    for kind in SourceKind::ALL {
        summary
            .sources
            .insert(kind.as_str(), per_source[kind as usize]);
    }
    if let (Some(setup), false) = (&setup, detections.is_empty()) {
        let empty = Default::default();
        let base = setup.baseline.as_ref().unwrap_or(&empty);
        let mut per_rule: BTreeMap<String, RuleCount> = BTreeMap::new();
        let mut kept = Vec::new();
        let mut by_severity: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut by_category: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut late = 0;
        let mut has_corr = false;
        let mut state: Option<vigil_detect::native::BaselineState> = None;
        for mut d in detections {
            for c in std::mem::take(&mut d.per_rule).into_values() {
                let e = per_rule
                    .entry(c.rule_id.clone())
                    .or_insert_with(|| RuleCount {
                        alerts: 0,
                        findings: 0,
                        ..c.clone()
                    });
                e.alerts += c.alerts;
                e.findings += c.findings;
            }
            kept.append(&mut d.kept);
            for (k, v) in std::mem::take(&mut d.by_severity) {
                *by_severity.entry(k).or_default() += v;
            }
            for (k, v) in std::mem::take(&mut d.by_category) {
                *by_category.entry(k).or_default() += v;
            }
            late += d.detect.detector().late_events();
            has_corr |= !d.detect.detector().correlator().is_empty();
            let s = std::mem::take(&mut d.detect.detector_mut().natives_mut().state);
            match &mut state {
                None => state = Some(s),
                Some(acc) => acc.merge(s, base, setup.config.baseline.max_networks),
            }
        }
        if let (Some(p), Some(s)) = (&setup.baseline_out, &state) {
            s.save(p)
                .map_err(|e| PipelineError::Config(format!("--baseline: {e}")))?;
        }
        let mut totals = FindingTotals {
            rules: per_rule.into_values().collect(),
            by_severity,
            by_category,
            ..Default::default()
        };
        totals
            .rules
            .sort_by(|a, b| b.findings.cmp(&a.findings).then(b.alerts.cmp(&a.alerts)));
        totals.findings = totals.rules.iter().map(|r| r.findings).sum();
        most_severe_first(&mut kept);
        kept.truncate(cfg.show_findings);
        summary.findings = kept;
        summary.detection = Some(totals);
        if has_corr {
            summary.correlation_late_events = Some(late);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let t = &mut summary.totals;
    t.seconds = secs;
    t.records_per_second = t.records as f64 / secs.max(1e-9);
    t.decoded_mb_per_second = t.bytes_decoded as f64 / 1e6 / secs.max(1e-9);
    t.peak_rss_mb = peak_rss_mb();

    Ok(Scanned { summary, spool })
}

/// Findings spooled to a temporary file (JSON lines) while the scan runs.
pub struct Spool {
    path: PathBuf,
    out: SharedOut,
}

impl Spool {
    fn new() -> Result<Spool, PipelineError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "vigil-findings-{}-{nanos}.jsonl",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| PipelineError::Io(format!("creating {}", path.display()), e))?;
        Ok(Spool {
            out: Arc::new(Mutex::new(BufWriter::with_capacity(
                256 * 1024,
                Box::new(file),
            ))),
            path,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Spool {
    /// Writes every spooled finding, each a JSON object, separated by `,\n    `
    /// (the body of the JSON document's `findings` array); whether any was.
    pub fn write_findings(&self, out: &mut dyn Write) -> std::io::Result<bool> {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()?;
        let r = std::io::BufReader::new(std::fs::File::open(&self.path)?);
        let mut first = true;
        for line in std::io::BufRead::lines(r) {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            out.write_all(if first { b"\n    " } else { b",\n    " })?;
            out.write_all(line.as_bytes())?;
            first = false;
        }
        Ok(!first)
    }
}

fn error_summary(e: &RecordError) -> ErrorSummary {
    ErrorSummary {
        file: e.file.display().to_string(),
        record: e.location.record,
        line: e.location.line,
        byte: e.location.byte,
        message: e.kind.to_string(),
    }
}

fn file_summary(r: FileReport) -> FileSummary {
    FileSummary {
        path: r.path.display().to_string(),
        layout: if r.layout.is_empty() {
            "-".into()
        } else {
            r.layout
        },
        gzip: r.gzip,
        records: r.records,
        events: r.events,
        errors: r.errors,
        bytes_on_disk: r.file_bytes,
        bytes_decoded: r.decoded_bytes,
        notes: r.notes,
    }
}

/// Peak resident memory of this process, from Linux's /proc (None elsewhere).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
