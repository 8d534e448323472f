//! One file in, a stream of events and record errors out.
//!
//! [`open`] looks at the file (compression, JSON or text, the S3 key it was delivered
//! under) and returns a [`FileDecoder`], an iterator of [`Item`]s that reads the file
//! as it goes. A bad record becomes an [`Item::Error`] and decoding goes on; only a
//! file that cannot be read at all fails at [`open`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use vigil_model::Event;

use crate::cloudtrail::Fallback;
use crate::de::Failure;
use crate::error::{Location, OpenError, RecordError, RecordErrorKind};
use crate::input::{self, Shape};
use crate::json_stream::{JsonSplitter, Step};
use crate::vpcflow::{self, FlowFormat};
use crate::{DecodeOptions, Format};

/// What came out of a file: an event, or a record that could not be decoded.
// Events are the common case and move once per record; boxing them to shrink the
// rare error variant would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    Event(Event),
    Error(RecordError),
}

/// What a file turned out to be and how decoding it went.
#[derive(Clone, Debug, Default)]
pub struct FileReport {
    pub path: PathBuf,
    /// What was recognized: `cloudtrail`, `eventbridge`, `vpcflow v5`, ….
    pub layout: String,
    pub gzip: bool,
    /// Things worth telling that are not errors (a digest file skipped, a header read).
    pub notes: Vec<String>,
    /// Records read (good and bad); an EventBridge batch counts once.
    pub records: u64,
    pub events: u64,
    pub errors: u64,
    /// Bytes read from disk (compressed size for gzip).
    pub file_bytes: u64,
    /// Bytes after decompression.
    pub decoded_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordKind {
    CloudTrail,
    Digest,
    EventBridge,
    GuardDuty,
    Asff,
}

impl RecordKind {
    fn describe(self) -> &'static str {
        match self {
            RecordKind::CloudTrail => "a CloudTrail record",
            RecordKind::Digest => "a CloudTrail digest",
            RecordKind::EventBridge => "an EventBridge event",
            RecordKind::GuardDuty => "a GuardDuty finding",
            RecordKind::Asff => "a Security Hub (ASFF) finding",
        }
    }

    fn format(self) -> Option<Format> {
        match self {
            RecordKind::CloudTrail | RecordKind::Digest => Some(Format::CloudTrail),
            RecordKind::GuardDuty => Some(Format::GuardDuty),
            RecordKind::Asff => Some(Format::Asff),
            RecordKind::EventBridge => None,
        }
    }
}

/// The keys that tell the record kinds apart. Only read for the first record of a file
/// and for records the file's decoder rejects, so it costs nothing in the hot loop.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "detail-type")]
    detail_type: Option<IgnoredAny>,
    #[serde(rename = "eventSource")]
    event_source: Option<IgnoredAny>,
    #[serde(rename = "eventName")]
    event_name: Option<IgnoredAny>,
    #[serde(rename = "eventTime")]
    event_time: Option<IgnoredAny>,
    #[serde(rename = "insightDetails")]
    insight: Option<IgnoredAny>,
    #[serde(rename = "digestPublicKeyFingerprint")]
    digest_key: Option<IgnoredAny>,
    #[serde(rename = "digestStartTime")]
    digest_start: Option<IgnoredAny>,
    #[serde(rename = "ProductArn")]
    product_arn: Option<IgnoredAny>,
    #[serde(rename = "GeneratorId")]
    generator_id: Option<IgnoredAny>,
    #[serde(rename = "AwsAccountId")]
    aws_account_id: Option<IgnoredAny>,
    #[serde(rename = "service", alias = "Service")]
    service: Option<IgnoredAny>,
    #[serde(rename = "type", alias = "Type")]
    finding_type: Option<IgnoredAny>,
}

/// `Err` when the record is not a JSON object; `Ok(None)` when it is one of no known kind.
fn probe(text: &str) -> Result<Option<RecordKind>, ()> {
    let p: Probe = serde_json::from_str(text).map_err(|_| ())?;
    Ok(if p.detail_type.is_some() {
        Some(RecordKind::EventBridge)
    } else if p.digest_key.is_some() || p.digest_start.is_some() {
        Some(RecordKind::Digest)
    } else if p.event_source.is_some()
        || p.event_name.is_some()
        || (p.event_time.is_some() && p.insight.is_some())
    {
        Some(RecordKind::CloudTrail)
    } else if p.product_arn.is_some() || p.generator_id.is_some() || p.aws_account_id.is_some() {
        Some(RecordKind::Asff)
    } else if p.service.is_some() && p.finding_type.is_some() {
        Some(RecordKind::GuardDuty)
    } else if p.event_time.is_some() {
        Some(RecordKind::CloudTrail)
    } else {
        None
    })
}

