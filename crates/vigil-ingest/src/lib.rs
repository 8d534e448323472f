//! Streaming decoders for the four kinds of AWS security telemetry Vigil reads:
//! CloudTrail, VPC Flow Logs, GuardDuty findings and Security Hub (ASFF) findings,
//! from plain or gzip'd files in every layout AWS delivers them (S3 log files, JSON
//! lines, EventBridge events, API responses).
//!
//! Every decoder turns records into [`vigil_model::Event`]s and reads as it goes:
//! memory does not grow with the size of a file. A bad record is reported as a
//! [`RecordError`] naming the file, the record and line, and the reason, and the
//! records around it still decode; only a file that cannot be read at all is an
//! [`OpenError`].
//!
//! This crate reads bytes; it does not fetch them (S3 and SQS are `vigil-aws`), nor
//! decide what the events mean (that is `vigil-detect`).

mod asff;
mod cloudtrail;
mod de;
mod decoder;
pub mod error;
mod eventbridge;
mod guardduty;
mod input;
mod json_stream;
pub mod vpcflow;
mod walk;

use std::fmt;
use std::str::FromStr;

pub use decoder::{open, open_reader, FileDecoder, FileReport, Item};
pub use error::{Location, OpenError, RecordError, RecordErrorKind};
pub use vpcflow::{FlowField, FlowFormat};
pub use walk::{walk, walk_confined, WalkError};

/// Which telemetry an EventBridge event of this `detail-type` carries, if any
/// Vigil reads (CloudTrail's `… via CloudTrail` types, GuardDuty, Security Hub).
pub fn eventbridge_source(detail_type: &str) -> Option<Format> {
    eventbridge::source_of(detail_type)
}

/// The telemetry formats, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    CloudTrail,
    VpcFlow,
    GuardDuty,
    Asff,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::CloudTrail,
        Format::VpcFlow,
        Format::GuardDuty,
        Format::Asff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::CloudTrail => "cloudtrail",
            Format::VpcFlow => "vpcflow",
            Format::GuardDuty => "guardduty",
            Format::Asff => "asff",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .or_else(|| {
                s.eq_ignore_ascii_case("securityhub")
                    .then_some(Format::Asff)
            })
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?}: expected auto, cloudtrail, vpcflow, guardduty or asff"
                )
            })
    }
}

/// How to decode.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// `None` sniffs each file (and each record of a JSON file); `Some` insists.
    pub format: Option<Format>,
    /// The layout of flow-log lines that come without a header line.
    pub flow_format: Option<FlowFormat>,
    /// A record larger than this is reported and skipped, which bounds memory.
    pub max_record_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            format: None,
            flow_format: None,
            max_record_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Decodes a small in-memory document (a rule's test case, a request body) into
/// events, with the same decoders files get. `format` names the source when it
/// should not be recognized (`cloudtrail`, `vpcflow`, `guardduty`, `asff`);
/// `flow_format` is the layout of header-less flow lines. The first bad record is
/// the error: this is for inputs that must be wholly valid.
pub fn decode_document(
    input: &[u8],
    format: Option<&str>,
    flow_format: Option<&str>,
) -> Result<Vec<vigil_model::Event>, String> {
    let format = match format {
        None => None,
        Some("cloudtrail") => Some(Format::CloudTrail),
        Some("vpcflow") => Some(Format::VpcFlow),
        Some("guardduty") => Some(Format::GuardDuty),
        Some("asff" | "securityhub") => Some(Format::Asff),
        Some(other) => return Err(format!("unknown source `{other}`")),
    };
    let flow_format = flow_format
        .map(FlowFormat::parse)
        .transpose()
        .map_err(|e| format!("flow_format: {e}"))?;
    let opts = DecodeOptions {
        format,
        flow_format,
        max_record_bytes: 16 * 1024 * 1024,
    };
    let reader = Box::new(std::io::Cursor::new(input.to_vec()));
    let dec =
        open_reader(std::path::Path::new("document"), reader, &opts).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for item in dec {
        match item {
            Item::Event(e) => events.push(e),
            Item::Error(e) => return Err(e.to_string()),
        }
    }
    Ok(events)
}
