//! The detect-and-dedup stage: every event runs through the detector, alerts fold
//! into findings (the same rule, principal and resource within the dedup window
//! update one finding), and, in a service, records already taken are skipped by
//! their identity. `vigil scan` and `vigil serve` both detect through it.

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
}

/// What observing one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Detected,
    /// Taken before (same identity): skipped.
    Duplicate,
}

impl Detect {
    pub fn new(detector: Detector, findings: Findings) -> Detect {
        Detect {
            detector,
            findings,
            alerts: Vec::new(),
            seen: None,
            baselines: None,
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
        for f in stored {
            self.findings.reopen(f);
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
