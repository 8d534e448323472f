//! Vigil's embedded store: findings, the incidents they are grouped into, the
//! incidents' timelines, an append-only audit log, per-source checkpoints, and the
//! KPIs computed from them — in one SQLite database (WAL, versioned migrations).
//!
//! What it is not: it detects nothing and serves nothing. Findings arrive already
//! deduplicated by `vigil-detect`; the API in `vigil-server` reads and acts through
//! this crate. A finding's `id` is a name-based UUID, so storing the same finding
//! again (a re-delivered file, a restart after a crash) updates it rather than adding
//! a second one; incidents are named the same way.
//!
//! One [`Store`] writes; any number of read-only ones ([`Store::open_reader`]) read
//! beside it, which WAL mode allows without blocking the writer.

mod audit;
pub mod compliance;
mod incident;
mod metrics;
pub mod outbox;
mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use serde_json::value::RawValue;

pub use audit::AuditCheck;
use vigil_model::finding::Category;
use vigil_model::response::RunStatus;
use vigil_model::Finding;
use vigil_model::{AccountRegistry, Severity, Timestamp};

pub use incident::Mode as FindingMode;
pub use incident::{Incident, IncidentQuery, IncidentStatus, IncidentView, TimelineEntry};
pub use metrics::{DayPoint, Metrics, ThreatRow};
pub use runs::{AuditLine, RunRecord, StepRecord};
pub use vigil_model::incident::Grouping;

/// What went wrong in the store. Messages name the file, the incident or the
/// transition a user needs to act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: its schema is version {found}, newer than this Vigil knows ({known}); upgrade Vigil")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("incident {0} not found")]
    NoIncident(String),
    #[error("incident {id} is {from}; it cannot become {to}")]
    Transition {
        id: String,
        from: IncidentStatus,
        to: IncidentStatus,
    },
    #[error("outbox delivery {id} is {state}; only a dead delivery is replayed")]
    NotDead { id: i64, state: &'static str },
    #[error("bad cursor {0:?}")]
    Cursor(String),
    #[error("a stored row is damaged: {0}")]
    Damaged(String),
    /// Another writer committed some of the same records first; nothing of the
    /// delivery was committed (deliver it again: those records are now known).
    #[error("{0} of the delivery's records were committed by another writer first")]
    Conflict(usize),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What storing a batch of findings did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recorded {
    pub new_findings: u64,
    pub updated_findings: u64,
    pub new_incidents: u64,
    /// The ids of the incidents opened.
    pub opened: Vec<String>,
    /// With [`FindingMode::Merge`]: each finding as stored (folded into another
    /// writer's, or numbered by the store), in the order given.
    #[serde(skip)]
    pub stored: Vec<Finding>,
    /// The number of the record-identity row this delivery added, if any.
    #[serde(skip)]
    pub records_seq: Option<i64>,
    /// Whether the commit queued deliveries in the outbox.
    #[serde(skip)]
    pub queued: bool,
}

/// A page of a listing, newest first; `next_cursor` fetches the page after it.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Which findings to list. Times are event time; every filter is optional.
#[derive(Clone, Debug, Default)]
pub struct FindingQuery {
    /// Any of these severities.
    pub severities: Vec<Severity>,
    pub categories: Vec<Category>,
    pub account: Option<String>,
    /// Findings whose events reach into `[since, until]`.
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub incident: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: Timestamp,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 1000;

/// A connection to the store.
/// What [`Store::open_incidents`] reads.
#[derive(Clone, Debug, Default)]
pub struct OpenIncidents {
    /// (severity, account, how many).
    pub counts: Vec<(Severity, Option<String>, u64)>,
    /// The one opened last.
    pub newest: Option<Incident>,
}

impl OpenIncidents {
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.2).sum()
    }
}

/// What [`Store::change_marks`] reads: each moves forward when its kind of
/// row changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeMarks {
    pub findings: i64,
    pub timeline: i64,
    pub runs: i64,
    /// Updates to findings and incidents.
    pub updates: i64,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    grouping: Grouping,
    /// Who hears of changes (see [`outbox`]); none: nothing is queued.
    router: Option<Arc<dyn outbox::Router>>,
}

