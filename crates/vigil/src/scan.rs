//! `vigil scan`: decode files and directories, detect, and print what they hold,
//! the errors, and how fast it went. The work is `vigil_pipeline::batch`'s.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use vigil_ingest::{DecodeOptions, FlowFormat, Format};
use vigil_model::Span;
use vigil_pipeline::batch::{self, BatchConfig, DetectSetup, Stream};

use crate::EXIT_COMPLETED_WITH_ERRORS;
use vigil_pipeline::report;

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
    dedup_window: Span,
    /// Baseline state file: read before the scan if it exists, written after it, so
    /// baselines keep learning across runs.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// How long (event time) a principal or account is learned before baselines judge
    /// it.
    #[arg(long, default_value = "3d", value_name = "SPAN")]
    baseline_learning: Span,
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
    lateness: Span,
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

impl ScanArgs {
    fn detect_setup(&self) -> Result<DetectSetup> {
        let mut config = vigil_detect::DetectorConfig {
            lateness_ms: self.lateness.as_millis(),
            builtin: !self.no_builtin,
            ..Default::default()
        };
        config.baseline.learning_ms = self.baseline_learning.as_millis();
        if let Some(p) = &self.asn_db {
            let db = vigil_detect::native::AsnDb::load(p).map_err(|e| anyhow!("--asn-db: {e}"))?;
            config.baseline.asn_db = Some(Arc::new(db));
        }
        let baseline = match &self.baseline {
            Some(p) => Some(
                vigil_detect::native::BaselineState::load(p)
                    .map_err(|e| anyhow!("--baseline: {e}"))?,
            ),
            None => None,
        };
        Ok(DetectSetup {
            config,
            rules: self.rules.clone(),
            dedup_ms: self.dedup_window.as_millis(),
            baseline,
            baseline_out: self.baseline.clone(),
            now: vigil_pipeline::now(),
        })
    }
}

pub fn run(args: &ScanArgs) -> Result<u8> {
    let flow_format = args
        .flow_format
        .as_deref()
        .map(FlowFormat::parse)
        .transpose()
        .map_err(|e| anyhow!("--flow-format: {e}"))?;
    let decode = DecodeOptions {
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
    let scanned = batch::scan(BatchConfig {
        paths: args.paths.clone(),
        decode,
        jobs: args.jobs,
        show_errors: args.show_errors,
        show_findings: args.show_findings,
        detect: if args.no_detect {
            None
        } else {
            Some(args.detect_setup()?)
        },
        stream: match args.output {
            Output::Table => Stream::Nothing,
            Output::Json => Stream::Document,
            Output::Jsonl => Stream::Findings,
            Output::Events => Stream::Events,
        },
    })?;
    let summary = &scanned.summary;
    match args.output {
        Output::Json => {
            report::scan_json(&mut io::stdout().lock(), summary, scanned.spool.as_ref())?
        }
        Output::Table => report::scan_table(&mut io::stdout().lock(), summary, args.show_findings)
            .context("writing the report")?,
        Output::Jsonl | Output::Events => {
            report::scan_table(&mut io::stderr().lock(), summary, args.show_findings)
                .context("writing the report")?
        }
    }
    Ok(if summary.totals.errors > 0 {
        EXIT_COMPLETED_WITH_ERRORS
    } else {
        0
    })
}