/// Account, region and kind from an S3 delivery key:
/// `AWSLogs/[o-org/]<account>/{CloudTrail,CloudTrail-Digest,CloudTrail-Insight,vpcflowlogs}/<region>/…`.
fn s3_hints(path: &Path) -> (Fallback, Option<&'static str>) {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let Some(start) = parts.iter().position(|p| *p == "AWSLogs") else {
        return (Fallback::default(), None);
    };
    for i in start + 1..parts.len().saturating_sub(1) {
        let kind = match parts[i] {
            "CloudTrail" | "CloudTrail-Insight" => "cloudtrail",
            "CloudTrail-Digest" => "digest",
            "vpcflowlogs" => "vpcflow",
            _ => continue,
        };
        let account = parts[i - 1];
        let fb = Fallback {
            account: account
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| account.to_owned()),
            region: Some(parts[i + 1].to_owned()).filter(|r| r.contains('-')),
        };
        return (fb, Some(kind));
    }
    (Fallback::default(), None)
}

struct JsonBody {
    split: JsonSplitter,
    current: Option<RecordKind>,
    fallback: Fallback,
}

/// The first-look bytes, then the rest of the stream.
type LineSource = BufReader<std::io::Chain<std::io::Cursor<Vec<u8>>, Box<dyn Read + Send>>>;

struct FlowBody {
    reader: LineSource,
    line: Vec<u8>,
    line_no: u64,
    format: FlowFormat,
    fallback_region: Option<String>,
}

enum Body {
    Json(Box<JsonBody>),
    Flow(Box<FlowBody>),
    Done,
}

/// Decodes one file lazily; see the module docs.
pub struct FileDecoder {
    path: Arc<PathBuf>,
    body: Body,
    queue: VecDeque<Item>,
    forced: Option<Format>,
    max_record: usize,
    report: FileReport,
    file_bytes: Arc<std::sync::atomic::AtomicU64>,
    out: Vec<Event>,
    nested_errors: Vec<RecordErrorKind>,
}

/// Opens `path` and works out what it holds.
pub fn open(path: &Path, opts: &DecodeOptions) -> Result<FileDecoder, OpenError> {
    decoder_for(path, input::open(path)?, opts)
}

/// Decodes bytes that do not come from a local file (an S3 object, an HTTP body).
/// `name` stands for the file in errors and, when it is an S3 key, gives the account
/// and region the way a local path in the S3 layout does.
pub fn open_reader(
    name: &Path,
    reader: Box<dyn std::io::Read + Send>,
    opts: &DecodeOptions,
) -> Result<FileDecoder, OpenError> {
    decoder_for(name, input::from_reader(name, reader)?, opts)
}

