//! Test cases kept with rules (`*.tests.yml`), so anyone can unit-test a rule:
//! events that must make it fire and near-misses that must not.
//!
//! ```yaml
//! rule: vigil_root_account_use      # the rule's id or name
//! cases:
//!   - name: root signs in to the console
//!     expect: match                 # or no-match
//!     events:
//!       - {eventName: ConsoleLogin, userIdentity: {type: Root}, ...}   # a record
//!       - "2 123456789012 eni-0a1b 10.0.0.5 ..."                       # a flow line
//!       - repeat: 30                # the same event 30 times,
//!         every: 10s                # each 10 s later (eventTime, ${t}),
//!         event: {...}              # with ${i} and ${i+N} numbered
//! ```
//! Optional per case: `source` (cloudtrail, vpcflow, guardduty, asff) when the
//! events should not be recognized automatically, `flow_format` for header-less flow
//! lines, and `count` (how many detections the rule must raise).
//! Each case runs on a fresh detector (empty baselines and correlation state) with
//! every rule loaded, so correlations see their base rules.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil_model::{Event, Timestamp};
use yaml_rust2::{Yaml, YamlLoader};

use crate::detector::{load_builtin, Detector, DetectorConfig};
use crate::sigma::rule::str_of;
use crate::sigma::{load_str, CompileOptions, Loaded};

/// The base of `${t}` in flow lines (epoch seconds): 2024-11-07T17:20:00Z.
pub const FLOW_BASE_SECS: i64 = 1_731_000_000;

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub expect_match: bool,
    pub count: Option<u64>,
    pub source: Option<String>,
    pub flow_format: Option<String>,
    /// The events as one input document: JSON lines, or flow-log lines.
    pub input: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct TestFile {
    pub origin: PathBuf,
    pub rule: String,
    pub cases: Vec<Case>,
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub origin: PathBuf,
    pub rule: String,
    pub case: String,
    pub passed: bool,
    pub message: String,
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(r.clone()), Value::Number),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .filter_map(|(k, v)| Some((str_of(k)?, yaml_to_json(v))))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Replaces `${i}`, `${i+N}` and `${t}` in every string.
fn substitute(v: &mut Value, i: i64, t: i64) {
    match v {
        Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let Some(end) = rest[at..].find('}') else {
                    out.push_str(&rest[at..]);
                    rest = "";
                    break;
                };
                let inner = &rest[at + 2..at + end];
                let val = match inner {
                    "i" => Some(i),
                    "t" => Some(t),
                    _ => inner
                        .strip_prefix("i+")
                        .and_then(|n| n.trim().parse::<i64>().ok())
                        .map(|n| i + n),
                };
                match val {
                    Some(x) => out.push_str(&x.to_string()),
                    None => out.push_str(&rest[at..at + end + 1]),
                }
                rest = &rest[at + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, i, t)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, i, t)),
        _ => {}
    }
}

/// Moves a record's time `by_ms` later (CloudTrail `eventTime`, finding `updatedAt`).
fn shift_time(v: &mut Value, by_ms: i64) {
    if by_ms == 0 {
        return;
    }
    let Value::Object(m) = v else { return };
    for key in ["eventTime", "updatedAt", "UpdatedAt", "time"] {
        if let Some(Value::String(s)) = m.get(key) {
            if let Ok(t) = Timestamp::parse(s) {
                let moved = Timestamp::from_millis(t.as_millis() + by_ms).to_string();
                m.insert(key.into(), Value::String(moved));
            }
        }
    }
}

fn push_line(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
    out.push(b'\n');
}

fn events_of(items: &[Yaml]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        if !item["repeat"].is_badvalue() {
            let times = item["repeat"]
                .as_i64()
                .filter(|t| (1..=100_000).contains(t))
                .ok_or_else(|| format!("event {}: `repeat` must be 1…100000", n + 1))?;
            let every_ms = match str_of(&item["every"]) {
                None => 0,
                Some(s) => crate::sigma::correlation::parse_timespan(&s)
                    .ok_or_else(|| format!("event {}: `every: {s}` is not a span", n + 1))?,
            };
            let base = yaml_to_json(&item["event"]);
            if base.is_null() {
                return Err(format!("event {}: `repeat` needs an `event`", n + 1));
            }
            for i in 0..times {
                let mut v = base.clone();
                substitute(&mut v, i, FLOW_BASE_SECS + i * every_ms / 1000);
                shift_time(&mut v, i * every_ms);
                push_line(&mut out, &v);
            }
        } else {
            let mut v = yaml_to_json(item);
            substitute(&mut v, 0, FLOW_BASE_SECS);
            push_line(&mut out, &v);
        }
    }
    Ok(out)
}

/// Reads a test file; mistakes are errors naming the file and case.
pub fn parse(text: &str, origin: &Path) -> Result<Vec<TestFile>, String> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| format!("{}: not YAML: {e}", origin.display()))?;
    let mut out = Vec::new();
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        let rule = str_of(&doc["rule"]).ok_or_else(|| {
            format!(
                "{}: missing `rule` (the rule's id or name)",
                origin.display()
            )
        })?;
        let Yaml::Array(cases) = &doc["cases"] else {
            return Err(format!("{}: `cases` must be a list", origin.display()));
        };
        let mut parsed = Vec::new();
        for (n, c) in cases.iter().enumerate() {
            let name = str_of(&c["name"]).unwrap_or_else(|| format!("case {}", n + 1));
            let bad = |m: String| format!("{}: {rule}: {name}: {m}", origin.display());
            let expect_match = match str_of(&c["expect"]).as_deref() {
                Some("match") => true,
                Some("no-match" | "no_match" | "nomatch") => false,
                other => return Err(bad(format!("`expect` is {other:?}, not match or no-match"))),
            };
            let Yaml::Array(items) = &c["events"] else {
                return Err(bad("`events` must be a list".into()));
            };
            parsed.push(Case {
                name: name.clone(),
                expect_match,
                count: c["count"].as_i64().map(|n| n.max(0) as u64),
                source: str_of(&c["source"]),
                flow_format: str_of(&c["flow_format"]),
                input: events_of(items).map_err(bad)?,
            });
        }
        out.push(TestFile {
            origin: origin.to_owned(),
            rule,
            cases: parsed,
        });
    }
    Ok(out)
}

