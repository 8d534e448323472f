//! Playbook runs as the engine leaves them after every move: the run (its playbook,
//! finding, incident, status) and each of its steps (what it was planned to do,
//! how far it got, what it called and found), so that a run survives a crash and
//! the API shows it as it goes. The store knows nothing of playbooks: a step's
//! plan is JSON the engine wrote and reads back.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;
use vigil_model::response::{Phase, RunStatus, StepStatus};
use vigil_model::Timestamp;

use crate::outbox::{self, Change, EventKind, Router};
use crate::{audit, Result, StoreError};

/// A run and its steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub incident_id: Option<String>,
    pub finding_id: Option<String>,
    pub status: RunStatus,
    pub requested_by: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub environment: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// When the finding that started the run was detected (its start, for the
    /// finding-to-completion time).
    pub detected_at: Option<Timestamp>,
    /// Why the run stopped where it did, if it did not complete.
    pub note: Option<String>,
    /// What the run's templates read (the finding, its incident…).
    #[serde(skip)]
    pub context: Value,
    pub steps: Vec<StepRecord>,
}

/// One step of a run (or of its rollback).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub seq: i64,
    pub phase: Phase,
    pub step_id: String,
    pub action: String,
    /// What the engine planned: parameters, account, region, gate, retries…
    pub plan: Value,
    pub status: StepStatus,
    pub attempts: i64,
    pub approved_by: Option<String>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub changed: Option<bool>,
    /// The API operations made.
    pub calls: Vec<String>,
    /// What the action found and did.
    pub result: Value,
    pub error: Option<String>,
}

/// An audit entry to write with a change, in its transaction.
pub struct AuditLine<'a> {
    pub at: Timestamp,
    pub principal: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse(text: Option<String>, what: &str) -> Result<Value> {
    match text {
        None => Ok(Value::Null),
        Some(t) => {
            serde_json::from_str(&t).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
        }
    }
}

/// A stored status name read back as its enum; a name no version wrote is damage.
fn named<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown status `{text}`").into(),
        )
    })
}

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

fn write_audit(conn: &Connection, a: &AuditLine<'_>) -> Result<i64> {
    audit::append(conn, a.at, a.principal, a.action, a.target, a.outcome)
}

/// Inserts a run and its steps.
pub(crate) fn create(conn: &Connection, run: &RunRecord, line: &AuditLine<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, playbook, incident_id, finding_id, status, requested_by, account,
             region, environment, created_at, updated_at, finished_at, detected_at, note, context)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        run.id,
        run.playbook,
        run.incident_id,
        run.finding_id,
        run.status.as_str(),
        run.requested_by,
        run.account,
        run.region,
        run.environment,
        run.created_at.as_millis(),
        run.updated_at.as_millis(),
        run.finished_at.map(Timestamp::as_millis),
        run.detected_at.map(Timestamp::as_millis),
        run.note,
        json_text(&run.context),
    ])?;
    for s in &run.steps {
        conn.prepare_cached(
            "INSERT INTO run_steps (run_id, seq, phase, step_id, action, plan, status, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            run.id,
            s.seq,
            s.phase.as_str(),
            s.step_id,
            s.action,
            json_text(&s.plan),
            s.status.as_str(),
            s.attempts
        ])?;
    }
    write_audit(conn, line)?;
    Ok(())
}

/// Writes a step's state (not its plan).
pub(crate) fn update_step(
    conn: &Connection,
    run_id: &str,
    s: &StepRecord,
    now: Timestamp,
    line: Option<&AuditLine<'_>>,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE run_steps SET status = ?3, attempts = ?4, approved_by = ?5, started_at = ?6,
                 ended_at = ?7, changed = ?8, calls = ?9, result = ?10, error = ?11
             WHERE run_id = ?1 AND seq = ?2",
        )?
        .execute(params![
            run_id,
            s.seq,
            s.status.as_str(),
            s.attempts,
            s.approved_by,
            s.started_at.map(Timestamp::as_millis),
            s.ended_at.map(Timestamp::as_millis),
            s.changed,
            serde_json::to_string(&s.calls).unwrap_or_else(|_| "[]".into()),
            json_text(&s.result),
            s.error,
        ])?;
    if n == 0 {
        return Err(StoreError::Damaged(format!(
            "run {run_id} has no step {}",
            s.seq
        )));
    }
    touch(conn, run_id, now)?;
    if let Some(line) = line {
        write_audit(conn, line)?;
    }
    Ok(())
}

fn touch(conn: &Connection, run_id: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE runs SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![run_id, now.as_millis()])?;
    Ok(())
}

/// Sets a run's status (and note); `finished` stamps its end.
pub(crate) fn set_status(
    conn: &Connection,
    run_id: &str,
    status: RunStatus,
    note: Option<&str>,
    finished: bool,
    now: Timestamp,
    line: &AuditLine<'_>,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET status = ?2, note = coalesce(?3, note), updated_at = ?4,
                 finished_at = CASE WHEN ?5 THEN ?4 ELSE NULL END
             WHERE id = ?1",
        )?
        .execute(params![
            run_id,
            status.as_str(),
            note,
            now.as_millis(),
            finished
        ])?;
    if n == 0 {
        return Err(StoreError::Damaged(format!("no run {run_id}")));
    }
    write_audit(conn, line)?;
    Ok(())
}

const RUN_COLUMNS: &str = "id, playbook, incident_id, finding_id, status, requested_by, account,
    region, environment, created_at, updated_at, finished_at, detected_at, note, context";

