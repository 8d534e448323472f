//! The KPIs, computed from stored rows when asked (never kept as counters that could
//! drift from the data):
//! - MTTD: the mean time from a finding's first event to the moment it was stored,
//!   over findings stored in the last 30 days;
//! - MTTR: the mean time from an incident opening to its resolution, over incidents
//!   resolved in the last 30 days (false positives are not remediations);
//! - incidents opened in the last 24 hours;
//! - false-positive rate: findings marked false positive as a share of the findings
//!   triaged (their incident closed) in the last 30 days;
//! - compliance score: `null` until the compliance checks exist — never made up.
//!
//! Times are minutes and rates percent, as in `DESIGN.md`. A KPI with nothing to
//! measure yet is `null`, not zero.

use rusqlite::{params, Connection};
use serde::Serialize;
use vigil_detect::finding::Category;
use vigil_model::Timestamp;

use crate::Result;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const MONTH_MS: i64 = 30 * DAY_MS;

/// `GET /api/v1/metrics`, in exactly the shape of `DESIGN.md`.
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

/// `?2` stands for the account filter: NULL matches every account.
const ACCOUNT: &str = "(?2 IS NULL OR account = ?2)";

pub(crate) fn headline(
    conn: &Connection,
    account: Option<&str>,
    now: Timestamp,
) -> Result<Metrics> {
    let now = now.as_millis();
    let month = now - MONTH_MS;
    let mttd: Option<f64> = conn.query_row(
        &format!(
            "SELECT avg(max(detected_at - first_seen, 0)) FROM findings
             WHERE detected_at >= ?1 AND {ACCOUNT}"
        ),
        params![month, account],
        |r| r.get(0),
    )?;
    let mttr: Option<f64> = conn.query_row(
        &format!(
            "SELECT avg(max(closed_at - opened_at, 0)) FROM incidents
             WHERE status = 'RESOLVED' AND closed_at >= ?1 AND {ACCOUNT}"
        ),
        params![month, account],
        |r| r.get(0),
    )?;
    let last_day: i64 = conn.query_row(
        &format!("SELECT count(*) FROM incidents WHERE opened_at >= ?1 AND {ACCOUNT}"),
        params![now - DAY_MS, account],
        |r| r.get(0),
    )?;
    let (triaged, false_positives): (i64, i64) = conn.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(triage = 'FALSE_POSITIVE'), 0) FROM findings
             WHERE triage IS NOT NULL AND detected_at >= ?1 AND {ACCOUNT}"
        ),
        params![month, account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Metrics {
        mttd: minutes(mttd),
        mttr: minutes(mttr),
        compliance_score: None,
        incidents_last_24h: last_day.max(0) as u64,
        false_positive_rate: (triaged > 0)
            .then(|| one_decimal(100.0 * false_positives as f64 / triaged as f64)),
    })
}

pub(crate) fn threats(
    conn: &Connection,
    account: Option<&str>,
    now: Timestamp,
) -> Result<Vec<ThreatRow>> {
    let month = now.as_millis() - MONTH_MS;
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
    let mut add = |sql: &str, pick: fn(&mut ThreatRow) -> &mut u64| -> Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let counts = stmt.query_map(params![month, account], |r| {
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
    add(
        &format!(
            "SELECT category, count(*) FROM findings WHERE detected_at >= ?1 AND {ACCOUNT} GROUP BY category"
        ),
        |r| &mut r.detections,
    )?;
    add(
        &format!(
            "SELECT category, sum(triage IS 'FALSE_POSITIVE') FROM findings
             WHERE detected_at >= ?1 AND {ACCOUNT} GROUP BY category"
        ),
        |r| &mut r.false_positives,
    )?;
    add(
        &format!(
            "SELECT i.category, count(DISTINCT i.id) FROM incidents i JOIN timeline t ON t.incident_id = i.id
             WHERE t.actor IS NOT NULL AND t.at >= ?1 AND {} GROUP BY i.category",
            ACCOUNT.replace("account", "i.account")
        ),
        |r| &mut r.manual_interventions,
    )?;
    add(
        &format!(
            "SELECT i.category, count(*) FROM responses r JOIN incidents i ON r.incident_id = i.id
             WHERE r.automated = 1 AND r.started_at >= ?1 AND {} GROUP BY i.category",
            ACCOUNT.replace("account", "i.account")
        ),
        |r| &mut r.automated_responses,
    )?;
    Ok(rows)
}
