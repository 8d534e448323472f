//! Arbitrary bytes through the VPC flow decoder with the default, v8 and Transit
//! Gateway layouts: never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::{DecodeOptions, FlowFormat, Format};

fuzz_target!(|data: &[u8]| {
    for flow_format in [None, FlowFormat::preset("v8"), FlowFormat::preset("tgw")] {
        vigil_fuzz::drive(
            data,
            &DecodeOptions {
                format: Some(Format::VpcFlow),
                flow_format,
                max_record_bytes: 1 << 16,
            },
        );
    }
});
