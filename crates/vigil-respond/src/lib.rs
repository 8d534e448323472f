//! Response playbooks as data: the YAML format and its checks ([`playbook`]), the
//! catalogue of actions a step may name ([`action`]), what a step's templates and
//! conditions read from a finding ([`context`], [`template`]), and planning what a
//! playbook would do for a finding ([`plan`]) — the dry run — and the engine that
//! carries runs out and keeps their state in the store ([`engine`]).
//!
//! What it is not: the calls to AWS. The engine asks an [`exec::Executor`] to
//! carry each action out; `vigil-aws` is the one that calls AWS.

mod action;
mod context;
mod engine;
/// The seam to the outside world: what runs an action (`vigil-aws` supplies
/// the real one).
pub mod exec;
mod plan;
mod playbook;
mod template;

pub use action::{ActionSpec, CATALOGUE};
pub use context::{resource_type_of, Context};
pub use engine::{Engine, EngineConfig, EngineError, RunStatus, Start};
pub use plan::{plan, Gate, Plan, PlannedStep};
pub use playbook::{Automation, Library, OnFailure, Playbook, PlaybookError, Step};