/// The rules a run loads: rule files' texts, and whether the built-ins come too.
pub struct RuleTexts {
    pub files: Vec<(PathBuf, String)>,
    pub builtin: bool,
}

impl RuleTexts {
    pub fn detector(&self, config: &DetectorConfig) -> (Detector, Vec<crate::sigma::RuleIssue>) {
        let mut loaded = Loaded::default();
        if self.builtin {
            load_builtin(&mut loaded);
        }
        for (p, t) in &self.files {
            load_str(t, p, &CompileOptions::default(), &mut loaded);
        }
        loaded.apply_filters();
        let config = DetectorConfig {
            builtin: self.builtin,
            ..config.clone()
        };
        Detector::new(loaded, &config)
    }
}

/// Runs every case; `decode` turns a case's input into events.
pub fn run(
    rules: &RuleTexts,
    files: &[TestFile],
    decode: &dyn Fn(&Case) -> Result<Vec<Event>, String>,
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for f in files {
        for c in &f.cases {
            let result = |passed: bool, message: String| CaseResult {
                origin: f.origin.clone(),
                rule: f.rule.clone(),
                case: c.name.clone(),
                passed,
                message,
            };
            let (mut det, _) = rules.detector(&DetectorConfig::default());
            let known = det
                .entries()
                .iter()
                .any(|e| e.info.key == f.rule || e.info.name.as_deref() == Some(&f.rule));
            if !known {
                results.push(result(
                    false,
                    format!("no loaded rule has id or name `{}`", f.rule),
                ));
                continue;
            }
            let events = match decode(c) {
                Ok(e) => e,
                Err(e) => {
                    results.push(result(false, format!("events do not decode: {e}")));
                    continue;
                }
            };
            let mut alerts = Vec::new();
            for e in &events {
                det.observe(e, &mut alerts);
            }
            let mine = alerts
                .iter()
                .filter(|a| a.rule.key == f.rule || a.rule.name.as_deref() == Some(&f.rule))
                .count() as u64;
            let others: Vec<&str> = alerts
                .iter()
                .filter(|a| a.rule.key != f.rule && a.rule.name.as_deref() != Some(&f.rule))
                .map(|a| a.rule.name.as_deref().unwrap_or(&a.rule.key))
                .collect();
            let (passed, message) = match (c.expect_match, c.count) {
                (true, Some(n)) => (
                    mine == n,
                    format!(
                        "{mine} detections from {} events, expected {n}",
                        events.len()
                    ),
                ),
                (true, None) => (
                    mine > 0,
                    format!("{mine} detections from {} events", events.len()),
                ),
                (false, _) => (
                    mine == 0,
                    format!(
                        "{mine} detections from {} events, expected none",
                        events.len()
                    ),
                ),
            };
            let message = if others.is_empty() {
                message
            } else {
                let mut o = others.clone();
                o.sort_unstable();
                o.dedup();
                format!("{message} (other rules fired: {})", o.join(", "))
            };
            results.push(result(passed, message));
        }
    }
    results
}

/// Rules (raising findings) without at least one `match` and one `no-match` case.
pub fn coverage_gaps(det: &Detector, files: &[TestFile]) -> Vec<String> {
    let mut gaps = Vec::new();
    for e in det.entries() {
        if e.silent {
            continue;
        }
        let mine = |expect: bool| {
            files.iter().any(|f| {
                (f.rule == e.info.key || e.info.name.as_deref() == Some(&f.rule))
                    && f.cases.iter().any(|c| c.expect_match == expect)
            })
        };
        let name = e.info.name.as_deref().unwrap_or(&e.info.key);
        if !mine(true) {
            gaps.push(format!("{name}: no case that must match"));
        }
        if !mine(false) {
            gaps.push(format!("{name}: no near-miss case that must not match"));
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_repeat() {
        let y = YamlLoader::load_from_str(
            "- repeat: 3\n  every: 10s\n  event: {eventTime: '2024-01-01T00:00:00Z', n: 'x${i+5}y${i}'}\n- 'line ${t}'\n",
        )
        .unwrap();
        let Yaml::Array(items) = &y[0] else { panic!() };
        let out = String::from_utf8(events_of(items).unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("2024-01-01T00:00:20Z"), "{}", lines[2]);
        assert!(lines[2].contains("x7y2"), "{}", lines[2]);
        assert_eq!(lines[3], format!("line {FLOW_BASE_SECS}"));
    }

    #[test]
    fn parse_errors_name_the_case() {
        let e = parse(
            "rule: r\ncases:\n  - name: c1\n    expect: maybe\n    events: []\n",
            Path::new("t.tests.yml"),
        )
        .unwrap_err();
        assert!(e.contains("t.tests.yml: r: c1: `expect`"), "{e}");
    }
}
