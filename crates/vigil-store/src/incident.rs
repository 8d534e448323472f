//! Incidents: findings grouped by account, subject (the principal, else the
//! resource) and category within a window of event time, and the lifecycle people
//! move them through: OPEN → ACKNOWLEDGED → REMEDIATING → RESOLVED, or
//! FALSE_POSITIVE from any open state. An incident's severity is the worst of its
//! findings, weighed by its account's environment; its timeline records every
//! finding, status change, assignment and note, with who did it.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use vigil_model::finding::{Category, RawRecord, MAX_RAW_RECORDS};
use vigil_model::incident::TimelineKind;
pub use vigil_model::incident::{Incident, IncidentStatus, IncidentView, TimelineEntry};
use vigil_model::{Finding, Severity, Timestamp};

use crate::outbox::{self, Change, EventKind, Router};
use crate::{
    severity_from_rank, severity_rank, Grouping, Listing, Page, Recorded, Result, StoreError,
};

#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    pub statuses: Vec<IncidentStatus>,
    pub severities: Vec<Severity>,
    pub categories: Vec<Category>,
    pub account: Option<String>,
    /// Incidents assigned to this principal.
    pub assignee: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

const INCIDENT_COLUMNS: &str = "seq, id, title, status, severity, category, account, subject, \
    first_seen, last_seen, opened_at, closed_at, assignee, finding_count";

fn subject_of(f: &Finding) -> Option<&str> {
    Grouping::subject(f)
}

/// How a writer's findings meet what is stored.
#[derive(Clone, Copy, Debug, Default)]
pub enum Mode<'a> {
    /// Each finding is the whole truth about itself: it replaces the stored
    /// one of its id (compliance, imports, tests).
    #[default]
    Replace,
    /// The pipeline's: several writers (processes on one store) detect side by
    /// side, so a finding is folded into the stored one of its id, else into the
    /// stored one of its dedup key whose window it falls in, counting only what
    /// this writer had not committed yet (`committed[i]` of finding `i`); a
    /// finding new to the store takes the store's next number of its day.
    Merge {
        window_ms: i64,
        committed: &'a [u64],
    },
}

/// Stores one finding; a new one joins (or opens) its incident. Returns the
/// finding as stored.
/// What a store's writes consult: how findings group, and who hears of changes.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub grouping: &'a Grouping,
    pub router: Option<&'a dyn Router>,
}

