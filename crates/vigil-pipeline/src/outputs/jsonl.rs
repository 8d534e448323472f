//! `type = "jsonl"`: every finding, as it opens and each time it changes, as
//! one JSON line (the finding schema of `docs/findings.md`) appended to a file,
//! for a log shipper, `jq`, or a SIEM that tails files. A finding that changes
//! appears again with the same `id` and its new `count` and `last_seen`: the
//! last line of an `id` is its state.
//!
//! ```toml
//! [[outputs]]
//! type = "jsonl"
//! path = "findings.jsonl"   # relative to the data directory
//! ```

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::Deserialize;

use crate::component::{config_of, BuildContext, Commit, Output};
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: PathBuf,
}

pub struct JsonLines {
    name: String,
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

pub fn build(ctx: &BuildContext<'_>, table: toml::Table) -> Result<Box<dyn Output>, PipelineError> {
    let c: Config = config_of("output", &ctx.name, table)?;
    let path = ctx.data_dir.join(c.path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| PipelineError::Io(format!("output `{}`: {}", ctx.name, path.display()), e))?;
    Ok(Box::new(JsonLines {
        name: ctx.name.clone(),
        path,
        out: BufWriter::new(file),
    }))
}

impl Output for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError> {
        if c.findings.is_empty() {
            return Ok(());
        }
        let io = |e| PipelineError::Io(format!("output `{}`: {}", self.name, self.path.display()), e);
        for f in c.findings.iter() {
            serde_json::to_writer(&mut self.out, f).map_err(|e| io(e.into()))?;
            self.out.write_all(b"\n").map_err(io)?;
        }
        // Whole lines reach the file at every delivery.
        self.out.flush().map_err(io)
    }
}
