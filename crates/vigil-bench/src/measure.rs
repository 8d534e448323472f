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

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "gz") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

struct Sample {
    secs: f64,
    records: u64,
    bytes: u64,
    rss_mb: Option<f64>,
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
    })
}

fn vigil_scan(vigil: &Path, paths: &[PathBuf]) -> Result<Sample> {
    vigil_scan_with(vigil, paths, &[])
}

fn vigil_scan_with(vigil: &Path, paths: &[PathBuf], extra: &[String]) -> Result<Sample> {
    let out = Command::new(vigil)
        .arg("scan")
        .arg("--output")
        .arg("json")
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
    Ok(Sample {
        secs: t["seconds"].as_f64().unwrap_or(0.0),
        records: t["records"].as_u64().unwrap_or(0),
        bytes: t["bytes_decoded"].as_u64().unwrap_or(0),
        rss_mb: t["peak_rss_mb"].as_f64(),
    })
}

fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    v.swap_remove(v.len() / 2)
}

pub fn run(dir: &Path, vigil: &Path, rounds: usize, rules: Option<&Path>) -> Result<()> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
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
    println!("| source | stage | records/s | MB/s | vs (b) | peak RSS |");
    println!("|---|---|---:|---:|---:|---:|");
    for (label, sub, records_key) in [
        ("CloudTrail", "cloudtrail", "cloudtrail"),
        ("VPC flow", "vpcflow", "vpcflow"),
    ] {
        let files = files_under(&dir.join(sub))?;
        let known_records = manifest[records_key]["records"].as_u64().unwrap_or(0);
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let rule_args: Vec<String> = match rules {
            Some(r) if sub == "cloudtrail" => vec!["--rules".into(), r.display().to_string()],
            _ => Vec::new(),
        };
        for _ in 0..rounds {
            a.push(gunzip_only(&files)?);
            b.push(if sub == "cloudtrail" {
                plain_cloudtrail(&files)?
            } else {
                plain_flow(&files)?
            });
            c.push(vigil_scan(vigil, &[dir.join(sub)])?);
            if !rule_args.is_empty() {
                d.push(vigil_scan_with(vigil, &[dir.join(sub)], &rule_args)?);
            }
        }
        let (a, b, c) = (median(a), median(b), median(c));
        let d = if d.is_empty() { None } else { Some(median(d)) };
        if c.records != known_records || b.records != known_records {
            bail!(
                "{label}: record counts disagree: manifest {known_records}, plain {}, vigil {}",
                b.records,
                c.records
            );
        }
        let rps = |s: &Sample| known_records as f64 / s.secs;
        let mbps = |s: &Sample| s.bytes as f64 / 1e6 / s.secs;
        let rows = [
            ("(a) gunzip only", &a),
            ("(b) gunzip + typed serde parse", &b),
            ("(c) vigil scan: decode + normalize", &c),
        ];
        for (stage, s) in rows {
            println!(
                "| {label} | {stage} | {:.0} | {:.1} | {:.0}% | {} |",
                rps(s),
                mbps(s),
                100.0 * rps(s) / rps(&b),
                s.rss_mb
                    .map(|m| format!("{m:.0} MB"))
                    .unwrap_or_else(|| "-".into())
            );
        }
        if let Some(d) = &d {
            println!(
                "| {label} | (d) vigil scan + the 57 SigmaHQ AWS rules | {:.0} | {:.1} | {:.0}% of (c) | {} |",
                rps(d),
                mbps(d),
                100.0 * rps(d) / rps(&c),
                d.rss_mb.map(|m| format!("{m:.0} MB")).unwrap_or_else(|| "-".into())
            );
        }
        // Peak RSS must not depend on how much is read: scan one eighth of the files.
        let eighth: Vec<PathBuf> = files.iter().step_by(8).cloned().collect();
        let small = vigil_scan(vigil, &eighth)?;
        println!(
            "| {label} | (c) on 1/8 of the files ({} records) | {:.0} | {:.1} | | {} |",
            small.records,
            small.records as f64 / small.secs,
            small.bytes as f64 / 1e6 / small.secs,
            small
                .rss_mb
                .map(|m| format!("{m:.0} MB"))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
