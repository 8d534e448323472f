//! The detect-and-dedup stage: every event runs through the detector, alerts fold
//! into findings (the same rule, principal and resource within the dedup window
//! update one finding), and, in a service, records already taken are skipped by
//! their identity. `vigil scan` and `vigil serve` both detect through it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use vigil_detect::finding::{RuleInfo, Update};
use vigil_detect::{Alert, Detector, Finding, Findings};
use vigil_model::{Event, Timestamp};

use crate::seen::{record_id, Seen};

/// Detection over a stream of events.
pub struct Detect {
    detector: Detector,
    findings: Findings,
    alerts: Vec<Alert>,
    /// Record identities (a service; a scan reads each file once).
    seen: Option<Seen>,
    /// Where learned baselines are kept between runs, if anywhere.
    baselines: Option<PathBuf>,
    /// How much of each open finding's count this stage has committed (the
    /// store adds only the rest, so writers side by side never count twice).
    committed: HashMap<String, u64>,
    /// The last record-identity row of the store this stage has read, and the
    /// rows it added itself since (not read back).
    records_after: Option<i64>,
    own_rows: Vec<i64>,
}

/// What observing one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Detected,
    /// Taken before (same identity): skipped.
    Duplicate,
}

impl Detect {
    /// Detection into `findings`; those open in it already (taken back from
    /// the store) count as committed.
    pub fn new(detector: Detector, findings: Findings) -> Detect {
        let committed = findings
            .open()
            .map(|f| (f.id.clone(), f.detail.count))
            .collect();
        Detect {
            detector,
            findings,
            alerts: Vec::new(),
            seen: None,
            baselines: None,
            committed,
            records_after: None,
            own_rows: Vec::new(),
        }
    }

    /// Takes back a finding stored before (see [`Findings::reopen`]), as
    /// committed in full.
    pub fn reopen(&mut self, f: Finding) {
        self.committed.insert(f.id.clone(), f.detail.count);
        self.findings.reopen(f);
    }

    /// Reads other writers' record identities from row `seq` of the store on.
    pub fn with_records_after(mut self, seq: i64) -> Detect {
        self.records_after = Some(seq);
        self
    }

    /// The last record-identity row read (see [`Detect::with_records_after`]).
    pub fn records_after(&self) -> Option<i64> {
        self.records_after
    }

    /// Takes the record identities other writers of `store` committed since
    /// the last call, so that records they took are skipped here.
    pub fn catch_up(&mut self, store: &vigil_store::Store) -> Result<(), vigil_store::StoreError> {
        let (Some(after), Some(seen)) = (self.records_after, &mut self.seen) else {
            return Ok(());
        };
        let (rows, last) = store.seen_records_after(after, &self.own_rows)?;
        seen.restore(rows);
        self.records_after = Some(last);
        self.own_rows.retain(|&r| r > last);
        Ok(())
    }

    /// How much of each of `changed`'s counts is committed already.
    pub fn committed_of(&self, changed: &[Finding]) -> Vec<u64> {
        changed
            .iter()
            .map(|f| self.committed.get(&f.id).copied().unwrap_or(0))
            .collect()
    }

    /// `local` (as detected here) was committed as `stored`: later alerts
    /// update the stored finding (its id and number may be another writer's),
    /// and only what comes after counts next time.
    pub fn on_committed(
        &mut self,
        local: &[Finding],
        stored: &[Finding],
        records_seq: Option<i64>,
    ) {
        for (l, s) in local.iter().zip(stored) {
            if l.id != s.id || l.detail.finding_id != s.detail.finding_id {
                self.findings.adopt(&l.id, s);
                self.committed.remove(&l.id);
            }
            self.committed.insert(s.id.clone(), l.detail.count);
        }
        if let Some(r) = records_seq {
            self.own_rows.push(r);
        }
        if self.committed.len() > 2 * self.findings.open_count() + 1024 {
            let open: std::collections::HashSet<&str> =
                self.findings.open().map(|f| f.id.as_str()).collect();
            self.committed.retain(|id, _| open.contains(id.as_str()));
        }
    }

    /// Skips records whose identity was taken before (see [`crate::seen`]).
    pub fn with_seen(mut self, seen: Seen) -> Detect {
        self.seen = Some(seen);
        self
    }

    /// Saves learned baselines to `path` on [`Detect::save_baselines`].
    pub fn with_baselines(mut self, path: PathBuf) -> Detect {
        self.baselines = Some(path);
        self
    }

    /// Runs `event` through detection at wall-clock `now`; `heard` learns every
    /// alert's rule and whether it opened or updated a finding.
    pub fn observe(
        &mut self,
        event: &Event,
        now: Timestamp,
        heard: &mut dyn FnMut(&Arc<RuleInfo>, Update),
    ) -> Observed {
        if let Some(seen) = &mut self.seen {
            if !seen.take(record_id(event), now.as_millis()) {
                return Observed::Duplicate;
            }
        }
        vigil_detect::detector::detect_into(
            &mut self.detector,
            &mut self.findings,
            event,
            now,
            &mut self.alerts,
            heard,
        );
        Observed::Detected
    }

    pub fn findings(&mut self) -> &mut Findings {
        &mut self.findings
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    pub fn seen(&mut self) -> Option<&mut Seen> {
        self.seen.as_mut()
    }

    /// Hands out what changed since the last call: findings opened or updated
    /// (`changed`, to store) and findings whose window has closed (dropped here:
    /// they were stored when they last changed).
    pub fn take_changed(&mut self, changed: &mut Vec<Finding>) {
        self.findings.take_changed(changed);
        let mut closed = Vec::new();
        self.findings.drain_closed(&mut closed);
    }

    /// After a delivery that was not committed: its record identities are given
    /// back, and the open findings are taken back as `stored` (the store's), so
    /// that its redelivery counts once. Correlation windows and baselines keep
    /// what they saw (see docs/architecture.md).
    pub fn roll_back(&mut self, stored: Vec<Finding>) {
        if let Some(seen) = &mut self.seen {
            seen.rolled_back();
        }
        self.findings.forget_open();
        self.committed.clear();
        for f in stored {
            self.reopen(f);
        }
    }

    /// Writes learned baselines where [`Detect::with_baselines`] said.
    pub fn save_baselines(&self) {
        if let Some(path) = &self.baselines {
            if let Err(e) = self.detector.natives().state.save(path) {
                tracing::warn!(file = ?path, error = %e, "baselines not saved");
            }
        }
    }
}
