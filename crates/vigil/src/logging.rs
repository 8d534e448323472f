//! The process's own log: `tracing` events written to standard error, as text for a
//! person or as JSON lines for a log shipper. What a command reports (a scan's
//! table, a rule list) is its output and goes to standard output; this is for what
//! the process has to say while it works.

use std::io::IsTerminal;

use anyhow::{anyhow, Result};
use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Vigil's own crates: `--log-level` sets their level. Dependencies (the AWS SDK,
/// hyper, rustls) stay at `warn` unless `RUST_LOG` asks for more, so `debug`
/// shows what Vigil does rather than every HTTP frame.
const CRATES: [&str; 8] = [
    "vigil",
    "vigil_ingest",
    "vigil_detect",
    "vigil_store",
    "vigil_server",
    "vigil_respond",
    "vigil_comply",
    "vigil_aws",
];

/// Declared from the least to the most said, so that levels compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event: time, level, where, message and fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, fields.
    Json,
}

impl LogLevel {
    fn name(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// The filter: `RUST_LOG` when it is set (a full `EnvFilter` directive list),
/// else `--log-level` for Vigil's crates and at most `warn` for the rest.
fn filter(level: LogLevel, rust_log: Option<&str>) -> Result<EnvFilter> {
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        return EnvFilter::try_new(spec).map_err(|e| anyhow!("RUST_LOG={spec:?}: {e}"));
    }
    let others = if level < LogLevel::Warn {
        level.name()
    } else {
        "warn"
    };
    let mut spec = others.to_string();
    for c in CRATES {
        spec.push_str(&format!(",{c}={}", level.name()));
    }
    EnvFilter::try_new(&spec).map_err(|e| anyhow!("log filter {spec:?}: {e}"))
}

/// Installs the subscriber for the rest of the process. Call once, first thing.
pub fn init(level: LogLevel, format: LogFormat) -> Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level, std::env::var("RUST_LOG").ok().as_deref())?)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow!("log: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_applies_to_vigil_and_caps_dependencies() {
        let directives =
            |f: EnvFilter| -> Vec<String> { f.to_string().split(',').map(str::to_owned).collect() };
        let d = directives(filter(LogLevel::Debug, None).unwrap());
        assert!(d.contains(&"vigil_server=debug".into()), "{d:?}");
        assert!(d.contains(&"warn".into()), "{d:?}");
        let d = directives(filter(LogLevel::Error, None).unwrap());
        assert!(
            d.contains(&"error".into()) && !d.contains(&"warn".into()),
            "{d:?}"
        );
    }

    #[test]
    fn rust_log_overrides_the_level_and_bad_filters_are_named() {
        let f = filter(LogLevel::Info, Some("vigil_store=trace")).unwrap();
        assert_eq!(f.to_string(), "vigil_store=trace");
        let e = filter(LogLevel::Info, Some("vigil=loud")).unwrap_err();
        assert!(e.to_string().starts_with("RUST_LOG=\"vigil=loud\""), "{e}");
    }
}
