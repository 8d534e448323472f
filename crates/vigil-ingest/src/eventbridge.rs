//! EventBridge events that carry telemetry: CloudTrail records (`AWS API Call via
//! CloudTrail` and the other `… via CloudTrail` types), `GuardDuty Finding`, and
//! `Security Hub Findings - Imported` (several ASFF findings in `detail.findings`).
//!
//! The event's `detail` becomes the raw record, so a rule on `eventName` matches a
//! CloudTrail record whether it came from a log file or from EventBridge.

use serde::Deserialize;
use serde_json::value::RawValue;
use vigil_model::Event;

use crate::cloudtrail::Fallback;
use crate::de::{own, parse, Failure, Str};
use crate::error::RecordErrorKind;
use crate::Format;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, rename = "detail-type")]
    detail_type: Str<'a>,
    #[serde(borrow, default)]
    account: Str<'a>,
    #[serde(borrow, default)]
    region: Str<'a>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FindingsDetail<'a> {
    #[serde(borrow, default)]
    findings: Vec<&'a RawValue>,
}

/// Which source an EventBridge `detail-type` carries.
pub(crate) fn source_of(detail_type: &str) -> Option<Format> {
    if detail_type.ends_with("via CloudTrail") {
        Some(Format::CloudTrail)
    } else if detail_type == "GuardDuty Finding" {
        Some(Format::GuardDuty)
    } else if detail_type.starts_with("Security Hub Findings") {
        Some(Format::Asff)
    } else {
        None
    }
}

/// Decodes one envelope into its events (one, or one per ASFF finding). A bad finding
/// inside a Security Hub batch is reported by its index; the others still come out.
pub(crate) fn decode(
    text: &str,
    forced: Option<Format>,
    out: &mut Vec<Event>,
    errors: &mut Vec<RecordErrorKind>,
) -> Result<(), Failure> {
    let env: Envelope<'_> = parse(text)?;
    let detail_type = env
        .detail_type
        .as_deref()
        .ok_or(RecordErrorKind::MissingField {
            field: "detail-type",
        })?;
    let format = source_of(detail_type).ok_or_else(|| {
        RecordErrorKind::Unrecognized(format!(
            "EventBridge detail-type {detail_type:?} does not carry telemetry Vigil reads"
        ))
    })?;
    if let Some(f) = forced {
        if f != format {
            return Err(RecordErrorKind::WrongFormat {
                expected: f.name(),
                found: format.name(),
            }
            .into());
        }
    }
    let detail = env
        .detail
        .ok_or(RecordErrorKind::MissingField { field: "detail" })?
        .get();
    let nested = |e: Failure| match e.kind {
        RecordErrorKind::MissingField { field } => Failure::from(RecordErrorKind::BadField {
            field: format!("detail.{field}"),
            reason: "missing".into(),
        }),
        RecordErrorKind::BadField { field, reason } => Failure::from(RecordErrorKind::BadField {
            field: format!("detail.{field}"),
            reason,
        }),
        kind => Failure::from(kind),
    };
    match format {
        Format::CloudTrail => {
            let fallback = Fallback {
                account: own(&env.account),
                region: own(&env.region),
            };
            out.push(crate::cloudtrail::decode(detail, &fallback).map_err(nested)?);
        }
        Format::GuardDuty => out.push(crate::guardduty::decode(detail).map_err(nested)?),
        _ => {
            let batch: FindingsDetail<'_> = parse(detail).map_err(nested)?;
            for (i, f) in batch.findings.iter().enumerate() {
                match crate::asff::decode(f.get()) {
                    Ok(mut e) => {
                        if e.account.is_none() {
                            e.account = own(&env.account);
                        }
                        out.push(e);
                    }
                    Err(e) => errors.push(match e.kind {
                        RecordErrorKind::MissingField { field } => RecordErrorKind::BadField {
                            field: format!("detail.findings[{i}].{field}"),
                            reason: "missing".into(),
                        },
                        RecordErrorKind::BadField { field, reason } => RecordErrorKind::BadField {
                            field: format!("detail.findings[{i}].{field}"),
                            reason,
                        },
                        other => other,
                    }),
                }
            }
        }
    }
    Ok(())
}
