//! Components found by their `type` in the configuration: the JSON-lines output
//! end to end, and the errors a wrong table gets.

use std::sync::Arc;

use vigil_detect::testcases::RuleTexts;
use vigil_detect::{DetectorConfig, Findings};
use vigil_pipeline::outputs::store::StoreOutput;
use vigil_pipeline::{
    build_outputs, build_sources, Commit, Delivery, Detect, IncidentChange, Output, Pipeline,
    PipelineError, Telemetry,
};

/// An output that keeps the incident changes it is handed.
struct Incidents(Arc<std::sync::Mutex<Vec<IncidentChange>>>);

impl Output for Incidents {
    fn name(&self) -> &str {
        "incidents"
    }
    fn commit(&mut self, c: &mut Commit<'_>) -> Result<(), PipelineError> {
        self.0.lock().unwrap().extend(c.incidents.iter().cloned());
        Ok(())
    }
}
use vigil_store::{Grouping, SharedStore, Store};

static AWS: std::sync::LazyLock<vigil_pipeline::service::AwsConfig> =
    std::sync::LazyLock::new(Default::default);

fn env<'a>(dir: &'a std::path::Path, store: &'a SharedStore) -> vigil_pipeline::Env<'a> {
    vigil_pipeline::Env {
        data_dir: dir,
        store,
        aws: &AWS,
    }
}

fn tables(text: &str, key: &str) -> Vec<toml::Table> {
    let doc: toml::Table = toml::from_str(text).unwrap();
    doc[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_table().unwrap().clone())
        .collect()
}

const ROOT_LOGIN: &str = r#"{"eventVersion":"1.08","eventTime":"2026-12-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333","eventID":"jsonl-1","responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"No"},"userIdentity":{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}}"#;

#[test]
fn the_jsonl_output_writes_every_finding_as_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(Store::open(dir.path(), Grouping::default()).unwrap());
    let configured = build_outputs(
        &tables(
            "[[outputs]]\ntype = \"jsonl\"\nname = \"siem\"\npath = \"findings.jsonl\"\n",
            "outputs",
        ),
        &env(dir.path(), &store),
    )
    .unwrap();
    assert_eq!(configured[0].name(), "siem");
    let mut outputs: Vec<Box<dyn Output>> = configured;
    let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
    outputs.push(Box::new(Incidents(Arc::clone(&opened))));
    // Listed last, run first: the store is the commit point.
    outputs.push(Box::new(StoreOutput::new(store.clone())));
    let (detector, _) = RuleTexts {
        files: Vec::new(),
        builtin: true,
    }
    .detector(&DetectorConfig::default());
    let detect = Detect::new(detector, Findings::new(3_600_000).tracking_changes());
    let p = Pipeline::new(detect, outputs)
        .start(Vec::new(), store.clone())
        .unwrap();
    for body in [
        ROOT_LOGIN.to_owned(),
        ROOT_LOGIN.replace("jsonl-1", "jsonl-2"),
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        p.inlet()
            .deliver(Delivery {
                source: Arc::from("test"),
                items: vec![Telemetry::Bytes {
                    name: "posted".into(),
                    body: body.into_bytes(),
                }],
                checkpoint: None,
                complete: None,
                ack: Some(Box::new(move |r| {
                    tx.send(r.is_ok()).ok();
                })),
            })
            .unwrap();
        assert!(rx.recv().unwrap());
    }
    p.stop();
    let text = std::fs::read_to_string(dir.path().join("findings.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stored = store.lock().finding_count().unwrap() as usize;
    assert!(stored >= 1);
    // Each finding opened, then updated by the second sign-in: two lines each,
    // the last with the count of both.
    assert_eq!(lines.len(), 2 * stored, "{text}");
    for l in &lines[stored..] {
        assert_eq!(l["detail-type"], "Security Finding");
        assert_eq!(l["detail"]["count"], 2, "{l}");
    }
    // The outputs after the store were told of each incident opened, once.
    let opened = opened.lock().unwrap().clone();
    let listed = store
        .lock()
        .incidents(&Default::default())
        .unwrap()
        .items
        .len();
    assert!(listed >= 1);
    assert_eq!(opened.len(), listed, "{opened:?}");
}

#[test]
fn a_wrong_component_table_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = SharedStore::new(Store::in_memory(Grouping::default()).unwrap());
    let err = |kind: &str, text: &str| -> String {
        let t = tables(text, kind);
        let e = if kind == "sources" {
            build_sources(&t, &env(dir.path(), &store))
                .err()
                .map(|e| e.to_string())
        } else {
            build_outputs(&t, &env(dir.path(), &store))
                .err()
                .map(|e| e.to_string())
        };
        e.expect("refused")
    };
    let e = err("outputs", "[[outputs]]\ntype = \"carrier-pigeon\"\n");
    assert!(
        e.contains("no output type `carrier-pigeon`") && e.contains("jsonl"),
        "{e}"
    );
    let e = err(
        "outputs",
        "[[outputs]]\ntype = \"jsonl\"\npath = \"f\"\ncolour = 1\n",
    );
    assert!(e.contains("output `jsonl`") && e.contains("colour"), "{e}");
    let e = err(
        "sources",
        "[[sources]]\ntype = \"inbox\"\npoll = \"soon\"\n",
    );
    assert!(e.contains("source `inbox`") && e.contains("soon"), "{e}");
    let e = err(
        "sources",
        "[[sources]]\ntype = \"http\"\n[[sources]]\ntype = \"http\"\n",
    );
    assert!(e.contains("two sources are named `http`"), "{e}");
    let e = err("sources", "[[sources]]\npath = \"x\"\n");
    assert!(e.contains("`type` is missing"), "{e}");
}
