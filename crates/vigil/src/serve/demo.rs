//! `vigil serve --demo`: replays an attack told through the built-in rules' own
//! test cases — a leaked CI key probing and escalating, trails and GuardDuty turned
//! off, GPU instances mining, a port scan, a bucket opened and drained — moved in
//! time so that it happens in the last few minutes. It goes through the same
//! pipeline as telemetry posted over HTTP, so a new user sees findings, incidents
//! and KPIs within seconds of starting.

use serde_json::Value;
use vigil_detect::testcases::{self, Case};
use vigil_model::Timestamp;
use vigil_server::{Ingest, IngestBatch};

/// The story, in order: each rule's first must-match case.
const STORY: &[&str] = &[
    "vigil_scanner_user_agent",
    "vigil_access_denied_burst",
    "vigil_iam_new_user_admin",
    "vigil_cloudtrail_tampering",
    "vigil_guardduty_disabled",
    "vigil_ec2_gpu_large_instances",
    "vigil_flow_mining_pool_port",
    "vigil_guardduty_cryptocurrency",
    "vigil_flow_port_scan",
    "vigil_s3_public_access_block_removed",
    "vigil_s3_bulk_download",
];

/// Seconds between one chapter's last event and the next's.
const STEP_S: i64 = 20;

/// Keys whose string values are times, at any depth (CloudTrail, GuardDuty, ASFF
/// and EventBridge envelopes).
const TIME_KEYS: &[&str] = &[
    "eventTime",
    "time",
    "updatedAt",
    "createdAt",
    "UpdatedAt",
    "CreatedAt",
    "FirstObservedAt",
    "LastObservedAt",
    "eventFirstSeen",
    "eventLastSeen",
];

fn chapters() -> Vec<(String, Case)> {
    let mut out = Vec::new();
    for (name, text) in vigil_detect::builtin::TESTS {
        let Ok(files) = testcases::parse(text, std::path::Path::new(name)) else {
            continue;
        };
        for f in files {
            if let Some(c) = f.cases.into_iter().find(|c| c.expect_match) {
                out.push((f.rule, c));
            }
        }
    }
    let mut story: Vec<(String, Case)> = Vec::new();
    for rule in STORY {
        if let Some(i) = out.iter().position(|(r, _)| r == rule) {
            story.push(out.swap_remove(i));
        }
    }
    story
}

/// Visits every time in a JSON record, at any depth.
fn each_time(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if TIME_KEYS.contains(&k.as_str()) => f(s),
                    other => each_time(other, f),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| each_time(x, f)),
        _ => {}
    }
}

/// Flow-log lines in the default layout carry `start` and `end` (epoch seconds)
/// as their 11th and 12th fields.
fn flow_times(line: &str) -> Option<(Vec<&str>, i64, i64)> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.len() < 14 || fields[0] != "2" {
        return None;
    }
    Some((
        fields.clone(),
        fields[10].parse().ok()?,
        fields[11].parse().ok()?,
    ))
}

/// The case's input moved so that its last event is at `end` (ms).
fn moved(input: &[u8], end_ms: i64) -> Vec<u8> {
    let text = String::from_utf8_lossy(input);
    let mut records: Vec<Value> = Vec::new();
    let mut latest = i64::MIN;
    let json = text.trim_start().starts_with('{');
    if json {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(mut v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            each_time(&mut v, &mut |s| {
                if let Ok(t) = Timestamp::parse(s) {
                    latest = latest.max(t.as_millis());
                }
            });
            records.push(v);
        }
        let by = end_ms - latest;
        let mut out = Vec::new();
        for mut v in records {
            each_time(&mut v, &mut |s| {
                if let Ok(t) = Timestamp::parse(s) {
                    *s = Timestamp::from_millis(t.as_millis() + by).to_string();
                }
            });
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'\n');
        }
        return out;
    }
    for line in text.lines() {
        if let Some((_, _, end)) = flow_times(line) {
            latest = latest.max(end * 1000);
        }
    }
    let by_s = (end_ms - latest) / 1000;
    let mut out = Vec::new();
    for line in text.lines() {
        match flow_times(line) {
            Some((mut fields, start, end)) => {
                let (s, e) = ((start + by_s).to_string(), (end + by_s).to_string());
                fields[10] = &s;
                fields[11] = &e;
                out.extend_from_slice(fields.join(" ").as_bytes());
            }
            None => out.extend_from_slice(line.as_bytes()),
        }
        out.push(b'\n');
    }
    out
}

/// The scenario as batches, its last chapter ending `now_ms`.
pub fn scenario(now_ms: i64) -> Vec<IngestBatch> {
    let story = chapters();
    let n = story.len() as i64;
    story
        .into_iter()
        .enumerate()
        .map(|(k, (rule, case))| IngestBatch {
            name: format!("demo:{rule}"),
            body: moved(&case.input, now_ms - (n - 1 - k as i64) * STEP_S * 1000),
        })
        .collect()
}

/// Replays the scenario into the pipeline, a chapter at a time.
pub fn replay(pipeline: &dyn Ingest) {
    let batches = scenario(vigil_server::now().as_millis());
    let chapters = batches.len();
    let mut findings = 0;
    for b in batches {
        let name = b.name.clone();
        match pipeline.submit(vec![b]) {
            Ok(r) => findings += r.new_findings,
            Err(e) => tracing::warn!("demo: {name}: {e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    tracing::info!("demo: replayed {chapters} chapters of an attack, {findings} findings");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chapter_of_the_story_exists_and_ends_on_time() {
        let now = 1_800_000_000_000;
        let batches = scenario(now);
        assert_eq!(
            batches.len(),
            STORY.len(),
            "a STORY rule lost its match case"
        );
        let last = String::from_utf8(batches.last().unwrap().body.clone()).unwrap();
        let v: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(v["eventTime"], Timestamp::from_millis(now).to_string());
        let flows = batches
            .iter()
            .find(|b| b.name == "demo:vigil_flow_port_scan")
            .unwrap();
        let text = String::from_utf8(flows.body.clone()).unwrap();
        let (_, _, end) = flow_times(text.lines().last().unwrap()).unwrap();
        let expected_end = now / 1000 - 2 * STEP_S;
        assert_eq!(end, expected_end);
    }
}
