//! A change as the outbox stores it, read back and rendered for Slack, Jira and
//! PagerDuty: any text reads or is refused, and whatever reads renders, never a
//! panic (titles and evidence are attacker-influenced: they come from logs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_pipeline::notify::render_stored(text);
    }
});
