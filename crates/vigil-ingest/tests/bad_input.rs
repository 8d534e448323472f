//! Damaged input: every kind of damage gets an error naming the file, the record or
//! line, and the reason, and every good record around it still comes out.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use vigil_ingest::{DecodeOptions, OpenError, RecordErrorKind};

fn record(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDA{i}","arn":"arn:aws:iam::123456789012:user/u{i}","accountId":"123456789012","userName":"u{i}"}},"eventTime":"2024-01-01T00:00:{:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.{i}","userAgent":"aws-cli/2","eventID":"id-{i}","eventType":"AwsApiCall","recipientAccountId":"123456789012"}}"#,
        i % 60
    )
}

fn records_file(records: &[String]) -> String {
    format!("{{\"Records\":[{}]}}", records.join(","))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn ids(d: &common::Decoded) -> Vec<String> {
    d.events.iter().map(|e| e.id.clone()).collect()
}

#[test]
fn truncated_gzip_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<String> = (0..2000).map(record).collect();
    let gz = gzip(records_file(&recs).as_bytes());
    let path = write(dir.path(), "cut.json.gz", &gz[..gz.len() * 2 / 3]);
    let d = common::decode(&path, &DecodeOptions::default());
    assert!(
        d.events.len() > 1000 && d.events.len() < 2000,
        "{} events",
        d.events.len()
    );
    // Every event that came out is a whole, in-order record.
    assert!(ids(&d)
        .iter()
        .enumerate()
        .all(|(i, id)| *id == format!("id-{i}")));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    let e = &d.errors[0];
    assert!(matches!(e.kind, RecordErrorKind::Truncated(_)), "{e}");
    assert_eq!(e.location.record, Some(d.events.len() as u64 + 1));
    let text = e.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("the input ends inside a record"), "{text}");
}

#[test]
fn truncated_gzip_flow_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n");
    for i in 0..5000 {
        text.push_str(&format!("2 123456789012 eni-1 10.0.0.{} 10.0.1.1 {} 443 6 10 840 1700000000 1700000060 ACCEPT OK\n", i % 250, 1024 + i % 5000));
    }
    let gz = gzip(text.as_bytes());
    let path = write(dir.path(), "flows.log.gz", &gz[..gz.len() / 2]);
    let d = common::decode(&path, &DecodeOptions::default());
    assert!(
        d.events.len() > 1000 && d.events.len() < 5000,
        "{}",
        d.events.len()
    );
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(matches!(d.errors[0].kind, RecordErrorKind::Truncated(_)));
    assert!(d.errors[0].location.line.is_some());
}

#[test]
fn invalid_json_in_the_middle_of_a_records_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs: Vec<String> = (0..10).map(record).collect();
    recs[4] = recs[4].replace(r#""eventName":"GetObject""#, r#""eventName":GetObject@@"#);
    let path = write(dir.path(), "bad.json", records_file(&recs).as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(d.events.len(), 9);
    assert!(!ids(&d).contains(&"id-4".to_string()));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    let e = &d.errors[0];
    assert_eq!(e.location.record, Some(5));
    assert!(matches!(e.kind, RecordErrorKind::InvalidJson(_)), "{e}");
    assert!(e.to_string().contains("record 5, line 1, byte"), "{e}");
}

#[test]
fn missing_brace_in_json_lines_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..6).map(record).collect();
    lines[2].pop(); // drop the closing brace
    let path = write(dir.path(), "lines.json", lines.join("\n").as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(ids(&d), ["id-0", "id-1", "id-3", "id-4", "id-5"]);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].location.record, Some(3));
    // The error points at line 4, where the next record begins inside the broken one.
    assert_eq!(d.errors[0].location.line, Some(4));
    assert!(
        matches!(d.errors[0].kind, RecordErrorKind::InvalidJson(_)),
        "{}",
        d.errors[0]
    );
}

#[test]
fn missing_brace_inside_a_records_array() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs: Vec<String> = (0..8).map(record).collect();
    recs[3].pop();
    let path = write(dir.path(), "arr.json", records_file(&recs).as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(
        ids(&d),
        ["id-0", "id-1", "id-2", "id-4", "id-5", "id-6", "id-7"]
    );
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
}

#[test]
fn invalid_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..4).map(record).collect();
    let mut bytes = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let mut b = l.clone().into_bytes();
        if i == 1 {
            let at = l.find("aws-cli").unwrap();
            b[at] = 0xff;
            b[at + 1] = 0xfe;
        }
        bytes.extend(b);
        bytes.push(b'\n');
    }
    let path = write(dir.path(), "utf8.json", &bytes);
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(ids(&d), ["id-0", "id-2", "id-3"]);
    assert_eq!(d.errors.len(), 1);
    let e = &d.errors[0];
    assert!(matches!(e.kind, RecordErrorKind::InvalidUtf8 { .. }), "{e}");
    assert_eq!((e.location.record, e.location.line), (Some(2), Some(2)));
    assert!(e.to_string().contains("invalid UTF-8 at byte"), "{e}");
}

