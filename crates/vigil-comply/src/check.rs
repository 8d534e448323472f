//! What a check is and what it reports. A check reads one account's snapshot and
//! returns one result per resource it judges (a user, a bucket, a region…):
//! PASS, FAIL, NOT_APPLICABLE (nothing of the kind to judge) or ERROR (the facts
//! it needs could not be collected), each with the resource, the evidence the
//! verdict rests on, and the remediation.

use serde::{Deserialize, Serialize};
use vigil_model::{Severity, Timestamp};

use crate::snapshot::AccountSnapshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pass,
    Fail,
    NotApplicable,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotApplicable => "NOT_APPLICABLE",
            Status::Error => "ERROR",
        }
    }
}

/// One verdict on one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: String,
    pub status: Status,
    pub account: String,
    /// None for a global resource (an IAM user, the account's password policy).
    pub region: Option<String>,
    pub resource_arn: String,
    /// What the verdict rests on, in a sentence.
    pub evidence: String,
}

/// What a check reads.
pub struct Input<'a> {
    pub account: &'a AccountSnapshot,
    /// "Now" for ages (key rotation, last use): the snapshot's collection time.
    pub now: Timestamp,
}

impl Input<'_> {
    pub fn id(&self) -> &str {
        &self.account.account_id
    }

    /// The account's ARN, for account-wide verdicts.
    pub fn account_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.id())
    }

    /// Days from `t` to now (0 when `t` is later).
    pub fn days_since(&self, t: Timestamp) -> i64 {
        (self.now.as_millis() - t.as_millis()).max(0) / 86_400_000
    }
}

/// A check: its id, what it asks, what fixes a failure, and how it runs.
pub struct Check {
    /// Vigil's name for it (`iam_root_mfa`).
    pub id: &'static str,
    pub title: &'static str,
    pub service: &'static str,
    pub severity: Severity,
    pub remediation: &'static str,
    /// The playbook that fixes a failure, where one does.
    pub playbook: Option<&'static str>,
    /// The names Prowler gives the checks that judge the same thing: how the
    /// framework mappings (which list Prowler's names) reach Vigil's checks, and how
    /// `scripts/compare-prowler` lines verdicts up.
    pub prowler: &'static [&'static str],
    pub run: fn(&Input, &mut Results),
}

/// Where a check puts its verdicts.
pub struct Results {
    check: &'static str,
    account: String,
    pub items: Vec<CheckResult>,
}

impl Results {
    pub fn new(check: &'static str, account: &str) -> Results {
        Results {
            check,
            account: account.to_owned(),
            items: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        status: Status,
        region: Option<&str>,
        resource_arn: impl Into<String>,
        evidence: impl Into<String>,
    ) {
        self.items.push(CheckResult {
            check: self.check.to_owned(),
            status,
            account: self.account.clone(),
            region: region.map(str::to_owned),
            resource_arn: resource_arn.into(),
            evidence: evidence.into(),
        });
    }

    /// PASS when `ok`, else FAIL.
    pub fn verdict(
        &mut self,
        ok: bool,
        region: Option<&str>,
        resource_arn: impl Into<String>,
        evidence: impl Into<String>,
    ) {
        let status = if ok { Status::Pass } else { Status::Fail };
        self.push(status, region, resource_arn, evidence);
    }

    /// ERROR for `service` if its collection failed (globally, or in `region`):
    /// true when it did, and the check should judge nothing more there.
    pub fn unread(&mut self, input: &Input, service: &str, region: Option<&str>) -> bool {
        match input.account.error_for(service, region) {
            Some(e) => {
                let arn = input.account_arn();
                self.push(
                    Status::Error,
                    region,
                    arn,
                    format!(
                        "{} {} could not be read: {}",
                        e.service, e.operation, e.message
                    ),
                );
                true
            }
            None => false,
        }
    }
}

impl Check {
    /// Runs the check on one account.
    pub fn evaluate(&self, input: &Input) -> Vec<CheckResult> {
        let mut out = Results::new(self.id, input.id());
        (self.run)(input, &mut out);
        out.items
    }
}
