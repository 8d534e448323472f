//! Arbitrary bytes with format sniffing, record classification, EventBridge envelopes
//! and damage recovery all in play.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::DecodeOptions;

fuzz_target!(|data: &[u8]| {
    vigil_fuzz::drive(
        data,
        &DecodeOptions {
            max_record_bytes: 1 << 16,
            ..DecodeOptions::default()
        },
    );
});