fn decoder_for(
    path: &Path,
    input: input::Input,
    opts: &DecodeOptions,
) -> Result<FileDecoder, OpenError> {
    let (fallback, hint) = s3_hints(path);
    let mut report = FileReport {
        path: path.to_owned(),
        gzip: input.gzip,
        ..FileReport::default()
    };
    let forced = opts.format;
    let body = match (input.shape, forced) {
        (Shape::Json, Some(Format::VpcFlow)) => {
            return Err(OpenError::Unrecognized {
                path: path.to_owned(),
                why: "the file is JSON, but --format vpcflow reads flow-log text".into(),
            })
        }
        (Shape::Text, Some(f)) if f != Format::VpcFlow => {
            return Err(OpenError::Unrecognized {
                path: path.to_owned(),
                why: format!(
                    "the file is text, not the JSON that --format {} reads",
                    f.name()
                ),
            })
        }
        (Shape::Json, _) => {
            if hint == Some("digest") {
                report.layout = "cloudtrail-digest".into();
            }
            Body::Json(Box::new(JsonBody {
                split: JsonSplitter::new(input.prefix, input.rest, opts.max_record_bytes),
                current: None,
                fallback,
            }))
        }
        (Shape::Text, _) => {
            let first = first_line(&input.prefix);
            let header = vpcflow::parse_header(&first);
            let numeric = first
                .split_ascii_whitespace()
                .next()
                .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()));
            if !matches!(header, Some(Ok(_))) && !numeric && forced.is_none() {
                // Its shape only: the file may be anything (an inbox is written by
                // others), and its content must not reach the log.
                let fields = first.split_ascii_whitespace().count();
                return Err(OpenError::Unrecognized {
                    path: path.to_owned(),
                    why: format!(
                        "text that is not a flow log (its first line, of {} bytes and {fields} \
                         fields, is neither a flow-log header nor a record)",
                        first.len()
                    ),
                });
            }
            let format = opts
                .flow_format
                .clone()
                .unwrap_or_else(FlowFormat::default_v2);
            report.layout = format!("vpcflow {}", format.name());
            Body::Flow(Box::new(FlowBody {
                reader: BufReader::with_capacity(
                    256 * 1024,
                    std::io::Cursor::new(input.prefix).chain(input.rest),
                ),
                line: Vec::with_capacity(1024),
                line_no: 0,
                format,
                fallback_region: fallback.region,
            }))
        }
    };
    Ok(FileDecoder {
        path: Arc::new(path.to_owned()),
        body,
        queue: VecDeque::new(),
        forced,
        max_record: opts.max_record_bytes,
        report,
        file_bytes: input.file_bytes,
        out: Vec::new(),
        nested_errors: Vec::new(),
    })
}

