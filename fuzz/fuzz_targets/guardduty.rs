//! Arbitrary bytes through the guardduty decoder (forced format): never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    vigil_fuzz::drive(
        data,
        &DecodeOptions {
            format: Some(Format::GuardDuty),
            max_record_bytes: 1 << 16,
            ..DecodeOptions::default()
        },
    );
});
