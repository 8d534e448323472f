//! A field value and a record's text: the text prefilter never turns away a record
//! the field matches.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_fuzz::drive_prefilter(&String::from_utf8_lossy(data));
});
