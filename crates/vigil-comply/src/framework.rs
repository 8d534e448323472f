//! Framework catalogues (`content/compliance/*.yaml`): each control's id, title,
//! section and whether it can be assessed automatically, and the checks that
//! support it, named as Prowler names them (the public mapping everyone lines up
//! with). Vigil resolves each name to its own checks (`Check::prowler`); a control
//! none of whose checks Vigil runs is listed as not assessed.
//!
//! A control passes when every result of every check it has is PASS or
//! NOT_APPLICABLE, fails when any is FAIL, and is in error when the rest are fine
//! but a check could not judge. A framework's score is the share of its assessed
//! controls (pass or fail) that pass. A control judged on only some of its checks
//! (the catalogue names checks Vigil does not run) says which are missing, and
//! the framework counts such controls as `partial`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::{Check, CheckResult, Status};
use crate::checks;

/// The built-in catalogues.
const BUILTIN: &[(&str, &str)] = &[
    (
        "cis-3.0.yaml",
        include_str!("../../../content/compliance/cis-3.0.yaml"),
    ),
    (
        "nist-csf-2.0.yaml",
        include_str!("../../../content/compliance/nist-csf-2.0.yaml"),
    ),
    (
        "pci-dss-4.0.yaml",
        include_str!("../../../content/compliance/pci-dss-4.0.yaml"),
    ),
    (
        "hipaa.yaml",
        include_str!("../../../content/compliance/hipaa.yaml"),
    ),
    (
        "gdpr.yaml",
        include_str!("../../../content/compliance/gdpr.yaml"),
    ),
];

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Framework {
    /// What the API calls it (`CIS`, `NIST-CSF`…), matched case-insensitively.
    pub id: String,
    pub name: String,
    pub version: String,
    pub controls: Vec<Control>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Assessment {
    Automated,
    Manual,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub level: Option<String>,
    pub assessment: Assessment,
    /// The checks that support it, by Prowler's names.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Vigil's own checks for it, where they judge the control more exactly than
    /// the Prowler names resolve to (these replace the resolution).
    #[serde(default)]
    pub vigil_checks: Vec<String>,
}

impl Control {
    /// Vigil's checks for this control (deduplicated, in catalogue order), and the
    /// names Vigil has no check for.
    pub fn resolve(&self) -> (Vec<&'static Check>, Vec<&str>) {
        if !self.vigil_checks.is_empty() {
            let mut have = Vec::new();
            let mut missing = Vec::new();
            for id in &self.vigil_checks {
                match checks::by_id(id) {
                    Some(c) => have.push(c),
                    None => missing.push(id.as_str()),
                }
            }
            return (have, missing);
        }
        let mut have: Vec<&'static Check> = Vec::new();
        let mut missing = Vec::new();
        for name in &self.checks {
            let mut found = false;
            for c in checks::for_prowler(name) {
                found = true;
                if !have.iter().any(|h| h.id == c.id) {
                    have.push(c);
                }
            }
            if !found {
                missing.push(name.as_str());
            }
        }
        (have, missing)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CatalogError {
    pub file: String,
    pub message: String,
}

/// Reads a catalogue; an unknown field or a control without an id or title is
/// refused with the file and place.
pub fn parse(file: &str, text: &str) -> Result<Framework, CatalogError> {
    let f: Framework = serde_saphyr::from_str(text).map_err(|e| CatalogError {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    let mut seen = std::collections::HashSet::new();
    for c in &f.controls {
        if c.id.trim().is_empty() || c.title.trim().is_empty() {
            return Err(CatalogError {
                file: file.to_owned(),
                message: format!("control {:?}: id and title are required", c.id),
            });
        }
        if let Some(bad) = c.vigil_checks.iter().find(|id| checks::by_id(id).is_none()) {
            return Err(CatalogError {
                file: file.to_owned(),
                message: format!("control {}: no Vigil check is called {bad}", c.id),
            });
        }
        if !seen.insert(c.id.as_str()) {
            return Err(CatalogError {
                file: file.to_owned(),
                message: format!("control {} is listed twice", c.id),
            });
        }
    }
    Ok(f)
}

/// The built-in frameworks.
pub fn builtin() -> Result<Vec<Framework>, CatalogError> {
    BUILTIN.iter().map(|(f, t)| parse(f, t)).collect()
}

/// A control's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ControlStatus {
    Pass,
    Fail,
    Error,
    /// To be judged by a person.
    Manual,
    /// Vigil runs none of its checks.
    NotAssessed,
}

impl ControlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Pass => "PASS",
            ControlStatus::Fail => "FAIL",
            ControlStatus::Error => "ERROR",
            ControlStatus::Manual => "MANUAL",
            ControlStatus::NotAssessed => "NOT_ASSESSED",
        }
    }
}

impl std::fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the stored and printed name (`"FAIL"`).
impl PartialEq<&str> for ControlStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The verdict on one control.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ControlResult {
    pub control_id: String,
    pub title: String,
    pub section: Option<String>,
    pub status: ControlStatus,
    pub checks: Vec<String>,
    /// The failing (or erring) results behind a FAIL or ERROR.
    pub failures: Vec<CheckResult>,
    /// Checks the catalogue names for the control that Vigil does not run (by
    /// their Prowler names): a verdict on the rest covers the control in part.
    pub unassessed_checks: Vec<String>,
    /// Remediation for a failure, from the failing checks.
    pub remediation: Option<String>,
    /// The playbooks that fix a failure, where some do.
    pub playbooks: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FrameworkResult {
    pub framework: String,
    pub name: String,
    pub version: String,
    /// Passing controls over assessed (passing or failing) controls, in percent;
    /// None when nothing could be assessed.
    pub score: Option<f64>,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub manual: usize,
    pub not_assessed: usize,
    /// Controls judged (pass or fail) on only part of the checks the catalogue
    /// names for them.
    pub partial: usize,
    pub controls: Vec<ControlResult>,
}

/// Judges every control of `framework` from `results` (all checks' results).
pub fn assess(framework: &Framework, results: &[CheckResult]) -> FrameworkResult {
    let mut by_check: BTreeMap<&str, Vec<&CheckResult>> = BTreeMap::new();
    for r in results {
        by_check.entry(r.check.as_str()).or_default().push(r);
    }
    let mut out = FrameworkResult {
        framework: framework.id.clone(),
        name: framework.name.clone(),
        version: framework.version.clone(),
        score: None,
        passed: 0,
        failed: 0,
        errors: 0,
        manual: 0,
        not_assessed: 0,
        partial: 0,
        controls: Vec::new(),
    };
    for c in &framework.controls {
        let (have, missing) = c.resolve();
        let mut r = ControlResult {
            control_id: c.id.clone(),
            title: c.title.clone(),
            section: c.section.clone(),
            status: ControlStatus::NotAssessed,
            checks: have.iter().map(|h| h.id.to_owned()).collect(),
            failures: Vec::new(),
            unassessed_checks: if have.is_empty() {
                Vec::new()
            } else {
                missing.iter().map(|m| (*m).to_owned()).collect()
            },
            remediation: None,
            playbooks: Vec::new(),
        };
        r.status = if c.assessment == Assessment::Manual {
            out.manual += 1;
            ControlStatus::Manual
        } else if have.is_empty() {
            out.not_assessed += 1;
            ControlStatus::NotAssessed
        } else {
            let mut failed = Vec::new();
            let mut erred = Vec::new();
            for h in &have {
                let rs = by_check.get(h.id).map(Vec::as_slice).unwrap_or_default();
                if rs.is_empty() {
                    erred.push(CheckResult {
                        check: h.id.to_owned(),
                        status: Status::Error,
                        account: String::new(),
                        region: None,
                        resource_arn: String::new(),
                        evidence: "the check was not run".into(),
                    });
                }
                for x in rs {
                    match x.status {
                        Status::Fail => failed.push((*x).clone()),
                        Status::Error => erred.push((*x).clone()),
                        Status::Pass | Status::NotApplicable => {}
                    }
                }
            }
            let failing: Vec<&Check> = have
                .iter()
                .copied()
                .filter(|h| failed.iter().chain(&erred).any(|f| f.check == h.id))
                .collect();
            r.remediation = (!failing.is_empty()).then(|| {
                failing
                    .iter()
                    .map(|h| h.remediation)
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            r.playbooks = failing
                .iter()
                .filter_map(|h| h.playbook.map(str::to_owned))
                .collect();
            r.playbooks.dedup();
            if !failed.is_empty() {
                out.failed += 1;
                r.failures = failed;
                r.failures.extend(erred);
                ControlStatus::Fail
            } else if !erred.is_empty() {
                out.errors += 1;
                r.failures = erred;
                ControlStatus::Error
            } else {
                out.passed += 1;
                ControlStatus::Pass
            }
        };
        if matches!(r.status, ControlStatus::Pass | ControlStatus::Fail)
            && !r.unassessed_checks.is_empty()
        {
            out.partial += 1;
        }
        out.controls.push(r);
    }
    let judged = out.passed + out.failed;
    out.score = (judged > 0).then(|| (out.passed as f64 * 1000.0 / judged as f64).round() / 10.0);
    out
}
