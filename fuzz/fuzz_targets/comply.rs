//! Any text as an inventory snapshot, a framework catalogue and an IAM credential
//! report: no parser panics, every check runs over any snapshot that parses, and every framework
//! judges the results without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = vigil_comply::framework::parse("fuzz.yaml", text);
    if let Ok(rows) = vigil_comply::snapshot::parse_credential_report(text) {
        assert!(rows.len() <= text.lines().count());
    }
    if let Ok(s) = vigil_comply::Snapshot::parse(text, "fuzz.json") {
        let results = vigil_comply::run_checks(&s);
        for f in vigil_comply::framework::builtin().expect("the built-in catalogues load") {
            let v = vigil_comply::assess(&f, &results);
            assert_eq!(v.controls.len(), f.controls.len());
        }
    }
});
