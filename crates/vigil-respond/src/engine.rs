//! The engine: carries playbook runs out, step by step, writing every move to the
//! store before and after it makes it, so that a run outlives the process.
//!
//! - A run is planned once, when it is made: each step's parameters are filled
//!   from the finding, its gate decided (per step, per playbook, or by the
//!   account's environment), and the plan stored with it.
//! - A step is marked `RUNNING` before its action is called and `SUCCEEDED` or
//!   `FAILED` after. A step found `RUNNING` when a run is taken up again was cut off
//!   by a crash: it runs again only if its action is repeatable (it looks before it
//!   changes); otherwise it becomes `UNKNOWN` and the run waits for a person
//!   (`NEEDS_ATTENTION`) — an action that is not repeatable never runs twice.
//! - Failures worth a retry are retried with doubling backoff; each attempt has the
//!   step's timeout. A step that fails for good continues, aborts, or rolls back
//!   the steps that changed something, as it says.
//! - A gate stops the run (`AWAITING_APPROVAL`) until a person approves or rejects.
//! - At most `max_concurrent` runs call AWS at once; the rest wait their turn.
//! - The incident moves to `REMEDIATING` when a run starts and to `RESOLVED` when
//!   its last run completes (back to `ACKNOWLEDGED` if one does not).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use vigil_model::Finding;
use vigil_model::{Environment, Timestamp};
use vigil_store::{
    AuditLine, IncidentStatus, RunRecord, SharedStore, StepRecord, Store, StoreError,
};

use crate::context::Context;
use crate::exec::{ActionError, Executor};
use crate::plan::{plan, plan_step, Gate, Plan, PlannedStep};
use crate::playbook::{Automation, Library, OnFailure, Playbook, Step};

pub use vigil_model::response::{Phase, RunStatus, StepStatus};

/// What is stored of a step's plan and read back to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    pub calls: Vec<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub parameters: Option<Value>,
    pub runs: bool,
    pub gate: Option<Gate>,
    pub destructive: bool,
    pub repeatable: bool,
    pub on_failure: OnFailure,
    pub problem: Option<String>,
    pub retries: u32,
    pub backoff_ms: u64,
    pub timeout_ms: u64,
}

impl StepPlan {
    fn new(p: PlannedStep, step: &Step) -> StepPlan {
        StepPlan {
            calls: p.calls.iter().map(|c| (*c).to_owned()).collect(),
            account: p.account,
            region: p.region,
            parameters: p.parameters,
            runs: p.runs,
            gate: p.gate,
            destructive: p.destructive,
            repeatable: step.action.repeatable,
            on_failure: p.on_failure,
            problem: p.problem,
            retries: step.retries.as_ref().map_or(0, |r| r.max),
            backoff_ms: step
                .retries
                .as_ref()
                .map_or(1000, |r| r.backoff.as_millis() as u64),
            timeout_ms: step.timeout.as_millis() as u64,
        }
    }
}

/// Why the engine refused.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no playbook {0}")]
    NoPlaybook(String),
    #[error("no run {0}")]
    NoRun(String),
    /// Approve or reject a run that waits for nothing.
    #[error("run {id} is {status}: nothing awaits approval")]
    NotWaiting { id: String, status: RunStatus },
    #[error("run {0} is damaged: {1}")]
    Damaged(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task: {0}")]
    Task(String),
}

/// How the engine works.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Runs calling AWS at once.
    pub max_concurrent: usize,
    /// The longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent: 8,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What starts a run.
pub struct Start {
    pub playbook: String,
    pub finding: Finding,
    /// The incident (as the API shows it) the finding is filed under.
    pub incident: Option<Value>,
    pub incident_id: Option<String>,
    /// Who asked: a principal, or `vigil:auto` for a finding's trigger.
    pub requested_by: String,
}

struct Inner {
    store: SharedStore,
    exec: Arc<dyn Executor>,
    library: Arc<Library>,
    permits: Semaphore,
    config: EngineConfig,
    /// Runs a task is driving now: never two tasks on one run.
    driving: Mutex<HashSet<String>>,
}

/// Who the engine's own moves are recorded as.
pub const ENGINE: &str = "vigil:engine";

/// The playbook engine; cheap to clone (all clones share one engine).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// A new run id: a name-based UUID over the time, the process and a counter, so
/// that two workers never make the same one.
fn new_run_id(playbook: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}/{}/{n}/{playbook}", std::process::id());
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
    format!("run-{}", id.simple())
}

