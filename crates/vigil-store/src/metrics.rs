//! The KPIs, read from the store: from running sums per UTC day, account and
//! category that every write keeps in its own transaction (so they cannot drift
//! from the rows), and from the incidents themselves:
//! - MTTD: the mean time from a finding's first event to the moment it was first
//!   stored, over findings stored in the last 30 days;
//! - MTTR: the mean time from an incident opening to its resolution, over incidents
//!   resolved in the last 30 days (false positives are not remediations);
//! - incidents opened in the last 24 hours (exact, from the incidents);
//! - false-positive rate: findings marked false positive as a share of the findings
//!   triaged (their incident closed), among those stored in the last 30 days;
//! - compliance score: the CIS AWS Foundations score of the newest compliance
//!   assessment (of the account, or of all accounts together); `null` before
//!   the first.
//!
//! "The last 30 days" is the 30 UTC days up to and including today. Times are
//! minutes and rates percent, as docs/service.md gives them. A KPI with nothing to measure yet
//! is `null`, not zero.

use rusqlite::{params, Connection};
use serde::Serialize;
use vigil_model::finding::Category;
use vigil_model::Timestamp;

use crate::incident::HOUR_MS;
use crate::Result;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Days in the KPI window, today included.
const WINDOW_DAYS: i64 = 30;

/// `GET /api/v1/metrics`, in exactly the shape docs/service.md gives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Minutes, one decimal, as a string.
    pub mttd: Option<String>,
    pub mttr: Option<String>,
    pub compliance_score: Option<f64>,
    pub incidents_last_24h: u64,
    /// Percent, one decimal.
    pub false_positive_rate: Option<f64>,
}

/// One category's last 30 days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreatRow {
    pub category: Category,
    /// Findings stored.
    pub detections: u64,
    /// Playbook runs that went without a human.
    pub automated_responses: u64,
    /// Incidents a person acted on (a status change, an assignment or a note).
    pub manual_interventions: u64,
    /// Findings marked false positive.
    pub false_positives: u64,
}

fn minutes(ms: Option<f64>) -> Option<String> {
    ms.map(|ms| format!("{:.1}", ms.max(0.0) / 60_000.0))
}

fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The account filter on `column`, with `?2` its value: a plain equality when an
/// account is asked for (so its index is used), and a constant `?2 IS NULL`
/// otherwise — not one `OR` of the two, which keeps SQLite from the time index.
fn account_filter(account: Option<&str>, column: &str) -> String {
    match account {
        Some(_) => format!("{column} = ?2"),
        None => "?2 IS NULL".to_owned(),
    }
}

/// The same for the KPI sums, whose all-accounts rows are their own.
fn sums_filter(account: Option<&str>) -> String {
    match account {
        Some(_) => "account = ?2".to_owned(),
        None => format!(
            "account = '{}' AND ?2 IS NULL",
            crate::incident::ALL_ACCOUNTS
        ),
    }
}

/// The first day of the window that ends today.
fn first_day(now: Timestamp) -> i64 {
    crate::incident::day_of(now.as_millis()) - (WINDOW_DAYS - 1)
}

pub(crate) fn headline(
    conn: &Connection,
    account: Option<&str>,
    now: Timestamp,
) -> Result<Metrics> {
    let since = first_day(now);
    let sums = sums_filter(account);
    let (found, detect_ms, triaged, false_positives): (i64, i64, i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT coalesce(sum(findings), 0), coalesce(sum(detect_ms), 0),
                    coalesce(sum(triaged), 0), coalesce(sum(false_positives), 0)
             FROM kpi_findings WHERE day >= ?1 AND {sums}"
        ))?
        .query_row(params![since, account], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    let (resolved, resolve_ms): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT coalesce(sum(resolved), 0), coalesce(sum(resolve_ms), 0)
             FROM kpi_incidents WHERE day >= ?1 AND {sums}"
        ))?
        .query_row(params![since, account], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let last_day = opened_since(conn, account, now.as_millis() - DAY_MS)?;
    let mean = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64);
    Ok(Metrics {
        mttd: minutes(mean(detect_ms, found)),
        mttr: minutes(mean(resolve_ms, resolved)),
        compliance_score: crate::compliance::latest(
            conn,
            "CIS",
            account.unwrap_or(crate::compliance::ALL_SCOPE),
        )?
        .and_then(|a| a.score),
        incidents_last_24h: last_day.max(0) as u64,
        false_positive_rate: (triaged > 0)
            .then(|| one_decimal(100.0 * false_positives as f64 / triaged as f64)),
    })
}

/// Incidents opened at or after `start`: the whole hours from the per-hour sums,
/// and the rows themselves only from `start` to the first whole hour.
fn opened_since(conn: &Connection, account: Option<&str>, start: i64) -> Result<i64> {
    let first_whole = crate::incident::hour_of(start + HOUR_MS - 1);
    let whole: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(opened), 0) FROM kpi_opened WHERE account = ?1 AND hour >= ?2",
        )?
        .query_row(
            params![
                account.unwrap_or(crate::incident::ALL_ACCOUNTS),
                first_whole
            ],
            |r| r.get(0),
        )?;
    let part: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM incidents WHERE opened_at >= ?1 AND opened_at < ?3 AND {}",
            account_filter(account, "account")
        ))?
        .query_row(params![start, account, first_whole * HOUR_MS], |r| r.get(0))?;
    Ok(whole + part)
}

