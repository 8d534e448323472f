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
pub use walk::{walk, WalkError};

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