fn first_line(prefix: &[u8]) -> String {
    let text = String::from_utf8_lossy(prefix);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

impl FileDecoder {
    /// The report so far; complete once the iterator has returned `None`.
    pub fn report(&self) -> FileReport {
        let mut r = self.report.clone();
        r.file_bytes = self.file_bytes.load(Ordering::Relaxed);
        if let Body::Json(j) = &self.body {
            r.decoded_bytes = j.split.bytes_consumed();
        }
        r
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&mut self, location: Location, kind: RecordErrorKind) -> Item {
        record_error(&self.path, &mut self.report, location, kind)
    }

    fn step_json(&mut self) -> Stepped {
        let FileDecoder {
            path,
            body,
            queue,
            forced,
            report,
            out,
            nested_errors,
            ..
        } = self;
        let forced = *forced;
        let Body::Json(json) = body else {
            return Stepped::Finished;
        };
        let JsonBody {
            split,
            current,
            fallback,
        } = &mut **json;
        let (bytes, span) = match split.next() {
            Step::End => {
                report.decoded_bytes = split.bytes_consumed();
                *body = Body::Done;
                return Stepped::Finished;
            }
            Step::Error(span, kind) => {
                report.records += 1;
                let loc = Location {
                    record: Some(report.records),
                    line: Some(span.line),
                    byte: Some(span.byte),
                };
                return Stepped::Item(record_error(path, report, loc, kind));
            }
            Step::Record(bytes, span) => (bytes, span),
        };
        let loc_at = |report: &FileReport, offset: Option<usize>| Location {
            record: Some(report.records),
            line: Some(offset.map_or(span.line, |o| line_of(bytes, span.line, o))),
            byte: Some(span.byte),
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                if span.tentative {
                    split.reject();
                    return Stepped::Again;
                }
                report.records += 1;
                let loc = loc_at(report, Some(e.valid_up_to()));
                let kind = RecordErrorKind::InvalidUtf8 {
                    offset: e.valid_up_to(),
                };
                return Stepped::Item(record_error(path, report, loc, kind));
            }
        };
        let kind = match *current {
            Some(k) => Ok(k),
            None => match probe(text) {
                Ok(Some(k)) => Ok(k),
                Ok(None) => match (forced, span.wrapper) {
                    (Some(Format::CloudTrail), _) | (None, Some("Records")) => Ok(RecordKind::CloudTrail),
                    (Some(Format::GuardDuty), _) => Ok(RecordKind::GuardDuty),
                    (Some(Format::Asff), _) => Ok(RecordKind::Asff),
                    _ => Err(RecordErrorKind::Unrecognized(
                        "a JSON object with none of the keys of CloudTrail, GuardDuty, ASFF or EventBridge".into(),
                    )),
                },
                // Not valid JSON: let the default decoder say where it breaks.
                Err(()) => Ok(RecordKind::CloudTrail),
            },
        };
        out.clear();
        nested_errors.clear();
        let mut result = match &kind {
            Ok(k) => decode_as(*k, text, forced, fallback, out, nested_errors).map(|()| *k),
            Err(why) => Err(Failure::from(why.clone())),
        };
        // A record the file's decoder rejects may be of another kind (mixed files).
        if let (Err(f), Ok(k)) = (&result, &kind) {
            if f.syntax_at.is_none() {
                if let Ok(Some(other)) = probe(text) {
                    if other != *k {
                        out.clear();
                        nested_errors.clear();
                        if decode_as(other, text, forced, fallback, out, nested_errors).is_ok() {
                            result = Ok(other);
                        }
                    }
                }
            }
        }
        let syntax_at = result.as_ref().err().and_then(|f| f.syntax_at);
        let loc = loc_at(report, syntax_at);
        match result {
            Err(_) if span.tentative => {
                split.reject();
                Stepped::Again
            }
            Err(f) => {
                report.records += 1;
                let loc = Location {
                    record: Some(report.records),
                    ..loc
                };
                if let Some(at) = f.syntax_at {
                    split.syntax_error_at(at);
                }
                Stepped::Item(record_error(path, report, loc, f.kind))
            }
            Ok(RecordKind::Digest) => {
                if span.tentative {
                    split.reject();
                } else {
                    report.layout = "cloudtrail-digest".into();
                    report.notes.push("CloudTrail digest file: skipped (it holds hashes of log files, not events)".into());
                    *current = Some(RecordKind::Digest);
                }
                Stepped::Again
            }
            Ok(k) => {
                *current = Some(k);
                if report.layout.is_empty() {
                    report.layout = match (k, span.wrapper) {
                        (RecordKind::CloudTrail, Some(_)) => "cloudtrail (Records file)",
                        (RecordKind::CloudTrail, None) => "cloudtrail (records)",
                        (RecordKind::EventBridge, _) => "eventbridge",
                        (RecordKind::GuardDuty, _) => "guardduty",
                        (RecordKind::Asff, _) => "asff",
                        (RecordKind::Digest, _) => "cloudtrail-digest",
                    }
                    .into();
                }
                report.records += 1;
                let loc = Location {
                    record: Some(report.records),
                    ..loc
                };
                for why in nested_errors.drain(..) {
                    queue.push_back(record_error(path, report, loc.clone(), why));
                }
                report.events += out.len() as u64;
                queue.extend(out.drain(..).map(Item::Event));
                Stepped::Again
            }
        }
    }

    fn step_flow(&mut self) -> Stepped {
        let Body::Flow(body) = &mut self.body else {
            return Stepped::Finished;
        };
        loop {
            body.line.clear();
            let limit = self.max_record as u64 + 1;
            let read = (&mut body.reader)
                .take(limit)
                .read_until(b'\n', &mut body.line);
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    body.line_no += 1;
                    let loc = Location {
                        record: Some(self.report.records + 1),
                        line: Some(body.line_no),
                        byte: None,
                    };
                    self.report.records += 1;
                    self.body = Body::Done;
                    return Stepped::Item(
                        self.error(loc, RecordErrorKind::Truncated(e.to_string())),
                    );
                }
            };
            if n == 0 {
                self.body = Body::Done;
                return Stepped::Finished;
            }
            self.report.decoded_bytes += n as u64;
            body.line_no += 1;
            let loc = Location {
                record: Some(self.report.records + 1),
                line: Some(body.line_no),
                byte: None,
            };
            if body.line.len() as u64 >= limit && body.line.last() != Some(&b'\n') {
                // Skip the rest of the over-long line without holding it.
                let mut skipped = 0u64;
                loop {
                    let buf = match body.reader.fill_buf() {
                        Ok(b) if !b.is_empty() => b,
                        _ => break,
                    };
                    match memchr::memchr(b'\n', buf) {
                        Some(i) => {
                            body.reader.consume(i + 1);
                            skipped += i as u64 + 1;
                            break;
                        }
                        None => {
                            let l = buf.len();
                            body.reader.consume(l);
                            skipped += l as u64;
                        }
                    }
                }
                self.report.decoded_bytes += skipped;
                self.report.records += 1;
                return Stepped::Item(self.error(
                    loc,
                    RecordErrorKind::TooLarge {
                        limit: self.max_record,
                    },
                ));
            }
            let raw = match std::str::from_utf8(&body.line) {
                Ok(s) => s.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    self.report.records += 1;
                    return Stepped::Item(self.error(
                        loc,
                        RecordErrorKind::InvalidUtf8 {
                            offset: e.valid_up_to(),
                        },
                    ));
                }
            };
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(header) = vpcflow::parse_header(line) {
                match header {
                    Ok(f) => {
                        if self.report.notes.is_empty() || body.format != f {
                            self.report.notes.push(format!(
                                "line {}: header names the {} format",
                                body.line_no,
                                f.name()
                            ));
                        }
                        self.report.layout = format!("vpcflow {}", f.name());
                        body.format = f;
                        continue;
                    }
                    Err(why) => {
                        self.report.records += 1;
                        return Stepped::Item(self.error(
                            loc,
                            RecordErrorKind::BadField {
                                field: "header".into(),
                                reason: why,
                            },
                        ));
                    }
                }
            }
            self.report.records += 1;
            return Stepped::Item(
                match vpcflow::decode_line(line, &body.format, body.fallback_region.as_deref()) {
                    Ok(e) => {
                        self.report.events += 1;
                        Item::Event(e)
                    }
                    Err(kind) => self.error(loc, kind),
                },
            );
        }
    }
}

