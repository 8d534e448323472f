//! Any text as the service's configuration and as a span of time: no parser
//! panics, and a span that reads writes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(span) = vigil_model::Span::parse(text) {
        assert_eq!(vigil_model::Span::parse(&span.to_string()), Ok(span));
    }
    if let Ok(config) = toml::from_str::<vigil_pipeline::service::ServeConfig>(text) {
        // With no sources configured, the defaults (each naming its type).
        if config.sources.is_empty() {
            assert!(config.sources().iter().all(|t| t.contains_key("type")));
        }
    }
});
