//! Response playbooks as data: the YAML format and its checks ([`playbook`]), the
//! catalogue of actions a step may name ([`action`]), what a step's templates and
//! conditions read from a finding ([`context`], [`template`]), and planning what a
//! playbook would do for a finding ([`plan`]) — the dry run.
//!
//! What it is not: the calls to AWS (`vigil-aws` implements every action of the
//! catalogue) or the store of runs. This crate does no IO beyond reading playbook
//! files.

pub mod action;
pub mod context;
pub mod plan;
pub mod playbook;
pub mod template;

pub use action::{ActionSpec, CATALOGUE};
pub use context::Context;
pub use plan::{plan, Gate, Plan, PlannedStep};
pub use playbook::{Automation, Library, OnFailure, Playbook, PlaybookError, Step};