fn record_error(
    path: &Arc<PathBuf>,
    report: &mut FileReport,
    location: Location,
    kind: RecordErrorKind,
) -> Item {
    report.errors += 1;
    Item::Error(RecordError {
        file: path.clone(),
        location,
        kind,
    })
}

/// The line of byte `offset` of a record that starts on line `first`.
fn line_of(bytes: &[u8], first: u64, offset: usize) -> u64 {
    first + memchr::memchr_iter(b'\n', &bytes[..offset.min(bytes.len())]).count() as u64
}

fn decode_as(
    kind: RecordKind,
    text: &str,
    forced: Option<Format>,
    fallback: &Fallback,
    out: &mut Vec<Event>,
    nested_errors: &mut Vec<RecordErrorKind>,
) -> Result<(), Failure> {
    if let (Some(forced), Some(f)) = (forced, kind.format()) {
        if forced != f {
            return Err(RecordErrorKind::WrongFormat {
                expected: forced.name(),
                found: kind.describe(),
            }
            .into());
        }
    }
    match kind {
        RecordKind::CloudTrail => out.push(crate::cloudtrail::decode(text, fallback)?),
        RecordKind::GuardDuty => out.push(crate::guardduty::decode(text)?),
        RecordKind::Asff => out.push(crate::asff::decode(text)?),
        RecordKind::EventBridge => crate::eventbridge::decode(text, forced, out, nested_errors)?,
        RecordKind::Digest => {
            let _: IgnoredAny = crate::de::parse(text)?;
        }
    }
    Ok(())
}

/// One step of decoding.
#[allow(clippy::large_enum_variant)]
enum Stepped {
    Item(Item),
    /// Nothing to hand out from this step (a skipped digest, a rejected candidate, a
    /// batch whose events were queued).
    Again,
    Finished,
}

impl Iterator for FileDecoder {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            let step = match self.body {
                Body::Json(_) => self.step_json(),
                Body::Flow(_) => self.step_flow(),
                Body::Done => Stepped::Finished,
            };
            match step {
                Stepped::Item(item) => return Some(item),
                Stepped::Again => continue,
                Stepped::Finished if self.queue.is_empty() => return None,
                Stepped::Finished => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys() {
        let (fb, kind) = s3_hints(Path::new(
            "b/AWSLogs/o-abc/123456789012/CloudTrail/eu-west-1/2024/01/02/123456789012_CloudTrail_eu-west-1_x.json.gz",
        ));
        assert_eq!(kind, Some("cloudtrail"));
        assert_eq!(fb.account.as_deref(), Some("123456789012"));
        assert_eq!(fb.region.as_deref(), Some("eu-west-1"));
        let (_, kind) = s3_hints(Path::new(
            "AWSLogs/1/CloudTrail-Digest/us-east-1/2020/x.json.gz",
        ));
        assert_eq!(kind, Some("digest"));
        assert_eq!(s3_hints(Path::new("/tmp/x.json")).1, None);
    }
}
