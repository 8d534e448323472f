//! `type = "demo"` (what `vigil serve --demo` adds): replays, once at start, an
//! attack told through the built-in rules' own test cases — a leaked CI key
//! probing and escalating, trails and GuardDuty turned off, GPU instances mining,
//! a port scan, a bucket opened and drained — moved in time so that it happens in
//! the last few minutes. It goes through the pipeline as any telemetry does, so a
//! new user sees findings, incidents and KPIs within seconds of starting.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use vigil_detect::testcases::{self, Case};
use vigil_model::Timestamp;

use crate::component::{config_of, BuildContext, Delivery, Inlet, Source, Telemetry};
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

pub struct Demo {
    name: String,
}

pub fn build(ctx: &BuildContext<'_>, table: toml::Table) -> Result<Box<dyn Source>, PipelineError> {
    let _: Config = config_of("source", &ctx.name, table)?;
    Ok(Box::new(Demo {
        name: ctx.name.clone(),
    }))
}

impl Source for Demo {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(
        self: Box<Self>,
        inlet: Inlet,
    ) -> Result<Option<std::thread::JoinHandle<()>>, PipelineError> {
        let t = std::thread::Builder::new()
            .name(format!("vigil-src-{}", self.name))
            .spawn(move || replay(&self.name, &inlet))
            .map_err(|e| PipelineError::Io("starting the demo thread".into(), e))?;
        Ok(Some(t))
    }
}

/// A chapter of the story: its name and telemetry.
pub struct Chapter {
    pub name: String,
    pub body: Vec<u8>,
}

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

/// A replay is a new occurrence of the story: its CloudTrail records get event
/// ids of their own (the original's and the replay's time), so that replaying it
/// again is not taken for a redelivery. (Findings and flow records are new by
/// their moved times already.)
fn renew_event_ids(v: &mut Value, end_ms: i64) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "eventID" => *s = format!("{s}-{end_ms}"),
                    other => renew_event_ids(other, end_ms),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| renew_event_ids(x, end_ms)),
        _ => {}
    }
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
            renew_event_ids(&mut v, end_ms);
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

/// The scenario as chapters, its last one ending `now_ms`.
pub fn scenario(now_ms: i64) -> Vec<Chapter> {
    let story = chapters();
    let n = story.len() as i64;
    story
        .into_iter()
        .enumerate()
        .map(|(k, (rule, case))| Chapter {
            name: format!("demo:{rule}"),
            body: moved(&case.input, now_ms - (n - 1 - k as i64) * STEP_S * 1000),
        })
        .collect()
}

/// Replays the scenario into the pipeline, a chapter at a time, each committed
/// before the next.
fn replay(name: &str, inlet: &Inlet) {
    let chapters = scenario(crate::now().as_millis());
    let n = chapters.len();
    let source: Arc<str> = Arc::from(name);
    let mut findings = 0;
    for c in chapters {
        if inlet.stopping() {
            return;
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let chapter = c.name.clone();
        let sent = inlet.deliver(Delivery {
            source: Arc::clone(&source),
            items: vec![Telemetry::Bytes {
                name: c.name,
                body: c.body,
            }],
            checkpoint: None,
            complete: None,
            ack: Some(Box::new(move |r| {
                reply.send(r).ok();
            })),
        });
        if sent.is_err() {
            return;
        }
        match answer.recv() {
            Ok(Ok(r)) => findings += r.new_findings,
            Ok(Err(e)) => tracing::warn!(chapter, error = %e, "demo chapter not stored"),
            Err(_) => return,
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    tracing::info!("demo: replayed {n} chapters of an attack, {findings} findings");
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
        // Replayed later, the same record has another id: not a redelivery.
        let again = scenario(now + 60_000);
        let later = String::from_utf8(again.last().unwrap().body.clone()).unwrap();
        let w: Value = serde_json::from_str(later.lines().last().unwrap()).unwrap();
        assert!(v["eventID"].is_string());
        assert_ne!(v["eventID"], w["eventID"]);
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
