//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vigil_ingest::{DecodeOptions, FileReport, Item, RecordError};
use vigil_model::Event;

/// `../shared/data` beside the checkout (override with VIGIL_SHARED_DATA).
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("VIGIL_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        p.is_dir(),
        "shared test data not found at {} (set VIGIL_SHARED_DATA)",
        p.display()
    );
    p
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
