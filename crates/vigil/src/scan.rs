//! `vigil scan`: decode files and directories, print what they hold, the errors, and
//! how fast it went.
//!
//! Events flow to a list of [`EventSink`]s; today that is the JSON-lines writer, and
//! detection plugs in as one more sink.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use vigil_detect::finding::Update;
use vigil_detect::{Finding, Findings};
use vigil_ingest::{DecodeOptions, FileReport, FlowFormat, Format, Item, RecordError};
use vigil_model::{Event, SourceKind, Timestamp};

use crate::EXIT_COMPLETED_WITH_ERRORS;

#[derive(Args)]
pub struct ScanArgs {
    /// Files and directories to read (directories are walked recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Decode every file as this format instead of recognizing it.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// Layout of flow-log lines without a header: a preset (v2, v3, v4, v5, v7, v8,
    /// tgw) or the field names (`${version} ${srcaddr} …`).
    #[arg(long, value_name = "FORMAT")]
    flow_format: Option<String>,
    /// table: findings and summary for people; json: findings and summary as one JSON
    /// document; jsonl: every finding as a JSON line on stdout (as it closes), the
    /// summary on stderr; events: every normalized event as a JSON line on stdout, the
    /// summary on stderr.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// How many errors to list (all are counted).
    #[arg(long, default_value_t = 50, value_name = "N")]
    show_errors: usize,
    /// Skip records larger than this many bytes (bounds memory).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    max_record_bytes: usize,
    /// More Sigma rules to run (files or directories; repeatable), besides the
    /// built-in ones.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Do not run the built-in rules and native detectors (only --rules).
    #[arg(long)]
    no_builtin: bool,
    /// Do not run detection at all: only decode.
    #[arg(long, conflicts_with_all = ["rules", "no_builtin"])]
    no_detect: bool,
    /// Repeats of the same rule on the same principal and resource within this span
    /// (event time) update one finding instead of raising new ones.
    #[arg(long, default_value = "1h", value_name = "SPAN")]
    dedup_window: String,
    /// Baseline state file: read before the scan if it exists, written after it, so
    /// baselines keep learning across runs.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// How long (event time) a principal or account is learned before baselines judge
    /// it.
    #[arg(long, default_value = "3d", value_name = "SPAN")]
    baseline_learning: String,
    /// IP-to-ASN table (iptoasn.com TSV layout) so baselines compare ASNs and
    /// countries rather than /24 networks.
    #[arg(long, value_name = "FILE")]
    asn_db: Option<PathBuf>,
    /// How many findings the table lists (all are counted).
    #[arg(long, default_value_t = 100, value_name = "N")]
    show_findings: usize,
    /// Worker threads. Files are shared out by account (the `AWSLogs/<account>` part
    /// of the path, else the directory), so an account's baselines, correlations and
    /// dedup stay in one worker; correlations across accounts need --jobs 1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// How far (in event time) behind the newest event an event may come and still
    /// count for correlations, e.g. 30m, 1h, 2d.
    #[arg(long, default_value = "1h", value_name = "SPAN")]
    lateness: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Auto,
    Cloudtrail,
    Vpcflow,
    Guardduty,
    Asff,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Jsonl,
    Events,
}

