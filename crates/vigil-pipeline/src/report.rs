//! Every printer of the `vigil` command in one place: tables for people (laid
//! out by comfy-table), JSON documents for programs. The binary chooses which
//! and where to; what they say is here.

use std::io::{self, Write};

use crate::batch::{Spool, Summary};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

/// Rows (the first is the header) as an aligned table without borders: text
/// left-aligned, numbers right-aligned, two spaces between columns.
pub fn table(rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (r, row) in rows.into_iter().enumerate() {
        let cells = row.into_iter().enumerate().map(|(c, text)| {
            let numeric = r > 0 && c > 0 && text.parse::<f64>().is_ok();
            let cell = Cell::new(text);
            if numeric {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        });
        t.add_row(cells.collect::<Vec<_>>());
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    t.lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON document: `findings` (every one, streamed from the spool) and then the
/// summary's fields.
pub fn scan_json(out: &mut dyn Write, summary: &Summary, spool: Option<&Spool>) -> io::Result<()> {
    let rest = serde_json::to_string_pretty(summary)?;
    let Some(fields) = rest.strip_prefix("{\n") else {
        return Err(io::Error::other("the summary is not an object"));
    };
    out.write_all(b"{\n  \"findings\": [")?;
    if let Some(sp) = spool {
        if sp.write_findings(out)? {
            out.write_all(b"\n  ")?;
        }
    }
    out.write_all(b"],\n")?;
    out.write_all(fields.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The scan's report for people.
pub fn scan_table(out: &mut dyn Write, s: &Summary, show_findings: usize) -> io::Result<()> {
    let mut rows = vec![vec![
        "FILE".into(),
        "LAYOUT".into(),
        "RECORDS".into(),
        "EVENTS".into(),
        "ERRORS".into(),
        "BYTES".into(),
    ]];
    for f in &s.files {
        rows.push(vec![
            f.path.clone(),
            format!("{}{}", f.layout, if f.gzip { " (gzip)" } else { "" }),
            f.records.to_string(),
            f.events.to_string(),
            f.errors.to_string(),
            f.bytes_on_disk.to_string(),
        ]);
    }
    writeln!(out, "{}", table(rows))?;
    for f in &s.files {
        for n in &f.notes {
            writeln!(out, "note: {}: {n}", f.path)?;
        }
    }
    writeln!(out)?;
    let mut rows = vec![vec!["SOURCE".to_string(), "EVENTS".to_string()]];
    rows.extend(
        s.sources
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.to_string()]),
    );
    writeln!(out, "{}", table(rows))?;
    if let Some(d) = &s.detection {
        writeln!(out)?;
        if d.findings == 0 {
            writeln!(out, "no findings")?;
        } else if !s.findings.is_empty() {
            let mut rows = vec![vec![
                "SEVERITY".to_string(),
                "CATEGORY".to_string(),
                "COUNT".to_string(),
                "FIRST SEEN".to_string(),
                "TITLE".to_string(),
                "PRINCIPAL".to_string(),
                "RESOURCE".to_string(),
            ]];
            for f in s.findings.iter().take(show_findings) {
                let dt = &f.detail;
                rows.push(vec![
                    dt.severity.as_str().to_string(),
                    dt.category.as_str().to_string(),
                    dt.count.to_string(),
                    dt.first_seen.to_string(),
                    dt.title.clone(),
                    dt.principal.clone().unwrap_or_else(|| "-".into()),
                    dt.resource_arn.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            writeln!(out, "{}", table(rows))?;
            if s.findings.len() > show_findings {
                writeln!(
                    out,
                    "… and {} more (raise --show-findings, or use --output json)",
                    s.findings.len() - show_findings
                )?;
            }
        }
        let sev: Vec<String> = d
            .by_severity
            .iter()
            .rev()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        if d.findings > 0 {
            writeln!(
                out,
                "{} findings{}",
                d.findings,
                if sev.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", sev.join(", "))
                }
            )?;
        }
        if let Some(n) = s.correlation_late_events.filter(|n| *n > 0) {
            writeln!(out, "note: {n} matching events came more than --lateness behind newer ones and were not correlated (scan files in time order, or raise --lateness)")?;
        }
    }
    if !s.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "ERRORS")?;
        for e in &s.errors {
            let mut loc = Vec::new();
            if let Some(r) = e.record {
                loc.push(format!("record {r}"));
            }
            if let Some(l) = e.line {
                loc.push(format!("line {l}"));
            }
            if let Some(b) = e.byte {
                loc.push(format!("byte {b}"));
            }
            if loc.is_empty() {
                writeln!(out, "  {}: {}", e.file, e.message)?;
            } else {
                writeln!(out, "  {}: {}: {}", e.file, loc.join(", "), e.message)?;
            }
        }
        if s.errors_not_listed > 0 {
            writeln!(
                out,
                "  … and {} more (raise --show-errors to list them)",
                s.errors_not_listed
            )?;
        }
    }
    let t = &s.totals;
    writeln!(out)?;
    writeln!(
        out,
        "{} files ({} unreadable), {} records, {} events, {} errors in {:.2}s: {:.0} records/s, {:.1} MB/s decoded{}",
        t.files,
        t.files_failed,
        t.records,
        t.events,
        t.errors,
        t.seconds,
        t.records_per_second,
        t.decoded_mb_per_second,
        t.peak_rss_mb.map(|m| format!(", peak RSS {m:.0} MB")).unwrap_or_default()
    )?;
    if t.errors > 0 {
        writeln!(out, "completed with errors")?;
    }
    Ok(())
}

/// ATT&CK coverage by tactic and technique: a table, or markdown.
pub fn coverage(cov: &vigil_detect::coverage::Coverage, markdown: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut rows = vec![vec![
        "TACTIC".into(),
        "TECHNIQUE".into(),
        "DETECTIONS".into(),
    ]];
    for tactic in cov.tactics() {
        for (t, rules) in &cov.by_tactic[tactic] {
            let names = rules.iter().cloned().collect::<Vec<_>>().join(", ");
            rows.push(vec![tactic.to_string(), t.to_string(), names]);
        }
    }
    if markdown {
        out.push_str("| tactic | technique | detections |\n|---|---|---|\n");
        for r in &rows[1..] {
            let _ = writeln!(out, "| {} | {} | {} |", r[0], r[1], r[2]);
        }
    } else {
        let _ = writeln!(out, "{}", table(rows));
    }
    let _ = writeln!(
        out,
        "{}{} detections, {} techniques, {} tactics{}",
        if markdown { "\n" } else { "" },
        cov.detections,
        cov.by_technique.len(),
        cov.tactics().len(),
        if cov.untagged.is_empty() {
            String::new()
        } else {
            format!("; without a technique: {}", cov.untagged.join(", "))
        }
    );
    out
}

/// A dry run's plan, step by step.
pub fn plan(plan: &vigil_respond::Plan, name: &str) {
    println!(
        "dry run: {} {} ({:?}){} — nothing is called",
        plan.playbook,
        name,
        plan.automation,
        plan.environment
            .map(|e| format!(", {} account", e.as_str()))
            .unwrap_or_default()
    );
    for (i, s) in plan.steps.iter().enumerate() {
        let state = if !s.runs {
            "skipped (its condition does not hold)".to_owned()
        } else if let Some(problem) = &s.problem {
            format!("CANNOT RUN: {problem}")
        } else if let Some(g) = s.gate {
            format!("waits for approval ({g:?})")
        } else {
            "runs".to_owned()
        };
        println!("\n{}. {} — {}: {state}", i + 1, s.id, s.action);
        if !s.runs {
            continue;
        }
        println!(
            "   in account {} region {}",
            s.account.as_deref().unwrap_or("?"),
            s.region.as_deref().unwrap_or("?")
        );
        println!("   calls {}", s.calls.join(" → "));
        if let Some(p) = &s.parameters {
            println!("   with {p}");
        }
    }
}

/// A run's steps (and the rollback steps it reached), as a table.
pub fn run_steps(record: &vigil_store::RunRecord) -> String {
    use vigil_model::response::{Phase, StepStatus};
    let rows = record
        .steps
        .iter()
        .filter(|s| s.status != StepStatus::NotRun || s.phase == Phase::Step)
        .map(|s| {
            vec![
                s.phase.to_string(),
                s.step_id.clone(),
                s.action.clone(),
                s.status.to_string(),
                s.error.clone().unwrap_or_else(|| s.calls.join(", ")),
            ]
        });
    let head = ["PHASE", "STEP", "ACTION", "STATUS", "DONE"].map(String::from);
    let text = table(std::iter::once(head.to_vec()).chain(rows).collect());
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A framework's controls and the checks Vigil runs for each.
pub fn controls(f: &vigil_comply::framework::Framework) -> String {
    use vigil_comply::framework::Assessment;
    let mut rows = vec![["CONTROL", "TITLE", "CHECKS"].map(String::from).to_vec()];
    for c in &f.controls {
        let (have, missing) = c.resolve();
        let how = match c.assessment {
            Assessment::Manual => "manual".to_owned(),
            _ if have.is_empty() => "not assessed".to_owned(),
            _ => have.iter().map(|h| h.id).collect::<Vec<_>>().join(", "),
        };
        let gap = if missing.is_empty() || have.is_empty() {
            String::new()
        } else {
            format!(" (no check for: {})", missing.join(", "))
        };
        rows.push(vec![c.id.clone(), c.title.clone(), format!("{how}{gap}")]);
    }
    format!(
        "{} {} ({} controls)\n{}\n",
        f.name,
        f.version,
        f.controls.len(),
        table(rows)
    )
}

/// An assessment for people: the results' counts, each framework's score, and
/// each failing control with its resources, fix and playbook.
pub fn assessment(
    snapshot: &vigil_comply::Snapshot,
    results: &[vigil_comply::CheckResult],
    verdicts: &[vigil_comply::FrameworkResult],
) -> String {
    use std::fmt::Write as _;
    use vigil_comply::Status;
    let mut o = String::new();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let _ =
        writeln!(o,
        "{} account(s), collected {}: {} results ({} pass, {} fail, {} not applicable, {} error)",
        snapshot.accounts.len(),
        snapshot.collected_at,
        results.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::NotApplicable),
        count(Status::Error)
    );
    for v in verdicts {
        let score = v.score.map_or("n/a".to_owned(), |s| format!("{s:.1}%"));
        let _ = writeln!(
            o,
            "\n{} {}: {score} ({} pass, {} fail, {} error, {} manual, {} not assessed; {} judged on part of their checks)",
            v.name, v.version, v.passed, v.failed, v.errors, v.manual, v.not_assessed, v.partial
        );
        for c in v
            .controls
            .iter()
            .filter(|c| c.status == "FAIL" || c.status == "ERROR")
        {
            let _ = writeln!(o, "  {} {} {}", c.status, c.control_id, c.title);
            for f in c.failures.iter().take(5) {
                let _ = writeln!(
                    o,
                    "      {} {}: {}",
                    f.status.as_str(),
                    f.resource_arn,
                    f.evidence
                );
            }
            if c.failures.len() > 5 {
                let _ = writeln!(o, "      … and {} more", c.failures.len() - 5);
            }
            if let Some(r) = &c.remediation {
                let _ = writeln!(o, "      fix: {r}");
            }
            if !c.playbooks.is_empty() {
                let _ = writeln!(o, "      playbook: {}", c.playbooks.join(", "));
            }
        }
    }
    o
}