pub(crate) fn record(
    tx: &Transaction<'_>,
    ctx: Ctx<'_>,
    f: &Finding,
    mode: Mode<'_>,
    index: usize,
    now: Timestamp,
    done: &mut Recorded,
) -> Result<Option<Finding>> {
    let Ctx { grouping, router } = ctx;
    let (stored, existing) = match mode {
        Mode::Replace => {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT incident_id FROM findings WHERE id = ?1",
                    [&f.id],
                    |r| r.get(0),
                )
                .optional()?;
            (None, existing)
        }
        Mode::Merge {
            window_ms,
            committed,
        } => {
            let d = &f.detail;
            let by_id = tx
                .query_row(
                    "SELECT incident_id, body FROM findings WHERE id = ?1",
                    [&f.id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            let found = match by_id {
                Some(row) => Some(row),
                None => tx
                    .prepare_cached(
                        "SELECT incident_id, body FROM findings
                         WHERE dedup_key = ?1 AND last_seen >= ?2 AND first_seen <= ?3
                         ORDER BY last_seen DESC LIMIT 1",
                    )?
                    .query_row(
                        params![
                            f.dedup_key(),
                            d.first_seen.as_millis() - window_ms,
                            d.last_seen.as_millis() + window_ms
                        ],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()?,
            };
            match found {
                Some((incident_id, body)) => {
                    let mut have: Finding = serde_json::from_str(&body).map_err(|e| {
                        StoreError::Damaged(format!("a stored finding's body: {e}"))
                    })?;
                    let already = committed.get(index).copied().unwrap_or(0);
                    have.absorb(f, d.count.saturating_sub(already));
                    (Some(have), Some(incident_id))
                }
                None => {
                    let mut new = f.clone();
                    new.detail.finding_id = next_finding_id(tx, d.first_seen)?;
                    (Some(new), None)
                }
            }
        }
    };
    // The records behind it come with the finding as detected (a stored one,
    // read back, has none).
    let raw = &f.raw_records;
    let f = stored.as_ref().unwrap_or(f);
    let body = serde_json::to_string(f).map_err(|e| StoreError::Damaged(e.to_string()))?;
    let d = &f.detail;
    let severity = grouping.severity(f);
    let is_new = existing.is_none();
    let incident_id = match existing {
        Some(incident_id) => {
            tx.prepare_cached(
                "UPDATE findings SET severity = ?2, first_seen = ?3, last_seen = ?4, updated_at = ?5, body = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                f.id,
                severity_rank(d.severity),
                d.first_seen.as_millis(),
                d.last_seen.as_millis(),
                now.as_millis(),
                body
            ])?;
            done.updated_findings += 1;
            incident_id
        }
        None => {
            let incident_id = incident_for(tx, grouping, f, now, done)?;
            tx.prepare_cached(
                "INSERT INTO findings (id, finding_id, account, severity, category, rule_id, subject,
                    first_seen, last_seen, detected_at, updated_at, incident_id, body, dedup_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                f.id,
                d.finding_id,
                f.account,
                severity_rank(d.severity),
                d.category.as_str(),
                d.rule.id,
                subject_of(f),
                d.first_seen.as_millis(),
                d.last_seen.as_millis(),
                now.as_millis(),
                incident_id,
                body,
                f.dedup_key()
            ])?;
            tx.execute(
                "INSERT INTO timeline (incident_id, at, kind, actor, text, finding_id)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
                params![
                    incident_id,
                    now.as_millis(),
                    TimelineKind::Finding.as_str(),
                    format!("{} ({})", d.title, d.severity),
                    f.id
                ],
            )?;
            tx.execute(
                "UPDATE incidents SET finding_count = finding_count + 1 WHERE id = ?1",
                [&incident_id],
            )?;
            let detect_ms = (now.as_millis() - d.first_seen.as_millis()).max(0);
            for account in [f.account.as_deref().unwrap_or(""), ALL_ACCOUNTS] {
                tx.execute(
                    "INSERT INTO kpi_findings (day, account, category, findings, detect_ms)
                     VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT DO UPDATE SET findings = findings + 1, detect_ms = detect_ms + excluded.detect_ms",
                    params![day_of(now.as_millis()), account, d.category.as_str(), detect_ms],
                )?;
            }
            done.new_findings += 1;
            incident_id
        }
    };
    keep_records(tx, &f.id, raw, now)?;
    let before: Option<i64> = match router {
        Some(_) => Some(tx.query_row(
            "SELECT severity FROM incidents WHERE id = ?1",
            [&incident_id],
            |r| r.get(0),
        )?),
        None => None,
    };
    tx.execute(
        "UPDATE incidents SET severity = max(severity, ?2), first_seen = min(first_seen, ?3),
            last_seen = max(last_seen, ?4) WHERE id = ?1",
        params![
            incident_id,
            severity_rank(severity),
            d.first_seen.as_millis(),
            d.last_seen.as_millis()
        ],
    )?;
    if let (Some(router), Some(before)) = (router, before) {
        let inc =
            get(tx, &incident_id)?.ok_or_else(|| StoreError::NoIncident(incident_id.clone()))?;
        let event = if is_new && done.opened.last() == Some(&incident_id) {
            EventKind::IncidentOpened
        } else if severity_rank(inc.severity) > before {
            EventKind::IncidentEscalated
        } else if is_new {
            EventKind::FindingOpened
        } else {
            EventKind::FindingUpdated
        };
        let change = Change {
            event,
            at: now,
            actor: None,
            note: None,
            incident: Some(&inc),
            finding: Some(f),
            run: None,
        };
        done.queued |= outbox::emit(tx, router, &change)?;
    }
    Ok(stored)
}

/// The store's next human-readable finding number of the day `first` falls on
/// (`sec-YYYY-MM-DD-NNN`), unique across every writer of the store.
fn next_finding_id(tx: &Transaction<'_>, first: Timestamp) -> Result<String> {
    let (y, m, d, ..) = first.to_parts();
    let day = format!("{y:04}-{m:02}-{d:02}");
    let known: Option<i64> = tx
        .query_row(
            "SELECT last FROM finding_days WHERE day = ?1",
            [&day],
            |r| r.get(0),
        )
        .optional()?;
    let next = match known {
        Some(n) => n + 1,
        None => {
            // The first of the day this way: after any numbered before (by a
            // store that predates the counter, or an import).
            let prefix = format!("sec-{day}-");
            let mut stmt = tx.prepare_cached(
                "SELECT finding_id FROM findings WHERE finding_id >= ?1 AND finding_id < ?2",
            )?;
            let ids = stmt.query_map(params![prefix, format!("sec-{day}.")], |r| {
                r.get::<_, String>(0)
            })?;
            let mut max = 0i64;
            for id in ids {
                if let Some(n) = id?
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse::<i64>().ok())
                {
                    max = max.max(n);
                }
            }
            max + 1
        }
    };
    tx.execute(
        "INSERT INTO finding_days (day, last) VALUES (?1, ?2)
         ON CONFLICT (day) DO UPDATE SET last = excluded.last",
        params![day, next],
    )?;
    Ok(format!("sec-{day}-{next:03}"))
}

