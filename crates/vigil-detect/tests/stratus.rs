//! Conformance against public attack data no one on the team wrote (read from
//! the conformance data's `attack-logs`, never copied here; see `vigil-testkit`):
//!
//! - Stratus Red Team's detonation logs, one file per AWS technique. The tool's own
//!   user agent (`stratus-red-team_<uuid>`) is replaced by an ordinary CLI's first,
//!   so a technique counts as covered only when the behaviour itself is detected.
//!   Each technique must raise a finding of the category Vigil files it under.
//! - A real account's CloudTrail during a Stratus run (invictus-ir), with its
//!   Terraform set-up and ordinary background traffic: every finding on a record
//!   labelled background or set-up must be one judged below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use vigil_detect::{Alert, Detector, DetectorConfig};

use vigil_testkit::conformance_data;

const CLI_AGENT: &str = "aws-cli/2.17.60 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard";

/// Takes the attack tool's name out of a user agent: its own agent becomes an
/// ordinary CLI's; inside another agent (its Terraform runs) the token is dropped.
fn plain_agent(r: &mut Value) {
    const TOKEN: &str = "stratus-red-team_";
    let Some(Value::String(ua)) = r.get_mut("userAgent") else {
        return;
    };
    let Some(at) = ua.find(TOKEN) else { return };
    let end = (at + TOKEN.len() + 36).min(ua.len());
    let rest = format!("{}{}", &ua[..at], &ua[end..]);
    *ua = if rest.trim().is_empty() {
        CLI_AGENT.to_owned()
    } else {
        rest
    };
}

/// The category each technique's finding must have: Vigil's five categories,
/// chosen by what a responder does next (persistence and credential theft are
/// unauthorized access; turning off a control is a policy violation; data shared
/// out is exfiltration; GPU launches and model hijacking are resource theft).
fn expected(technique: &str) -> &'static str {
    let tactic = technique.split('.').nth(1).unwrap_or("");
    match technique {
        "aws.execution.ec2-launch-unusual-instances" | "aws.impact.bedrock-invoke-model" => {
            "Cryptojacking"
        }
        "aws.exfiltration.ec2-security-group-open-port-22-ingress" => "PolicyViolation",
        _ => match tactic {
            "defense-evasion" => "PolicyViolation",
            "exfiltration" => "DataExfiltration",
            _ => "UnauthorizedAccess",
        },
    }
}

/// Decodes records (as JSON values) the way files are decoded, in time order.
fn events(records: &[Value]) -> Vec<vigil_model::Event> {
    let mut text = String::new();
    for r in records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    vigil_ingest::decode_document(text.as_bytes(), Some("cloudtrail"), None).unwrap()
}

fn detect(records: &[Value]) -> Vec<Alert> {
    let mut sorted = records.to_vec();
    sorted.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
    let mut loaded = vigil_detect::sigma::Loaded::default();
    vigil_detect::detector::load_builtin(&mut loaded);
    loaded.apply_filters();
    let (mut det, issues) = Detector::new(loaded, &DetectorConfig::default());
    assert!(issues.is_empty(), "{issues:?}");
    let mut alerts = Vec::new();
    for e in events(&sorted) {
        det.observe(&e, &mut alerts);
    }
    alerts
}

/// Techniques judged impossible to see in CloudTrail alone, with the reason (also
/// in docs/detections.md).
const OUT_OF_REACH: [(&str, &str); 0] = [];

