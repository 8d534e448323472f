//! The audit log as a hash chain: each entry carries the SHA-256 of the entry
//! before it together with its own fields, so that editing or removing an entry —
//! even by someone who can write the database file and drop its append-only
//! triggers — breaks the chain at that entry, which [`verify`] finds. What a chain
//! alone cannot show is the newest entries cut off the end: for that, compare the
//! head hash [`verify`] reports with one recorded elsewhere.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use vigil_model::Timestamp;

use crate::Result;

/// The hash of an entry: SHA-256 over the previous entry's hash (empty for the
/// first) and the entry's fields as a JSON array, so no two field lists encode
/// alike.
pub(crate) fn entry_hash(
    prev: &str,
    seq: i64,
    at: i64,
    principal: &str,
    action: &str,
    target: &str,
    outcome: &str,
) -> String {
    let fields = serde_json::json!([seq, at, principal, action, target, outcome]).to_string();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(fields.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry's fields.
struct Entry<'a> {
    at: i64,
    principal: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
}

/// Writes entry `seq` chained to `prev`; its hash.
fn insert(conn: &Connection, prev: &str, seq: i64, e: &Entry<'_>) -> Result<String> {
    let hash = entry_hash(prev, seq, e.at, e.principal, e.action, e.target, e.outcome);
    conn.prepare_cached(
        "INSERT INTO audit (seq, at, principal, action, target, outcome, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        seq,
        e.at,
        e.principal,
        e.action,
        e.target,
        e.outcome,
        hash
    ])?;
    Ok(hash)
}

/// Appends an entry, chained to the last one; its sequence number. Inside a
/// transaction already open on `conn`, it is part of that transaction.
pub(crate) fn append(
    conn: &Connection,
    at: Timestamp,
    principal: &str,
    action: &str,
    target: &str,
    outcome: &str,
) -> Result<i64> {
    let entry = Entry {
        at: at.as_millis(),
        principal,
        action,
        target,
        outcome,
    };
    if !conn.is_autocommit() {
        return append_in(conn, &entry);
    }
    let tx = conn.unchecked_transaction()?;
    let seq = append_in(&tx, &entry)?;
    tx.commit()?;
    Ok(seq)
}

fn append_in(conn: &Connection, entry: &Entry<'_>) -> Result<i64> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, String::new()));
    let seq = prev_seq + 1;
    insert(conn, &prev_hash, seq, entry)?;
    Ok(seq)
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheck {
    /// Entries read.
    pub entries: u64,
    /// The newest entry's sequence number and hash: record it elsewhere to detect
    /// the newest entries being cut off later.
    pub head: Option<(i64, String)>,
    /// The first entry that does not follow from the one before, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks the whole chain, oldest first.
pub(crate) fn verify(conn: &Connection) -> Result<AuditCheck> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, principal, action, target, outcome, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut check = AuditCheck {
        entries: 0,
        head: None,
        broken: None,
    };
    let (mut prev_seq, mut prev_hash) = (0i64, String::new());
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let stored: Option<String> = r.get(6)?;
        check.entries += 1;
        let expect = entry_hash(
            &prev_hash,
            seq,
            r.get(1)?,
            &r.get::<_, String>(2)?,
            &r.get::<_, String>(3)?,
            &r.get::<_, String>(4)?,
            &r.get::<_, String>(5)?,
        );
        let why = if seq != prev_seq + 1 {
            Some(format!(
                "entry {} is missing (the entry before this is {prev_seq})",
                prev_seq + 1
            ))
        } else if stored.as_deref() != Some(expect.as_str()) {
            Some(
                "its fields or the entry before it were changed (the hash does not match)"
                    .to_owned(),
            )
        } else {
            None
        };
        if let (Some(why), None) = (why, &check.broken) {
            check.broken = Some((seq, why));
        }
        prev_seq = seq;
        prev_hash = stored.unwrap_or_default();
        check.head = Some((seq, prev_hash.clone()));
    }
    Ok(check)
}

/// Migration 4: chains the entries written before there was a chain, oldest
/// first, with the append-only trigger lifted for the purpose and put back.
pub(crate) fn seal_existing(tx: &Transaction<'_>) -> Result<()> {
    let rows: Vec<(i64, i64, String, String, String, String)> = tx
        .prepare("SELECT seq, at, principal, action, target, outcome FROM audit ORDER BY seq")?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Renumbered 1, 2, 3… so that a gap later means a removal.
    tx.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")?;
    tx.execute("DELETE FROM audit", [])?;
    let mut prev = String::new();
    for (n, (_, at, principal, action, target, outcome)) in rows.iter().enumerate() {
        let entry = Entry {
            at: *at,
            principal,
            action,
            target,
            outcome,
        };
        prev = insert(tx, &prev, n as i64 + 1, &entry)?;
    }
    tx.execute_batch(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
         CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    )?;
    Ok(())
}