pub(crate) fn threats(
    conn: &Connection,
    account: Option<&str>,
    now: Timestamp,
) -> Result<Vec<ThreatRow>> {
    let since = first_day(now);
    let sums = sums_filter(account);
    let mut rows: Vec<ThreatRow> = Category::ALL
        .into_iter()
        .map(|category| ThreatRow {
            category,
            detections: 0,
            automated_responses: 0,
            manual_interventions: 0,
            false_positives: 0,
        })
        .collect();
    let mut add = |sql: &str, since: i64, pick: fn(&mut ThreatRow) -> &mut u64| -> Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let counts = stmt.query_map(params![since, account], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for c in counts {
            let (category, n) = c?;
            if let Some(row) = rows.iter_mut().find(|r| r.category.as_str() == category) {
                *pick(row) = n.max(0) as u64;
            }
        }
        Ok(())
    };
    let by_category = |table: &str, column: &str| {
        format!(
            "SELECT category, sum({column}) FROM {table} WHERE day >= ?1 AND {sums} GROUP BY category"
        )
    };
    add(&by_category("kpi_findings", "findings"), since, |r| {
        &mut r.detections
    })?;
    add(
        &by_category("kpi_findings", "false_positives"),
        since,
        |r| &mut r.false_positives,
    )?;
    add(&by_category("kpi_incidents", "acted_on"), since, |r| {
        &mut r.manual_interventions
    })?;
    add(
        &format!(
            "SELECT i.category, count(*) FROM runs r JOIN incidents i ON r.incident_id = i.id
             WHERE r.requested_by = 'vigil:auto' AND r.created_at >= ?1 AND {} GROUP BY i.category",
            account_filter(account, "i.account")
        ),
        since * DAY_MS,
        |r| &mut r.automated_responses,
    )?;
    Ok(rows)
}

/// One UTC day of the KPIs' 30-day trend: that day's own figures (not a
/// running window), `None` where there was nothing to measure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayPoint {
    /// The day's start.
    pub day: Timestamp,
    /// Findings first stored that day, and their mean time to detect (minutes).
    pub findings: u64,
    pub mttd: Option<f64>,
    /// Incidents resolved that day, and their mean time to resolve (minutes).
    pub resolved: u64,
    pub mttr: Option<f64>,
    /// Findings marked false positive among those triaged, percent.
    pub false_positive_rate: Option<f64>,
    /// Incidents opened that day.
    pub opened: u64,
    /// The last CIS score assessed that day.
    pub compliance_score: Option<f64>,
}

/// The 30 days up to and including today, oldest first, from the same running
/// sums as [`headline`] (a few hundred rows however many findings there are).
pub(crate) fn trend(
    conn: &Connection,
    account: Option<&str>,
    now: Timestamp,
) -> Result<Vec<DayPoint>> {
    let since = first_day(now);
    let mut days: Vec<DayPoint> = (0..WINDOW_DAYS)
        .map(|i| DayPoint {
            day: Timestamp::from_millis((since + i) * DAY_MS),
            findings: 0,
            mttd: None,
            resolved: 0,
            mttr: None,
            false_positive_rate: None,
            opened: 0,
            compliance_score: None,
        })
        .collect();
    let slot = |day: i64| {
        usize::try_from(day - since)
            .ok()
            .filter(|&i| i < WINDOW_DAYS as usize)
    };
    let sums = sums_filter(account);
    let mut st = conn.prepare_cached(&format!(
        "SELECT day, sum(findings), sum(detect_ms), sum(triaged), sum(false_positives)
         FROM kpi_findings WHERE day >= ?1 AND {sums} GROUP BY day"
    ))?;
    let rows = st.query_map(params![since, account], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (day, n, detect_ms, triaged, fp) = row?;
        if let Some(i) = slot(day) {
            let d = &mut days[i];
            d.findings = n.max(0) as u64;
            d.mttd = (n > 0).then(|| one_decimal(detect_ms.max(0) as f64 / n as f64 / 60_000.0));
            d.false_positive_rate =
                (triaged > 0).then(|| one_decimal(100.0 * fp as f64 / triaged as f64));
        }
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT day, sum(resolved), sum(resolve_ms) FROM kpi_incidents
         WHERE day >= ?1 AND {sums} GROUP BY day"
    ))?;
    let rows = st.query_map(params![since, account], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (day, n, ms) = row?;
        if let Some(i) = slot(day) {
            days[i].resolved = n.max(0) as u64;
            days[i].mttr = (n > 0).then(|| one_decimal(ms.max(0) as f64 / n as f64 / 60_000.0));
        }
    }
    let mut st = conn.prepare_cached(
        "SELECT hour / 24, sum(opened) FROM kpi_opened WHERE account = ?1 AND hour >= ?2 GROUP BY 1",
    )?;
    let rows = st.query_map(
        params![account.unwrap_or(crate::incident::ALL_ACCOUNTS), since * 24],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    for row in rows {
        let (day, n) = row?;
        if let Some(i) = slot(day) {
            days[i].opened = n.max(0) as u64;
        }
    }
    for p in crate::compliance::since(
        conn,
        "CIS",
        account.unwrap_or(crate::compliance::ALL_SCOPE),
        since * DAY_MS,
    )? {
        if let Some(i) = slot(crate::incident::day_of(p.assessed_at.as_millis())) {
            days[i].compliance_score = p.score.map(one_decimal);
        }
    }
    Ok(days)
}
