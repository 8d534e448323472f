//! The response engine as an output (on when `[response]` is enabled and
//! automatic): every stored finding whose playbook the library has is handed to
//! the engine, which starts at most one run per incident and playbook.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use vigil_detect::Finding;

use crate::component::{Commit, Output};
use crate::PipelineError;

pub struct Trigger {
    library: Arc<vigil_respond::Library>,
    tx: UnboundedSender<Finding>,
}

impl Trigger {
    pub fn new(library: Arc<vigil_respond::Library>, tx: UnboundedSender<Finding>) -> Trigger {
        Trigger { library, tx }
    }
}

impl Output for Trigger {
    fn name(&self) -> &str {
        "respond"
    }

    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError> {
        for f in c.findings.iter() {
            if self.library.for_finding(f).is_some() {
                // The engine's task ends only at shutdown.
                let _ = self.tx.send(f.clone());
            }
        }
        Ok(())
    }
}