impl Engine {
    pub fn new(
        store: SharedStore,
        exec: Arc<dyn Executor>,
        library: Arc<Library>,
        config: EngineConfig,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                exec,
                library,
                permits: Semaphore::new(config.max_concurrent.max(1)),
                config,
                driving: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn library(&self) -> &Arc<Library> {
        &self.inner.library
    }

    /// The environment the account registry gives `account`.
    async fn environment(
        &self,
        account: Option<String>,
    ) -> Result<Option<Environment>, EngineError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let s = store.lock();
            account
                .as_deref()
                .and_then(|a| s.accounts().get(a).map(|a| a.environment))
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))
    }

    /// What a run of `start` would do — every step's calls and parameters, and
    /// its gates in the finding's account — without storing or calling anything.
    pub async fn dry_run(&self, start: Start) -> Result<Plan, EngineError> {
        let pb = self
            .inner
            .library
            .get(&start.playbook)
            .ok_or_else(|| EngineError::NoPlaybook(start.playbook.clone()))?;
        let ctx = Context::new(&start.finding, start.incident, "dry-run");
        let env = self.environment(start.finding.account.clone()).await?;
        Ok(plan(pb, &ctx, env))
    }

    /// Runs `f` on the store, off the async threads.
    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, EngineError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = store.lock();
            f(&mut s)
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
        .map_err(EngineError::from)
    }

    /// Plans a run and stores it (`IN_PROGRESS`); nothing is called yet. The
    /// incident, if any, moves to `REMEDIATING`.
    pub async fn create(&self, start: Start) -> Result<RunRecord, EngineError> {
        let pb = self
            .inner
            .library
            .get(&start.playbook)
            .ok_or_else(|| EngineError::NoPlaybook(start.playbook.clone()))?
            .clone();
        let id = new_run_id(&pb.id);
        let ctx = Context::new(&start.finding, start.incident, &id);
        let account = start.finding.account.clone();
        let environment = self.environment(account.clone()).await?;
        let t = now();
        let run = RunRecord {
            id: id.clone(),
            playbook: pb.id.clone(),
            incident_id: start.incident_id.clone(),
            finding_id: Some(start.finding.detail.finding_id.clone()),
            status: RunStatus::InProgress,
            requested_by: start.requested_by.clone(),
            account,
            region: ctx
                .lookup("region")
                .and_then(Value::as_str)
                .map(str::to_owned),
            environment: environment.map(|e| e.as_str().to_owned()),
            created_at: t,
            updated_at: t,
            finished_at: None,
            detected_at: Some(start.finding.time),
            note: None,
            context: ctx.as_value().clone(),
            steps: plan_steps(&pb, &ctx, environment),
        };
        let record = run.clone();
        let actor = start.requested_by;
        let target = id.clone();
        let what = format!("playbook {} started", pb.id);
        let incident = start.incident_id;
        self.store(move |s| {
            let line = AuditLine {
                at: t,
                principal: &actor,
                action: &what,
                target: &target,
                outcome: "IN_PROGRESS",
            };
            s.create_run(&run, &line)?;
            if let Some(inc) = incident {
                let note = format!("{} started (run {})", run.playbook, run.id);
                move_incident(s, &inc, IncidentStatus::Remediating, &note, t);
            }
            Ok(())
        })
        .await?;
        Ok(record)
    }

    /// Takes run `id` up in a task of its own (returns at once).
    pub fn spawn(&self, id: String) {
        let engine = self.clone();
        tokio::spawn(async move {
            // A failure to even read the store is recorded by nothing else.
            if let Err(e) = engine.drive(&id).await {
                tracing::error!("run {id}: {e}");
            }
        });
    }

    /// Takes up every run left active (after a restart), each in its own task.
    pub async fn resume_all(&self) -> Result<Vec<String>, EngineError> {
        let ids = self
            .store(|s| s.run_ids_in(&[RunStatus::InProgress, RunStatus::RollingBack]))
            .await?;
        for id in &ids {
            self.spawn(id.clone());
        }
        Ok(ids)
    }

    /// Carries run `id` on until it rests: done, failed, or waiting for a
    /// person. Its status then.
    pub async fn drive(&self, id: &str) -> Result<RunStatus, EngineError> {
        {
            let mut driving = self.inner.driving.lock().unwrap_or_else(|p| p.into_inner());
            if !driving.insert(id.to_owned()) {
                // Another task has it.
                return Ok(RunStatus::InProgress);
            }
        }
        struct Release<'a>(&'a Inner, String);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0
                    .driving
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.1);
            }
        }
        let _release = Release(&self.inner, id.to_owned());
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
        self.advance(id).await
    }

    async fn load(&self, id: &str) -> Result<RunRecord, EngineError> {
        let key = id.to_owned();
        self.store(move |s| s.run(&key))
            .await?
            .ok_or_else(|| EngineError::NoRun(id.to_owned()))
    }

    async fn advance(&self, id: &str) -> Result<RunStatus, EngineError> {
        let mut run = self.load(id).await?;
        let mut status = run.status;
        // A run cut off between its last step and its end.
        while status.is_active() {
            let phase = if status == RunStatus::RollingBack {
                Phase::Rollback
            } else {
                Phase::Step
            };
            let Some(i) = run.steps.iter().position(|s| {
                s.phase == phase && matches!(s.status, StepStatus::Pending | StepStatus::Running)
            }) else {
                let end = if status == RunStatus::RollingBack {
                    let failed = run
                        .steps
                        .iter()
                        .any(|s| s.phase == Phase::Rollback && s.status == StepStatus::Failed);
                    if failed {
                        RunStatus::Failed
                    } else {
                        RunStatus::RolledBack
                    }
                } else {
                    RunStatus::Succeeded
                };
                self.finish(&mut run, end, None).await?;
                return Ok(end);
            };
            status = self.step(&mut run, i).await?;
        }
        Ok(status)
    }

    /// Moves step `i` of `run` on; the run's status after it.
    async fn step(&self, run: &mut RunRecord, i: usize) -> Result<RunStatus, EngineError> {
        let plan: StepPlan = serde_json::from_value(run.steps[i].plan.clone()).map_err(|e| {
            EngineError::Damaged(run.id.clone(), format!("step {}: {e}", run.steps[i].seq))
        })?;
        let rolling = run.steps[i].phase == Phase::Rollback;
        let current = if rolling {
            RunStatus::RollingBack
        } else {
            RunStatus::InProgress
        };
        if run.steps[i].status == StepStatus::Running && !plan.repeatable {
            // Cut off by a crash mid-call: it may have happened. Not again.
            let why = format!(
                "step {} ({}) was cut off mid-call and may have run; it is not safe to repeat",
                run.steps[i].step_id, run.steps[i].action
            );
            self.set_step(run, i, StepStatus::Unknown, |s| s.error = Some(why.clone()))
                .await?;
            self.halt(run, RunStatus::NeedsAttention, &why).await?;
            return Ok(RunStatus::NeedsAttention);
        }
        if !plan.runs {
            self.set_step(run, i, StepStatus::Skipped, |_| {}).await?;
            return Ok(current);
        }
        if plan.gate.is_some() && run.steps[i].approved_by.is_none() && !rolling {
            self.set_step(run, i, StepStatus::AwaitingApproval, |_| {})
                .await?;
            let why = format!("step {} waits for approval", run.steps[i].step_id);
            self.halt(run, RunStatus::AwaitingApproval, &why).await?;
            return Ok(RunStatus::AwaitingApproval);
        }
        let params = match (&plan.parameters, &plan.problem) {
            (Some(p), None) => self.parameters(run, &run.steps[i].action, p),
            (_, problem) => {
                let why = problem.clone().unwrap_or_else(|| "no parameters".into());
                return self.failed(run, i, &plan, why).await;
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let t = now();
            self.set_step(run, i, StepStatus::Running, |s| {
                s.attempts += 1;
                s.started_at.get_or_insert(t);
            })
            .await?;
            let call = self.inner.exec.execute(
                &run.steps[i].action,
                &params,
                plan.account.as_deref(),
                plan.region.as_deref(),
            );
            let result =
                match tokio::time::timeout(Duration::from_millis(plan.timeout_ms), call).await {
                    Ok(r) => r,
                    // A call that timed out may have happened: worth retrying only
                    // when it may run twice.
                    Err(_) => {
                        let op = run.steps[i].action.clone();
                        let message = format!("no answer within {} ms", plan.timeout_ms);
                        Err(if plan.repeatable {
                            ActionError::Transient { op, message }
                        } else {
                            ActionError::Failed { op, message }
                        })
                    }
                };
            match result {
                Ok(out) => {
                    let done = now();
                    self.set_step(run, i, StepStatus::Succeeded, |s| {
                        s.ended_at = Some(done);
                        s.changed = Some(out.changed);
                        s.calls = out.calls;
                        s.result = out.detail;
                        s.error = None;
                    })
                    .await?;
                    return Ok(current);
                }
                Err(e) if e.is_transient() && attempt <= plan.retries => {
                    let wait = Duration::from_millis(plan.backoff_ms)
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(self.inner.config.max_backoff);
                    let why = e.to_string();
                    self.set_step(run, i, StepStatus::Running, |s| s.error = Some(why))
                        .await?;
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    return self
                        .failed(run, i, &plan, format!("{}: {e}", e.kind()))
                        .await
                }
            }
        }
    }

    /// The parameters of an action as called: `events.emit` with no `detail`
    /// publishes the finding, its incident and the run so far.
    fn parameters(&self, run: &RunRecord, action: &str, p: &Value) -> Value {
        if action != "events.emit" || p.get("detail").is_some() {
            return p.clone();
        }
        let steps: Vec<Value> = run
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Step)
            .map(|s| json!({"step": s.step_id, "action": s.action, "status": s.status, "changed": s.changed, "calls": s.calls}))
            .collect();
        let mut out = p.clone();
        out["detail"] = json!({
            "finding": run.context.get("finding"),
            "incident": run.context.get("incident"),
            "run": {"id": run.id, "playbook": run.playbook, "steps": steps},
        });
        out
    }

    /// Step `i` failed for good: what its `on_failure` says next.
    async fn failed(
        &self,
        run: &mut RunRecord,
        i: usize,
        plan: &StepPlan,
        why: String,
    ) -> Result<RunStatus, EngineError> {
        let done = now();
        let error = why.clone();
        self.set_step(run, i, StepStatus::Failed, |s| {
            s.ended_at = Some(done);
            s.error = Some(error);
        })
        .await?;
        if run.steps[i].phase == Phase::Rollback {
            // A rollback goes on undoing what it can; the run ends FAILED.
            return Ok(RunStatus::RollingBack);
        }
        let step = run.steps[i].step_id.clone();
        match plan.on_failure {
            OnFailure::Continue => Ok(RunStatus::InProgress),
            OnFailure::Abort => {
                self.skip_rest(run).await?;
                let note = format!("step {step} failed: {why}");
                self.finish(run, RunStatus::Failed, Some(&note)).await?;
                Ok(RunStatus::Failed)
            }
            OnFailure::Rollback => {
                self.skip_rest(run).await?;
                // Undo the steps that changed something: their rollback steps
                // run; the others are not needed.
                let changed: HashSet<String> = run
                    .steps
                    .iter()
                    .filter(|s| s.phase == Phase::Step && s.changed == Some(true))
                    .map(|s| s.step_id.clone())
                    .collect();
                for j in 0..run.steps.len() {
                    if run.steps[j].phase == Phase::Rollback
                        && !changed.contains(&run.steps[j].step_id)
                    {
                        self.set_step(run, j, StepStatus::NotRun, |_| {}).await?;
                    }
                }
                let note = format!("step {step} failed: {why}; rolling back");
                self.set_status(run, RunStatus::RollingBack, &note, false)
                    .await?;
                Ok(RunStatus::RollingBack)
            }
        }
    }

    /// Marks the steps not reached as not run.
    async fn skip_rest(&self, run: &mut RunRecord) -> Result<(), EngineError> {
        for j in 0..run.steps.len() {
            if run.steps[j].phase == Phase::Step && run.steps[j].status == StepStatus::Pending {
                self.set_step(run, j, StepStatus::NotRun, |_| {}).await?;
            }
        }
        Ok(())
    }

    /// Sets step `i`'s status (and whatever `edit` changes), stored and audited
    /// as the engine's move.
    async fn set_step(
        &self,
        run: &mut RunRecord,
        i: usize,
        status: StepStatus,
        edit: impl FnOnce(&mut StepRecord),
    ) -> Result<(), EngineError> {
        self.set_step_as(run, i, status, ENGINE, edit).await
    }

    /// Sets step `i`'s status as `actor`'s move.
    async fn set_step_as(
        &self,
        run: &mut RunRecord,
        i: usize,
        status: StepStatus,
        actor: &str,
        edit: impl FnOnce(&mut StepRecord),
    ) -> Result<(), EngineError> {
        let step = &mut run.steps[i];
        let moved = step.status != status;
        step.status = status;
        edit(step);
        let record = step.clone();
        let run_id = run.id.clone();
        let actor = actor.to_owned();
        let t = now();
        self.store(move |s| {
            let target = format!("{run_id}/{}", record.step_id);
            let action = format!(
                "playbook step {} ({})",
                record.status.as_str().to_lowercase(),
                record.action
            );
            let outcome = step_outcome(&record);
            let line = AuditLine {
                at: t,
                principal: &actor,
                action: &action,
                target: &target,
                outcome: &outcome,
            };
            s.update_step(&run_id, &record, t, moved.then_some(&line))
        })
        .await
    }

    async fn set_status(
        &self,
        run: &mut RunRecord,
        status: RunStatus,
        note: &str,
        finished: bool,
    ) -> Result<(), EngineError> {
        run.status = status;
        run.note = Some(note.to_owned());
        let id = run.id.clone();
        let note = note.to_owned();
        let t = now();
        if finished {
            run.finished_at = Some(t);
        }
        self.store(move |s| {
            let action = format!("playbook run {}", status.as_str().to_lowercase());
            let line = AuditLine {
                at: t,
                principal: ENGINE,
                action: &action,
                target: &id,
                outcome: &note,
            };
            s.set_run_status(&id, status, Some(&note), finished, t, &line)
        })
        .await
    }

    /// Stops a run to wait for a person; its incident goes back to them.
    async fn halt(
        &self,
        run: &mut RunRecord,
        status: RunStatus,
        why: &str,
    ) -> Result<(), EngineError> {
        self.set_status(run, status, why, false).await?;
        if status == RunStatus::NeedsAttention {
            self.settle_incident(run, status).await?;
        }
        Ok(())
    }

    /// Ends a run and moves its incident on.
    async fn finish(
        &self,
        run: &mut RunRecord,
        status: RunStatus,
        note: Option<&str>,
    ) -> Result<(), EngineError> {
        let changed = run.steps.iter().filter(|s| s.changed == Some(true)).count();
        let failed = run
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .count();
        for j in 0..run.steps.len() {
            if run.steps[j].status == StepStatus::Pending {
                self.set_step(run, j, StepStatus::NotRun, |_| {}).await?;
            }
        }
        let note = note
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{changed} step(s) changed AWS, {failed} failed"));
        self.set_status(run, status, &note, true).await?;
        self.settle_incident(run, status).await
    }

    /// After a run ends (or needs a person): its incident becomes RESOLVED when no
    /// other run of it is still going and this one succeeded, else ACKNOWLEDGED.
    async fn settle_incident(&self, run: &RunRecord, status: RunStatus) -> Result<(), EngineError> {
        let Some(inc) = run.incident_id.clone() else {
            return Ok(());
        };
        let me = run.id.clone();
        let playbook = run.playbook.clone();
        self.store(move |s| {
            let others = s
                .runs(Some(&inc), None, vigil_store::MAX_PAGE)?
                .into_iter()
                .filter(|r| r.id != me)
                .any(|r| !r.status.is_final());
            if others {
                return Ok(());
            }
            let (to, note) = if status == RunStatus::Succeeded {
                (
                    IncidentStatus::Resolved,
                    format!("{playbook} completed (run {me})"),
                )
            } else {
                (
                    IncidentStatus::Acknowledged,
                    format!(
                        "{playbook} ended {} (run {me}): a responder takes over",
                        status.as_str()
                    ),
                )
            };
            move_incident(s, &inc, to, &note, now());
            Ok(())
        })
        .await
    }

    /// Run `id` and the step it waits on a person for (a gate, or a step a crash
    /// left unknown).
    async fn waiting(&self, id: &str) -> Result<(RunRecord, usize), EngineError> {
        let run = self.load(id).await?;
        let waiting = [StepStatus::AwaitingApproval, StepStatus::Unknown];
        let i = match run.status {
            RunStatus::AwaitingApproval | RunStatus::NeedsAttention => {
                run.steps.iter().position(|s| waiting.contains(&s.status))
            }
            _ => None,
        };
        match i {
            Some(i) => Ok((run, i)),
            None => Err(EngineError::NotWaiting {
                id: id.to_owned(),
                status: run.status,
            }),
        }
    }

    /// Approves what run `id` waits for, as `actor`, and takes it up again (in a
    /// task of its own). A run stopped by a crash (`NEEDS_ATTENTION`) approved
    /// runs its unknown step again: the approver has checked it did not happen.
    pub async fn approve(&self, id: &str, actor: &str) -> Result<RunRecord, EngineError> {
        let (mut run, i) = self.waiting(id).await?;
        let who = actor.to_owned();
        self.set_step_as(&mut run, i, StepStatus::Pending, actor, |s| {
            s.approved_by = Some(who)
        })
        .await?;
        let note = format!("step {} approved by {actor}", run.steps[i].step_id);
        self.set_status(&mut run, RunStatus::InProgress, &note, false)
            .await?;
        if let Some(inc) = run.incident_id.clone() {
            let note = format!("{} resumed (run {}): {note}", run.playbook, run.id);
            self.store(move |s| {
                move_incident(s, &inc, IncidentStatus::Remediating, &note, now());
                Ok(())
            })
            .await?;
        }
        Ok(run)
    }

    /// Rejects what run `id` waits for, as `actor`: the run ends, nothing more runs.
    pub async fn reject(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<RunRecord, EngineError> {
        let (mut run, i) = self.waiting(id).await?;
        let who = actor.to_owned();
        let status = if run.steps[i].status == StepStatus::Unknown {
            StepStatus::Unknown
        } else {
            StepStatus::Rejected
        };
        self.set_step_as(&mut run, i, status, actor, |s| s.approved_by = Some(who))
            .await?;
        self.skip_rest(&mut run).await?;
        let note = match reason {
            Some(r) => format!("rejected by {actor}: {r}"),
            None => format!("rejected by {actor}"),
        };
        self.finish(&mut run, RunStatus::Rejected, Some(&note))
            .await?;
        Ok(run)
    }

    /// Starts the playbook a new finding triggers, if any (one run per incident and
    /// playbook; manual playbooks are never started by a finding). The run made.
    pub async fn on_finding(
        &self,
        finding: &Finding,
        incident_id: Option<&str>,
        incident: Option<Value>,
    ) -> Result<Vec<String>, EngineError> {
        let mut started = Vec::new();
        if let Some(pb) = self.inner.library.for_finding(finding) {
            if pb.automation == Automation::Manual {
                return Ok(started);
            }
            if let Some(inc) = incident_id {
                let (inc, id) = (inc.to_owned(), pb.id.clone());
                if self.store(move |s| s.has_run(&inc, &id)).await? {
                    return Ok(started);
                }
            }
            let run = self
                .create(Start {
                    playbook: pb.id.clone(),
                    finding: finding.clone(),
                    incident: incident.clone(),
                    incident_id: incident_id.map(str::to_owned),
                    requested_by: "vigil:auto".into(),
                })
                .await?;
            self.spawn(run.id.clone());
            started.push(run.id);
        }
        Ok(started)
    }
}

