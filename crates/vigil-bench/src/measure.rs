//! The three measurements and the table.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;

/// What a developer would write to read CloudTrail files: one typed struct with owned
/// strings for the fields Vigil's model carries, `from_slice` on each decompressed file.
#[derive(Deserialize)]
struct PlainFile {
    #[serde(rename = "Records")]
    records: Vec<PlainRecord>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainRecord {
    event_time: String,
    event_source: String,
    event_name: String,
    aws_region: Option<String>,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
    user_agent: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    event_type: Option<String>,
    recipient_account_id: Option<String>,
    read_only: Option<bool>,
    user_identity: Option<PlainIdentity>,
    resources: Option<Vec<PlainResource>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainIdentity {
    #[serde(rename = "type")]
    identity_type: Option<String>,
    principal_id: Option<String>,
    arn: Option<String>,
    account_id: Option<String>,
    access_key_id: Option<String>,
    user_name: Option<String>,
    invoked_by: Option<String>,
    session_context: Option<PlainSession>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainSession {
    session_issuer: Option<PlainIssuer>,
    attributes: Option<PlainAttributes>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainIssuer {
    #[serde(rename = "type")]
    issuer_type: Option<String>,
    arn: Option<String>,
    user_name: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainAttributes {
    mfa_authenticated: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct PlainResource {
    #[serde(rename = "ARN")]
    arn: Option<String>,
    #[serde(rename = "type")]
    resource_type: Option<String>,
}

#[allow(dead_code)]
struct PlainFlow {
    account: String,
    interface: String,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    proto: Option<u8>,
    packets: Option<u64>,
    bytes: Option<u64>,
    start: i64,
    end: i64,
    action: String,
    status: String,
}

/// Every file under `dir` whose name ends in `.{ext}`, sorted.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>, ext: &str) -> Result<()> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(())
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out, "gz")?;
    Ok(out)
}

/// This process's peak resident set (VmHWM), in MB.
#[cfg(feature = "peer")]
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Sample {
    secs: f64,
    records: u64,
    bytes: u64,
    rss_mb: Option<f64>,
    /// Rule matches (Vigil: alerts before dedup; the peer: rule × event matches).
    matches: Option<u64>,
}

fn gunzip_only(files: &[PathBuf]) -> Result<Sample> {
    let t = Instant::now();
    let mut bytes = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for f in files {
        let mut d = MultiGzDecoder::new(std::fs::File::open(f)?);
        loop {
            let n = d.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok(Sample {
        secs: t.elapsed().as_secs_f64(),
        records: 0,
        bytes,
        rss_mb: None,
        matches: None,
    })
}

fn plain_cloudtrail(files: &[PathBuf]) -> Result<Sample> {
    let t = Instant::now();
    let (mut bytes, mut records) = (0, 0);
    let mut buf = Vec::new();
    for f in files {
        buf.clear();
        MultiGzDecoder::new(std::fs::File::open(f)?).read_to_end(&mut buf)?;
        bytes += buf.len() as u64;
        let file: PlainFile = serde_json::from_slice(&buf)?;
        records += file.records.len() as u64;
        std::hint::black_box(&file);
    }
    Ok(Sample {
        secs: t.elapsed().as_secs_f64(),
        records,
        bytes,
        rss_mb: None,
        matches: None,
    })
}

fn plain_flow(files: &[PathBuf]) -> Result<Sample> {
    let t = Instant::now();
    let (mut bytes, mut records) = (0, 0);
    let mut line = String::new();
    for f in files {
        let mut r =
            BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(std::fs::File::open(f)?));
        loop {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            let v: Vec<&str> = line.split_ascii_whitespace().collect();
            if v.len() != 14 || v[0] == "version" {
                continue;
            }
            let flow = PlainFlow {
                account: v[1].to_owned(),
                interface: v[2].to_owned(),
                src: v[3].parse().ok(),
                dst: v[4].parse().ok(),
                sport: v[5].parse().ok(),
                dport: v[6].parse().ok(),
                proto: v[7].parse().ok(),
                packets: v[8].parse().ok(),
                bytes: v[9].parse().ok(),
                start: v[10].parse().unwrap_or(0),
                end: v[11].parse().unwrap_or(0),
                action: v[12].to_owned(),
                status: v[13].to_owned(),
            };
            std::hint::black_box(&flow);
            records += 1;
        }
    }
    Ok(Sample {
        secs: t.elapsed().as_secs_f64(),
        records,
        bytes,
        rss_mb: None,
        matches: None,
    })
}

fn vigil_scan(vigil: &Path, paths: &[PathBuf], extra: &[String]) -> Result<Sample> {
    let out = Command::new(vigil)
        .arg("scan")
        .arg("--output")
        .arg("json")
        .arg("--show-errors")
        .arg("0")
        .args(extra)
        .args(paths)
        .output()
        .with_context(|| format!("running {}", vigil.display()))?;
    if !out.status.success() {
        bail!(
            "vigil scan failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let t = &v["totals"];
    let matches = v["detection"]["rules"].as_array().map(|rules| {
        rules
            .iter()
            .map(|r| r["alerts"].as_u64().unwrap_or(0))
            .sum()
    });
    Ok(Sample {
        secs: t["seconds"].as_f64().unwrap_or(0.0),
        records: t["records"].as_u64().unwrap_or(0),
        bytes: t["bytes_decoded"].as_u64().unwrap_or(0),
        rss_mb: t["peak_rss_mb"].as_f64(),
        matches,
    })
}

/// The peer row, in a process of its own (this binary, built with `--features peer`).
#[cfg(feature = "peer")]
fn peer(dir: &Path, rules: &Path, bytes: u64) -> Result<Option<(Sample, serde_json::Value)>> {
    let out = Command::new(std::env::current_exe()?)
        .arg("peer")
        .arg("--dir")
        .arg(dir)
        .arg("--rules")
        .arg(rules)
        .output()?;
    if !out.status.success() {
        bail!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Some((
        Sample {
            secs: v["seconds"].as_f64().unwrap_or(0.0),
            records: v["records"].as_u64().unwrap_or(0),
            bytes,
            rss_mb: v["peak_rss_mb"].as_f64(),
            matches: v["matches"].as_u64(),
        },
        v,
    )))
}

#[cfg(not(feature = "peer"))]
fn peer(_: &Path, _: &Path, _: u64) -> Result<Option<(Sample, serde_json::Value)>> {
    Ok(None)
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    v.swap_remove(v.len() / 2)
}

/// `lowest–highest (median …)` of `ratios`, each times `scale`, with `unit`.
fn spread(mut ratios: Vec<f64>, unit: &str, scale: f64) -> String {
    ratios.sort_by(f64::total_cmp);
    let (Some(lo), Some(hi)) = (ratios.first(), ratios.last()) else {
        return "no rounds".into();
    };
    let fmt = |x: f64| {
        if unit == "%" {
            format!("{:.0}{unit}", x * scale)
        } else {
            format!("{:.1}{unit}", x * scale)
        }
    };
    format!(
        "{}–{} (median {})",
        fmt(*lo),
        fmt(*hi),
        fmt(ratios[ratios.len() / 2])
    )
}

fn rss(s: &Sample) -> String {
    s.rss_mb
        .map(|m| format!("{m:.0} MB"))
        .unwrap_or_else(|| "-".into())
}

pub fn run(dir: &Path, vigil: &Path, rounds: usize, rules: Option<&Path>) -> Result<()> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "corpus: {} ({} CloudTrail records in {} files, {:.0} MB; {} flow records in {} files, {:.0} MB); median of {rounds} rounds\n",
        dir.display(),
        manifest["cloudtrail"]["records"],
        manifest["cloudtrail"]["files"],
        manifest["cloudtrail"]["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        manifest["vpcflow"]["records"],
        manifest["vpcflow"]["files"],
        manifest["vpcflow"]["bytes"].as_f64().unwrap_or(0.0) / 1e6,
    );
    println!("| source | stage | records/s | MB/s | vs (c) | peak RSS |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for (label, sub) in [("CloudTrail", "cloudtrail"), ("VPC flow", "vpcflow")] {
        let files = files_under(&dir.join(sub))?;
        let known_records = manifest[sub]["records"].as_u64().unwrap_or(0);
        let path = [dir.join(sub)];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let sigma: Vec<String> = match rules {
            Some(r) => vec!["--rules".into(), r.display().to_string()],
            None => Vec::new(),
        };
        // (c) decode only; (d) the SigmaHQ rules alone; (e) everything one core; (f) all cores.
        let decode = s(&["--no-detect"]);
        let sigma_only: Vec<String> = [s(&["--no-builtin"]), sigma.clone()].concat();
        let full = sigma.clone();
        let full_par: Vec<String> = [sigma.clone(), s(&["--jobs", &cores.to_string()])].concat();
        let mut stages: Vec<(String, Vec<String>)> = vec![(
            "(c) vigil scan: decode + normalize, no detection".into(),
            decode,
        )];
        if rules.is_some() && sub == "cloudtrail" {
            stages.push((
                "(d) + the 57 SigmaHQ AWS rules only, 1 core".into(),
                sigma_only,
            ));
        }
        let what = if rules.is_some() {
            "57 SigmaHQ + all built-in detections"
        } else {
            "all built-in detections"
        };
        stages.push((format!("(e) + {what}, 1 core"), full.clone()));
        stages.push((format!("(f) (e) with --jobs {cores}"), full_par));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut runs: Vec<Vec<Sample>> = stages.iter().map(|_| Vec::new()).collect();
        let mut peers = Vec::new();
        for _ in 0..rounds {
            a.push(gunzip_only(&files)?);
            b.push(if sub == "cloudtrail" {
                plain_cloudtrail(&files)?
            } else {
                plain_flow(&files)?
            });
            for ((_, args), out) in stages.iter().zip(runs.iter_mut()) {
                out.push(vigil_scan(vigil, &path, args)?);
            }
            if let (Some(r), "cloudtrail") = (rules, sub) {
                if let Some(p) = peer(&path[0], r, b.last().map_or(0, |s| s.bytes))? {
                    peers.push(p);
                }
            }
        }
        // The machine's speed drifts between rounds: each stage's speed relative to
        // (c) in the same round, and its spread, says more than the medians' ratio.
        for (j, (stage, _)) in stages.iter().enumerate().skip(1) {
            let of_c = |i: usize| runs[0][i].secs / runs[j][i].secs;
            notes.push(format!(
                "{label}: {} against (c) round by round: {}",
                stage.get(..3).unwrap_or(stage),
                spread((0..rounds).map(of_c).collect(), "%", 100.0)
            ));
        }
        if let (Some(e), false) = (
            stages.iter().position(|(n, _)| n.starts_with("(e)")),
            peers.is_empty(),
        ) {
            let times_peer = |i: usize| peers[i].0.secs / runs[e][i].secs;
            notes.push(format!(
                "{label}: (e) against the peer (g) round by round: {}",
                spread((0..peers.len()).map(times_peer).collect(), "x", 1.0)
            ));
        }
        let (a, b) = (median(a), median(b));
        let runs: Vec<Sample> = runs.into_iter().map(median).collect();
        for (i, r) in runs.iter().enumerate() {
            if r.records != known_records {
                bail!(
                    "{label}: {}: {} records, manifest says {known_records}",
                    stages[i].0,
                    r.records
                );
            }
        }
        if b.records != known_records {
            bail!(
                "{label}: plain parse read {} records, manifest says {known_records}",
                b.records
            );
        }
        let rps = |s: &Sample| known_records as f64 / s.secs;
        let mbps = |s: &Sample| s.bytes as f64 / 1e6 / s.secs;
        let c = &runs[0];
        let row = |stage: &str, s: &Sample| {
            println!(
                "| {label} | {stage} | {:.0} | {:.1} | {:.0}% | {} |",
                rps(s),
                mbps(s),
                100.0 * rps(s) / rps(c),
                rss(s)
            );
        };
        row("(a) gunzip only", &a);
        row("(b) gunzip + typed serde parse", &b);
        for ((stage, _), r) in stages.iter().zip(&runs) {
            row(stage, r);
        }
        if !peers.is_empty() {
            let mut samples = Vec::new();
            let mut info = serde_json::Value::Null;
            for (s, v) in peers {
                samples.push(s);
                info = v;
            }
            let p = median(samples);
            let ours = runs.get(1).filter(|_| rules.is_some());
            row("(g) peer: sigma-rust 0.7, the same 57 rules, 1 core", &p);
            if let Some(d) = ours {
                notes.push(format!(
                    "{label}: (d) is {:.1}x the peer (g); rule matches: Vigil {} alerts, sigma-rust {} (of {} rules it loaded; could not parse: {})",
                    rps(d) / rps(&p),
                    d.matches.unwrap_or(0),
                    p.matches.unwrap_or(0),
                    info["rules_loaded"],
                    info["rules_failed"].as_array().map_or(0, |v| v.len()),
                ));
                if p.records != known_records {
                    notes.push(format!(
                        "{label}: the peer read {} records of {known_records}",
                        p.records
                    ));
                }
            }
        }
        // Peak RSS must not depend on how much is read: full detection on one eighth.
        let eighth: Vec<PathBuf> = files.iter().step_by(8).cloned().collect();
        let small = vigil_scan(vigil, &eighth, &full)?;
        println!(
            "| {label} | (e) on 1/8 of the files ({} records) | {:.0} | {:.1} | | {} |",
            small.records,
            small.records as f64 / small.secs,
            small.bytes as f64 / 1e6 / small.secs,
            rss(&small)
        );
    }
    let ordinary = dir.join("ordinary");
    if ordinary.join("manifest.json").exists() {
        notes.push(false_alert_rate(vigil, &ordinary)?);
    } else {
        notes.push(format!(
            "no ordinary-traffic corpus at {} (vigil-bench gen --ordinary): false-alert rate not measured",
            ordinary.display()
        ));
    }
    if !notes.is_empty() {
        println!();
    }
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}

/// Findings of the built-in detections alone on the ordinary-traffic corpus
/// (`gen --ordinary`; deduplicated as `vigil scan` does), per 10,000 records: the
/// false-alert rate of the library on traffic that is not an attack, with the rules
/// behind it.
fn false_alert_rate(vigil: &Path, dir: &Path) -> Result<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let out = Command::new(vigil)
        .args([
            "scan",
            "--output",
            "json",
            "--show-errors",
            "0",
            "--show-findings",
            "0",
        ])
        .arg(dir.join("cloudtrail"))
        .output()
        .with_context(|| format!("running {}", vigil.display()))?;
    if !out.status.success() {
        bail!("vigil scan failed ({})", out.status);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let records = manifest["cloudtrail"]["records"].as_f64().unwrap_or(0.0);
    let mut rules: Vec<(u64, String)> = v["detection"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["findings"].as_u64()?, r["rule"].as_str()?.to_owned())))
        .filter(|(n, _)| *n > 0)
        .collect();
    rules.sort_by(|a, b| b.cmp(a));
    let total: u64 = rules.iter().map(|r| r.0).sum();
    // Informational findings are change records (CIS 4.x), not alerts.
    let info = v["detection"]["by_severity"]["INFORMATIONAL"]
        .as_u64()
        .unwrap_or(0);
    let alerts = total - info.min(total);
    let top: Vec<String> = rules
        .iter()
        .take(8)
        .map(|(n, r)| format!("{r} {n}"))
        .collect();
    let per = |n: u64| 10_000.0 * n as f64 / records.max(1.0);
    Ok(format!(
        "CloudTrail, ordinary traffic ({records:.0} records): the built-in detections raise {alerts} alerts (low severity or above), {:.2} per 10,000, and {info} informational change records, {:.2} per 10,000 (by rule: {})",
        per(alerts),
        per(info),
        top.join("; ")
    ))
}