fn run_row(r: &Row<'_>) -> rusqlite::Result<(RunRecord, Option<String>)> {
    Ok((
        RunRecord {
            id: r.get(0)?,
            playbook: r.get(1)?,
            incident_id: r.get(2)?,
            finding_id: r.get(3)?,
            status: named(r, 4, RunStatus::parse)?,
            requested_by: r.get(5)?,
            account: r.get(6)?,
            region: r.get(7)?,
            environment: r.get(8)?,
            created_at: Timestamp::from_millis(r.get(9)?),
            updated_at: Timestamp::from_millis(r.get(10)?),
            finished_at: ts(r.get(11)?),
            detected_at: ts(r.get(12)?),
            note: r.get(13)?,
            context: Value::Null,
            steps: Vec::new(),
        },
        r.get(14)?,
    ))
}

type StepRow = (StepRecord, Option<String>, Option<String>, Option<String>);

fn steps(conn: &Connection, run_id: &str) -> Result<Vec<StepRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, phase, step_id, action, plan, status, attempts, approved_by, started_at,
             ended_at, changed, calls, result, error
         FROM run_steps WHERE run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([run_id], |r| -> rusqlite::Result<StepRow> {
        Ok((
            StepRecord {
                seq: r.get(0)?,
                phase: named(r, 1, Phase::parse)?,
                step_id: r.get(2)?,
                action: r.get(3)?,
                plan: Value::Null,
                status: named(r, 5, StepStatus::parse)?,
                attempts: r.get(6)?,
                approved_by: r.get(7)?,
                started_at: ts(r.get(8)?),
                ended_at: ts(r.get(9)?),
                changed: r.get(10)?,
                calls: Vec::new(),
                result: Value::Null,
                error: r.get(13)?,
            },
            r.get(4)?,
            r.get(11)?,
            r.get(12)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut s, plan, calls, result) = row?;
        let at = format!("run {run_id} step {}", s.seq);
        s.plan = parse(plan, &at)?;
        s.result = parse(result, &at)?;
        s.calls = match calls {
            Some(c) => {
                serde_json::from_str(&c).map_err(|e| StoreError::Damaged(format!("{at}: {e}")))?
            }
            None => Vec::new(),
        };
        out.push(s);
    }
    Ok(out)
}

/// A run with its steps and context.
pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<RunRecord>> {
    let found = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], run_row)
        .optional()?;
    let Some((mut run, context)) = found else {
        return Ok(None);
    };
    run.context = parse(context, &format!("run {id} context"))?;
    run.steps = steps(conn, id)?;
    Ok(Some(run))
}

/// Runs, newest first: of one incident, or in one status, or all; with steps.
pub(crate) fn list(
    conn: &Connection,
    incident: Option<&str>,
    status: Option<RunStatus>,
    limit: usize,
) -> Result<Vec<RunRecord>> {
    let status = status.map(RunStatus::as_str);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE (?1 IS NULL OR incident_id = ?1) AND (?2 IS NULL OR status = ?2)
         ORDER BY created_at DESC, id LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![incident, status, limit as i64], run_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (mut run, _) in rows {
        run.steps = steps(conn, &run.id)?;
        out.push(run);
    }
    Ok(out)
}

/// The ids of runs in any of `statuses`, oldest first.
pub(crate) fn ids_in(conn: &Connection, statuses: &[RunStatus]) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM runs WHERE status = ?1 ORDER BY created_at, id")?;
    let mut out = Vec::new();
    for s in statuses {
        let ids = stmt
            .query_map([s.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        out.extend(ids);
    }
    Ok(out)
}

/// Whether incident `incident` already has a run of `playbook`.
pub(crate) fn exists(conn: &Connection, incident: &str, playbook: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM runs WHERE incident_id = ?1 AND playbook = ?2 LIMIT 1")?
        .query_row([incident, playbook], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Queues a run's new status in the outbox (the statuses outputs hear of);
/// whether anything was queued.
pub(crate) fn announce(
    tx: &Connection,
    router: &dyn Router,
    run_id: &str,
    status: RunStatus,
    line: &AuditLine<'_>,
    now: Timestamp,
) -> Result<bool> {
    let event = match status {
        RunStatus::AwaitingApproval => EventKind::RunAwaitingApproval,
        RunStatus::InProgress => EventKind::RunInProgress,
        RunStatus::Succeeded => EventKind::RunSucceeded,
        RunStatus::Failed => EventKind::RunFailed,
        RunStatus::Rejected => EventKind::RunRejected,
        RunStatus::NeedsAttention => EventKind::RunNeedsAttention,
        _ => return Ok(false),
    };
    announce_as(tx, router, run_id, event, line, now)
}

/// Queues `event` about run `run_id` (with the run as it now is and its
/// incident), `line` giving who and why.
pub(crate) fn announce_as(
    tx: &Connection,
    router: &dyn Router,
    run_id: &str,
    event: EventKind,
    line: &AuditLine<'_>,
    now: Timestamp,
) -> Result<bool> {
    let Some(run) = get(tx, run_id)? else {
        return Ok(false);
    };
    let incident = match &run.incident_id {
        Some(id) => crate::incident::get(tx, id)?,
        None => None,
    };
    let change = Change {
        event,
        at: now,
        actor: Some(line.principal),
        note: Some(line.outcome),
        incident: incident.as_ref(),
        finding: None,
        run: Some(&run),
    };
    outbox::emit(tx, router, &change)
}
