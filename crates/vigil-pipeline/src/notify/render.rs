//! Words the chat, pager and ticket destinations share.

use serde_json::Value;
use vigil_model::Finding;

use super::Event;

/// The one line that says what happened (a message's fallback text, a page's
/// summary, a ticket's title).
pub fn summary(e: &Event) -> String {
    let what = match (&e.incident, &e.finding) {
        (Some(i), _) => format!("[{}] {}", i.severity, i.title),
        (None, Some(f)) => format!("[{}] {}", f.detail.severity, f.detail.title),
        (None, None) => "Vigil".to_owned(),
    };
    let account = e
        .incident
        .as_ref()
        .and_then(|i| i.account.clone())
        .or_else(|| e.finding.as_ref().and_then(|f| f.account.clone()));
    match account {
        Some(a) => format!("{what} in {a}"),
        None => what,
    }
}

/// What the change was, in words (`acknowledged by alice: looking`).
pub fn change_line(e: &Event) -> String {
    let by = e
        .actor
        .as_deref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    let note = e
        .note
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| format!(": {n}"))
        .unwrap_or_default();
    let what = match e.event.as_str() {
        "finding.opened" => "new finding".to_owned(),
        "finding.updated" => "finding seen again".to_owned(),
        "incident.opened" => "incident opened".to_owned(),
        "incident.escalated" => "incident escalated".to_owned(),
        "incident.acknowledged" => "acknowledged".to_owned(),
        "incident.remediating" => "remediation started".to_owned(),
        "incident.resolved" => "resolved".to_owned(),
        "incident.false_positive" => "marked a false positive".to_owned(),
        other => other.replace(['.', '_'], " "),
    };
    format!("{what}{by}{note}")
}

/// A finding's evidence as `key: value` pairs, the schema's four first.
pub fn evidence(f: &Finding) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ev = serde_json::to_value(&f.detail.evidence).unwrap_or(Value::Null);
    if let Value::Object(m) = ev {
        for k in ["source_ip", "user_agent", "api_call", "aws_region"] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                out.push((k.to_owned(), text(v)));
            }
        }
        for (k, v) in &m {
            if !["source_ip", "user_agent", "api_call", "aws_region"].contains(&k.as_str())
                && !v.is_null()
            {
                out.push((k.clone(), text(v)));
            }
        }
    }
    if let Some(p) = &f.detail.principal {
        out.push(("principal".into(), p.clone()));
    }
    if let Some(r) = &f.detail.resource_arn {
        out.push(("resource".into(), r.clone()));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `s` cut to at most `max` characters (an ellipsis marks the cut).
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The step a run waits on (its id, action and seq), if any.
pub fn waiting_step(run: &Value) -> Option<(String, String, i64)> {
    run.get("steps")?
        .as_array()?
        .iter()
        .find(|s| {
            matches!(
                s.get("status").and_then(Value::as_str),
                Some("AWAITING_APPROVAL") | Some("UNKNOWN")
            )
        })
        .map(|s| {
            (
                s.get("step_id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                s.get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                s.get("seq").and_then(Value::as_i64).unwrap_or(0),
            )
        })
}

/// A run field as text.
pub fn run_field<'a>(run: &'a Value, key: &str) -> &'a str {
    run.get(key).and_then(Value::as_str).unwrap_or("")
}