/// The open incident a new finding joins, or a new one.
fn incident_for(
    tx: &Transaction<'_>,
    grouping: &Grouping,
    f: &Finding,
    now: Timestamp,
    done: &mut Recorded,
) -> Result<String> {
    let key = Grouping::key(f);
    let (from, to) = grouping.joins(f);
    let open: Option<String> = tx
        .query_row(
            "SELECT id FROM incidents
             WHERE group_key = ?1 AND status NOT IN ('RESOLVED', 'FALSE_POSITIVE')
               AND last_seen >= ?2 AND first_seen <= ?3
             ORDER BY last_seen DESC LIMIT 1",
            params![key, from, to],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = open {
        return Ok(id);
    }
    let d = &f.detail;
    let id = Grouping::incident_id(f);
    let title = Grouping::title(f);
    tx.execute(
        "INSERT INTO incidents (id, group_key, title, status, severity, category, account, subject,
            first_seen, last_seen, opened_at)
         VALUES (?1, ?2, ?3, 'OPEN', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            key,
            title,
            severity_rank(grouping.severity(f)),
            d.category.as_str(),
            f.account,
            subject_of(f),
            d.first_seen.as_millis(),
            d.last_seen.as_millis(),
            now.as_millis()
        ],
    )?;
    for account in [f.account.as_deref().unwrap_or(""), ALL_ACCOUNTS] {
        tx.prepare_cached(
            "INSERT INTO kpi_opened (account, hour, opened) VALUES (?1, ?2, 1)
             ON CONFLICT DO UPDATE SET opened = opened + 1",
        )?
        .execute(params![account, hour_of(now.as_millis())])?;
    }
    done.new_incidents += 1;
    done.opened.push(id.clone());
    Ok(id)
}

fn incident_row(r: &Row<'_>) -> rusqlite::Result<(i64, RawIncident)> {
    Ok((
        r.get(0)?,
        RawIncident {
            id: r.get(1)?,
            title: r.get(2)?,
            status: r.get(3)?,
            severity: r.get(4)?,
            category: r.get(5)?,
            account: r.get(6)?,
            subject: r.get(7)?,
            first_seen: r.get(8)?,
            last_seen: r.get(9)?,
            opened_at: r.get(10)?,
            closed_at: r.get(11)?,
            assignee: r.get(12)?,
            finding_count: r.get(13)?,
        },
    ))
}

/// A row as SQLite holds it, checked into an [`Incident`] by `cook`.
struct RawIncident {
    id: String,
    title: String,
    status: String,
    severity: i64,
    category: String,
    account: Option<String>,
    subject: Option<String>,
    first_seen: i64,
    last_seen: i64,
    opened_at: i64,
    closed_at: Option<i64>,
    assignee: Option<String>,
    finding_count: i64,
}

