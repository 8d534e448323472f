//! Record identity: every at-least-once path (a Firehose or EventBridge retry, an
//! SQS message delivered again, a file read again after it grew) hands the
//! pipeline records it has taken before. Counting them again would inflate
//! finding counts and the KPIs built on them, so the pipeline remembers what it
//! took, by the record's own identity, and skips repeats:
//!
//! - CloudTrail: the `eventID`;
//! - GuardDuty and Security Hub findings: the finding id and its update time
//!   (a finding updated later is news; the same update again is not);
//! - flow records: the decoder's digest of the record (interface, times, tuple…).
//!
//! Identities are 16-byte digests, remembered for a window of wall-clock time
//! (redeliveries come within minutes or hours) and at most `max` of them, oldest
//! forgotten first. The store keeps them in the same transaction as the
//! findings and checkpoint of the delivery that took them, so a restart knows
//! exactly what was committed.

use std::collections::{HashSet, VecDeque};

use sha2::{Digest, Sha256};
use vigil_model::{Event, SourceKind};
use vigil_store::SeenRecord;

/// A record's identity.
pub type RecordId = [u8; 16];

/// The identity of `e` (see the module's documentation).
pub fn record_id(e: &Event) -> RecordId {
    let mut h = Sha256::new();
    h.update(e.source.as_str().as_bytes());
    h.update([0]);
    h.update(e.id.as_bytes());
    if matches!(e.source, SourceKind::GuardDuty | SourceKind::SecurityHub) {
        h.update([0]);
        h.update(e.time.as_millis().to_be_bytes());
    }
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    id
}

/// The identities taken within the window, and those of the delivery in hand
/// (not yet committed).
pub struct Seen {
    window_ms: i64,
    max: usize,
    ids: HashSet<RecordId>,
    /// In the order taken, with when, for forgetting the oldest.
    order: VecDeque<(RecordId, i64)>,
    pending: Vec<SeenRecord>,
}

impl Seen {
    pub fn new(window_ms: i64, max: usize) -> Seen {
        Seen {
            window_ms,
            max: max.max(1),
            ids: HashSet::new(),
            order: VecDeque::new(),
            pending: Vec::new(),
        }
    }

    /// Takes back what the store remembers (oldest first).
    pub fn restore(&mut self, records: Vec<SeenRecord>) {
        for (id, at) in records {
            self.remember(id, at);
        }
    }

    fn remember(&mut self, id: RecordId, at: i64) {
        if self.ids.insert(id) {
            self.order.push_back((id, at));
            while self.order.len() > self.max {
                if let Some((old, _)) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }

    /// Whether the record is new (and now taken, pending the delivery's commit).
    pub fn take(&mut self, id: RecordId, now_ms: i64) -> bool {
        if self.ids.contains(&id) {
            return false;
        }
        self.remember(id, now_ms);
        self.pending.push((id, now_ms));
        true
    }

    /// The identities the delivery in hand took, for its commit.
    pub fn pending(&self) -> &[SeenRecord] {
        &self.pending
    }

    /// The delivery was committed: its identities are kept.
    pub fn committed(&mut self) {
        self.pending.clear();
    }

    /// The delivery was not committed: its records may come again and must be
    /// taken then.
    pub fn rolled_back(&mut self) {
        for (id, _) in self.pending.drain(..) {
            self.ids.remove(&id);
        }
        let ids = &self.ids;
        self.order.retain(|(id, _)| ids.contains(id));
    }

    /// Forgets identities older than the window; the time before which the store
    /// may forget them too.
    pub fn expire(&mut self, now_ms: i64) -> i64 {
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some(&(id, at)) = self.order.front() {
            if at >= horizon {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
        horizon
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> RecordId {
        [n; 16]
    }

    #[test]
    fn a_record_is_taken_once_within_the_window() {
        let mut s = Seen::new(1000, 10);
        assert!(s.take(id(1), 0));
        assert!(!s.take(id(1), 10));
        s.committed();
        assert!(!s.take(id(1), 999));
        s.expire(1500);
        assert!(s.take(id(1), 1500), "forgotten after the window");
    }

    #[test]
    fn a_delivery_rolled_back_is_taken_again() {
        let mut s = Seen::new(1000, 10);
        assert!(s.take(id(1), 0));
        s.committed();
        assert!(s.take(id(2), 1));
        assert_eq!(s.pending().len(), 1);
        s.rolled_back();
        assert!(s.take(id(2), 2));
        assert!(!s.take(id(1), 2));
    }

    #[test]
    fn at_most_max_are_kept_oldest_forgotten_first() {
        let mut s = Seen::new(i64::MAX, 2);
        for n in 0..3 {
            assert!(s.take(id(n), i64::from(n)));
        }
        assert_eq!(s.len(), 2);
        assert!(s.take(id(0), 5), "the oldest was forgotten");
    }

    #[test]
    fn identity_is_the_records_own() {
        let line = r#"{"eventVersion":"1.08","eventID":"ev-1","eventTime":"2024-03-15T10:30:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","awsRegion":"us-east-1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","userName":"alice"}}"#;
        let mut d = vigil_ingest::open_reader(
            std::path::Path::new("t.json"),
            Box::new(std::io::Cursor::new(line.as_bytes().to_vec())),
            &vigil_ingest::DecodeOptions::default(),
        )
        .unwrap();
        let Some(vigil_ingest::Item::Event(mut e)) = d.next() else {
            panic!("the record decodes")
        };
        let a = record_id(&e);
        e.time = vigil_model::Timestamp::from_millis(0);
        assert_eq!(record_id(&e), a, "a CloudTrail event is its eventID");
        e.source = SourceKind::GuardDuty;
        let g = record_id(&e);
        e.time = vigil_model::Timestamp::from_millis(1);
        assert_ne!(record_id(&e), g, "a finding updated later is new");
    }
}