/// The one handle to the store's writer connection that the pipeline, the API,
/// the response engine and compliance share.
///
/// One policy for a lock a panicking thread left poisoned: carry on. Every change
/// runs in a transaction that rolls back when dropped mid-way, so a panic leaves
/// the connection as it was before the change; refusing every later write would
/// only turn one failed request into a stopped service.
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<Store>>);

impl SharedStore {
    pub fn new(store: Store) -> SharedStore {
        SharedStore(Arc::new(Mutex::new(store)))
    }

    /// The writer, for one change or read; hold it briefly.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A record identity the pipeline has taken (a 16-byte digest), and when (wall
/// clock, ms; one time for all of a delivery's records).
pub type SeenRecord = ([u8; 16], i64);

/// Everything one delivery of telemetry changed, committed together: the
/// findings it opened or updated, the source's new position, and the identities
/// of the records it took.
#[derive(Debug, Default)]
pub struct Delivery<'a> {
    pub findings: &'a [Finding],
    /// The source's checkpoint key and position.
    pub checkpoint: Option<(&'a str, &'a str)>,
    pub records: &'a [SeenRecord],
    /// Forget record identities taken before this time (wall clock, ms), and
    /// the checkpoints of single S3 objects (`s3://…`) older than that.
    pub forget_before: Option<i64>,
    /// How the findings meet what is stored.
    pub mode: FindingMode<'a>,
    /// The last record-identity row this writer has read: the commit fails with
    /// [`StoreError::Conflict`] if a row after it holds one of `records`.
    pub records_after: Option<i64>,
}

/// A row of record identities, cut into its 16-byte ids.
fn whole_ids(ids: &[u8]) -> Result<impl Iterator<Item = [u8; 16]> + '_> {
    if ids.len() % 16 != 0 {
        return Err(StoreError::Damaged(
            "a row of seen record ids is not a whole number of 16-byte ids".into(),
        ));
    }
    Ok(ids.chunks_exact(16).map(|c| {
        let mut one = [0u8; 16];
        one.copy_from_slice(c);
        one
    }))
}

/// How many of `records` rows after `after` hold.
fn clashes(tx: &rusqlite::Transaction<'_>, after: i64, records: &[SeenRecord]) -> Result<usize> {
    let mut stmt = tx.prepare_cached("SELECT ids FROM seen_records WHERE seq > ?1")?;
    let mut rows = stmt.query([after])?;
    let mut theirs = std::collections::HashSet::new();
    while let Some(r) = rows.next()? {
        theirs.extend(whole_ids(&r.get::<_, Vec<u8>>(0)?)?);
    }
    if theirs.is_empty() {
        return Ok(0);
    }
    Ok(records.iter().filter(|(id, _)| theirs.contains(id)).count())
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("vigil.db")
}

