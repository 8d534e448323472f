//! `vigil scan`: decode files and directories, print what they hold, the errors, and
//! how fast it went.
//!
//! Events flow to a list of [`EventSink`]s; today that is the JSON-lines writer, and
//! detection plugs in as one more sink.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use vigil_ingest::{DecodeOptions, FileReport, FlowFormat, Format, Item, RecordError};
use vigil_model::{Event, SourceKind};

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
    /// table: summary for people; json: the summary as one JSON document; jsonl: every
    /// event as a JSON line on stdout, the summary on stderr.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// How many errors to list (all are counted).
    #[arg(long, default_value_t = 50, value_name = "N")]
    show_errors: usize,
    /// Skip records larger than this many bytes (bounds memory).
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    max_record_bytes: usize,
    /// Sigma rules to run over the events (files or directories; repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
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
}

/// A stage that receives every decoded event.
pub trait EventSink {
    fn accept(&mut self, event: &Event) -> Result<()>;
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Runs Sigma rules over every event and keeps, per rule, the count and the first
/// few matching events.
struct Detection {
    set: vigil_detect::RuleSet,
    scratch: vigil_detect::Scratch,
    hits: Vec<u32>,
    per_rule: Vec<(u64, Vec<MatchSummary>)>,
    /// Rules whose matches only feed correlations.
    silent: Vec<bool>,
    correlator: vigil_detect::sigma::correlation::Correlator,
    corr_hits: Vec<vigil_detect::sigma::correlation::Hit>,
    per_correlation: Vec<(u64, Vec<MatchSummary>)>,
}

const KEEP_PER_RULE: usize = 5;

impl Detection {
    fn observe(&mut self, event: &Event) {
        self.hits.clear();
        self.set.evaluate(event, &mut self.scratch, &mut self.hits);
        if !self.correlator.is_empty() && !self.hits.is_empty() {
            if let Some(doc) = self.scratch.doc_of(event) {
                self.corr_hits.clear();
                self.correlator.observe(
                    event.time.as_millis(),
                    doc,
                    &self.hits,
                    &mut self.corr_hits,
                );
                for h in &self.corr_hits {
                    let (count, first) = &mut self.per_correlation[h.correlation as usize];
                    *count += 1;
                    if first.len() < KEEP_PER_RULE {
                        first.push(MatchSummary {
                            event_id: event.id.clone(),
                            time: vigil_model::Timestamp::from_millis(h.last_ms).to_string(),
                            account: event.account.clone(),
                            principal: Some(format!(
                                "group {} ({} events since {})",
                                h.group.join("/"),
                                h.events,
                                vigil_model::Timestamp::from_millis(h.first_ms)
                            )),
                            source_ip: None,
                        });
                    }
                }
            }
        }
        for &i in &self.hits {
            if self.silent[i as usize] {
                continue;
            }
            let (count, first) = &mut self.per_rule[i as usize];
            *count += 1;
            if first.len() < KEEP_PER_RULE {
                first.push(MatchSummary {
                    event_id: event.id.clone(),
                    time: event.time.to_string(),
                    account: event.account.clone(),
                    principal: event
                        .actor
                        .as_ref()
                        .and_then(|a| a.arn.clone().or_else(|| a.user_name.clone())),
                    source_ip: event.source_ip.map(|ip| ip.to_string()),
                });
            }
        }
    }

    fn summary(&self) -> Vec<DetectionSummary> {
        let mut out: Vec<DetectionSummary> = self
            .per_rule
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(i, (n, first))| {
                let m = &self.set.rules()[i].meta;
                DetectionSummary {
                    rule: m.title.clone(),
                    rule_id: m.id.clone(),
                    level: m.level.map(|l| l.as_str()),
                    count: *n,
                    first: first.clone(),
                }
            })
            .collect();
        let corr: Vec<&vigil_detect::sigma::correlation::Correlation> =
            self.correlator.correlations().collect();
        for (i, (n, first)) in self.per_correlation.iter().enumerate() {
            if *n > 0 {
                let m = &corr[i].meta;
                out.push(DetectionSummary {
                    rule: m.title.clone(),
                    rule_id: m.id.clone(),
                    level: m.level.map(|l| l.as_str()),
                    count: *n,
                    first: first.clone(),
                });
            }
        }
        let rank = |l: Option<&str>| {
            ["informational", "low", "medium", "high", "critical"]
                .iter()
                .position(|x| Some(*x) == l)
        };
        out.sort_by(|a, b| {
            rank(b.level)
                .cmp(&rank(a.level))
                .then(b.count.cmp(&a.count))
        });
        out
    }
}

#[derive(Serialize, Clone)]
struct MatchSummary {
    event_id: String,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<String>,
}

#[derive(Serialize)]
struct DetectionSummary {
    rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'static str>,
    count: u64,
    first: Vec<MatchSummary>,
}

struct JsonLines<W: Write>(W);

impl<W: Write> EventSink for JsonLines<W> {
    fn accept(&mut self, event: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.0, event)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.0.flush()?;
        Ok(())
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
    detections: Option<Vec<DetectionSummary>>,
    /// Matching events that came too late (in event time) to be correlated.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_late_events: Option<u64>,
}

