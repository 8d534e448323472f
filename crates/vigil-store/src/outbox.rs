//! The outbox: what the outputs are to be told, written in the same transaction
//! as the change that causes it, so that a change is never committed without
//! its deliveries nor a delivery queued for a change that rolled back.
//!
//! A change (a finding opened or updated, an incident opened, escalated or
//! moved through its lifecycle, a playbook run waiting for approval or ending)
//! is shown to the [`Router`] the service installs; for each destination the
//! router names, one row is queued, beside one row holding the change itself.
//! Workers claim due rows for a lease, deliver them, and mark them done, retry
//! them later, or dead after their last try. A row a crash left claimed is
//! claimed again when its lease runs out: the destination's own idempotency key
//! makes the second delivery harmless.
//!
//! Floods fold: rows of one destination that share a fold key (an incident, a
//! finding) stand for one message; when one is claimed, the earlier rows of its
//! key that wait are folded into it, and it is itself folded into a later one if
//! there is one: the message shows the newest state once.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::value::RawValue;
use vigil_model::{Finding, Incident, Timestamp};

use crate::runs::RunRecord;
use crate::{Page, Result, StoreError};

/// What changed, as the outbox names it (the `event` of every delivery).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    #[serde(rename = "finding.opened")]
    FindingOpened,
    #[serde(rename = "finding.updated")]
    FindingUpdated,
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    /// A finding raised the incident's severity.
    #[serde(rename = "incident.escalated")]
    IncidentEscalated,
    #[serde(rename = "incident.acknowledged")]
    IncidentAcknowledged,
    #[serde(rename = "incident.remediating")]
    IncidentRemediating,
    #[serde(rename = "incident.resolved")]
    IncidentResolved,
    #[serde(rename = "incident.false_positive")]
    IncidentFalsePositive,
    #[serde(rename = "run.awaiting_approval")]
    RunAwaitingApproval,
    /// One of two approvers has approved a waiting step.
    #[serde(rename = "run.approval")]
    RunApproval,
    #[serde(rename = "run.in_progress")]
    RunInProgress,
    #[serde(rename = "run.succeeded")]
    RunSucceeded,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.rejected")]
    RunRejected,
    #[serde(rename = "run.needs_attention")]
    RunNeedsAttention,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::FindingOpened,
        EventKind::FindingUpdated,
        EventKind::IncidentOpened,
        EventKind::IncidentEscalated,
        EventKind::IncidentAcknowledged,
        EventKind::IncidentRemediating,
        EventKind::IncidentResolved,
        EventKind::IncidentFalsePositive,
        EventKind::RunAwaitingApproval,
        EventKind::RunApproval,
        EventKind::RunInProgress,
        EventKind::RunSucceeded,
        EventKind::RunFailed,
        EventKind::RunRejected,
        EventKind::RunNeedsAttention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FindingOpened => "finding.opened",
            EventKind::FindingUpdated => "finding.updated",
            EventKind::IncidentOpened => "incident.opened",
            EventKind::IncidentEscalated => "incident.escalated",
            EventKind::IncidentAcknowledged => "incident.acknowledged",
            EventKind::IncidentRemediating => "incident.remediating",
            EventKind::IncidentResolved => "incident.resolved",
            EventKind::IncidentFalsePositive => "incident.false_positive",
            EventKind::RunAwaitingApproval => "run.awaiting_approval",
            EventKind::RunApproval => "run.approval",
            EventKind::RunInProgress => "run.in_progress",
            EventKind::RunSucceeded => "run.succeeded",
            EventKind::RunFailed => "run.failed",
            EventKind::RunRejected => "run.rejected",
            EventKind::RunNeedsAttention => "run.needs_attention",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it carries a finding (and its incident).
    pub fn is_finding(self) -> bool {
        matches!(
            self,
            EventKind::FindingOpened
                | EventKind::FindingUpdated
                | EventKind::IncidentOpened
                | EventKind::IncidentEscalated
        )
    }

    /// Whether it is about a playbook run.
    pub fn is_run(self) -> bool {
        self.as_str().starts_with("run.")
    }
}

/// A change as the router sees it, and as it is stored for the workers (the
/// `payload` of a delivery is this, serialized).
#[derive(Clone, Debug, Serialize)]
pub struct Change<'a> {
    pub event: EventKind,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<&'a Incident>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<&'a Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<&'a RunRecord>,
}

/// One destination a change goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: String,
    /// Rows of this destination with the same key fold into the newest.
    pub fold: Option<String>,
}

