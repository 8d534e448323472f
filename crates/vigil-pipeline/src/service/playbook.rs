//! `vigil playbooks run`: one playbook carried out from the command line, against
//! the service's store (the finding and its incident stored first, as the service
//! would) and its AWS settings.

use std::path::Path;
use std::sync::Arc;

use vigil_detect::Finding;
use vigil_respond::{Engine, EngineConfig, RunStatus, Start};
use vigil_store::{Grouping, RunRecord, SharedStore, Store};

use super::{err, Result, ServeConfig};

/// Runs `playbook` (else the one the finding triggers) on `finding` as `who`,
/// approving each gate as them when `approve`; the run as it ended.
pub fn run_once(
    config: &ServeConfig,
    data_dir: &Path,
    finding: Finding,
    playbook: Option<String>,
    approve: bool,
    who: &str,
) -> Result<RunRecord> {
    let library = config.response.library()?;
    let playbook = match playbook {
        Some(id) => id,
        None => library
            .for_finding(&finding)
            .map(|p| p.id.clone())
            .ok_or_else(|| err("no playbook is triggered by this finding; give --playbook"))?,
    };
    let grouping = Grouping {
        window_ms: config.incident_window.as_millis(),
        accounts: config.registry()?,
    };
    let mut store = Store::open(data_dir, grouping)?;
    store.record_findings(std::slice::from_ref(&finding), crate::now())?;
    let incident_id = store.incident_of(&finding.id)?;
    let incident = match &incident_id {
        Some(id) => store
            .incident(id)?
            .and_then(|v| serde_json::to_value(v).ok()),
        None => None,
    };
    let store = SharedStore::new(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::PipelineError::Io("starting a runtime".into(), e))?;
    let run = rt.block_on(async {
        let aws = vigil_aws::Aws::new(config.aws.response_settings()).await;
        let engine = Engine::new(
            store.clone(),
            Arc::new(aws),
            Arc::new(library),
            EngineConfig::default(),
        );
        let run = engine
            .create(Start {
                playbook,
                finding,
                incident,
                incident_id,
                requested_by: who.to_owned(),
            })
            .await
            .map_err(err)?;
        let mut status = engine.drive(&run.id).await.map_err(err)?;
        while status == RunStatus::AwaitingApproval && approve {
            engine.approve(&run.id, who).await.map_err(err)?;
            status = engine.drive(&run.id).await.map_err(err)?;
        }
        Ok::<_, crate::PipelineError>(run.id)
    })?;
    let record = store
        .lock()
        .run(&run)?
        .ok_or_else(|| err(format!("run {run} vanished")))?;
    Ok(record)
}
