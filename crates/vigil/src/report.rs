//! Every printer of the `vigil` command in one place: tables for people (laid
//! out by comfy-table), JSON documents for programs.

use std::io::{self, Write};

use anyhow::{bail, Result};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use vigil_pipeline::batch::{Spool, Summary};

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
pub fn scan_json(out: &mut dyn Write, summary: &Summary, spool: Option<&Spool>) -> Result<()> {
    let rest = serde_json::to_string_pretty(summary)?;
    let Some(fields) = rest.strip_prefix("{\n") else {
        bail!("the summary is not an object");
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
