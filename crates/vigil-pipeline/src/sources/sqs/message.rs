//! What an SQS message on Vigil's queue asks for. Four shapes arrive:
//! - an S3 event notification (`{"Records":[{"eventSource":"aws:s3",…}]}`),
//!   whose object keys are URL-encoded (`red flower.gz` is `red+flower.gz`);
//! - the same inside an SNS envelope (`{"Type":"Notification","Message":"…"}`),
//!   when the topic's subscription does not deliver raw messages;
//! - an EventBridge event: S3's `Object Created` (its key not encoded), or an
//!   event that is itself telemetry (`AWS API Call via CloudTrail` and the other
//!   `… via CloudTrail` types, `GuardDuty Finding`, `Security Hub Findings -
//!   Imported`), possibly also inside an SNS envelope;
//! - S3's `s3:TestEvent`, sent when notifications are configured: nothing to read.
//!
//! Reading a message never fails silently: a body that is none of these is an
//! error naming what is wrong, and the message is left for the queue's
//! dead-letter queue to take after its receive count.

use serde_json::Value;

/// An S3 object a notification points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as S3 knows it (decoded).
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

impl ObjectRef {
    /// The object's identity for the store's checkpoint: where it is, and which
    /// version of it (the version id where versioning is on, else the ETag).
    pub fn checkpoint(&self) -> (String, String) {
        let position = match (&self.version_id, &self.etag) {
            (Some(v), _) => format!("version={v}"),
            (None, Some(e)) => format!("etag={e}"),
            (None, None) => "unversioned".to_owned(),
        };
        (format!("s3://{}/{}", self.bucket, self.key), position)
    }

    /// Keys in a log bucket that hold no telemetry: CloudTrail's digest files,
    /// "folder" markers, and the checks services write to test they may write.
    pub fn holds_no_telemetry(&self) -> Option<&'static str> {
        if self.key.ends_with('/') {
            Some("a folder marker")
        } else if self.key.contains("/CloudTrail-Digest/") {
            Some("a CloudTrail digest file")
        } else if self.key.ends_with("ConfigWritabilityCheckFile") {
            Some("AWS Config's write check")
        } else {
            None
        }
    }
}

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// Nothing to read (why): delete it.
    Skip(&'static str),
    /// Read these objects.
    Objects(Vec<ObjectRef>),
    /// An EventBridge event that is telemetry itself: decode this JSON text.
    Event(String),
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

fn bad(why: impl Into<String>) -> MessageError {
    MessageError(why.into())
}

/// Reads a message body.
pub fn classify(body: &str) -> Result<Work, MessageError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| bad(format!("the body is not JSON ({e})")))?;
    classify_value(v, body, true)
}

fn classify_value(v: Value, text: &str, unwrap_sns: bool) -> Result<Work, MessageError> {
    let Value::Object(m) = &v else {
        return Err(bad("the body is not a JSON object"));
    };
    // SNS's envelope: the notification is the `Message` string.
    if m.get("Type").and_then(Value::as_str) == Some("Notification") {
        if !unwrap_sns {
            return Err(bad("an SNS envelope inside an SNS envelope"));
        }
        let inner = m
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("an SNS notification without a `Message` string"))?;
        let iv: Value = serde_json::from_str(inner)
            .map_err(|e| bad(format!("the SNS `Message` is not JSON ({e})")))?;
        return classify_value(iv, inner, false);
    }
    if m.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Work::Skip("S3's test event"));
    }
    if let Some(records) = m.get("Records") {
        return s3_notification(records);
    }
    if let Some(dt) = m.get("detail-type") {
        let dt = dt
            .as_str()
            .ok_or_else(|| bad("EventBridge `detail-type` is not a string"))?;
        if m.get("source").and_then(Value::as_str) == Some("aws.s3") {
            return match dt {
                "Object Created" => Ok(Work::Objects(vec![eventbridge_object(m)?])),
                _ => Ok(Work::Skip("an S3 event other than Object Created")),
            };
        }
        if vigil_ingest::eventbridge_source(dt).is_some() {
            return Ok(Work::Event(text.to_owned()));
        }
        return Ok(Work::Skip("an EventBridge event Vigil does not read"));
    }
    Err(bad(
        "neither an S3 notification, an SNS envelope, nor an EventBridge event",
    ))
}

fn s3_notification(records: &Value) -> Result<Work, MessageError> {
    let records = records
        .as_array()
        .ok_or_else(|| bad("`Records` is not an array"))?;
    let mut objects = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let field = |f: &str| format!("Records[{i}].{f}");
        let source = r.get("eventSource").and_then(Value::as_str);
        if source != Some("aws:s3") {
            return Err(bad(format!(
                "{} is {:?}, not aws:s3",
                field("eventSource"),
                source.unwrap_or("missing")
            )));
        }
        let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let s3 = r.get("s3").ok_or_else(|| bad(format!("{} is missing", field("s3"))))?;
        let bucket = str_at(s3, &["bucket", "name"])
            .ok_or_else(|| bad(format!("{} is missing", field("s3.bucket.name"))))?;
        let object = s3
            .get("object")
            .ok_or_else(|| bad(format!("{} is missing", field("s3.object"))))?;
        let raw_key = str_at(object, &["key"])
            .ok_or_else(|| bad(format!("{} is missing", field("s3.object.key"))))?;
        let key = url_decode(raw_key)
            .map_err(|why| bad(format!("{}: {why}", field("s3.object.key"))))?;
        objects.push(ObjectRef {
            bucket: bucket.to_owned(),
            key,
            size: object.get("size").and_then(Value::as_u64),
            etag: str_at(object, &["eTag"]).map(str::to_owned),
            version_id: str_at(object, &["versionId"]).map(str::to_owned),
        });
    }
    if objects.is_empty() {
        return Ok(Work::Skip("an S3 notification with no object created"));
    }
    Ok(Work::Objects(objects))
}

