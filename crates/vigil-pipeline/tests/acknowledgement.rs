//! The acknowledgement contract: a delivery is acknowledged only after the
//! store has committed it; one that was not committed (a failed commit, or a
//! process that died between delivery and commit) is delivered again, and
//! record identity absorbs what was committed before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;
use common::root_login;

use vigil_pipeline::outputs::store::StoreOutput;
use vigil_pipeline::{
    Checkpoint, Commit, Delivery, Output, Pipeline, PipelineError, Receipt, Running, Telemetry,
};
use vigil_store::{Grouping, SharedStore, Store};

/// The store, failing its first `fail` commits as a full disk would.
struct Flaky {
    store: StoreOutput,
    fail: Arc<AtomicUsize>,
}

impl Output for Flaky {
    fn name(&self) -> &str {
        "store"
    }
    fn is_store(&self) -> bool {
        true
    }
    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError> {
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Err(PipelineError::Config("the disk is full".into()));
        }
        self.store.commit(c)
    }
}

/// A pipeline over `store` as `vigil serve` makes one after a start: open
/// findings and remembered records taken back.
fn start(store: &SharedStore, fail: &Arc<AtomicUsize>) -> Running {
    let detect = common::detect_over(store);
    let output = Flaky {
        store: StoreOutput::new(store.clone()),
        fail: Arc::clone(fail),
    };
    Pipeline::new(detect, vec![Box::new(output)])
        .start(Vec::new(), store.clone())
        .unwrap()
}

/// Delivers `lines` as one file at `position`, and waits for the ack.
fn deliver(p: &Running, lines: &[String], position: &str) -> Result<Receipt, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    p.inlet()
        .deliver(Delivery {
            source: Arc::from("test"),
            items: vec![Telemetry::Bytes {
                name: "AWSLogs/111122223333/CloudTrail/us-east-1/t.json".into(),
                body: lines.join("\n").into_bytes(),
            }],
            checkpoint: Some(Checkpoint {
                key: "test:file".into(),
                position: position.into(),
            }),
            complete: None,
            ack: Some(Box::new(move |r| {
                tx.send(r.map_err(|e| e.to_string())).ok();
            })),
        })
        .unwrap();
    rx.recv().unwrap()
}

/// Each finding's count (each rule that fires on a root sign-in has one).
fn finding_counts(store: &SharedStore) -> Vec<u64> {
    let s = store.lock();
    let all = s.recent_findings(i64::MAX / 2).unwrap();
    all.iter().map(|f| f.detail.count).collect()
}

#[test]
fn a_delivery_is_acknowledged_only_once_committed_and_is_taken_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let fail = Arc::new(AtomicUsize::new(0));
    let p = start(&store, &fail);

    // The first part of a file: committed, acknowledged, checkpoint moved.
    let part = vec![root_login("e1", 0), root_login("e2", 1)];
    let r = deliver(&p, &part, "size=2").unwrap();
    assert_eq!((r.events, r.duplicates), (2, 0));
    let rules = r.new_findings as usize;
    assert!(rules >= 1, "{r:?}");
    assert_eq!(
        store.lock().checkpoint("test:file").unwrap().as_deref(),
        Some("size=2")
    );

    // The file grew; its delivery fails to commit: not acknowledged, the
    // checkpoint stays where it was.
    let grown = vec![
        root_login("e1", 0),
        root_login("e2", 1),
        root_login("e3", 2),
    ];
    fail.store(1, Ordering::SeqCst);
    let err = deliver(&p, &grown, "size=3").unwrap_err();
    assert!(err.contains("the disk is full"), "{err}");
    assert_eq!(
        store.lock().checkpoint("test:file").unwrap().as_deref(),
        Some("size=2")
    );

    // Delivered again (as the source does after a failure): the records of
    // the first part are absorbed, the new one counts, once.
    let r = deliver(&p, &grown, "size=3").unwrap();
    assert_eq!((r.events, r.duplicates), (1, 2), "{r:?}");
    assert_eq!(finding_counts(&store), vec![3; rules]);
    p.stop();
}

#[test]
fn a_crash_between_delivery_and_commit_redelivers_and_dedup_absorbs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let fail = Arc::new(AtomicUsize::new(0));
    let p = start(&store, &fail);
    let part = vec![root_login("e1", 0), root_login("e2", 1)];
    let rules = deliver(&p, &part, "size=2").unwrap().new_findings as usize;
    // The process takes the grown file, then dies before the commit: here,
    // the commit never happens and everything in memory is dropped.
    let grown = vec![
        root_login("e1", 0),
        root_login("e2", 1),
        root_login("e3", 2),
    ];
    fail.store(1, Ordering::SeqCst);
    assert!(deliver(&p, &grown, "size=3").is_err());
    p.stop();
    drop(store);

    // A new process over the same store. The source's checkpoint says the
    // grown file is not done, so it delivers it again, and an at-least-once
    // sender repeats the first part too.
    let store = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    assert_eq!(
        store.lock().checkpoint("test:file").unwrap().as_deref(),
        Some("size=2")
    );
    let p = start(&store, &fail);
    let r = deliver(&p, &grown, "size=3").unwrap();
    assert_eq!((r.events, r.duplicates), (1, 2), "{r:?}");
    let r = deliver(&p, &part, "size=3").unwrap();
    assert_eq!((r.events, r.duplicates), (0, 2), "{r:?}");
    assert_eq!(
        finding_counts(&store),
        vec![3; rules],
        "each record counted once"
    );
    assert_eq!(
        store.lock().checkpoint("test:file").unwrap().as_deref(),
        Some("size=3")
    );
    p.stop();
}
