//! The schema, as numbered migrations. `PRAGMA user_version` holds how many have
//! run; each runs once, in its own transaction, in order. A store written by a newer
//! Vigil is refused rather than misread.

use std::path::Path;

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Append only: a released migration is never edited, a change is a new one.
const MIGRATIONS: &[&str] = &[
    // 1: findings, incidents and their timelines, the audit log, checkpoints, and
    // the responses the playbook engine will record.
    r#"
    CREATE TABLE findings (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        finding_id   TEXT NOT NULL,
        account      TEXT,
        severity     INTEGER NOT NULL,
        category     TEXT NOT NULL,
        rule_id      TEXT NOT NULL,
        subject      TEXT,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        detected_at  INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        incident_id  TEXT NOT NULL REFERENCES incidents (id),
        triage       TEXT CHECK (triage IN ('TRUE_POSITIVE', 'FALSE_POSITIVE')),
        body         TEXT NOT NULL
    );
    CREATE INDEX findings_finding_id ON findings (finding_id);
    CREATE INDEX findings_incident ON findings (incident_id);
    CREATE INDEX findings_account ON findings (account, seq);
    -- Listing by category or severity walks one of these newest first.
    CREATE INDEX findings_category ON findings (category, seq);
    CREATE INDEX findings_severity ON findings (severity, seq);
    CREATE INDEX findings_detected ON findings (detected_at);

    CREATE TABLE incidents (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        group_key    TEXT NOT NULL,
        title        TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN
                        ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING', 'RESOLVED', 'FALSE_POSITIVE')),
        severity     INTEGER NOT NULL,
        category     TEXT NOT NULL,
        account      TEXT,
        subject      TEXT,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        opened_at    INTEGER NOT NULL,
        closed_at    INTEGER,
        assignee     TEXT,
        finding_count INTEGER NOT NULL DEFAULT 0,
        -- When a person first acted on it (status, note, assignment).
        first_action_at INTEGER
    );
    CREATE INDEX incidents_group ON incidents (group_key, status, last_seen);
    CREATE INDEX incidents_opened ON incidents (opened_at);
    CREATE INDEX incidents_account ON incidents (account, seq);
    CREATE INDEX incidents_account_opened ON incidents (account, opened_at);

    CREATE TABLE timeline (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id  TEXT NOT NULL REFERENCES incidents (id),
        at           INTEGER NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('finding', 'status', 'note', 'assign', 'action')),
        actor        TEXT,
        text         TEXT NOT NULL,
        finding_id   TEXT
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, seq);

    CREATE TABLE audit (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        at           INTEGER NOT NULL,
        principal    TEXT NOT NULL,
        action       TEXT NOT NULL,
        target       TEXT NOT NULL,
        outcome      TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    CREATE TABLE checkpoints (
        source       TEXT PRIMARY KEY,
        position     TEXT NOT NULL,
        updated_at   INTEGER NOT NULL
    );

    CREATE TABLE responses (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        incident_id  TEXT REFERENCES incidents (id),
        playbook     TEXT NOT NULL,
        automated    INTEGER NOT NULL,
        status       TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER
    );
    CREATE INDEX responses_started ON responses (started_at);

    -- The KPIs' running sums per UTC day (days since 1970), account ('' for none)
    -- and category, kept in the same transactions as the rows they sum, so that
    -- the KPIs read a few hundred rows however many findings there are.
    -- kpi_findings is keyed by the day a finding was first stored.
    CREATE TABLE kpi_findings (
        day          INTEGER NOT NULL,
        account      TEXT NOT NULL,
        category     TEXT NOT NULL,
        findings     INTEGER NOT NULL DEFAULT 0,
        detect_ms    INTEGER NOT NULL DEFAULT 0,
        triaged      INTEGER NOT NULL DEFAULT 0,
        false_positives INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, account, category)
    ) WITHOUT ROWID;
    -- kpi_incidents: resolutions by the day they happened, and incidents by the
    -- day a person first acted on them.
    CREATE TABLE kpi_incidents (
        day          INTEGER NOT NULL,
        account      TEXT NOT NULL,
        category     TEXT NOT NULL,
        resolved     INTEGER NOT NULL DEFAULT 0,
        resolve_ms   INTEGER NOT NULL DEFAULT 0,
        acted_on     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, account, category)
    ) WITHOUT ROWID;
    "#,
    // 2: findings by their last event, so that a restart finds the open ones (and
    // the newest) without reading every finding.
    r#"
    CREATE INDEX findings_last_seen ON findings (last_seen);
    "#,
    // 3: the KPI sums keyed account first, so that one account's (or the
    // all-accounts) 30 days are one range of 150 rows rather than every account's
    // rows of those days; and incidents opened per UTC hour (hours since 1970) and
    // account, so that "incidents in the last 24 hours" sums whole hours and counts
    // rows only in the part-hour at the window's start, filled from the incidents
    // already stored. The findings' category and severity indexes carry the other
    // of the two, so that a listing filtered by both checks it in the index and
    // reads only the rows it returns.
    r#"
    DROP INDEX findings_category;
    DROP INDEX findings_severity;
    CREATE INDEX findings_category ON findings (category, seq, severity);
    CREATE INDEX findings_severity ON findings (severity, seq, category);
    CREATE TABLE kpi_findings_3 (
        account      TEXT NOT NULL,
        day          INTEGER NOT NULL,
        category     TEXT NOT NULL,
        findings     INTEGER NOT NULL DEFAULT 0,
        detect_ms    INTEGER NOT NULL DEFAULT 0,
        triaged      INTEGER NOT NULL DEFAULT 0,
        false_positives INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, day, category)
    ) WITHOUT ROWID;
    INSERT INTO kpi_findings_3 (account, day, category, findings, detect_ms, triaged, false_positives)
        SELECT account, day, category, findings, detect_ms, triaged, false_positives FROM kpi_findings;
    DROP TABLE kpi_findings;
    ALTER TABLE kpi_findings_3 RENAME TO kpi_findings;
    CREATE TABLE kpi_incidents_3 (
        account      TEXT NOT NULL,
        day          INTEGER NOT NULL,
        category     TEXT NOT NULL,
        resolved     INTEGER NOT NULL DEFAULT 0,
        resolve_ms   INTEGER NOT NULL DEFAULT 0,
        acted_on     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, day, category)
    ) WITHOUT ROWID;
    INSERT INTO kpi_incidents_3 (account, day, category, resolved, resolve_ms, acted_on)
        SELECT account, day, category, resolved, resolve_ms, acted_on FROM kpi_incidents;
    DROP TABLE kpi_incidents;
    ALTER TABLE kpi_incidents_3 RENAME TO kpi_incidents;
    CREATE TABLE kpi_opened (
        account      TEXT NOT NULL,
        hour         INTEGER NOT NULL,
        opened       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, hour)
    ) WITHOUT ROWID;
    INSERT INTO kpi_opened (account, hour, opened)
        SELECT coalesce(account, ''), opened_at / 3600000, count(*)
        FROM incidents WHERE opened_at >= 0 GROUP BY 1, 2;
    INSERT INTO kpi_opened (account, hour, opened)
        SELECT '*', opened_at / 3600000, count(*)
        FROM incidents WHERE opened_at >= 0 GROUP BY 2;
    "#,
    // 4: the audit log becomes a hash chain (each entry hashes the one before);
    // the entries already there are chained by `audit::seal_existing`.
    r#"
    ALTER TABLE audit ADD COLUMN hash TEXT;
    "#,
    // 5: playbook runs and their steps, written at every move of the engine (in
    // place of migration 1's `responses`, which nothing wrote). Written to run
    // again harmlessly over a store whose version was set back.
    r#"
    DROP TABLE IF EXISTS responses;
    CREATE TABLE IF NOT EXISTS runs (
        id           TEXT PRIMARY KEY,
        playbook     TEXT NOT NULL,
        incident_id  TEXT,
        finding_id   TEXT,
        status       TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        account      TEXT,
        region       TEXT,
        environment  TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        finished_at  INTEGER,
        detected_at  INTEGER,
        note         TEXT,
        context      TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS runs_incident ON runs (incident_id, playbook);
    CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
    CREATE TABLE IF NOT EXISTS run_steps (
        run_id       TEXT NOT NULL REFERENCES runs (id),
        seq          INTEGER NOT NULL,
        phase        TEXT NOT NULL,
        step_id      TEXT NOT NULL,
        action       TEXT NOT NULL,
        plan         TEXT NOT NULL,
        status       TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        approved_by  TEXT,
        started_at   INTEGER,
        ended_at     INTEGER,
        changed      INTEGER,
        calls        TEXT,
        result       TEXT,
        error        TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 6: compliance assessments: one row per framework and scope (an account, or
    // '*' for all accounts assessed together) each time the checks run, with the
    // whole verdict as JSON; the newest per framework and scope is the current one.
    r#"
    CREATE TABLE IF NOT EXISTS assessments (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        framework    TEXT NOT NULL,
        scope        TEXT NOT NULL,
        assessed_at  INTEGER NOT NULL,
        score        REAL,
        passed       INTEGER NOT NULL,
        failed       INTEGER NOT NULL,
        errors       INTEGER NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS assessments_latest ON assessments (framework, scope, seq);
    "#,
    // 7: the identities of the records the pipeline has taken (16-byte digests
    // of the CloudTrail eventID, the finding id and update time, the flow
    // record…), one row per delivery with its identities side by side, kept for a
    // window of wall-clock time, so that a record delivered again (a retry, a
    // redelivered message, a re-read file) counts once, across restarts too.
    r#"
    CREATE TABLE IF NOT EXISTS seen_records (
        seq      INTEGER PRIMARY KEY,
        seen_at  INTEGER NOT NULL,
        ids      BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS seen_records_at ON seen_records (seen_at);
    "#,
    // 8: several writers on one store (pipelines in several processes). A
    // finding's dedup key (rule, principal, resource), so that one writer's
    // finding folds into another's; the store's own numbering of each day's
    // findings; and record-identity rows numbered without reuse (AUTOINCREMENT),
    // so that a writer can read what the others took since the last row it saw.
    r#"
    ALTER TABLE findings ADD COLUMN dedup_key TEXT;
    UPDATE findings SET dedup_key =
        json_extract(body, '$.detail.rule.id') || char(31)
        || coalesce(json_extract(body, '$.detail.principal'), '') || char(31)
        || coalesce(json_extract(body, '$.detail.resource_arn'), '');
    CREATE INDEX findings_dedup ON findings (dedup_key, last_seen);
    CREATE TABLE finding_days (
        day   TEXT PRIMARY KEY,
        last  INTEGER NOT NULL
    );
    CREATE TABLE seen_records_8 (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        seen_at  INTEGER NOT NULL,
        ids      BLOB NOT NULL
    );
    INSERT INTO seen_records_8 (seq, seen_at, ids) SELECT seq, seen_at, ids FROM seen_records;
    DROP TABLE seen_records;
    ALTER TABLE seen_records_8 RENAME TO seen_records;
    CREATE INDEX seen_records_at ON seen_records (seen_at);
    "#,
    // 9: the outbox. Each change the outputs hear of is one `outbox_events`
    // row, and one `outbox` row per destination it goes to, written in the
    // change's transaction; `outbox_refs` keeps what a destination made of a
    // subject (a Slack message, a Jira issue) so later deliveries edit it;
    // `approvals` holds the approvals of a step that needs two people, and
    // `interactions` the chat actions already acted on.
    r#"
    CREATE TABLE IF NOT EXISTS outbox_events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        event    TEXT NOT NULL,
        at       INTEGER NOT NULL,
        payload  TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS outbox (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq      INTEGER NOT NULL REFERENCES outbox_events (seq),
        destination    TEXT NOT NULL,
        event          TEXT NOT NULL,
        fold           TEXT,
        state          TEXT NOT NULL,
        attempts       INTEGER NOT NULL,
        next_at        INTEGER NOT NULL,
        claimed_until  INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        done_at        INTEGER,
        folded_into    INTEGER,
        last_error     TEXT
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, state, id);
    CREATE INDEX IF NOT EXISTS outbox_fold ON outbox (destination, fold, state) WHERE fold IS NOT NULL;
    CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, id);
    CREATE INDEX IF NOT EXISTS outbox_event ON outbox (event_seq);
    CREATE TABLE IF NOT EXISTS outbox_refs (
        destination  TEXT NOT NULL,
        subject      TEXT NOT NULL,
        ref          TEXT NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (destination, subject)
    );
    CREATE TABLE IF NOT EXISTS approvals (
        run_id     TEXT NOT NULL,
        step_seq   INTEGER NOT NULL,
        principal  TEXT NOT NULL,
        via        TEXT NOT NULL,
        at         INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_seq, principal)
    );
    CREATE TABLE IF NOT EXISTS interactions (
        key  TEXT PRIMARY KEY,
        at   INTEGER NOT NULL
    );
    "#,
    // 10: for the dashboard: the playbook runs by their last change, so that
    // the live view finds the newest change to any run in one index lookup;
    // the open incidents (open, acknowledged, remediating) counted by severity
    // and account ('' for none), kept by triggers in the same transaction as
    // every incident write, so that the overview reads a few rows however many
    // incidents there are; a counter that every update of a finding or an
    // incident moves (a repeat, an escalation), for the live view; and the
    // first records behind each finding as they arrived.
    r#"
    CREATE INDEX IF NOT EXISTS runs_updated ON runs (updated_at);
    CREATE TABLE IF NOT EXISTS changes (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        n   INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO changes (id, n) VALUES (1, 0);
    CREATE TRIGGER IF NOT EXISTS findings_changed AFTER UPDATE ON findings
    BEGIN
        UPDATE changes SET n = n + 1 WHERE id = 1;
    END;
    CREATE TRIGGER IF NOT EXISTS incidents_changed AFTER UPDATE ON incidents
    BEGIN
        UPDATE changes SET n = n + 1 WHERE id = 1;
    END;
    CREATE TABLE IF NOT EXISTS finding_records (
        finding_id  TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        at          INTEGER NOT NULL,
        text        TEXT NOT NULL,
        PRIMARY KEY (finding_id, event_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS open_incidents (
        severity  INTEGER NOT NULL,
        account   TEXT NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (severity, account)
    ) WITHOUT ROWID;
    DELETE FROM open_incidents;
    INSERT INTO open_incidents (severity, account, n)
        SELECT severity, coalesce(account, ''), count(*) FROM incidents
        WHERE status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING') GROUP BY 1, 2;
    CREATE TRIGGER IF NOT EXISTS open_incidents_insert AFTER INSERT ON incidents
        WHEN NEW.status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING')
    BEGIN
        INSERT INTO open_incidents (severity, account, n)
            VALUES (NEW.severity, coalesce(NEW.account, ''), 1)
            ON CONFLICT (severity, account) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS open_incidents_update
        AFTER UPDATE OF status, severity, account ON incidents
    BEGIN
        UPDATE open_incidents SET n = n - 1
            WHERE OLD.status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING')
              AND severity = OLD.severity AND account = coalesce(OLD.account, '');
        INSERT INTO open_incidents (severity, account, n)
            SELECT NEW.severity, coalesce(NEW.account, ''), 1
            WHERE NEW.status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING')
            ON CONFLICT (severity, account) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS open_incidents_delete AFTER DELETE ON incidents
        WHEN OLD.status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING')
    BEGIN
        UPDATE open_incidents SET n = n - 1
            WHERE severity = OLD.severity AND account = coalesce(OLD.account, '');
    END;
    "#,
];

/// The migration after which the existing audit entries are chained.
const SEAL_AUDIT: usize = 3;

pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // Immediate: of two processes opening one store, the second waits and
        // then finds the migration done.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        if i == SEAL_AUDIT {
            crate::audit::seal_existing(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(
            store = %path.display(),
            "store schema migrated to version {}",
            i + 1
        );
    }
    Ok(())
}
