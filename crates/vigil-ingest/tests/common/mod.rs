//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vigil_ingest::{DecodeOptions, FileReport, Item, RecordError};
use vigil_model::Event;

/// The conformance suite's third-party data (see the `vigil-testkit` crate).
pub fn conformance_data() -> PathBuf {
    vigil_testkit::conformance_data()
}

/// The samples the project wrote for its own tests (`tests/samples/README.md`).
pub fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples")
        .join(rel)
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub struct Decoded {
    pub events: Vec<Event>,
    pub errors: Vec<RecordError>,
    pub report: FileReport,
}

pub fn decode(path: &Path, opts: &DecodeOptions) -> Decoded {
    let mut d =
        vigil_ingest::open(path, opts).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    for item in d.by_ref() {
        match item {
            Item::Event(e) => events.push(e),
            Item::Error(e) => errors.push(e),
        }
    }
    Decoded {
        events,
        errors,
        report: d.report(),
    }
}