/// Moves an incident as the engine, when its lifecycle allows (a person may
/// have moved it on already: that stands).
fn move_incident(s: &mut Store, id: &str, to: IncidentStatus, note: &str, t: Timestamp) {
    match s.incident(id) {
        Ok(Some(v)) if v.incident.status == to => {}
        Ok(Some(_)) => {
            // Refused moves (a resolved incident) are the person's call: kept.
            let _ = s.transition(id, to, ENGINE, Some(note), t);
        }
        _ => {}
    }
}

/// What the audit log says of a step's move.
fn step_outcome(s: &StepRecord) -> String {
    match (&s.error, s.changed) {
        (Some(e), _) if s.status != StepStatus::Succeeded => e.clone(),
        (_, Some(changed)) => format!(
            "{} {}",
            if changed { "changed:" } else { "unchanged:" },
            s.calls.join(", ")
        ),
        _ => s.status.as_str().to_owned(),
    }
}

/// Every step and rollback step of `pb`, planned for `ctx`, as stored.
fn plan_steps(pb: &Playbook, ctx: &Context, env: Option<Environment>) -> Vec<StepRecord> {
    let steps = pb.steps.iter().map(|s| (Phase::Step, s));
    let rollback = pb.rollback.iter().map(|s| (Phase::Rollback, s));
    steps
        .chain(rollback)
        .enumerate()
        .map(|(i, (phase, step))| {
            let planned = plan_step(pb, i, step, ctx, env);
            let plan = StepPlan::new(planned, step);
            StepRecord {
                seq: i as i64 + 1,
                phase,
                step_id: step.id.clone(),
                action: step.action.name.into(),
                plan: serde_json::to_value(&plan).unwrap_or(Value::Null),
                status: StepStatus::Pending,
                attempts: 0,
                approved_by: None,
                started_at: None,
                ended_at: None,
                changed: None,
                calls: Vec::new(),
                result: Value::Null,
                error: None,
            }
        })
        .collect()
}
