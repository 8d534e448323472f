//! A plan: what a playbook would do for one finding, step by step — whether each
//! step runs (its condition), the action's API calls and their parameters filled
//! in, and whether it waits for a person. A dry run is a plan printed; a run
//! carries one out. Planning changes nothing and calls nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_model::Environment;

use crate::action::Scope;
use crate::context::Context;
use crate::playbook::{Automation, OnFailure, Playbook, Step};
use crate::template::render;

/// Why a step waits for a person, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// The playbook says so for this step.
    Step,
    /// A semi-automated playbook: the run is approved before its first step.
    Playbook,
    /// A manual playbook: every step is approved.
    Manual,
    /// A step hard to undo, in a production or security-tooling account.
    Environment,
}

/// What would happen at one step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub action: &'static str,
    /// The API operations the action makes.
    pub calls: &'static [&'static str],
    /// Where: the account and region the calls go to (no account: the
    /// organization's management account).
    pub account: Option<String>,
    pub region: Option<String>,
    /// The parameters with their templates filled; `None` when one has no value
    /// for this finding (see `problem`).
    pub parameters: Option<Value>,
    /// False when the step's condition does not hold: it is skipped.
    pub runs: bool,
    pub gate: Option<Gate>,
    pub destructive: bool,
    pub on_failure: OnFailure,
    /// Why the step cannot run as written (a parameter with no value).
    pub problem: Option<String>,
}

/// What a playbook would do for one finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub playbook: String,
    pub automation: Automation,
    pub environment: Option<Environment>,
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    /// Steps that would run but cannot (a template with no value).
    pub fn problems(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps.iter().filter(|s| s.runs && s.problem.is_some())
    }
}

/// The region IAM and other global services are called in.
const GLOBAL_REGION: &str = "us-east-1";

/// Plans `playbook` for the finding of `ctx`, in an account of `environment`.
pub fn plan(playbook: &Playbook, ctx: &Context, environment: Option<Environment>) -> Plan {
    let mut steps = Vec::with_capacity(playbook.steps.len());
    for (i, step) in playbook.steps.iter().enumerate() {
        steps.push(plan_step(playbook, i, step, ctx, environment));
    }
    Plan {
        playbook: playbook.id.clone(),
        automation: playbook.automation,
        environment,
        steps,
    }
}

/// Plans one step (also used for rollback steps, with `index` past the end).
pub fn plan_step(
    playbook: &Playbook,
    index: usize,
    step: &Step,
    ctx: &Context,
    environment: Option<Environment>,
) -> PlannedStep {
    let runs = step.when.as_ref().is_none_or(|c| c.holds(ctx));
    let rendered: Result<serde_json::Map<String, Value>, String> = step
        .parameters
        .iter()
        .map(|(k, v)| {
            render(v, ctx)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("parameter {k}: {e}"))
        })
        .collect();
    let (parameters, problem) = match rendered {
        Ok(m) => (Some(Value::Object(m)), None),
        Err(why) => (None, Some(why)),
    };
    let sensitive = matches!(
        environment,
        Some(Environment::Production | Environment::SecurityTooling)
    );
    let gate = if step.approval {
        Some(Gate::Step)
    } else if playbook.automation == Automation::Manual {
        Some(Gate::Manual)
    } else if playbook.automation == Automation::Semi && index == first_running(playbook, ctx) {
        Some(Gate::Playbook)
    } else if step.action.destructive && sensitive {
        Some(Gate::Environment)
    } else {
        None
    };
    // Vigil's own bus is in its own account and home region (none: the home one).
    let region = match step.action.scope {
        Scope::Global => Some(GLOBAL_REGION.to_owned()),
        Scope::Vigil => None,
        Scope::Regional | Scope::Organization => ctx
            .lookup("region")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    // Organizations calls go to the management account, whichever the finding's.
    let account = match step.action.scope {
        Scope::Organization | Scope::Vigil => None,
        _ => ctx
            .lookup("account")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    PlannedStep {
        id: step.id.clone(),
        action: step.action.name,
        calls: step.action.calls,
        account,
        region,
        parameters,
        runs,
        gate: gate.filter(|_| runs),
        destructive: step.action.destructive,
        on_failure: step.on_failure,
        problem,
    }
}

/// The index of the first step whose condition holds (where a semi-automated
/// playbook waits for its approval).
fn first_running(playbook: &Playbook, ctx: &Context) -> usize {
    playbook
        .steps
        .iter()
        .position(|s| s.when.as_ref().is_none_or(|c| c.holds(ctx)))
        .unwrap_or(0)
}
