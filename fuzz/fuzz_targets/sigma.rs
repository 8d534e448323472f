//! Arbitrary text as a Sigma rule file and as a rule test-case file: loading,
//! compiling and evaluating never panic or hang, whatever the YAML says.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_fuzz::drive_rules(&String::from_utf8_lossy(data));
});
