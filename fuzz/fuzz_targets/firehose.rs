//! Arbitrary Firehose bodies, plain or gzip (the first byte decides): the parser
//! never panics, and what it accepts becomes batches that hold the records' bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, body)) = data.split_first() else { return };
    if let Ok((_, batches)) = vigil_server::firehose_batches(body, flag & 1 == 1, 1 << 20) {
        for b in batches {
            assert!(!b.name.is_empty());
        }
    }
});
