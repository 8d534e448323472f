//! Compliance assessments as history: every run of the checks stores each
//! framework's verdict (score, counts, the controls as JSON) per account and for
//! all accounts together (`*`). The newest is what the API and the KPI report;
//! the rows before it are the score's history.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use vigil_model::Timestamp;

use crate::Result;

/// The scope of an assessment of every account together.
pub const ALL_SCOPE: &str = "*";

/// One stored assessment of one framework.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assessment {
    pub framework: String,
    pub scope: String,
    pub assessed_at: Timestamp,
    pub score: Option<f64>,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    /// The verdict as the assessor wrote it (JSON).
    pub body: String,
}

/// A point of a framework's score history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScorePoint {
    pub assessed_at: Timestamp,
    pub score: Option<f64>,
    pub passed: u64,
    pub failed: u64,
}

pub(crate) fn record(conn: &Connection, a: &Assessment) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO assessments (framework, scope, assessed_at, score, passed, failed, errors, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        a.framework,
        a.scope,
        a.assessed_at.as_millis(),
        a.score,
        a.passed as i64,
        a.failed as i64,
        a.errors as i64,
        a.body
    ])?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Assessment> {
    Ok(Assessment {
        framework: r.get(0)?,
        scope: r.get(1)?,
        assessed_at: Timestamp::from_millis(r.get(2)?),
        score: r.get(3)?,
        passed: r.get::<_, i64>(4)?.max(0) as u64,
        failed: r.get::<_, i64>(5)?.max(0) as u64,
        errors: r.get::<_, i64>(6)?.max(0) as u64,
        body: r.get(7)?,
    })
}

/// The newest assessment of `framework` (matched case-insensitively) in `scope`.
pub(crate) fn latest(
    conn: &Connection,
    framework: &str,
    scope: &str,
) -> Result<Option<Assessment>> {
    Ok(conn
        .prepare_cached(
            "SELECT framework, scope, assessed_at, score, passed, failed, errors, body
             FROM assessments WHERE framework = ?1 COLLATE NOCASE AND scope = ?2
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![framework, scope], row)
        .optional()?)
}

/// The newest assessment of every framework in `scope`, by framework.
pub(crate) fn current(conn: &Connection, scope: &str) -> Result<Vec<Assessment>> {
    let mut st = conn.prepare_cached(
        "SELECT framework, scope, assessed_at, score, passed, failed, errors, body
         FROM assessments WHERE seq IN
           (SELECT max(seq) FROM assessments WHERE scope = ?1 GROUP BY framework)
         ORDER BY framework",
    )?;
    let rows = st.query_map([scope], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The last `limit` scores of `framework` in `scope`, newest first.
/// A row of `assessed_at, score, passed, failed`.
fn score_point(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScorePoint> {
    Ok(ScorePoint {
        assessed_at: Timestamp::from_millis(r.get(0)?),
        score: r.get(1)?,
        passed: r.get::<_, i64>(2)?.max(0) as u64,
        failed: r.get::<_, i64>(3)?.max(0) as u64,
    })
}

/// The scores assessed at or after `start` (ms), oldest first.
pub(crate) fn since(
    conn: &Connection,
    framework: &str,
    scope: &str,
    start: i64,
) -> Result<Vec<ScorePoint>> {
    let mut st = conn.prepare_cached(
        "SELECT assessed_at, score, passed, failed FROM assessments
         WHERE framework = ?1 COLLATE NOCASE AND scope = ?2 AND assessed_at >= ?3
         ORDER BY seq",
    )?;
    let rows = st.query_map(params![framework, scope, start], score_point)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn history(
    conn: &Connection,
    framework: &str,
    scope: &str,
    limit: usize,
) -> Result<Vec<ScorePoint>> {
    let mut st = conn.prepare_cached(
        "SELECT assessed_at, score, passed, failed FROM assessments
         WHERE framework = ?1 COLLATE NOCASE AND scope = ?2
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![framework, scope, limit as i64], score_point)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
