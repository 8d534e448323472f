//! Several writers on one store (`vigil serve` processes sharing a queue and a
//! data directory): a record either of them took counts once, and the same
//! detection made by both is one finding, numbered once, with every event
//! counted once.

use std::sync::Arc;

mod common;
use common::root_login;

use vigil_pipeline::outputs::store::StoreOutput;
use vigil_pipeline::{Delivery, Pipeline, Receipt, Running, Telemetry};
use vigil_store::{Grouping, SharedStore, Store};

/// A writer: its own connection to the store in `dir` and its own pipeline,
/// started as `vigil serve` starts one.
fn writer(dir: &std::path::Path) -> (SharedStore, Running) {
    let store = SharedStore::new(Store::open(dir, Grouping::default()).unwrap());
    let detect = common::detect_over(&store);
    let p = Pipeline::new(detect, vec![Box::new(StoreOutput::new(store.clone()))])
        .start(Vec::new(), store.clone())
        .unwrap();
    (store, p)
}

fn deliver(p: &Running, lines: &[String]) -> Receipt {
    let (tx, rx) = std::sync::mpsc::channel();
    p.inlet()
        .deliver(Delivery {
            source: Arc::from("test"),
            items: vec![Telemetry::Bytes {
                name: "AWSLogs/111122223333/CloudTrail/us-east-1/t.json".into(),
                body: lines.join("\n").into_bytes(),
            }],
            checkpoint: None,
            complete: None,
            ack: Some(Box::new(move |r| {
                tx.send(r.map_err(|e| e.to_string())).ok();
            })),
        })
        .unwrap();
    rx.recv().unwrap().unwrap()
}

/// (rule, finding_id, count) of every stored finding, by rule.
fn stored(store: &SharedStore) -> Vec<(String, String, String, u64)> {
    let mut all: Vec<_> = store
        .lock()
        .recent_findings(i64::MAX / 2)
        .unwrap()
        .into_iter()
        .map(|f| (f.detail.rule.id, f.id, f.detail.finding_id, f.detail.count))
        .collect();
    all.sort();
    all
}

#[test]
fn two_writers_fold_one_detection_and_count_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a_store, a) = writer(dir.path());
    let (_b_store, b) = writer(dir.path());

    let r = deliver(&a, &[root_login("e1", 0), root_login("e2", 1)]);
    let rules = r.new_findings;
    assert!(rules >= 1, "{r:?}");
    let first = stored(&a_store);

    // B detects the same thing on a later record: it folds into A's finding
    // (same id, same number), counted once more.
    let r = deliver(&b, &[root_login("e3", 2)]);
    assert_eq!((r.events, r.new_findings), (1, 0), "{r:?}");
    // A record A took, delivered again to B (a queue's redelivery): skipped.
    let r = deliver(&b, &[root_login("e1", 0), root_login("e4", 3)]);
    assert_eq!((r.events, r.duplicates), (1, 1), "{r:?}");
    // And A goes on updating the same finding, counting only its own.
    let r = deliver(&a, &[root_login("e5", 4), root_login("e3", 2)]);
    assert_eq!((r.events, r.duplicates), (1, 1), "{r:?}");

    let now = stored(&a_store);
    assert_eq!(now.len() as u64, rules, "one finding per rule: {now:?}");
    for (was, is) in first.iter().zip(&now) {
        assert_eq!((&was.0, &was.1, &was.2), (&is.0, &is.1, &is.2));
        assert_eq!(is.3, 5, "every record once: {now:?}");
    }
    let mut numbers: Vec<_> = now.iter().map(|f| f.2.clone()).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), now.len(), "numbers are unique: {now:?}");
    a.stop();
    b.stop();
}

#[test]
fn findings_new_to_the_store_are_numbered_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a_store, a) = writer(dir.path());
    let (_b_store, b) = writer(dir.path());
    // Different principals: different findings, from each writer's own
    // numbering, which would both start at 001.
    let other = root_login("x1", 0).replace("111122223333", "444455556666");
    deliver(&a, &[root_login("e1", 0)]);
    deliver(&b, &[other]);
    let all = stored(&a_store);
    let mut numbers: Vec<_> = all.iter().map(|f| f.2.clone()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), all.len(), "{all:?}");
    a.stop();
    b.stop();
}