pub fn run(args: &ScanArgs) -> Result<u8> {
    for p in &args.paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
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
    let mut detection = if args.rules.is_empty() {
        None
    } else {
        let lateness = vigil_detect::sigma::correlation::parse_timespan(&args.lateness)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--lateness: `{}` is not a number followed by s, m, h or d",
                    args.lateness
                )
            })?;
        let (set, correlator, issues) = crate::rules::load_with_lateness(&args.rules, lateness);
        for i in &issues {
            eprintln!("vigil: rule skipped: {i}");
        }
        if set.is_empty() {
            bail!(
                "no usable rules in {}",
                args.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let n = set.len();
        let mut silent = vec![false; n];
        for r in correlator.silent_rules() {
            silent[r as usize] = true;
        }
        let n_corr = correlator.correlations().count();
        Some(Detection {
            set,
            scratch: Default::default(),
            hits: Vec::new(),
            per_rule: vec![(0, Vec::new()); n],
            silent,
            correlator,
            corr_hits: Vec::new(),
            per_correlation: vec![(0, Vec::new()); n_corr],
        })
    };
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if args.output == Output::Jsonl {
        sinks.push(Box::new(JsonLines(BufWriter::with_capacity(
            256 * 1024,
            io::stdout().lock(),
        ))));
    }

    let started = Instant::now();
    let mut summary = Summary {
        totals: Totals::default(),
        sources: BTreeMap::new(),
        files: Vec::new(),
        errors: Vec::new(),
        errors_not_listed: 0,
        detections: None,
        correlation_late_events: None,
    };
    let note_error = |summary: &mut Summary, e: ErrorSummary| {
        summary.totals.errors += 1;
        if summary.errors.len() < args.show_errors {
            summary.errors.push(e);
        } else {
            summary.errors_not_listed += 1;
        }
    };
    let mut files = Vec::new();
    for root in &args.paths {
        let mut walk_errors = Vec::new();
        vigil_ingest::walk(root, &mut |p| files.push(p), &mut |e| walk_errors.push(e));
        for e in walk_errors {
            note_error(
                &mut summary,
                ErrorSummary {
                    file: e.path.display().to_string(),
                    record: None,
                    line: None,
                    byte: None,
                    message: e.source.to_string(),
                },
            );
        }
    }
    // Counted in an array in the loop; the map is for the report.
    let mut per_source = [0u64; SourceKind::ALL.len()];
    for path in files {
        summary.totals.files += 1;
        let mut decoder = match vigil_ingest::open(&path, &opts) {
            Ok(d) => d,
            Err(e) => {
                summary.totals.files_failed += 1;
                let message = e.to_string();
                let message = message
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&message)
                    .to_owned();
                note_error(
                    &mut summary,
                    ErrorSummary {
                        file: path.display().to_string(),
                        record: None,
                        line: None,
                        byte: None,
                        message,
                    },
                );
                continue;
            }
        };
        for item in decoder.by_ref() {
            match item {
                Item::Event(event) => {
                    per_source[event.source as usize] += 1;
                    if let Some(d) = &mut detection {
                        d.observe(&event);
                    }
                    for sink in &mut sinks {
                        sink.accept(&event)?;
                    }
                }
                Item::Error(e) => note_error(&mut summary, error_summary(&e)),
            }
        }
        let report = decoder.report();
        add_file(&mut summary, report);
    }
    for sink in &mut sinks {
        sink.finish()?;
    }
    for kind in SourceKind::ALL {
        summary
            .sources
            .insert(kind.as_str(), per_source[kind as usize]);
    }
    summary.detections = detection.as_ref().map(Detection::summary);
    summary.correlation_late_events = detection
        .as_ref()
        .filter(|d| !d.correlator.is_empty())
        .map(|d| d.correlator.dropped_late);
    let secs = started.elapsed().as_secs_f64();
    let t = &mut summary.totals;
    t.seconds = secs;
    t.records_per_second = t.records as f64 / secs.max(1e-9);
    t.decoded_mb_per_second = t.bytes_decoded as f64 / 1e6 / secs.max(1e-9);
    t.peak_rss_mb = peak_rss_mb();

    match args.output {
        Output::Json => {
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &summary)?;
            writeln!(out)?;
        }
        Output::Table => {
            print_table(&mut io::stdout().lock(), &summary).context("writing the report")?
        }
        Output::Jsonl => {
            print_table(&mut io::stderr().lock(), &summary).context("writing the report")?
        }
    }
    Ok(if summary.totals.errors > 0 {
        EXIT_COMPLETED_WITH_ERRORS
    } else {
        0
    })
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

fn add_file(summary: &mut Summary, r: FileReport) {
    let t = &mut summary.totals;
    t.records += r.records;
    t.events += r.events;
    t.bytes_on_disk += r.file_bytes;
    t.bytes_decoded += r.decoded_bytes;
    summary.files.push(FileSummary {
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
    });
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

fn print_table(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
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
    if let Some(d) = &s.detections {
        writeln!(out)?;
        let mut rows = vec![vec![
            "LEVEL".to_string(),
            "MATCHES".to_string(),
            "RULE".to_string(),
            "FIRST MATCH".to_string(),
        ]];
        for r in d {
            let first = r.first.first().map(|m| {
                format!(
                    "{} {} {}",
                    m.time,
                    m.principal.as_deref().unwrap_or("-"),
                    m.source_ip.as_deref().unwrap_or("")
                )
            });
            rows.push(vec![
                r.level.unwrap_or("-").to_string(),
                r.count.to_string(),
                r.rule.clone(),
                first.unwrap_or_default(),
            ]);
        }
        print_rows(out, &rows)?;
        if d.is_empty() {
            writeln!(out, "no rule matched")?;
        }
        if let Some(n) = s.correlation_late_events.filter(|n| *n > 0) {
            writeln!(out, "note: {n} matching events came more than --lateness behind newer ones and were not correlated")?;
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
