//! Continuous compliance in `vigil serve`: the inventory is read (from AWS, or a
//! snapshot file) and assessed every `interval`; a CloudTrail event that changes
//! what the checks judge (a bucket policy put, a security group opened, a trail
//! stopped) has that part re-read and the whole reassessed at once. Every
//! assessment is stored (the score's history, the API's answer, the metrics'
//! `compliance_score`), and a control of an account that passed before and
//! fails now raises a PolicyViolation finding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::{Commit, Output, PipelineError};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
#[cfg(feature = "aws")]
use vigil_aws::inventory::{self, Part, Scope};
use vigil_comply::framework::{self, Framework};
use vigil_comply::{checks, run_checks, Snapshot};
use vigil_detect::finding::{Category, Mitre, RuleInfo, RuleKind};
use vigil_detect::{Alert, Finding, Findings};
#[cfg(feature = "aws")]
use vigil_model::SourceKind;
use vigil_model::{Event, Severity, Timestamp};
use vigil_store::compliance::{Assessment, ALL_SCOPE};
use vigil_store::SharedStore;

use super::config::{AwsConfig, ComplianceConfig};

/// The pipeline's side of compliance: an output that sees every event and
/// sends a recheck for each that changes what the checks judge.
pub struct Tap(UnboundedSender<Recheck>);

/// The tap, and what the compliance task reads its rechecks from.
pub fn tap() -> (Tap, UnboundedReceiver<Recheck>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Tap(tx), rx)
}

impl Output for Tap {
    fn name(&self) -> &str {
        "compliance"
    }

    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, e: &Event) {
        if let Some(r) = recheck_for(e) {
            // The task ends only at shutdown.
            let _ = self.0.send(r);
        }
    }

    fn commit(&mut self, _c: &mut Commit<'_>) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// A part of an account to re-read.
pub type Recheck = (String, Part);

/// Without the SDK there is nothing to re-read a part from (a snapshot file is
/// read whole), so no event asks for a part.
#[cfg(not(feature = "aws"))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {}

#[cfg(not(feature = "aws"))]
pub fn recheck_for(_e: &Event) -> Option<Recheck> {
    None
}

/// What the pipeline sends for a CloudTrail event that changed something the
/// checks judge: the account and the part to re-read.
#[cfg(feature = "aws")]
pub fn recheck_for(e: &Event) -> Option<Recheck> {
    if e.source != SourceKind::CloudTrail || e.outcome.is_failure() {
        return None;
    }
    let action = e.action.as_ref()?;
    let account = e.account.clone()?;
    let bucket = (action.service == "s3")
        .then(|| {
            let raw = e.raw.to_json()?;
            raw.pointer("/requestParameters/bucketName")?
                .as_str()
                .map(str::to_owned)
        })
        .flatten();
    let part = inventory::part_changed_by(
        &action.service,
        &action.operation,
        e.region.as_deref(),
        bucket.as_deref(),
    )?;
    Some((account, part))
}

/// Where the inventory comes from.
enum Source {
    File(std::path::PathBuf),
    #[cfg(feature = "aws")]
    Aws(Box<vigil_aws::Aws>, Scope),
}

impl Source {
    async fn read_all(&self) -> Result<Snapshot, String> {
        match self {
            Source::File(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || Snapshot::read(&p).map_err(|e| e.to_string()))
                    .await
                    .map_err(|e| e.to_string())?
            }
            #[cfg(feature = "aws")]
            Source::Aws(aws, scope) => Ok(inventory::collect(aws, scope).await),
        }
    }
}

/// The compliance task: runs until the recheck channel closes (at shutdown).
#[cfg_attr(not(feature = "aws"), allow(unused_variables))]
pub async fn run(
    cfg: ComplianceConfig,
    aws: AwsConfig,
    writer: SharedStore,
    mut rx: UnboundedReceiver<Recheck>,
) {
    let frameworks = match framework::builtin() {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("compliance off: {e}");
            return;
        }
    };
    let interval = cfg.interval.duration().max(Duration::from_secs(1));
    let source = match &cfg.snapshot {
        Some(p) => Source::File(p.clone()),
        #[cfg(not(feature = "aws"))]
        None => {
            tracing::warn!(
                "compliance off: {}; name a [compliance] snapshot file instead",
                super::without_aws("read an inventory from AWS")
            );
            return;
        }
        #[cfg(feature = "aws")]
        None => {
            let aws = vigil_aws::Aws::new(aws.read_settings()).await;
            Source::Aws(
                Box::new(aws),
                Scope {
                    accounts: cfg.accounts.clone(),
                    regions: cfg.regions.clone(),
                },
            )
        }
    };
    loop {
        let mut snapshot = match source.read_all().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("compliance: {e}");
                None
            }
        };
        if let Some(s) = &snapshot {
            assess(s, &frameworks, &writer).await;
        }
        let next = tokio::time::Instant::now() + interval;
        loop {
            let first = tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            // Whatever else came meanwhile is re-read in the same pass.
            let mut parts = BTreeSet::from([first]);
            while let Ok(m) = rx.try_recv() {
                parts.insert(m);
            }
            match (&source, &mut snapshot) {
                #[cfg(feature = "aws")]
                (Source::Aws(aws, _), Some(s)) => {
                    for (account, part) in &parts {
                        inventory::refresh(aws, s, account, part).await;
                    }
                }
                _ => match source.read_all().await {
                    Ok(s) => snapshot = Some(s),
                    Err(e) => tracing::warn!("compliance: {e}"),
                },
            }
            if let Some(s) = &snapshot {
                assess(s, &frameworks, &writer).await;
            }
        }
    }
}

