//! The engine's concurrency limit: however many runs are driven at once, no more
//! than `max_concurrent` of them are inside AWS calls at any moment, and the
//! others wait their turn rather than fail.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vigil_respond::exec::{ActionFuture, Executor, Outcome};
use vigil_respond::{Engine, EngineConfig, Library, RunStatus, Start};
use vigil_store::{Grouping, SharedStore, Store};

/// An executor whose every call takes a while, counting the calls in flight.
#[derive(Default)]
struct Gauge {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
}

impl Executor for Gauge {
    fn execute<'a>(
        &'a self,
        name: &'a str,
        _params: &'a Value,
        _account: Option<&'a str>,
        _region: Option<&'a str>,
    ) -> ActionFuture<'a> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(60)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(Outcome {
                changed: true,
                calls: vec![format!("fake:{name}")],
                detail: json!({}),
            })
        })
    }
}

/// Drives `runs` PB-013 runs (two steps each) at once under `limit`: the peak
/// number of calls in flight.
async fn peak_with(limit: usize, runs: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let gauge = Arc::new(Gauge::default());
    let engine = Engine::new(
        store,
        gauge.clone(),
        Arc::new(Library::load(None).unwrap()),
        EngineConfig {
            max_concurrent: limit,
            ..Default::default()
        },
    );
    let mut ids = Vec::new();
    for _ in 0..runs {
        let finding = support::finding("111122223333", "eu-west-1", "PB-013", json!({}));
        let run = engine
            .create(Start {
                playbook: "PB-013".into(),
                finding,
                incident: None,
                incident_id: None,
                requested_by: "vigil:auto".into(),
            })
            .await
            .unwrap();
        ids.push(run.id);
    }
    let mut tasks = Vec::new();
    for id in ids {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move { engine.drive(&id).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), RunStatus::Succeeded);
    }
    assert_eq!(gauge.calls.load(Ordering::SeqCst), runs * 2);
    gauge.peak.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_more_runs_than_the_limit_call_aws_at_once() {
    // Eight runs under a limit of two: two at a time, never three, all done.
    assert_eq!(peak_with(2, 8).await, 2);
    // The same eight under a limit above their number all go at once: the gauge
    // sees concurrency when there is some.
    assert!(peak_with(16, 8).await > 2);
}
