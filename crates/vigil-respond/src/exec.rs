//! What the engine asks of whatever carries actions out (`vigil-aws` against AWS):
//! run one action with its parameters in an account and region, and say what it
//! changed or why it failed — sorted into the failures worth a retry and the rest.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an action did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// False when AWS was already in the state asked for (nothing changed).
    pub changed: bool,
    /// The API operations made, in order (`iam:UpdateAccessKey`).
    pub calls: Vec<String>,
    /// What was found and done: ids, the state before (for a rollback).
    pub detail: Value,
}

/// Why an action did not complete.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// Worth another try: throttling, a 5xx, a network failure or timeout.
    #[error("{op}: {message} (may pass on retry)")]
    Transient { op: String, message: String },
    /// The resource the action is about does not exist.
    #[error("{op}: {message}")]
    NotFound { op: String, message: String },
    /// Not allowed: the response role lacks the permission, or cannot be assumed.
    #[error("{op}: access denied: {message}")]
    Denied { op: String, message: String },
    /// A parameter is missing or malformed.
    #[error("parameter {name}: {message}")]
    Parameter { name: String, message: String },
    /// The catalogue names an action this build does not carry out.
    #[error("action {0} is not available in this build")]
    Unsupported(String),
    /// Anything else AWS refused.
    #[error("{op}: {message}")]
    Failed { op: String, message: String },
}

impl ActionError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ActionError::Transient { .. })
    }

    /// A short name of the kind, as recorded with a failed step.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionError::Transient { .. } => "transient",
            ActionError::NotFound { .. } => "not_found",
            ActionError::Denied { .. } => "denied",
            ActionError::Parameter { .. } => "parameter",
            ActionError::Unsupported(_) => "unsupported",
            ActionError::Failed { .. } => "failed",
        }
    }
}

/// The future an executor gives back.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, ActionError>> + Send + 'a>>;

/// Carries out one action of the catalogue.
pub trait Executor: Send + Sync {
    /// Runs action `name` with `params` (rendered) in `account` (none: Vigil's own
    /// or the organization's management account) and `region` (none: the home one).
    fn execute<'a>(
        &'a self,
        name: &'a str,
        params: &'a Value,
        account: Option<&'a str>,
        region: Option<&'a str>,
    ) -> ActionFuture<'a>;
}