/// Decides, inside the change's transaction, which destinations hear of it.
/// It must be quick and must not touch the store.
pub trait Router: Send + Sync {
    fn route(&self, c: &Change<'_>) -> Vec<Route>;

    /// Called after a transaction that queued deliveries has committed.
    fn wake(&self) {}
}

/// Queues `c` for every destination the router names; whether any was.
pub(crate) fn emit(tx: &Connection, router: &dyn Router, c: &Change<'_>) -> Result<bool> {
    let routes = router.route(c);
    if routes.is_empty() {
        return Ok(false);
    }
    let payload = serde_json::to_string(c).map_err(|e| StoreError::Damaged(e.to_string()))?;
    tx.prepare_cached("INSERT INTO outbox_events (event, at, payload) VALUES (?1, ?2, ?3)")?
        .execute(params![c.event.as_str(), c.at.as_millis(), payload])?;
    let event = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(
        "INSERT INTO outbox (event_seq, destination, event, fold, state, attempts, next_at,
             claimed_until, created_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, 0, ?5)",
    )?;
    for r in &routes {
        insert.execute(params![
            event,
            r.destination,
            c.event.as_str(),
            r.fold,
            c.at.as_millis()
        ])?;
    }
    Ok(true)
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its turn (or its next try).
    Pending,
    Done,
    /// A newer delivery of the same fold key carried it.
    Folded,
    /// Out of tries, or refused for good: listed until replayed.
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Folded => "folded",
            State::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Pending, State::Done, State::Folded, State::Dead]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One delivery, as listed or claimed.
#[derive(Debug, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub destination: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold: Option<String>,
    pub state: State,
    /// Tries made (a claimed row counts the try it is on).
    pub attempts: u32,
    pub created_at: Timestamp,
    /// When it may be tried next (pending rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The change (see [`Change`]).
    pub payload: Box<RawValue>,
}

/// How many deliveries of one destination are in each state.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct OutboxCounts {
    pub destination: String,
    pub pending: u64,
    pub done: u64,
    pub folded: u64,
    pub dead: u64,
}

const COLUMNS: &str = "o.id, o.destination, o.event, o.fold, o.state, o.attempts, o.created_at,
    o.next_at, o.done_at, o.last_error, e.payload";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxRow, String)> {
    let state: String = r.get(4)?;
    let payload: String = r.get(10)?;
    Ok((
        OutboxRow {
            id: r.get(0)?,
            destination: r.get(1)?,
            event: r.get(2)?,
            fold: r.get(3)?,
            state: State::parse(&state).unwrap_or(State::Dead),
            attempts: r.get(5)?,
            created_at: Timestamp::from_millis(r.get(6)?),
            next_at: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_millis),
            done_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_millis),
            last_error: r.get(9)?,
            payload: RawValue::from_string("null".into()).expect("null is JSON"),
        },
        payload,
    ))
}

fn cooked((mut o, payload): (OutboxRow, String)) -> Result<OutboxRow> {
    o.payload = RawValue::from_string(payload)
        .map_err(|e| StoreError::Damaged(format!("outbox delivery {}: {e}", o.id)))?;
    if o.state != State::Pending {
        o.next_at = None;
    }
    Ok(o)
}

/// Claims up to `limit` due deliveries of `destination` until `now + lease_ms`,
/// folding rows that share a fold key into the newest, oldest first.
pub(crate) fn claim(
    tx: &Transaction<'_>,
    destination: &str,
    now: Timestamp,
    limit: usize,
    lease_ms: i64,
) -> Result<Vec<OutboxRow>> {
    let now_ms = now.as_millis();
    let mut out = Vec::new();
    // Folding can empty a page: look a few pages further.
    for _ in 0..8 {
        let candidates: Vec<(i64, Option<String>)> = tx
            .prepare_cached(
                "SELECT id, fold FROM outbox
                 WHERE destination = ?1 AND state = 'pending' AND next_at <= ?2 AND claimed_until <= ?2
                 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![destination, now_ms, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if candidates.is_empty() {
            break;
        }
        let mut folded_any = false;
        for (id, fold) in &candidates {
            if out.len() >= limit {
                break;
            }
            if let Some(key) = fold {
                let newer: Option<i64> = tx
                    .prepare_cached(
                        "SELECT max(id) FROM outbox
                         WHERE destination = ?1 AND fold = ?2 AND state = 'pending' AND id > ?3",
                    )?
                    .query_row(params![destination, key, id], |r| r.get(0))?;
                if let Some(newer) = newer {
                    tx.prepare_cached(
                        "UPDATE outbox SET state = 'folded', done_at = ?2, folded_into = ?3,
                             claimed_until = 0 WHERE id = ?1",
                    )?
                    .execute(params![id, now_ms, newer])?;
                    folded_any = true;
                    continue;
                }
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'folded', done_at = ?4, folded_into = ?3
                     WHERE destination = ?1 AND fold = ?2 AND state = 'pending' AND id < ?3
                       AND claimed_until <= ?4",
                )?
                .execute(params![destination, key, id, now_ms])?;
            }
            tx.prepare_cached(
                "UPDATE outbox SET claimed_until = ?2, attempts = attempts + 1 WHERE id = ?1",
            )?
            .execute(params![id, now_ms + lease_ms])?;
            out.push(*id);
        }
        if out.len() >= limit || !folded_any {
            break;
        }
    }
    let mut rows = Vec::with_capacity(out.len());
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox o JOIN outbox_events e ON e.seq = o.event_seq WHERE o.id = ?1"
    ))?;
    for id in out {
        rows.push(cooked(stmt.query_row([id], row)?)?);
    }
    Ok(rows)
}

