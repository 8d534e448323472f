//! `type = "http"`: telemetry posted to the API (`POST /api/v1/ingest`, signed;
//! EventBridge events among what it reads; `POST /api/v1/firehose`, Kinesis Data
//! Firehose's HTTP endpoint format). The API's handlers submit through this
//! source's handle and answer their client only once the delivery is committed:
//! a 200 means "stored and queryable", and a client (or Firehose) that retries
//! after an error or a timeout delivers again what record identity absorbs.
//!
//! ```toml
//! [[sources]]
//! type = "http"
//! ```

use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use vigil_server::{Ingest, IngestBatch, IngestError, IngestReceipt};

use crate::component::{config_of, BuildContext, Delivery, Inlet, Source, Telemetry};
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

/// The source; its handle is what the API holds.
pub struct Http {
    name: String,
    handle: Arc<Handle>,
}

/// What the API's ingest routes submit through.
pub struct Handle {
    source: Arc<str>,
    inlet: OnceLock<Inlet>,
}

pub fn build(ctx: &BuildContext<'_>, table: toml::Table) -> Result<Box<dyn Source>, PipelineError> {
    let _: Config = config_of("source", &ctx.name, table)?;
    Ok(Box::new(Http::new(&ctx.name)))
}

impl Http {
    pub fn new(name: &str) -> Http {
        Http {
            name: name.to_owned(),
            handle: Arc::new(Handle {
                source: Arc::from(name),
                inlet: OnceLock::new(),
            }),
        }
    }
}

impl Source for Http {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(
        self: Box<Self>,
        inlet: Inlet,
    ) -> Result<Option<std::thread::JoinHandle<()>>, PipelineError> {
        self.handle.inlet.set(inlet).ok();
        Ok(None)
    }

    fn ingest(&self) -> Option<Arc<dyn Ingest>> {
        Some(Arc::clone(&self.handle) as Arc<dyn Ingest>)
    }
}

impl Ingest for Handle {
    fn submit(&self, batches: Vec<IngestBatch>) -> Result<IngestReceipt, IngestError> {
        let inlet = self.inlet.get().ok_or(IngestError::Stopped)?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        inlet
            .deliver(Delivery {
                source: Arc::clone(&self.source),
                items: batches
                    .into_iter()
                    .map(|b| Telemetry::Bytes {
                        name: b.name,
                        body: b.body,
                    })
                    .collect(),
                checkpoint: None,
                complete: None,
                ack: Some(Box::new(move |r| {
                    reply.send(r).ok();
                })),
            })
            .map_err(|_| IngestError::Stopped)?;
        let r = answer
            .recv()
            .map_err(|_| IngestError::Stopped)?
            .map_err(|e| IngestError::NotStored(e.to_string()))?;
        Ok(IngestReceipt {
            events: r.events,
            duplicates: r.duplicates,
            errors: r.errors,
            new_findings: r.new_findings,
            updated_findings: r.updated_findings,
            new_incidents: r.new_incidents,
        })
    }
}
