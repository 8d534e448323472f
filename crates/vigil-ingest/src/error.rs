//! Errors of the decoders. A [`RecordError`] is about one record (or one stretch of
//! bytes) and never stops the file; an [`OpenError`] means the file could not be read
//! at all.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where in a file a problem is. Record numbers and lines count from 1; the byte
/// offset is into the decompressed stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub record: Option<u64>,
    pub line: Option<u64>,
    pub byte: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::with_capacity(3);
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some(l) = self.line {
            parts.push(format!("line {l}"));
        }
        if let Some(b) = self.byte {
            parts.push(format!("byte {b}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What went wrong with one record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordErrorKind {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("invalid UTF-8 at byte {offset} of the record")]
    InvalidUtf8 { offset: usize },
    #[error("missing required field `{field}`")]
    MissingField { field: &'static str },
    #[error("field `{field}`: {reason}")]
    BadField { field: String, reason: String },
    #[error("record is {found}, not {expected} (as --format asked)")]
    WrongFormat {
        expected: &'static str,
        found: &'static str,
    },
    #[error("not a recognized record: {0}")]
    Unrecognized(String),
    #[error("record is larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("expected {expected} fields (the {format} format) but the line has {found}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    FieldCount {
        expected: usize,
        found: usize,
        format: String,
        hint: Option<String>,
    },
    #[error("the input ends inside a record: {0}")]
    Truncated(String),
    #[error("read error: {0}")]
    Io(String),
}

/// A problem with one record of one file; the records around it still decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub file: Arc<PathBuf>,
    pub location: Location,
    pub kind: RecordErrorKind,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        let loc = self.location.to_string();
        if !loc.is_empty() {
            write!(f, ": {loc}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for RecordError {}

/// The file as a whole could not be decoded (no records came out of it).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: cannot open: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: binary data ({what}), not AWS telemetry")]
    Binary { path: PathBuf, what: String },
    #[error("{path}: {what} is not supported")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: not a recognized telemetry format: {why}")]
    Unrecognized { path: PathBuf, why: String },
}

impl OpenError {
    pub fn path(&self) -> &std::path::Path {
        match self {
            OpenError::Io { path, .. }
            | OpenError::Empty { path }
            | OpenError::Binary { path, .. }
            | OpenError::Unsupported { path, .. }
            | OpenError::Unrecognized { path, .. } => path,
        }
    }
}
