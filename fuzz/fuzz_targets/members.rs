//! Arbitrary text as a CloudTrail record read member by member: no panic, and every
//! member as the full parse has it whenever the text is a JSON object, and every
//! string read straight from the text (nested paths too) as a lookup finds it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_fuzz::drive_members(&String::from_utf8_lossy(data));
});