/// A stage that receives every decoded event.
pub trait EventSink {
    fn accept(&mut self, event: &Event) -> Result<()>;
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Runs detection over every event and folds the alerts into findings.
struct Detection {
    detector: vigil_detect::Detector,
    findings: Findings,
    alerts: Vec<vigil_detect::Alert>,
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
struct RuleCount {
    rule: String,
    rule_id: String,
    alerts: u64,
    findings: u64,
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
    fn observe(&mut self, event: &Event) -> Result<()> {
        let per_rule = &mut self.per_rule;
        vigil_detect::detector::detect_into(
            &mut self.detector,
            &mut self.findings,
            event,
            self.now,
            &mut self.alerts,
            &mut |rule, update| {
                let c = rule_count(per_rule, rule);
                c.alerts += 1;
                if update == Update::New {
                    c.findings += 1;
                }
            },
        );
        self.seen += 1;
        if self.seen % 4096 == 0 {
            self.findings.drain_closed(&mut self.closed);
            self.emit()?;
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<()> {
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

    fn finish(&mut self) -> Result<()> {
        self.findings.finish(&mut self.closed);
        self.emit()?;
        if let Some(w) = &mut self.stream {
            w.flush()?;
        }
        Ok(())
    }
}

/// Orders findings for people: most severe first, then oldest.
fn most_severe_first(v: &mut [Finding]) {
    v.sort_by(|a, b| {
        b.detail
            .severity
            .cmp(&a.detail.severity)
            .then(a.detail.first_seen.cmp(&b.detail.first_seen))
            .then(a.detail.finding_id.cmp(&b.detail.finding_id))
    });
}

#[derive(Serialize, Default)]
struct FindingTotals {
    findings: u64,
    by_severity: BTreeMap<&'static str, u64>,
    by_category: BTreeMap<&'static str, u64>,
    rules: Vec<RuleCount>,
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

    fn line<T: Serialize>(&mut self, v: &T) -> Result<()> {
        serde_json::to_writer(&mut self.buf, v)?;
        self.buf.push(b'\n');
        if self.buf.len() >= 240 * 1024 {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        let mut o = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
        o.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        let mut o = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
        o.flush()?;
        Ok(())
    }
}

impl EventSink for LineSink {
    fn accept(&mut self, event: &Event) -> Result<()> {
        self.line(event)
    }
    fn finish(&mut self) -> Result<()> {
        self.flush()
    }
}

#[derive(Serialize)]
struct FileSummary {
    path: String,
    layout: String,
    gzip: bool,
    records: u64,
    events: u64,
    errors: u64,
    bytes_on_disk: u64,
    bytes_decoded: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

#[derive(Serialize)]
struct ErrorSummary {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte: Option<u64>,
    message: String,
}

#[derive(Serialize, Default)]
struct Totals {
    files: u64,
    files_failed: u64,
    records: u64,
    events: u64,
    errors: u64,
    bytes_on_disk: u64,
    bytes_decoded: u64,
    seconds: f64,
    records_per_second: f64,
    decoded_mb_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_mb: Option<f64>,
}

#[derive(Serialize)]
struct Summary {
    totals: Totals,
    sources: BTreeMap<&'static str, u64>,
    files: Vec<FileSummary>,
    errors: Vec<ErrorSummary>,
    errors_not_listed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    detection: Option<FindingTotals>,
    /// For the table (the most severe); the JSON document streams every finding
    /// from the spool instead.
    #[serde(skip)]
    findings: Vec<Finding>,
    /// Matching events that came too late (in event time) to be correlated.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_late_events: Option<u64>,
}

fn span(flag: &str, v: &str) -> Result<i64> {
    vigil_detect::sigma::correlation::parse_timespan(v)
        .ok_or_else(|| anyhow::anyhow!("--{flag}: `{v}` is not a number followed by s, m, h or d"))
}

/// What detection needs to start a worker's detector.
struct DetectSetup {
    config: vigil_detect::DetectorConfig,
    dedup_ms: i64,
    baseline: Option<vigil_detect::native::BaselineState>,
    now: Timestamp,
}

impl DetectSetup {
    fn new(args: &ScanArgs) -> Result<DetectSetup> {
        let mut config = vigil_detect::DetectorConfig {
            lateness_ms: span("lateness", &args.lateness)?,
            builtin: !args.no_builtin,
            ..Default::default()
        };
        config.baseline.learning_ms = span("baseline-learning", &args.baseline_learning)?;
        if let Some(p) = &args.asn_db {
            config.baseline.asn_db = Some(Arc::new(
                vigil_detect::native::AsnDb::load(p)
                    .map_err(|e| anyhow::anyhow!("--asn-db: {e}"))?,
            ));
        }
        let baseline = match &args.baseline {
            Some(p) => Some(
                vigil_detect::native::BaselineState::load(p)
                    .map_err(|e| anyhow::anyhow!("--baseline: {e}"))?,
            ),
            None => None,
        };
        Ok(DetectSetup {
            config,
            dedup_ms: span("dedup-window", &args.dedup_window)?,
            baseline,
            now: Timestamp::from_millis(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            ),
        })
    }

    /// Detection for worker `index` of `of`; rule problems are reported once.
    fn detection(
        &self,
        args: &ScanArgs,
        index: usize,
        of: usize,
        out: Option<&SharedOut>,
    ) -> Result<Detection> {
        let (mut detector, issues) = crate::rules::build_detector(&args.rules, &self.config);
        if index == 0 {
            for i in &issues {
                tracing::warn!("rule skipped: {i}");
            }
        }
        if detector.rule_set().is_empty() && args.no_builtin {
            bail!(
                "no usable rules in {}",
                args.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(b) = &self.baseline {
            detector.natives_mut().state = b.clone();
        }
        Ok(Detection {
            detector,
            findings: Findings::shared(self.dedup_ms, index as u32, of as u32),
            alerts: Vec::new(),
            closed: Vec::new(),
            stream: out.map(LineSink::new),
            kept: Vec::new(),
            keep: args.show_findings,
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
) -> Result<()> {
    for event in batch.drain(..) {
        if let Some(d) = detection {
            d.observe(&event)?;
        }
        if let Some(sink) = events {
            sink.accept(&event)?;
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
) -> Result<Part> {
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
        sink.finish()?;
    }
    if let Some(d) = &mut detection {
        d.finish()?;
    }
    part.detection = detection;
    Ok(part)
}

pub fn run(args: &ScanArgs) -> Result<u8> {
    for p in &args.paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    if args.jobs == 0 {
        bail!("--jobs: must be at least 1");
    }
    let flow_format = args
        .flow_format
        .as_deref()
        .map(FlowFormat::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--flow-format: {e}"))?;
    let opts = DecodeOptions {
        format: match args.format {
            FormatArg::Auto => None,
            FormatArg::Cloudtrail => Some(Format::CloudTrail),
            FormatArg::Vpcflow => Some(Format::VpcFlow),
            FormatArg::Guardduty => Some(Format::GuardDuty),
            FormatArg::Asff => Some(Format::Asff),
        },
        flow_format,
        max_record_bytes: args.max_record_bytes,
    };
    let setup = if args.no_detect {
        None
    } else {
        Some(DetectSetup::new(args)?)
    };
    let out: SharedOut = Arc::new(Mutex::new(BufWriter::with_capacity(
        256 * 1024,
        Box::new(io::stdout()),
    )));
    // The JSON document lists every finding: they are spooled to a temporary file as
    // they close and streamed into the document at the end.
    let spool = match (&setup, args.output) {
        (Some(_), Output::Json) => Some(Spool::new()?),
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
    for root in &args.paths {
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
                args.show_errors,
            );
        }
    }
    let shares = share_out(files, args.jobs.min(64));
    let n = shares.len();
    let mut workers = Vec::with_capacity(n);
    for (i, share) in shares.into_iter().enumerate() {
        let detection = match &setup {
            Some(s) => {
                let sink = match (&spool, args.output) {
                    (Some(sp), _) => Some(&sp.out),
                    (None, Output::Jsonl) => Some(&out),
                    _ => None,
                };
                Some(s.detection(args, i, n, sink)?)
            }
            None => None,
        };
        let events = (args.output == Output::Events).then(|| LineSink::new(&out));
        workers.push((share, detection, events));
    }
    let parts: Vec<Result<Part>> = if n == 1 {
        let (share, detection, events) = workers.pop().expect("one worker");
        vec![scan_files(
            share,
            &opts,
            args.show_errors,
            detection,
            events,
        )]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .map(|(share, detection, events)| {
                    let opts = &opts;
                    scope
                        .spawn(move || scan_files(share, opts, args.show_errors, detection, events))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a scan worker panicked")))
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
            if summary.errors.len() < args.show_errors {
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
            late += d.detector.late_events();
            has_corr |= !d.detector.correlator().is_empty();
            let s = std::mem::take(&mut d.detector.natives_mut().state);
            match &mut state {
                None => state = Some(s),
                Some(acc) => acc.merge(s, base, setup.config.baseline.max_networks),
            }
        }
        if let (Some(p), Some(s)) = (&args.baseline, &state) {
            s.save(p).map_err(|e| anyhow::anyhow!("--baseline: {e}"))?;
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
        kept.truncate(args.show_findings);
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

    match args.output {
        Output::Json => {
            let mut out = io::stdout().lock();
            write_json(&mut out, &summary, spool)?;
        }
        Output::Table => print_table(&mut io::stdout().lock(), &summary, args.show_findings)
            .context("writing the report")?,
        Output::Jsonl | Output::Events => {
            print_table(&mut io::stderr().lock(), &summary, args.show_findings)
                .context("writing the report")?
        }
    }
    Ok(if summary.totals.errors > 0 {
        EXIT_COMPLETED_WITH_ERRORS
    } else {
        0
    })
}

/// Findings spooled to a temporary file (JSON lines) while the scan runs.
struct Spool {
    path: PathBuf,
    out: SharedOut,
}

impl Spool {
    fn new() -> Result<Spool> {
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
            .with_context(|| format!("creating {}", path.display()))?;
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

/// The JSON document: `findings` (every one, streamed from the spool) and then the
/// summary's fields.
fn write_json(out: &mut dyn Write, summary: &Summary, spool: Option<Spool>) -> Result<()> {
    let rest = serde_json::to_string_pretty(summary)?;
    let Some(fields) = rest.strip_prefix("{\n") else {
        bail!("the summary is not an object");
    };
    out.write_all(b"{\n  \"findings\": [")?;
    if let Some(sp) = &spool {
        sp.out
            .lock()
            .map_err(|_| anyhow::anyhow!("spool lock poisoned"))?
            .flush()?;
        let r = io::BufReader::new(std::fs::File::open(&sp.path)?);
        let mut first = true;
        for line in io::BufRead::lines(r) {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            out.write_all(if first { b"\n    " } else { b",\n    " })?;
            out.write_all(line.as_bytes())?;
            first = false;
        }
        if !first {
            out.write_all(b"\n  ")?;
        }
    }
    out.write_all(b"],\n")?;
    out.write_all(fields.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
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

fn print_rows(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            // Numbers right-aligned, text left-aligned.
            if c > 0 && cell.parse::<f64>().is_ok() {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if c + 1 < row.len() {
                line.push_str("  ");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn print_table(out: &mut dyn Write, s: &Summary, show_findings: usize) -> io::Result<()> {
    let mut rows = vec![vec![
        "FILE".into(),
        "LAYOUT".into(),
        "RECORDS".into(),
        "EVENTS".into(),
        "ERRORS".into(),
        "BYTES".into(),
    ]];
    for f in &s.files {
        rows.push(vec![
            f.path.clone(),
            format!("{}{}", f.layout, if f.gzip { " (gzip)" } else { "" }),
            f.records.to_string(),
            f.events.to_string(),
            f.errors.to_string(),
            f.bytes_on_disk.to_string(),
        ]);
    }
    print_rows(out, &rows)?;
    for f in &s.files {
        for n in &f.notes {
            writeln!(out, "note: {}: {n}", f.path)?;
        }
    }
    writeln!(out)?;
    let mut rows = vec![vec!["SOURCE".to_string(), "EVENTS".to_string()]];
    rows.extend(
        s.sources
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.to_string()]),
    );
    print_rows(out, &rows)?;
    if let Some(d) = &s.detection {
        writeln!(out)?;
        if d.findings == 0 {
            writeln!(out, "no findings")?;
        } else if !s.findings.is_empty() {
            let mut rows = vec![vec![
                "SEVERITY".to_string(),
                "CATEGORY".to_string(),
                "COUNT".to_string(),
                "FIRST SEEN".to_string(),
                "TITLE".to_string(),
                "PRINCIPAL".to_string(),
                "RESOURCE".to_string(),
            ]];
            for f in s.findings.iter().take(show_findings) {
                let dt = &f.detail;
                rows.push(vec![
                    dt.severity.as_str().to_string(),
                    dt.category.as_str().to_string(),
                    dt.count.to_string(),
                    dt.first_seen.to_string(),
                    dt.title.clone(),
                    dt.principal.clone().unwrap_or_else(|| "-".into()),
                    dt.resource_arn.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            print_rows(out, &rows)?;
            if s.findings.len() > show_findings {
                writeln!(
                    out,
                    "… and {} more (raise --show-findings, or use --output json)",
                    s.findings.len() - show_findings
                )?;
            }
        }
        let sev: Vec<String> = d
            .by_severity
            .iter()
            .rev()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        if d.findings > 0 {
            writeln!(
                out,
                "{} findings{}",
                d.findings,
                if sev.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", sev.join(", "))
                }
            )?;
        }
        if let Some(n) = s.correlation_late_events.filter(|n| *n > 0) {
            writeln!(out, "note: {n} matching events came more than --lateness behind newer ones and were not correlated (scan files in time order, or raise --lateness)")?;
        }
    }
    if !s.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "ERRORS")?;
        for e in &s.errors {
            let mut loc = Vec::new();
            if let Some(r) = e.record {
                loc.push(format!("record {r}"));
            }
            if let Some(l) = e.line {
                loc.push(format!("line {l}"));
            }
            if let Some(b) = e.byte {
                loc.push(format!("byte {b}"));
            }
            if loc.is_empty() {
                writeln!(out, "  {}: {}", e.file, e.message)?;
            } else {
                writeln!(out, "  {}: {}: {}", e.file, loc.join(", "), e.message)?;
            }
        }
        if s.errors_not_listed > 0 {
            writeln!(
                out,
                "  … and {} more (raise --show-errors to list them)",
                s.errors_not_listed
            )?;
        }
    }
    let t = &s.totals;
    writeln!(out)?;
    writeln!(
        out,
        "{} files ({} unreadable), {} records, {} events, {} errors in {:.2}s: {:.0} records/s, {:.1} MB/s decoded{}",
        t.files,
        t.files_failed,
        t.records,
        t.events,
        t.errors,
        t.seconds,
        t.records_per_second,
        t.decoded_mb_per_second,
        t.peak_rss_mb.map(|m| format!(", peak RSS {m:.0} MB")).unwrap_or_default()
    )?;
    if t.errors > 0 {
        writeln!(out, "completed with errors")?;
    }
    Ok(())
}