#[test]
#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]
fn stratus_techniques_alert_with_an_ordinary_user_agent() {
    let dir = conformance_data().join("attack-logs/stratus/detonation-logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 35, "{}", dir.display());
    let mut covered = 0;
    let mut report = Vec::new();
    for f in &files {
        let technique = f.file_stem().unwrap().to_str().unwrap().to_owned();
        let mut records: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        records.iter_mut().for_each(plain_agent);
        let alerts = detect(&records);
        let want = expected(&technique);
        let mut by_rule: BTreeSet<String> = BTreeSet::new();
        let mut right = false;
        for a in &alerts {
            let cat = a.rule.category.as_str();
            right |= cat == want;
            by_rule.insert(format!(
                "{} ({cat})",
                a.rule.name.as_deref().unwrap_or(&a.rule.key)
            ));
        }
        if right {
            covered += 1;
        }
        report.push(format!(
            "{} {technique} [{want}]: {}",
            if right { "ok  " } else { "MISS" },
            by_rule.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    println!("{}", report.join("\n"));
    println!(
        "{covered} of {} techniques alert with the right category",
        files.len()
    );
    let allowed_misses = OUT_OF_REACH.len();
    assert!(
        covered + allowed_misses >= files.len() && covered >= 33,
        "{covered} of {} covered:\n{}",
        files.len(),
        report.join("\n")
    );
}

/// Findings judged acceptable on the real account's non-attack records: the rule,
/// the labelled phase, and the judgement (docs/detections.md lists each finding).
const JUDGED: [(&str, &str, &str); 12] = [
    // Terraform (the run's set-up and tear-down, some of it labelled background)
    // doing what the rule describes: right per rule, expected from infrastructure
    // code, tuned away with a filter on the deploying principal.
    (
        "vigil_secret_deleted_without_recovery",
        "background",
        "Terraform destroy of secrets created with no recovery window",
    ),
    (
        "vigil_cloudtrail_tampering",
        "background",
        "Terraform destroy deleting the trail it created",
    ),
    (
        "vigil_s3_bucket_deleted",
        "background",
        "Terraform destroy (low severity, context only)",
    ),
    (
        "vigil_s3_buckets_deleted_burst",
        "background",
        "Terraform destroy removing several buckets at once",
    ),
    (
        "vigil_security_log_group_deleted",
        "background",
        "Terraform destroy of the flow-log group it created",
    ),
    (
        "vigil_ami_deregistered",
        "background",
        "Terraform destroy (low severity, context only)",
    ),
    (
        "vigil_login_profile_changed",
        "warmup",
        "Terraform giving the technique's user a console password",
    ),
    (
        "vigil_admin_policy_attached",
        "warmup",
        "Terraform preparing the backdoor-role technique",
    ),
    (
        "vigil_rds_manual_snapshot",
        "warmup",
        "Terraform making the snapshot the sharing technique shares",
    ),
    // Another account copied a snapshot the EBS-sharing technique shared: the
    // attack's effect, recorded after its detonation and labelled background.
    (
        "vigil_shared_snapshot_taken",
        "background",
        "the sharing technique's snapshot being copied out",
    ),
    // People working by hand outside Terraform.
    (
        "vigil_iam_full_dump",
        "background",
        "a person (benjamin) downloading the IAM configuration: low, worth a look",
    ),
    (
        "vigil_ssm_parameters_harvested",
        "background",
        "the operator listing then decrypting parameters by hand",
    ),
];

#[test]
#[cfg_attr(
    any(no_conformance_data, no_attack_labels),
    ignore = "conformance data (with the team's attack-log labels) not found"
)]
fn real_account_background_and_setup_findings_are_judged() {
    let base = conformance_data().join("attack-logs/invictus-sigma-aws");
    let labels = std::fs::read_to_string(base.join("LABELS.tsv")).unwrap();
    let mut phase_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in labels.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 10 {
            phase_of.insert(cols[3].to_owned(), (cols[9].to_owned(), cols[8].to_owned()));
        }
    }
    let text = std::fs::read_to_string(base.join("cloudtrail.jsonl")).unwrap();
    let records: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            plain_agent(&mut r);
            r
        })
        .collect();
    assert!(records.len() > 2500, "{}", records.len());
    let alerts = detect(&records);
    let mut unjudged = Vec::new();
    let mut rows = Vec::new();
    let mut per_phase: BTreeMap<String, usize> = BTreeMap::new();
    let mut used = [false; JUDGED.len()];
    for a in &alerts {
        let rule = a.rule.name.as_deref().unwrap_or(&a.rule.key);
        let (phase, technique) = a
            .event_ids
            .iter()
            .find_map(|id| phase_of.get(id))
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), String::new()));
        *per_phase.entry(phase.clone()).or_default() += 1;
        if !phase.starts_with("detonation") {
            rows.push(format!(
                "{phase:<28} {rule:<36} {technique} {}",
                a.principal.as_deref().unwrap_or("-")
            ));
        }
        // Stratus undoing its detonations ("revert") is the attack tool acting too.
        let attack = phase.starts_with("detonation") || phase.starts_with("revert");
        match JUDGED
            .iter()
            .position(|(r, p, _)| *r == rule && phase.starts_with(p))
        {
            Some(i) => used[i] = true,
            None if !attack => unjudged.push(format!("{phase}: {rule} ({technique})")),
            None => {}
        }
    }
    println!("{}\n{per_phase:?}", rows.join("\n"));
    assert!(
        unjudged.is_empty(),
        "findings nobody has judged:\n{}",
        unjudged.join("\n")
    );
    let stale: Vec<&str> = JUDGED
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|((r, _, _), _)| *r)
        .collect();
    assert!(
        stale.is_empty(),
        "judged findings that no longer occur: {stale:?}"
    );
}