impl Store {
    /// Opens (creating it and its directory if need be) the store in `data_dir`,
    /// and brings its schema up to date.
    pub fn open(data_dir: &Path, grouping: Grouping) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = database_path(data_dir);
        let open = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open)?;
        Self::configure(&conn).map_err(open)?;
        schema::migrate(&mut conn, &path)?;
        Ok(Store {
            conn,
            path,
            grouping,
            router: None,
        })
    }

    /// A store in memory, for tests and one-off runs.
    pub fn in_memory(grouping: Grouping) -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory()?;
        schema::migrate(&mut conn, &path)?;
        Ok(Store {
            conn,
            path,
            grouping,
            router: None,
        })
    }

    /// A read-only connection beside this one (WAL lets it read while this writes).
    pub fn open_reader(&self) -> Result<Store> {
        let open = |source| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open)?;
        Ok(Store {
            conn,
            path: self.path.clone(),
            grouping: self.grouping.clone(),
            router: None,
        })
    }

    fn configure(conn: &Connection) -> rusqlite::Result<()> {
        // WAL: readers never block the writer; NORMAL sync is durable across a
        // process crash (kill -9), which is what the pipeline must survive.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// From now on, every change is shown to `router` and queued in the outbox
    /// for the destinations it names, in the change's own transaction.
    pub fn set_router(&mut self, router: Arc<dyn outbox::Router>) {
        self.router = Some(router);
    }

    /// Tells the router its deliveries are committed.
    fn woke(&self, queued: bool) {
        if let (true, Some(r)) = (queued, &self.router) {
            r.wake();
        }
    }

    pub fn accounts(&self) -> &AccountRegistry {
        &self.grouping.accounts
    }

    /// Stores findings (new or updated) and files each new one under an incident,
    /// all in one transaction. `now` is when they were detected.
    pub fn record_findings(&mut self, findings: &[Finding], now: Timestamp) -> Result<Recorded> {
        self.commit(
            &Delivery {
                findings,
                ..Delivery::default()
            },
            now,
        )
    }

    /// One finding's JSON, by its `id` or its `finding_id`.
    pub fn finding(&self, id: &str) -> Result<Option<Box<RawValue>>> {
        let body: Option<String> = self
            .conn
            .query_row(
                "SELECT body FROM findings WHERE id = ?1 OR finding_id = ?1 LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        body.map(raw).transpose()
    }

    /// The incident a finding (by its `id`) is filed under.
    pub fn incident_of(&self, finding: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT incident_id FROM findings WHERE id = ?1 OR finding_id = ?1 LIMIT 1",
                [finding],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Findings matching `q`, newest stored first: each the JSON text it was stored
    /// as, which only this store writes (from a serialized [`Finding`]), so that a
    /// page goes out without being parsed again.
    pub fn findings(&self, q: &FindingQuery) -> Result<Page<String>> {
        let mut l = Listing::new("SELECT seq, body FROM findings WHERE 1=1");
        l.any_of(
            "severity",
            q.severities.iter().map(|s| severity_rank(*s).into()),
        );
        l.any_of(
            "category",
            q.categories.iter().map(|c| c.as_str().to_owned().into()),
        );
        l.compare("account =", q.account.clone());
        l.compare("last_seen >=", q.since.map(Timestamp::as_millis));
        l.compare("first_seen <=", q.until.map(Timestamp::as_millis));
        l.compare("incident_id =", q.incident.clone());
        l.fetch(
            &self.conn,
            q.cursor.as_deref(),
            q.limit,
            |r| Ok((r.get(0)?, r.get::<_, String>(1)?)),
            Ok,
        )
    }

    /// The findings a restarted pipeline takes back: those whose last event is
    /// within `window_ms` (event time) of the newest stored, so that the alerts
    /// still to come update them rather than open a second finding.
    pub fn recent_findings(&self, window_ms: i64) -> Result<Vec<Finding>> {
        let newest: Option<i64> =
            self.conn
                .query_row("SELECT max(last_seen) FROM findings", [], |r| r.get(0))?;
        let Some(newest) = newest else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM findings WHERE last_seen >= ?1 ORDER BY seq")?;
        let rows = stmt.query_map([newest.saturating_sub(window_ms)], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|body| {
            serde_json::from_str(&body?)
                .map_err(|e| StoreError::Damaged(format!("finding body: {e}")))
        })
        .collect()
    }

    /// The last `finding_id` given out on each day (`sec-YYYY-MM-DD-N`), so that a
    /// restarted pipeline numbers on from there.
    pub fn last_finding_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT substr(finding_id, 1, 15), max(CAST(substr(finding_id, 16) AS INTEGER))
             FROM findings WHERE finding_id LIKE 'sec-____-__-__-%' GROUP BY 1",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(format!("{}{}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many findings are stored.
    pub fn finding_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM findings", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    pub fn incidents(&self, q: &IncidentQuery) -> Result<Page<Incident>> {
        incident::list(&self.conn, q)
    }

    /// The records behind finding `id` as they arrived (the first few).
    pub fn finding_records(&self, id: &str) -> Result<Vec<vigil_model::finding::RawRecord>> {
        incident::records(&self.conn, id)
    }

    /// The incidents still open (open, acknowledged or remediating), counted
    /// by severity and account (`None`: no account), and the newest of them.
    pub fn open_incidents(&self) -> Result<OpenIncidents> {
        const OPEN: &str = "status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING')";
        let mut st = self
            .conn
            .prepare_cached("SELECT severity, account, n FROM open_incidents WHERE n > 0")?;
        let mut counts = Vec::new();
        for row in st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (rank, account, n) = row?;
            let account = (!account.is_empty()).then_some(account);
            counts.push((severity_from_rank(rank)?, account, n.max(0) as u64));
        }
        // Newest first by the opening-time index, to the first still open
        // (not by status: most incidents may be open).
        let newest: Option<String> = self
            .conn
            .prepare_cached(&format!(
                "SELECT id FROM incidents INDEXED BY incidents_opened WHERE {OPEN} \
                 ORDER BY opened_at DESC LIMIT 1"
            ))?
            .query_row([], |r| r.get(0))
            .optional()?;
        let newest = match newest {
            Some(id) => incident::get(&self.conn, &id)?,
            None => None,
        };
        Ok(OpenIncidents { counts, newest })
    }

    pub fn incident(&self, id: &str) -> Result<Option<IncidentView>> {
        incident::view(&self.conn, id)
    }

    /// Moves an incident through its lifecycle on behalf of `actor`, with an
    /// optional note; refuses moves the lifecycle does not allow.
    pub fn transition(
        &mut self,
        id: &str,
        to: IncidentStatus,
        actor: &str,
        note: Option<&str>,
        now: Timestamp,
    ) -> Result<Incident> {
        let router = self.router.clone();
        let tx = self.conn.transaction()?;
        let (inc, queued) = incident::transition(&tx, id, to, actor, note, now, router.as_deref())?;
        tx.commit()?;
        self.woke(queued);
        Ok(inc)
    }

    /// Adds a note to an incident's timeline.
    pub fn add_note(&mut self, id: &str, actor: &str, text: &str, now: Timestamp) -> Result<()> {
        let tx = self.conn.transaction()?;
        incident::add_note(&tx, id, actor, text, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets (or clears) who works an incident.
    pub fn assign(
        &mut self,
        id: &str,
        assignee: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<Incident> {
        let tx = self.conn.transaction()?;
        let inc = incident::assign(&tx, id, assignee, actor, now)?;
        tx.commit()?;
        Ok(inc)
    }

    /// Appends to the audit log (which refuses updates and deletes).
    pub fn audit(
        &self,
        at: Timestamp,
        principal: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<i64> {
        audit::append(&self.conn, at, principal, action, target, outcome)
    }

    /// Stores a new run with its steps, and its audit entry.
    pub fn create_run(&mut self, run: &RunRecord, line: &AuditLine<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        runs::create(&tx, run, line)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes a step's state, with an audit entry if given, in one transaction.
    pub fn update_step(
        &mut self,
        run_id: &str,
        step: &StepRecord,
        now: Timestamp,
        line: Option<&AuditLine<'_>>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        runs::update_step(&tx, run_id, step, now, line)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a run's status (and why), with its audit entry.
    pub fn set_run_status(
        &mut self,
        run_id: &str,
        status: RunStatus,
        note: Option<&str>,
        finished: bool,
        now: Timestamp,
        line: &AuditLine<'_>,
    ) -> Result<()> {
        let router = self.router.clone();
        let tx = self.conn.transaction()?;
        runs::set_status(&tx, run_id, status, note, finished, now, line)?;
        let queued = match router.as_deref() {
            Some(router) => runs::announce(&tx, router, run_id, status, line, now)?,
            None => false,
        };
        tx.commit()?;
        self.woke(queued);
        Ok(())
    }

    /// A run with its steps.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        runs::get(&self.conn, id)
    }

    /// Runs, newest first, of one incident and/or in one status.
    pub fn runs(
        &self,
        incident: Option<&str>,
        status: Option<RunStatus>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        runs::list(&self.conn, incident, status, page_limit(limit))
    }

    /// The ids of the runs in any of `statuses`, oldest first.
    pub fn run_ids_in(&self, statuses: &[RunStatus]) -> Result<Vec<String>> {
        runs::ids_in(&self.conn, statuses)
    }

    /// Whether an incident already has a run of a playbook.
    pub fn has_run(&self, incident: &str, playbook: &str) -> Result<bool> {
        runs::exists(&self.conn, incident, playbook)
    }

    /// Walks the audit log's hash chain: how many entries, the head, and the first
    /// entry edited or missing, if any.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        audit::verify(&self.conn)
    }

    /// Audit entries after `after` (a sequence number), oldest first.
    pub fn audit_log(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, principal, action, target, outcome FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, page_limit(limit) as i64], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: Timestamp::from_millis(r.get(1)?),
                principal: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                outcome: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Where a source got to (a file's fingerprint, an offset…), if anywhere.
    pub fn checkpoint(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT position FROM checkpoints WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// How many sources have a checkpoint (inbox files done, for one).
    pub fn checkpoint_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM checkpoints", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Records a source's position together with the findings it produced, so that
    /// a crash leaves both or neither.
    pub fn record_with_checkpoint(
        &mut self,
        findings: &[Finding],
        source: &str,
        position: &str,
        now: Timestamp,
    ) -> Result<Recorded> {
        self.commit(
            &Delivery {
                findings,
                checkpoint: Some((source, position)),
                ..Delivery::default()
            },
            now,
        )
    }

    /// Commits one delivery in one transaction: a crash leaves all of it or none.
    pub fn commit(&mut self, d: &Delivery<'_>, now: Timestamp) -> Result<Recorded> {
        // Immediate: it writes, and another process may be writing too.
        let router = self.router.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let (Some(after), false) = (d.records_after, d.records.is_empty()) {
            let clash = clashes(&tx, after, d.records)?;
            if clash > 0 {
                return Err(StoreError::Conflict(clash));
            }
        }
        let mut done = Recorded::default();
        for (i, f) in d.findings.iter().enumerate() {
            let ctx = incident::Ctx {
                grouping: &self.grouping,
                router: router.as_deref(),
            };
            if let Some(stored) = incident::record(&tx, ctx, f, d.mode, i, now, &mut done)? {
                done.stored.push(stored);
            }
        }
        if let Some((source, position)) = d.checkpoint {
            tx.execute(
                "INSERT INTO checkpoints (source, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                params![source, position, now.as_millis()],
            )?;
        }
        if let Some((_, at)) = d.records.first() {
            // One row for the delivery: its identities side by side.
            let mut ids = Vec::with_capacity(d.records.len() * 16);
            for (id, _) in d.records {
                ids.extend_from_slice(id);
            }
            tx.prepare_cached("INSERT INTO seen_records (seen_at, ids) VALUES (?1, ?2)")?
                .execute(params![at, ids])?;
            done.records_seq = Some(tx.last_insert_rowid());
        }
        if let Some(before) = d.forget_before {
            tx.execute("DELETE FROM seen_records WHERE seen_at < ?1", [before])?;
            tx.execute(
                "DELETE FROM checkpoints WHERE source >= 's3://' AND source < 's3:/0' AND updated_at < ?1",
                [before],
            )?;
        }
        tx.commit()?;
        self.woke(done.queued);
        Ok(done)
    }

    /// Claims up to `limit` due deliveries of `destination` for `lease_ms` (see
    /// [`outbox`]), oldest first.
    pub fn claim_outbox(
        &mut self,
        destination: &str,
        now: Timestamp,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<outbox::OutboxRow>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rows = outbox::claim(&tx, destination, now, limit, lease_ms)?;
        tx.commit()?;
        Ok(rows)
    }

    /// Extends the claim on deliveries still being worked on.
    pub fn extend_outbox(&mut self, ids: &[i64], until: Timestamp) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.prepare_cached(
                "UPDATE outbox SET claimed_until = ?2 WHERE id = ?1 AND state = 'pending' AND claimed_until > 0",
            )?
            .execute(params![id, until.as_millis()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records what became of claimed deliveries, together.
    pub fn settle_outbox(
        &mut self,
        outcomes: &[(i64, outbox::Outcome)],
        now: Timestamp,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (id, o) in outcomes {
            outbox::settle(&tx, *id, o, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets deliveries done or folded before `before`, and the changes no
    /// delivery refers to any more; dead and pending ones stay. How many
    /// deliveries were forgotten.
    pub fn prune_outbox(&mut self, before: Timestamp) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM outbox WHERE state IN ('done', 'folded') AND done_at < ?1",
            [before.as_millis()],
        )?;
        tx.execute(
            "DELETE FROM outbox_events WHERE at < ?1
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_seq = outbox_events.seq)",
            [before.as_millis()],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Deliveries, newest first (see [`outbox::State`]).
    pub fn outbox(
        &self,
        state: Option<outbox::State>,
        destination: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<outbox::OutboxRow>> {
        outbox::list(&self.conn, state, destination, page_limit(limit), cursor)
    }

    /// One delivery.
    pub fn outbox_delivery(&self, id: i64) -> Result<Option<outbox::OutboxRow>> {
        outbox::get(&self.conn, id)
    }

    /// Puts a dead delivery back in line (tries reset), as `actor`, audited.
    pub fn replay_outbox(
        &mut self,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<outbox::OutboxRow>> {
        let tx = self.conn.transaction()?;
        let row = outbox::replay(&tx, id, now)?;
        if let Some(r) = &row {
            audit::append(
                &tx,
                now,
                actor,
                "outbox replay",
                &id.to_string(),
                &r.destination,
            )?;
        }
        tx.commit()?;
        self.woke(row.is_some());
        Ok(row)
    }

    /// How many deliveries each destination has in each state.
    pub fn outbox_counts(&self) -> Result<Vec<outbox::OutboxCounts>> {
        outbox::counts(&self.conn)
    }

    /// What `destination` made of `subject` (a message id, an issue key).
    pub fn outbox_ref(&self, destination: &str, subject: &str) -> Result<Option<String>> {
        outbox::reference(&self.conn, destination, subject)
    }

    pub fn set_outbox_ref(
        &mut self,
        destination: &str,
        subject: &str,
        reference: &str,
        now: Timestamp,
    ) -> Result<()> {
        outbox::set_reference(&self.conn, destination, subject, reference, now)
    }

    /// Records `principal`'s approval of step `step_seq` of run `run_id` (once
    /// per person), audited and announced; every distinct approver so far.
    pub fn record_approval(
        &mut self,
        run_id: &str,
        step_seq: i64,
        principal: &str,
        via: &str,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let router = self.router.clone();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO approvals (run_id, step_seq, principal, via, at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            params![run_id, step_seq, principal, via, now.as_millis()],
        )?;
        let who: Vec<String> = tx
            .prepare("SELECT principal FROM approvals WHERE run_id = ?1 AND step_seq = ?2 ORDER BY at, principal")?
            .query_map(params![run_id, step_seq], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let note = format!("approved by {} of 2 ({})", who.len(), who.join(", "));
        let line = AuditLine {
            at: now,
            principal,
            action: "approve step",
            target: run_id,
            outcome: &note,
        };
        audit::append(&tx, now, principal, line.action, run_id, &note)?;
        let queued = match router.as_deref() {
            Some(router) => runs::announce_as(
                &tx,
                router,
                run_id,
                outbox::EventKind::RunApproval,
                &line,
                now,
            )?,
            None => false,
        };
        tx.commit()?;
        self.woke(queued);
        Ok(who)
    }

    /// Whether `key` (a chat action's identity) is seen for the first time; it
    /// is remembered either way.
    pub fn first_interaction(&mut self, key: &str, now: Timestamp) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO interactions (key, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![key, now.as_millis()],
        )?;
        Ok(n == 1)
    }

    /// The record identities taken after row `after` (see
    /// [`Delivery::records_after`]) but for the rows `skip` (the reader's
    /// own), and the last row there is.
    pub fn seen_records_after(&self, after: i64, skip: &[i64]) -> Result<(Vec<SeenRecord>, i64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, seen_at, ids FROM seen_records WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([after])?;
        let (mut out, mut last) = (Vec::new(), after);
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            last = last.max(seq);
            // The reader's own rows: not even copied out.
            if skip.contains(&seq) {
                continue;
            }
            let at: i64 = r.get(1)?;
            let ids = r.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            for id in whole_ids(ids)? {
                out.push((id, at));
            }
        }
        Ok((out, last))
    }

    /// The last record-identity row (0 when there is none).
    pub fn last_records_seq(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM seen_records", [], |r| {
                r.get(0)
            })?)
    }

    /// The record identities taken since `since` (wall clock, ms), oldest first.
    pub fn seen_records(&self, since: i64) -> Result<Vec<SeenRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seen_at, ids FROM seen_records WHERE seen_at >= ?1 ORDER BY seq")?;
        let rows = stmt.query_map([since], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at, ids) = row?;
            for id in whole_ids(&ids)? {
                out.push((id, at));
            }
        }
        Ok(out)
    }

    /// Runs `f` for at most about `steps` SQLite virtual-machine steps: `Ok(None)`
    /// when it was cut short (its work undone, nothing partial returned). A server
    /// runs short reads this way on its async threads and hands the rest to threads
    /// that may block.
    pub fn bounded<R>(&self, steps: u32, f: impl FnOnce(&Store) -> Result<R>) -> Result<Option<R>> {
        const EVERY: i32 = 1000;
        let mut left = steps / EVERY as u32;
        self.conn.progress_handler(
            EVERY,
            Some(move || match left.checked_sub(1) {
                Some(l) => {
                    left = l;
                    false
                }
                None => true,
            }),
        );
        let result = f(self);
        self.conn.progress_handler(0, None::<fn() -> bool>);
        match result {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The headline KPIs, overall or for one account, as of `now`.
    pub fn metrics(&self, account: Option<&str>, now: Timestamp) -> Result<Metrics> {
        metrics::headline(&self.conn, account, now)
    }

    /// Stores one run of the compliance checks: each framework's verdict, per
    /// scope, in one transaction.
    pub fn record_assessments(&mut self, all: &[compliance::Assessment]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for a in all {
            compliance::record(&tx, a)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest assessment of `framework` (any case) in `scope` (an account,
    /// or [`compliance::ALL_SCOPE`]).
    pub fn assessment(
        &self,
        framework: &str,
        scope: &str,
    ) -> Result<Option<compliance::Assessment>> {
        compliance::latest(&self.conn, framework, scope)
    }

    /// The newest assessment of each framework in `scope`.
    pub fn current_assessments(&self, scope: &str) -> Result<Vec<compliance::Assessment>> {
        compliance::current(&self.conn, scope)
    }

    /// The last `limit` scores of `framework` in `scope`, newest first.
    pub fn score_history(
        &self,
        framework: &str,
        scope: &str,
        limit: usize,
    ) -> Result<Vec<compliance::ScorePoint>> {
        compliance::history(&self.conn, framework, scope, limit)
    }

    /// The 30-day threat table, a row per category.
    pub fn threat_table(&self, account: Option<&str>, now: Timestamp) -> Result<Vec<ThreatRow>> {
        metrics::threats(&self.conn, account, now)
    }

    /// The KPIs day by day over the 30 days up to `now`, oldest first.
    pub fn kpi_trend(&self, account: Option<&str>, now: Timestamp) -> Result<Vec<DayPoint>> {
        metrics::trend(&self.conn, account, now)
    }

    /// Marks that move whenever something the dashboard shows changes: the
    /// newest finding, the newest timeline entry (notes, moves), the count of
    /// updates to findings and incidents (repeats, escalations), the newest
    /// playbook-run change. Four indexed lookups.
    pub fn change_marks(&self) -> Result<ChangeMarks> {
        let mut st = self.conn.prepare_cached(
            "SELECT (SELECT coalesce(max(seq), 0) FROM findings),
                    (SELECT coalesce(max(seq), 0) FROM timeline),
                    (SELECT coalesce(max(updated_at), 0) FROM runs),
                    (SELECT coalesce(max(n), 0) FROM changes)",
        )?;
        Ok(st.query_row([], |r| {
            Ok(ChangeMarks {
                findings: r.get(0)?,
                timeline: r.get(1)?,
                runs: r.get(2)?,
                updates: r.get(3)?,
            })
        })?)
    }
}

fn raw(body: String) -> Result<Box<RawValue>> {
    RawValue::from_string(body).map_err(|e| StoreError::Damaged(format!("finding body: {e}")))
}

/// A listing's SQL, built filter by filter with every value a parameter, then
/// fetched a page at a time, newest (highest `seq`) first.
pub(crate) struct Listing {
    sql: String,
    args: Vec<rusqlite::types::Value>,
}

impl Listing {
    pub(crate) fn new(select: &str) -> Listing {
        Listing {
            sql: select.to_owned(),
            args: Vec::new(),
        }
    }

    fn param(&mut self, v: rusqlite::types::Value) -> String {
        self.args.push(v);
        format!("?{}", self.args.len())
    }

    /// `column` is one of `values`; no filter when there are none.
    pub(crate) fn any_of(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = rusqlite::types::Value>,
    ) {
        let marks: Vec<String> = values.into_iter().map(|v| self.param(v)).collect();
        if !marks.is_empty() {
            self.sql
                .push_str(&format!(" AND {column} IN ({})", marks.join(",")));
        }
    }

    /// `column_op` (`"account ="`, `"last_seen >="`) holds for `v`, if given.
    pub(crate) fn compare<V: Into<rusqlite::types::Value>>(
        &mut self,
        column_op: &str,
        v: Option<V>,
    ) {
        if let Some(v) = v {
            let mark = self.param(v.into());
            self.sql.push_str(&format!(" AND {column_op} {mark}"));
        }
    }

    /// A page of up to `limit` rows after `cursor`. `row` reads a row's `seq` and
    /// its raw value, `cook` checks the value.
    pub(crate) fn fetch<R, T>(
        mut self,
        conn: &Connection,
        cursor: Option<&str>,
        limit: usize,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<(i64, R)>,
        cook: impl Fn(R) -> Result<T>,
    ) -> Result<Page<T>> {
        let cursor = cursor.map(parse_cursor).transpose()?;
        self.compare("seq <", cursor);
        let limit = page_limit(limit);
        self.sql
            .push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
        let mut stmt = conn.prepare_cached(&self.sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(self.args), row)?;
        let mut items = Vec::new();
        let mut next_cursor = None;
        for r in rows {
            let (seq, value) = r?;
            if items.len() == limit {
                // The first row not shown: the next page starts with it.
                next_cursor = Some(format!("c{}", seq + 1));
                break;
            }
            items.push(cook(value)?);
        }
        Ok(Page { items, next_cursor })
    }
}

pub(crate) fn page_limit(asked: usize) -> usize {
    match asked {
        0 => 100,
        n => n.min(MAX_PAGE),
    }
}

/// Cursors are opaque to callers: `c` and a row sequence number.
pub(crate) fn parse_cursor(c: &str) -> Result<i64> {
    c.strip_prefix('c')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| StoreError::Cursor(c.to_owned()))
}

/// Severities are stored as their rank so that SQL can take the worst.
pub(crate) fn severity_rank(s: Severity) -> i64 {
    Severity::ALL.iter().position(|&x| x == s).unwrap_or(0) as i64
}

pub(crate) fn severity_from_rank(r: i64) -> Result<Severity> {
    usize::try_from(r)
        .ok()
        .and_then(|i| Severity::ALL.get(i).copied())
        .ok_or_else(|| StoreError::Damaged(format!("severity rank {r}")))
}