/// Runs the checks, stores every framework's verdict, and raises a finding for
/// each control of an account that passed before and fails now.
async fn assess(snapshot: &Snapshot, frameworks: &[Framework], writer: &SharedStore) {
    let snapshot = snapshot.clone();
    let frameworks = frameworks.to_vec();
    let writer = writer.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let now = vigil_server::now();
        let results = run_checks(&snapshot);
        let records = assessment_records(&snapshot, &results, &frameworks, now);
        let mut store = writer.lock();
        let mut before = BTreeMap::new();
        for a in &snapshot.accounts {
            for prior in store
                .current_assessments(&a.account_id)
                .map_err(|e| e.to_string())?
            {
                before.insert((prior.framework.clone(), prior.scope.clone()), prior);
            }
        }
        store
            .record_assessments(&records)
            .map_err(|e| e.to_string())?;
        let findings = regressions(&before, &records, now);
        if !findings.is_empty() {
            store
                .record_findings(&findings, now)
                .map_err(|e| e.to_string())?;
        }
        let cis = records
            .iter()
            .find(|r| r.scope == ALL_SCOPE && r.framework == "CIS")
            .and_then(|r| r.score)
            .map_or("n/a".to_owned(), |s| format!("{s:.1}%"));
        Ok(format!(
            "{} results, CIS {cis}, {} control(s) newly failing",
            results.len(),
            findings.len()
        ))
    })
    .await;
    match done {
        Ok(Ok(line)) => tracing::info!("compliance: {line}"),
        Ok(Err(e)) => tracing::error!("compliance not stored: {e}"),
        Err(e) => tracing::warn!("compliance: {e}"),
    }
}

