//! Detection: which events are threats.
//!
//! Today this is a Sigma engine: rules (the community's and our own) are loaded from
//! YAML, compiled once into matchers, indexed by source and CloudTrail event name,
//! and evaluated over `vigil_model::Event`s. Correlation rules, behavioural baselines
//! and the finding schema (docs/findings.md) build on it.
//!
//! This crate does no IO beyond reading rule files; events come from `vigil-ingest`.

pub mod builtin;
pub mod coverage;
pub mod detector;
pub mod engine;
pub mod files;
pub mod finding;
pub mod native;
pub mod sigma;
pub mod testcases;

pub use detector::{Detector, DetectorConfig};
pub use engine::{RuleSet, Scratch};
pub use finding::{Alert, Finding, Findings};
pub use sigma::RuleIssue;
