//! Compliance: the account inventory snapshot ([`snapshot`]), the checks that read
//! it ([`checks`], CIS AWS Foundations and more), and the framework catalogues that
//! turn check results into control verdicts and scores ([`framework`]).

pub mod check;
pub mod checks;
pub mod framework;
pub mod snapshot;

pub use check::{Check, CheckResult, Input, Status};
pub use framework::{assess, ControlResult, ControlStatus, Framework, FrameworkResult};
pub use snapshot::{AccountSnapshot, Snapshot, SnapshotError, SNAPSHOT_VERSION};

/// Every check on every account of `snapshot`.
pub fn run_checks(snapshot: &Snapshot) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for account in &snapshot.accounts {
        let input = Input {
            account,
            now: snapshot.collected_at,
        };
        for c in checks::all() {
            out.extend(c.evaluate(&input));
        }
    }
    out
}