/// A control's status in a stored body, by control id.
fn statuses(body: &str) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["controls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["control_id"].as_str()?.to_owned(),
                c["status"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The findings for controls that went from PASS to FAIL in an account.
fn regressions(
    before: &BTreeMap<(String, String), Assessment>,
    now_records: &[Assessment],
    now: Timestamp,
) -> Vec<Finding> {
    let mut findings = Findings::new(0);
    let mut out = Vec::new();
    for r in now_records.iter().filter(|r| r.scope != ALL_SCOPE) {
        let Some(prior) = before.get(&(r.framework.clone(), r.scope.clone())) else {
            continue;
        };
        let was = statuses(&prior.body);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        for c in body["failed_controls"].as_array().into_iter().flatten() {
            let (Some(id), Some("FAIL")) = (c["control_id"].as_str(), c["status"].as_str()) else {
                continue;
            };
            if was.get(id).map(String::as_str) != Some("PASS") {
                continue;
            }
            let failing: Vec<&serde_json::Value> = c["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["status"] == "FAIL")
                .collect();
            let first = failing.first();
            let check = first.and_then(|x| x["check"].as_str()).unwrap_or("");
            let known = checks::by_id(check);
            let severity = known.map(|k| k.severity).unwrap_or(Severity::Medium);
            let description = format!(
                "{} {} {} passed at the previous assessment and fails now: {}",
                r.framework,
                id,
                c["description"].as_str().unwrap_or(""),
                first
                    .and_then(|x| x["evidence"].as_str())
                    .unwrap_or("see the failing checks")
            );
            let rule = RuleInfo {
                key: format!("vigil-compliance-{}-{id}", r.framework.to_ascii_lowercase()),
                name: None,
                title: format!(
                    "Compliance regression: {} {id} {}",
                    r.framework,
                    c["description"].as_str().unwrap_or("")
                ),
                description: description.clone(),
                kind: RuleKind::Native,
                category: Category::PolicyViolation,
                severity,
                confidence: 100,
                playbook: known.and_then(|k| k.playbook).map(str::to_owned),
                mitre: Mitre::default(),
                resource_field: None,
                resource_type: None,
                principal_field: None,
                destinations: Vec::new(),
                rationale: Some(
                    "The control passed at the previous assessment and fails now: a change made it fail."
                        .into(),
                ),
                falsepositives: Vec::new(),
            };
            let mut evidence = vigil_detect::finding::Evidence {
                aws_region: first.and_then(|x| x["region"].as_str()).map(str::to_owned),
                ..Default::default()
            };
            evidence
                .extra
                .insert("control".into(), serde_json::json!(id));
            evidence
                .extra
                .insert("framework".into(), serde_json::json!(r.framework));
            evidence.extra.insert(
                "failing".into(),
                serde_json::json!(failing.iter().take(10).collect::<Vec<_>>()),
            );
            let alert = Alert {
                rule: Arc::new(rule),
                first: now,
                last: now,
                account: Some(r.scope.clone()),
                region: first.and_then(|x| x["region"].as_str()).map(str::to_owned),
                principal: None,
                resource_arn: first
                    .and_then(|x| x["resource_arn"].as_str())
                    .map(str::to_owned),
                resource_type: None,
                resources: failing
                    .iter()
                    .filter_map(|x| x["resource_arn"].as_str().map(str::to_owned))
                    .collect(),
                detection_source: "vigil-compliance",
                title: None,
                description: Some(description),
                severity: None,
                confidence: None,
                evidence,
                event_ids: Vec::new(),
                events: 1,
                // An assessment, not a record: nothing arrived.
                raw: None,
            };
            let (_, f) = findings.record(alert, now);
            out.push(f.clone());
        }
    }
    out
}

/// The stored form of one run of the checks: each framework judged over all
/// accounts together (scope `*`) and over each account alone, in the shape
/// `GET /api/v1/compliance/{framework}` answers with.
pub fn assessment_records(
    snapshot: &Snapshot,
    results: &[vigil_comply::CheckResult],
    frameworks: &[Framework],
    at: vigil_model::Timestamp,
) -> Vec<vigil_store::compliance::Assessment> {
    let mut scopes: Vec<(String, Vec<vigil_comply::CheckResult>)> = vec![(
        vigil_store::compliance::ALL_SCOPE.to_owned(),
        results.to_vec(),
    )];
    if snapshot.accounts.len() > 1 {
        for a in &snapshot.accounts {
            let mine = results
                .iter()
                .filter(|r| r.account == a.account_id)
                .cloned()
                .collect();
            scopes.push((a.account_id.clone(), mine));
        }
    } else if let Some(a) = snapshot.accounts.first() {
        // One account: its own scope is the whole.
        scopes.push((a.account_id.clone(), results.to_vec()));
    }
    let mut out = Vec::new();
    for (scope, rs) in &scopes {
        for f in frameworks {
            let v = framework::assess(f, rs);
            out.push(vigil_store::compliance::Assessment {
                framework: v.framework.clone(),
                scope: scope.clone(),
                assessed_at: at,
                score: v.score,
                passed: v.passed as u64,
                failed: v.failed as u64,
                errors: v.errors as u64,
                body: api_body(&v, scope, at).to_string(),
            });
        }
    }
    out
}

/// The API's compliance answer (docs/service.md) (`framework`, `assessment_date`, `score`,
/// `failed_controls` with `control_id`, `description`, `status`, `remediation`),
/// with the counts, each failing control's resources and playbooks, and every
/// control's status.
pub fn api_body(
    v: &framework::FrameworkResult,
    scope: &str,
    at: vigil_model::Timestamp,
) -> serde_json::Value {
    let failed: Vec<serde_json::Value> = v
        .controls
        .iter()
        .filter(|c| c.status == "FAIL" || c.status == "ERROR")
        .map(|c| {
            serde_json::json!({
                "control_id": c.control_id,
                "description": c.title,
                "status": c.status,
                "remediation": c.remediation,
                "playbooks": c.playbooks,
                "checks": c.checks,
                "unassessed_checks": c.unassessed_checks,
                "resources": c.failures.iter().map(|f| serde_json::json!({
                    "check": f.check,
                    "status": f.status.as_str(),
                    "account": f.account,
                    "region": f.region,
                    "resource_arn": f.resource_arn,
                    "evidence": f.evidence,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "framework": v.framework,
        "name": v.name,
        "version": v.version,
        "scope": scope,
        "assessment_date": at,
        "score": v.score,
        "passed": v.passed,
        "failed": v.failed,
        "errors": v.errors,
        "manual": v.manual,
        "not_assessed": v.not_assessed,
        "partial": v.partial,
        "failed_controls": failed,
        "controls": v.controls.iter().map(|c| serde_json::json!({
            "control_id": c.control_id,
            "status": c.status,
        })).collect::<Vec<_>>(),
    })
}