fn eventbridge_object(m: &serde_json::Map<String, Value>) -> Result<ObjectRef, MessageError> {
    let detail = m
        .get("detail")
        .ok_or_else(|| bad("Object Created without `detail`"))?;
    let bucket = str_at(detail, &["bucket", "name"])
        .ok_or_else(|| bad("detail.bucket.name is missing"))?;
    let object = detail
        .get("object")
        .ok_or_else(|| bad("detail.object is missing"))?;
    // EventBridge gives the key as it is, not URL-encoded.
    let key = str_at(object, &["key"]).ok_or_else(|| bad("detail.object.key is missing"))?;
    Ok(ObjectRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: object.get("size").and_then(Value::as_u64),
        etag: str_at(object, &["etag"])
            .or_else(|| str_at(object, &["eTag"]))
            .map(str::to_owned),
        version_id: str_at(object, &["version-id"]).map(str::to_owned),
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for p in path {
        at = at.get(p)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

/// Decodes an S3 notification's key: `+` is a space, `%xx` a byte; the result
/// must be UTF-8 (as every S3 key is).
pub fn url_decode(s: &str) -> Result<String, &'static str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err("a `%` not followed by two hex digits");
                };
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "decodes to bytes that are not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_note(key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "logs"}, "object": {"key": key, "size": 12, "eTag": "abc"}}
        }]})
        .to_string()
    }

    #[test]
    fn keys_are_url_decoded() {
        let w = classify(&s3_note("AWSLogs/1/CloudTrail/us-east-1/a+b%2Bc%20d.json.gz")).unwrap();
        let Work::Objects(o) = w else { panic!("{w:?}") };
        assert_eq!(o[0].key, "AWSLogs/1/CloudTrail/us-east-1/a b+c d.json.gz");
        assert_eq!(o[0].bucket, "logs");
        assert_eq!(o[0].size, Some(12));
        assert_eq!(o[0].checkpoint().1, "etag=abc");
    }

    #[test]
    fn bad_escapes_are_named() {
        for key in ["a%2", "a%zz", "a%ff"] {
            let e = classify(&s3_note(key)).unwrap_err();
            assert!(e.0.contains("Records[0].s3.object.key"), "{e}");
        }
    }

    #[test]
    fn sns_envelope_is_opened_once() {
        let env = serde_json::json!({
            "Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": s3_note("k+1")
        })
        .to_string();
        let Work::Objects(o) = classify(&env).unwrap() else { panic!() };
        assert_eq!(o[0].key, "k 1");
        let twice = serde_json::json!({"Type": "Notification", "Message": env}).to_string();
        assert!(classify(&twice).is_err());
    }

    #[test]
    fn test_event_and_other_events_are_skipped() {
        let t = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(classify(t).unwrap(), Work::Skip("S3's test event"));
        let removed = s3_note("k").replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(matches!(classify(&removed).unwrap(), Work::Skip(_)));
        let ec2 = r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#;
        assert!(matches!(classify(ec2).unwrap(), Work::Skip(_)));
    }

    #[test]
    fn eventbridge_object_created_key_is_raw() {
        let e = serde_json::json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "account": "1", "time": 1767225600, "region": "us-east-1",
            "detail": {"bucket": {"name": "logs"},
                       "object": {"key": "a+b c", "size": 5, "etag": "e", "version-id": "v1"}}
        })
        .to_string();
        let Work::Objects(o) = classify(&e).unwrap() else { panic!() };
        assert_eq!(o[0].key, "a+b c");
        assert_eq!(o[0].checkpoint(), ("s3://logs/a+b c".into(), "version=v1".into()));
    }

    #[test]
    fn telemetry_events_are_read_as_they_are() {
        let e = r#"{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventName":"CreateUser"}}"#;
        assert_eq!(classify(e).unwrap(), Work::Event(e.to_owned()));
        let gd = r#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{}}"#;
        assert!(matches!(classify(gd).unwrap(), Work::Event(_)));
    }

    #[test]
    fn what_is_not_a_notification_is_an_error() {
        for body in ["", "[]", "{}", "not json", r#"{"Records":[{"eventSource":"aws:ec2"}]}"#, r#"{"Records":{}}"#] {
            assert!(classify(body).is_err(), "{body}");
        }
    }

    #[test]
    fn log_bucket_housekeeping_is_not_telemetry() {
        let o = |key: &str| ObjectRef {
            bucket: "b".into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
        };
        assert!(o("AWSLogs/1/CloudTrail-Digest/us-east-1/x.json.gz").holds_no_telemetry().is_some());
        assert!(o("AWSLogs/1/").holds_no_telemetry().is_some());
        assert!(o("AWSLogs/1/CloudTrail/us-east-1/x.json.gz").holds_no_telemetry().is_none());
    }
}