impl RawIncident {
    fn cook(self) -> Result<Incident> {
        let damaged = |what: &str| StoreError::Damaged(format!("incident {}: {what}", self.id));
        Ok(Incident {
            status: IncidentStatus::parse(&self.status).ok_or_else(|| damaged("status"))?,
            severity: severity_from_rank(self.severity)?,
            category: Category::parse(&self.category).ok_or_else(|| damaged("category"))?,
            id: self.id,
            title: self.title,
            account: self.account,
            subject: self.subject,
            first_seen: Timestamp::from_millis(self.first_seen),
            last_seen: Timestamp::from_millis(self.last_seen),
            opened_at: Timestamp::from_millis(self.opened_at),
            closed_at: self.closed_at.map(Timestamp::from_millis),
            assignee: self.assignee,
            finding_count: self.finding_count.max(0) as u64,
        })
    }
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<Incident>> {
    let row = conn
        .query_row(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
            [id],
            incident_row,
        )
        .optional()?;
    row.map(|(_, r)| r.cook()).transpose()
}

/// Keeps `raw` beside finding `id`, up to [`MAX_RAW_RECORDS`] in all; a record
/// already kept is not written again.
fn keep_records(tx: &Transaction<'_>, id: &str, raw: &[RawRecord], now: Timestamp) -> Result<()> {
    if raw.is_empty() {
        return Ok(());
    }
    let have: i64 = tx
        .prepare_cached("SELECT count(*) FROM finding_records WHERE finding_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let room = MAX_RAW_RECORDS.saturating_sub(usize::try_from(have).unwrap_or(usize::MAX));
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO finding_records (finding_id, event_id, at, text) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut added = 0;
    for r in raw {
        if added >= room {
            break;
        }
        added += st.execute(params![id, r.event_id, now.as_millis(), &*r.text])?;
    }
    Ok(())
}

/// The records kept beside finding `id`, in the order they came.
pub(crate) fn records(conn: &Connection, id: &str) -> Result<Vec<RawRecord>> {
    let mut st = conn.prepare_cached(
        "SELECT event_id, text FROM finding_records WHERE finding_id = ?1 ORDER BY at, event_id",
    )?;
    let rows = st.query_map([id], |r| {
        Ok(RawRecord {
            event_id: r.get(0)?,
            text: r.get::<_, String>(1)?.into(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn list(conn: &Connection, q: &IncidentQuery) -> Result<Page<Incident>> {
    let mut l = Listing::new(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1=1"
    ));
    l.any_of(
        "status",
        q.statuses.iter().map(|s| s.as_str().to_owned().into()),
    );
    l.any_of(
        "severity",
        q.severities.iter().map(|s| severity_rank(*s).into()),
    );
    l.any_of(
        "category",
        q.categories.iter().map(|c| c.as_str().to_owned().into()),
    );
    l.compare("account =", q.account.clone());
    l.compare("assignee =", q.assignee.clone());
    l.fetch(
        conn,
        q.cursor.as_deref(),
        q.limit,
        incident_row,
        RawIncident::cook,
    )
}

pub(crate) fn view(conn: &Connection, id: &str) -> Result<Option<IncidentView>> {
    let Some(incident) = get(conn, id)? else {
        return Ok(None);
    };
    let mut stmt =
        conn.prepare_cached("SELECT id FROM findings WHERE incident_id = ?1 ORDER BY seq")?;
    let finding_ids = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT at, kind, actor, text, finding_id FROM timeline WHERE incident_id = ?1 ORDER BY seq",
    )?;
    let timeline = stmt
        .query_map([id], |r| {
            Ok(TimelineEntry {
                at: Timestamp::from_millis(r.get(0)?),
                kind: {
                    let k: String = r.get(1)?;
                    TimelineKind::parse(&k).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            format!("timeline kind `{k}`").into(),
                        )
                    })?
                },
                actor: r.get(2)?,
                text: r.get(3)?,
                finding_id: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(IncidentView {
        incident,
        finding_ids,
        timeline,
    }))
}

fn existing(tx: &Transaction<'_>, id: &str) -> Result<Incident> {
    get(tx, id)?.ok_or_else(|| StoreError::NoIncident(id.to_owned()))
}

/// The UTC day (since 1970) of a time in milliseconds: the KPI sums' key.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(24 * 60 * 60 * 1000)
}

/// The UTC hour (since 1970) of a time in milliseconds: `kpi_opened`'s key.
pub(crate) fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

pub(crate) const HOUR_MS: i64 = 60 * 60 * 1000;

/// The KPI sums keep, beside each account's rows, one row per day and category for
/// all accounts together, so that the overall KPIs read 30 × 5 rows however many
/// accounts there are. (Findings without an account are summed under ''.)
pub(crate) const ALL_ACCOUNTS: &str = "*";

/// Adds to an incident's day in `kpi_incidents` (`sets` names the columns).
fn count_incident(
    tx: &Transaction<'_>,
    inc: &Incident,
    at: Timestamp,
    sets: &str,
    values: (i64, i64, i64),
) -> Result<()> {
    for account in [inc.account.as_deref().unwrap_or(""), ALL_ACCOUNTS] {
        tx.execute(
            &format!(
                "INSERT INTO kpi_incidents (day, account, category, resolved, resolve_ms, acted_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET {sets}"
            ),
            params![
                day_of(at.as_millis()),
                account,
                inc.category.as_str(),
                values.0,
                values.1,
                values.2
            ],
        )?;
    }
    Ok(())
}

/// A person's entry on the timeline; the first one marks the incident as acted on.
fn log(
    tx: &Transaction<'_>,
    inc: &Incident,
    at: Timestamp,
    kind: TimelineKind,
    actor: &str,
    text: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO timeline (incident_id, at, kind, actor, text) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![inc.id, at.as_millis(), kind.as_str(), actor, text],
    )?;
    let first = tx.execute(
        "UPDATE incidents SET first_action_at = ?2 WHERE id = ?1 AND first_action_at IS NULL",
        params![inc.id, at.as_millis()],
    )?;
    if first == 1 {
        count_incident(tx, inc, at, "acted_on = acted_on + 1", (0, 0, 1))?;
    }
    Ok(())
}

pub(crate) fn transition(
    tx: &Transaction<'_>,
    id: &str,
    to: IncidentStatus,
    actor: &str,
    note: Option<&str>,
    now: Timestamp,
    router: Option<&dyn Router>,
) -> Result<(Incident, bool)> {
    let mut queued = false;
    let inc = existing(tx, id)?;
    if !inc.status.can_become(to) {
        return Err(StoreError::Transition {
            id: id.to_owned(),
            from: inc.status,
            to,
        });
    }
    let closed_at = to.is_closed().then_some(now.as_millis());
    tx.execute(
        "UPDATE incidents SET status = ?2, closed_at = ?3 WHERE id = ?1",
        params![id, to.as_str(), closed_at],
    )?;
    // Closing an incident is the triage verdict on its findings.
    let triage = match to {
        IncidentStatus::Resolved => Some("TRUE_POSITIVE"),
        IncidentStatus::FalsePositive => Some("FALSE_POSITIVE"),
        _ => None,
    };
    if let Some(t) = triage {
        tx.execute(
            "UPDATE findings SET triage = ?2 WHERE incident_id = ?1",
            params![id, t],
        )?;
        // A closed incident takes no more findings, so each is triaged once.
        for account in ["coalesce(account, '')", "'*'"] {
            tx.execute(
                &format!(
                    "INSERT INTO kpi_findings (day, account, category, triaged, false_positives)
                     SELECT detected_at / 86400000, {account}, category, count(*), sum(triage IS 'FALSE_POSITIVE')
                     FROM findings WHERE incident_id = ?1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
                     ON CONFLICT DO UPDATE SET triaged = triaged + excluded.triaged,
                        false_positives = false_positives + excluded.false_positives"
                ),
                [id],
            )?;
        }
    }
    if to == IncidentStatus::Resolved {
        let took = (now.as_millis() - inc.opened_at.as_millis()).max(0);
        count_incident(
            tx,
            &inc,
            now,
            "resolved = resolved + 1, resolve_ms = resolve_ms + excluded.resolve_ms",
            (1, took, 0),
        )?;
    }
    let mut text = format!("{} → {}", inc.status, to);
    if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
        text.push_str(": ");
        text.push_str(n);
    }
    log(tx, &inc, now, TimelineKind::Status, actor, &text)?;
    let after = existing(tx, id)?;
    if let Some(router) = router {
        let event = match to {
            IncidentStatus::Acknowledged => Some(EventKind::IncidentAcknowledged),
            IncidentStatus::Remediating => Some(EventKind::IncidentRemediating),
            IncidentStatus::Resolved => Some(EventKind::IncidentResolved),
            IncidentStatus::FalsePositive => Some(EventKind::IncidentFalsePositive),
            _ => None,
        };
        if let Some(event) = event {
            let change = Change {
                event,
                at: now,
                actor: Some(actor),
                note: note.filter(|n| !n.trim().is_empty()),
                incident: Some(&after),
                finding: None,
                run: None,
            };
            queued = outbox::emit(tx, router, &change)?;
        }
    }
    Ok((after, queued))
}

pub(crate) fn add_note(
    tx: &Transaction<'_>,
    id: &str,
    actor: &str,
    text: &str,
    now: Timestamp,
) -> Result<()> {
    let inc = existing(tx, id)?;
    log(tx, &inc, now, TimelineKind::Note, actor, text)
}

pub(crate) fn assign(
    tx: &Transaction<'_>,
    id: &str,
    assignee: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<Incident> {
    let inc = existing(tx, id)?;
    tx.execute(
        "UPDATE incidents SET assignee = ?2 WHERE id = ?1",
        params![id, assignee],
    )?;
    let text = match assignee {
        Some(a) => format!("assigned to {a}"),
        None => "unassigned".to_owned(),
    };
    log(tx, &inc, now, TimelineKind::Assign, actor, &text)?;
    existing(tx, id)
}
