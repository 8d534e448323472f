//! Vigil's pipeline as a library, in the shape of sources → transforms → sinks:
//!
//! - [`Source`]s deliver telemetry ([`Delivery`]): the inbox directory, HTTP
//!   ingest (signed posts, EventBridge events, Firehose), the demo story;
//! - the [`Detect`] stage decodes, skips records taken before ([`seen`]), runs
//!   detection and folds alerts into findings;
//! - [`Output`]s take what each delivery changed: the store first (findings,
//!   their incidents, the source's checkpoint and the record identities, in one
//!   transaction), then the others (a JSON-lines file, the response engine…);
//! - and only then is the delivery acknowledged to its source.
//!
//! Components are found by the `type` of their `[[sources]]` / `[[outputs]]`
//! table in the configuration ([`build_sources`], [`build_outputs`]); each reads
//! its own table into a struct that refuses unknown keys.

pub mod batch;
mod component;
mod detect;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod notify;
pub mod outputs;
pub mod report;
mod run;
pub mod seen;
pub mod service;
pub mod sources;

pub use component::{
    config_of, Ack, BuildContext, Checkpoint, Commit, Delivery, IncidentChange, Inlet, Output,
    Receipt, Source, Telemetry, ERRORS_LISTED,
};
pub use detect::{Detect, Observed};
pub use run::{now, Pipeline, Running};

/// What can go wrong in the pipeline, named for the user.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    #[error("the pipeline has stopped")]
    Stopped,
}

/// A component's table, split into its type, its name and the rest.
pub(crate) fn split(
    kind: &str,
    i: usize,
    mut table: toml::Table,
) -> Result<(String, String, toml::Table), PipelineError> {
    let ty = match table.remove("type") {
        Some(toml::Value::String(t)) => t,
        Some(_) => {
            return Err(PipelineError::Config(format!(
                "{kind}s[{i}]: `type` must be a string"
            )))
        }
        None => {
            return Err(PipelineError::Config(format!(
                "{kind}s[{i}]: `type` is missing"
            )))
        }
    };
    let name = match table.remove("name") {
        Some(toml::Value::String(n)) => n,
        Some(_) => {
            return Err(PipelineError::Config(format!(
                "{kind}s[{i}]: `name` must be a string"
            )))
        }
        None => ty.clone(),
    };
    Ok((ty, name, table))
}

fn find<'r, B>(kind: &str, registry: &'r [(&str, B)], ty: &str) -> Result<&'r B, PipelineError> {
    registry
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, b)| b)
        .ok_or_else(|| {
            let known: Vec<&str> = registry.iter().map(|(t, _)| *t).collect();
            PipelineError::Config(format!(
                "no {kind} type `{ty}` (there are: {})",
                known.join(", ")
            ))
        })
}

/// Builds each table with the builder its `type` names in `registry`; names
/// must be unique.
/// A component type's builder.
type Builder<T> = fn(&BuildContext<'_>, toml::Table) -> Result<Box<T>, PipelineError>;

fn build_all<T: ?Sized>(
    kind: &str,
    registry: &[(&str, Builder<T>)],
    tables: &[toml::Table],
    env: &Env<'_>,
) -> Result<Vec<(String, Box<T>)>, PipelineError> {
    let mut out: Vec<(String, Box<T>)> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let (ty, name, rest) = split(kind, i, t.clone())?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(PipelineError::Config(format!(
                "two {kind}s are named `{name}`"
            )));
        }
        let build = find(kind, registry, &ty)?;
        let ctx = BuildContext {
            name: name.clone(),
            data_dir: env.data_dir,
            store: env.store,
            aws: env.aws,
        };
        out.push((name, build(&ctx, rest)?));
    }
    Ok(out)
}

/// What every component is built with besides its table.
pub struct Env<'a> {
    pub data_dir: &'a std::path::Path,
    pub store: &'a vigil_store::SharedStore,
    pub aws: &'a service::AwsConfig,
}

/// Builds every `[[sources]]` table.
pub fn build_sources(
    tables: &[toml::Table],
    env: &Env<'_>,
) -> Result<Vec<Box<dyn Source>>, PipelineError> {
    let built = build_all("source", sources::REGISTRY, tables, env)?;
    Ok(built.into_iter().map(|(_, s)| s).collect())
}

/// Builds every `[[outputs]]` table.
pub fn build_outputs(
    tables: &[toml::Table],
    env: &Env<'_>,
) -> Result<Vec<Box<dyn Output>>, PipelineError> {
    let built = build_all("output", outputs::REGISTRY, tables, env)?;
    Ok(built.into_iter().map(|(_, o)| o).collect())
}
