//! Arbitrary bytes: the 64-byte-block bracket scan finds the same end (or the same
//! damage) as the byte-at-a-time walk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vigil_model::brackets::scans_agree(data));
});
