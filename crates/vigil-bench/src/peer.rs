//! The peer row: the `sigma-rust` crate evaluating the same Sigma rules over the same
//! CloudTrail files, used the way its documentation shows (rules from YAML, events
//! deserialized from JSON, every rule checked against every event). Runs in its own
//! process (`vigil-bench peer`) so its peak RSS is its own.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    #[serde(rename = "Records")]
    records: Vec<sigma_rust::Event>,
}

/// Loads every `.yml` rule under `rules`, then checks each against every record of
/// the gzip'd CloudTrail files under `dir`; prints one JSON line of results.
pub fn run(dir: &Path, rules: &Path) -> Result<()> {
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    let mut paths = Vec::new();
    crate::measure::walk(rules, &mut paths, "yml")?;
    for p in paths {
        let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
        match sigma_rust::rule_from_yaml(&text) {
            Ok(r) => loaded.push(r),
            Err(e) => failed.push(format!("{}: {e}", p.display())),
        }
    }
    let mut files = Vec::new();
    crate::measure::walk(dir, &mut files, "gz")?;
    let t = Instant::now();
    let (mut records, mut matches, mut bad_files) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    for f in &files {
        buf.clear();
        MultiGzDecoder::new(std::fs::File::open(f)?).read_to_end(&mut buf)?;
        let Ok(file) = serde_json::from_slice::<File>(&buf) else {
            bad_files += 1;
            continue;
        };
        for e in &file.records {
            for r in &loaded {
                if r.is_match(e) {
                    matches += 1;
                }
            }
        }
        records += file.records.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "seconds": secs,
            "matches": matches,
            "rules_loaded": loaded.len(),
            "rules_failed": failed,
            "files_unreadable": bad_files,
            "peak_rss_mb": crate::measure::peak_rss_mb(),
        })
    );
    Ok(())
}
