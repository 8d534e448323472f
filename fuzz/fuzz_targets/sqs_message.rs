//! What arrives on Vigil's queue: any bytes as an SQS message body (an S3
//! notification, an SNS envelope, an EventBridge event, or anything at all)
//! must be classified or refused with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(vigil_pipeline::sources::sqs::message::Work::Objects(objects)) =
            vigil_pipeline::sources::sqs::message::classify(text)
        {
            for o in objects {
                let _ = o.checkpoint();
                let _ = o.holds_no_telemetry();
            }
        }
    }
});