#[test]
fn record_missing_a_required_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs: Vec<String> = (0..5).map(record).collect();
    recs[2] = recs[2].replace(r#""eventTime":"2024-01-01T00:00:02Z","#, "");
    let path = write(dir.path(), "missing.json", records_file(&recs).as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(d.events.len(), 4);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(
        d.errors[0].kind,
        RecordErrorKind::MissingField { field: "eventTime" }
    );
    assert_eq!(d.errors[0].location.record, Some(3));
    let text = d.errors[0].to_string();
    assert!(
        text.contains(": record 3, line 1, byte ")
            && text.ends_with(": missing required field `eventTime`"),
        "{text}"
    );
}

#[test]
fn wrong_field_type_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs: Vec<String> = (0..3).map(record).collect();
    recs[1] = recs[1].replace(r#""userName":"u1""#, r#""userName":{"oops":true}"#);
    let path = write(dir.path(), "type.json", recs.join("\n").as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(d.events.len(), 2);
    match &d.errors[0].kind {
        RecordErrorKind::BadField { field, .. } => assert_eq!(field, "userIdentity.userName"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flow_line_with_the_wrong_field_count() {
    let dir = tempfile::tempdir().unwrap();
    let text = "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1700000000 1700000060 ACCEPT OK\n\
                2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1700000000 ACCEPT OK\n\
                2 123456789010 eni-1 10.0.0.3 10.0.0.2 443 49152 6 10 840 1700000000 1700000060 REJECT OK\n";
    let path = write(dir.path(), "flows.log", text.as_bytes());
    let d = common::decode(&path, &DecodeOptions::default());
    assert_eq!(d.events.len(), 2);
    assert_eq!(d.errors.len(), 1);
    let e = &d.errors[0];
    assert_eq!((e.location.record, e.location.line), (Some(2), Some(2)));
    assert_eq!(
        e.kind.to_string(),
        "expected 14 fields (the v2 format) but the line has 13"
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.json", b"");
    let err = vigil_ingest::open(&path, &DecodeOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::Empty { .. }));
    assert_eq!(
        err.to_string(),
        format!("{}: the file is empty", path.display())
    );
    // Whitespace only, and an empty gzip member, are empty too.
    let ws = write(dir.path(), "ws.json", b" \n\n ");
    assert!(matches!(
        vigil_ingest::open(&ws, &DecodeOptions::default()),
        Err(OpenError::Empty { .. })
    ));
    let gz = write(dir.path(), "empty.json.gz", &gzip(b""));
    assert!(matches!(
        vigil_ingest::open(&gz, &DecodeOptions::default()),
        Err(OpenError::Empty { .. })
    ));
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let path = write(dir.path(), "blob.bin", &bytes);
    let err = vigil_ingest::open(&path, &DecodeOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::Binary { .. }), "{err}");
    assert!(err.to_string().contains("binary data"), "{err}");
    let zst = write(dir.path(), "x.zst", &[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
    let err = vigil_ingest::open(&zst, &DecodeOptions::default())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("zstd compression is not supported"),
        "{err}"
    );
}

#[test]
fn a_json_file_of_no_known_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "package.json",
        br#"{"name":"x","version":"1.0.0"}"#,
    );
    let d = common::decode(&path, &DecodeOptions::default());
    assert!(d.events.is_empty());
    assert_eq!(d.errors.len(), 1);
    assert!(matches!(d.errors[0].kind, RecordErrorKind::Unrecognized(_)));
}

#[test]
fn oversized_record_is_skipped_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let big = record(1).replace("aws-cli/2", &"A".repeat(200_000));
    let text = [record(0), big, record(2)].join("\n");
    let path = write(dir.path(), "big.json", text.as_bytes());
    let opts = DecodeOptions {
        max_record_bytes: 64 * 1024,
        ..DecodeOptions::default()
    };
    let d = common::decode(&path, &opts);
    assert_eq!(ids(&d), ["id-0", "id-2"]);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(
        d.errors[0].kind,
        RecordErrorKind::TooLarge { limit: 64 * 1024 }
    );
}

#[test]
fn forced_format_rejects_other_kinds() {
    let guardduty = common::sample("guardduty/findings.jsonl");
    let opts = DecodeOptions {
        format: Some(vigil_ingest::Format::CloudTrail),
        ..DecodeOptions::default()
    };
    let d = common::decode(&guardduty, &opts);
    assert!(d.events.is_empty());
    assert_eq!(d.errors.len(), 3);
    assert!(
        d.errors[0]
            .to_string()
            .contains("record is a GuardDuty finding, not cloudtrail"),
        "{}",
        d.errors[0]
    );
}
