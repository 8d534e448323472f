//! Memory stays flat as input grows: a large single `{"Records":[...]}` file (the
//! worst case, one JSON document) decodes with the memory of a small one.
//! This file holds one test so that the process's peak RSS is its own.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use vigil_ingest::{DecodeOptions, Item};

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn write_records(path: &std::path::Path, n: usize) -> u64 {
    let mut e = GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        Compression::fast(),
    );
    let pad = "x".repeat(700);
    let mut bytes = 0u64;
    e.write_all(b"{\"Records\":[").unwrap();
    for i in 0..n {
        let rec = format!(
            r#"{}{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDA{i}","arn":"arn:aws:iam::123456789012:user/u{i}","accountId":"123456789012","userName":"u{i}"}},"eventTime":"2024-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2 {pad}","requestParameters":{{"bucketName":"b","key":"k{i}"}},"eventID":"id-{i}","eventType":"AwsApiCall","recipientAccountId":"123456789012"}}"#,
            if i == 0 { "" } else { "," }
        );
        bytes += rec.len() as u64;
        e.write_all(rec.as_bytes()).unwrap();
    }
    e.write_all(b"]}").unwrap();
    e.finish().unwrap();
    bytes
}

fn decode_count(path: &std::path::Path) -> (usize, usize) {
    let d = vigil_ingest::open(path, &DecodeOptions::default()).unwrap();
    let (mut events, mut errors) = (0, 0);
    for item in d {
        match item {
            Item::Event(_) => events += 1,
            Item::Error(_) => errors += 1,
        }
    }
    (events, errors)
}

#[test]
fn peak_memory_does_not_grow_with_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.json.gz");
    let large = dir.path().join("large.json.gz");
    write_records(&small, 1_000);
    let large_bytes = write_records(&large, 120_000);
    assert!(large_bytes > 100_000_000, "{large_bytes}");

    assert_eq!(decode_count(&small), (1_000, 0));
    let after_small = peak_rss_kb();
    assert_eq!(decode_count(&large), (120_000, 0));
    let after_large = peak_rss_kb();
    // 100+ MB of records in one JSON document: the peak may move by the decoder's
    // buffers and allocator noise, never by anything near the file's size.
    let grew_mb = (after_large.saturating_sub(after_small)) as f64 / 1024.0;
    assert!(
        grew_mb < 16.0,
        "peak RSS grew by {grew_mb:.1} MB decoding {} MB",
        large_bytes / 1_000_000
    );
}
