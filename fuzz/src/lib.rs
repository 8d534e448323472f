//! What every fuzz target does with its input: decode it to the end (bounded, so a
//! pathological input cannot hang the fuzzer) and touch every item.

use vigil_ingest::DecodeOptions;

pub fn drive(data: &[u8], opts: &DecodeOptions) {
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(decoder) = vigil_ingest::open_reader(std::path::Path::new("fuzz-input"), reader, opts)
    {
        for item in decoder.take(1_000_000) {
            std::hint::black_box(&item);
        }
    }
}

/// A rule file (and the same text as a test-case file) through the detection stack:
/// load and compile it, then run whatever compiled (rules, correlations, filters) over
/// a few fixed events.
pub fn drive_rules(text: &str) {
    use std::path::Path;
    use vigil_detect::sigma::{load_str, CompileOptions, Loaded};
    let _ = vigil_detect::testcases::parse(text, Path::new("fuzz.tests.yml"));
    let mut loaded = Loaded::default();
    load_str(
        text,
        Path::new("fuzz.yml"),
        &CompileOptions::default(),
        &mut loaded,
    );
    loaded.apply_filters();
    let config = vigil_detect::DetectorConfig {
        builtin: false,
        ..Default::default()
    };
    let (mut detector, _) = vigil_detect::Detector::new(loaded, &config);
    let mut out = Vec::new();
    for (name, sample) in SAMPLES {
        let reader = Box::new(std::io::Cursor::new(sample.as_bytes().to_vec()));
        let Ok(decoder) =
            vigil_ingest::open_reader(Path::new(name), reader, &DecodeOptions::default())
        else {
            continue;
        };
        for item in decoder.take(8) {
            if let vigil_ingest::Item::Event(e) = item {
                out.clear();
                // Twice, so correlations see a repeat.
                detector.observe(&e, &mut out);
                detector.observe(&e, &mut out);
                for a in &out {
                    std::hint::black_box(a);
                }
            }
        }
    }
}

const SAMPLES: [(&str, &str); 2] = [
    (
        "ct.json",
        r#"{"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.0","requestParameters":{"bucketName":"b","bucketPolicy":{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}},"eventType":"AwsApiCall","recipientAccountId":"111122223333","eventID":"e1","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/r/s","accountId":"111122223333","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/r"}}}}"#,
    ),
    (
        "flows.log",
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n2 111122223333 eni-0a1 10.0.1.25 198.51.100.77 49152 3333 6 120 48000 1714557600 1714557660 ACCEPT OK\n",
    ),
];

/// Any text as a record read member by member, the way rules read CloudTrail
/// records: never a panic, and for a JSON object every member reads as the full
/// parse has it.
pub fn drive_members(text: &str) {
    use vigil_detect::engine::JsonMembers;
    use vigil_detect::sigma::value::Members;
    let walked = JsonMembers::walk(text);
    if let Some(m) = &walked {
        for k in ["requestParameters", "a", "a.b", ""] {
            std::hint::black_box(m.member(k));
        }
    }
    if let Ok(serde_json::Value::Object(full)) = serde_json::from_str::<serde_json::Value>(text) {
        let m = walked.unwrap_or_else(|| panic!("an object not walked: {text}"));
        for (k, v) in &full {
            assert_eq!(m.member(k), Some(v), "{k} in {text}");
        }
        assert_eq!(m.member("\u{1}absent"), full.get("\u{1}absent"));
        // A string read straight from the text is the one a lookup finds.
        let full = serde_json::Value::Object(full);
        assert!(
            vigil_detect::engine::strings_agree(&m, &full),
            "a string read from the text differs in {text}"
        );
    }
}

/// The first line as a field's value (under `contains`, `startswith` and as a
/// wildcard pattern), the rest as a record's text: whenever the field matches the
/// parsed record, the text prefilter lets it through (a record without `\u`
/// escapes holds the value's piece; one with them is never turned away).
pub fn drive_prefilter(text: &str) {
    use std::collections::HashMap;
    use vigil_detect::sigma::value::{compile_field, raw_holds_escapes};
    use yaml_rust2::Yaml;
    let (value, record) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(record) else {
        return;
    };
    for key in ["f|contains", "f|startswith", "f", "f.g|endswith"] {
        let Ok(f) = compile_field(key, &[Yaml::String(value.into())], &HashMap::new()) else {
            continue;
        };
        let (Some(needles), true) = (&f.prefilter, f.matches(&doc)) else {
            continue;
        };
        let raw = record.as_bytes();
        assert!(
            needles.iter().any(|n| n.found_in(raw)) || raw_holds_escapes(raw),
            "{key}: {value:?} matches {record} but its piece is not found"
        );
    }
}