/// What became of a claimed delivery.
#[derive(Clone, Debug)]
pub enum Outcome {
    Done,
    /// Try again at this time.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// No more tries.
    Dead {
        error: String,
    },
    /// Not tried after all (the destination asked to wait): the try is not
    /// counted.
    Release {
        at: Timestamp,
    },
}

pub(crate) fn settle(
    tx: &Transaction<'_>,
    id: i64,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<()> {
    let now_ms = now.as_millis();
    match outcome {
        Outcome::Done => tx
            .prepare_cached(
                "UPDATE outbox SET state = 'done', done_at = ?2, claimed_until = 0 WHERE id = ?1",
            )?
            .execute(params![id, now_ms])?,
        Outcome::Retry { at, error } => tx
            .prepare_cached(
                "UPDATE outbox SET next_at = ?2, last_error = ?3, claimed_until = 0 WHERE id = ?1",
            )?
            .execute(params![id, at.as_millis(), error])?,
        Outcome::Release { at } => tx
            .prepare_cached(
                "UPDATE outbox SET attempts = max(attempts - 1, 0), next_at = ?2, claimed_until = 0
                 WHERE id = ?1",
            )?
            .execute(params![id, at.as_millis()])?,
        Outcome::Dead { error } => tx
            .prepare_cached(
                "UPDATE outbox SET state = 'dead', done_at = ?2, last_error = ?3, claimed_until = 0
                 WHERE id = ?1",
            )?
            .execute(params![id, now_ms, error])?,
    };
    Ok(())
}

/// Deliveries in `state` (all when None) of `destination` (all when None),
/// newest first, after `cursor` (an id).
pub(crate) fn list(
    conn: &Connection,
    state: Option<State>,
    destination: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<OutboxRow>> {
    let before = match cursor {
        None => i64::MAX,
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| StoreError::Cursor(c.to_owned()))?,
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox o JOIN outbox_events e ON e.seq = o.event_seq
         WHERE (?1 IS NULL OR o.state = ?1) AND (?2 IS NULL OR o.destination = ?2) AND o.id < ?3
         ORDER BY o.id DESC LIMIT ?4"
    ))?;
    let rows: Vec<_> = stmt
        .query_map(
            params![
                state.map(State::as_str),
                destination,
                before,
                limit as i64 + 1
            ],
            row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > limit;
    let mut items = rows
        .into_iter()
        .take(limit)
        .map(cooked)
        .collect::<Result<Vec<_>>>()?;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|o| o.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Option<OutboxRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox o JOIN outbox_events e ON e.seq = o.event_seq WHERE o.id = ?1"
    ))?
    .query_row([id], row)
    .optional()?
    .map(cooked)
    .transpose()
}

/// Puts a dead delivery back in line with its tries reset; the delivery, or
/// None when there is none of that id. A delivery that is not dead is refused.
pub(crate) fn replay(tx: &Transaction<'_>, id: i64, now: Timestamp) -> Result<Option<OutboxRow>> {
    let Some(o) = get(tx, id)? else {
        return Ok(None);
    };
    if o.state != State::Dead {
        return Err(StoreError::NotDead {
            id,
            state: o.state.as_str(),
        });
    }
    tx.execute(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?2, done_at = NULL,
             claimed_until = 0 WHERE id = ?1",
        params![id, now.as_millis()],
    )?;
    get(tx, id)
}

pub(crate) fn counts(conn: &Connection) -> Result<Vec<OutboxCounts>> {
    let mut out: Vec<OutboxCounts> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT destination, state, count(*) FROM outbox GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let dest: String = r.get(0)?;
        let state: String = r.get(1)?;
        let n: i64 = r.get(2)?;
        if out.last().map(|c| c.destination != dest).unwrap_or(true) {
            out.push(OutboxCounts {
                destination: dest,
                ..OutboxCounts::default()
            });
        }
        let c = out.last_mut().expect("pushed above");
        let n = n as u64;
        match State::parse(&state) {
            Some(State::Pending) => c.pending += n,
            Some(State::Done) => c.done += n,
            Some(State::Folded) => c.folded += n,
            Some(State::Dead) | None => c.dead += n,
        }
    }
    Ok(out)
}

/// What a destination keeps about a subject (a Slack message's `ts`, a Jira
/// issue's key), so that later deliveries edit what the first made.
pub(crate) fn reference(
    conn: &Connection,
    destination: &str,
    subject: &str,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT ref FROM outbox_refs WHERE destination = ?1 AND subject = ?2")?
        .query_row(params![destination, subject], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_reference(
    conn: &Connection,
    destination: &str,
    subject: &str,
    reference: &str,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox_refs (destination, subject, ref, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (destination, subject) DO UPDATE SET ref = excluded.ref, updated_at = excluded.updated_at",
    )?
    .execute(params![destination, subject, reference, now.as_millis()])?;
    Ok(())
}
