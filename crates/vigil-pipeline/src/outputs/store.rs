//! `type = "store"` (always there in `vigil serve`, first): the embedded store.
//! It is the pipeline's commit point: a delivery's findings (each new one filed
//! under its incident), its source's checkpoint and its record identities are
//! written in one transaction, and only then is the delivery acknowledged.

use vigil_store::SharedStore;

use crate::component::{Commit, IncidentChange, Output};
use crate::PipelineError;

pub struct StoreOutput {
    store: SharedStore,
}

impl StoreOutput {
    pub fn new(store: SharedStore) -> StoreOutput {
        StoreOutput { store }
    }
}

impl Output for StoreOutput {
    fn name(&self) -> &str {
        "store"
    }

    fn is_store(&self) -> bool {
        true
    }

    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError> {
        let delivery = vigil_store::Delivery {
            findings: &c.findings,
            checkpoint: c.checkpoint.map(|k| (k.key.as_str(), k.position.as_str())),
            records: c.records,
            forget_before: c.forget_before,
            mode: vigil_store::FindingMode::Merge {
                window_ms: c.dedup_window_ms,
                committed: c.committed,
            },
            records_after: c.records_after,
        };
        let done = self.store.lock().commit(&delivery, c.now)?;
        c.findings = std::borrow::Cow::Owned(done.stored);
        c.records_seq = done.records_seq;
        c.receipt.new_findings += done.new_findings;
        c.receipt.updated_findings += done.updated_findings;
        c.receipt.new_incidents += done.new_incidents;
        c.incidents
            .extend(done.opened.into_iter().map(IncidentChange::Opened));
        Ok(())
    }
}
