//! The one way Vigil writes a span of time, in its configuration, its Sigma rules
//! (`timespan`) and its playbooks (`timeout`, `backoff`): a whole number and a unit,
//! `500ms`, `30s`, `5m`, `1h`, `2d`, `1w`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time as written in configuration and content (`"10s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(Duration);

/// Why a span does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanError(String);

impl fmt::Display for SpanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpanError {}

/// The units, longest name first so that `ms` is not read as `m`.
const UNITS: [(&str, u64); 6] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 7 * 86_400_000),
];

impl Span {
    pub const fn from_millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }

    pub const fn from_secs(s: u64) -> Span {
        Span(Duration::from_secs(s))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// In milliseconds, as event times are counted (saturating).
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// Reads `30s`, `5m`…; zero is refused (nothing in Vigil means "no time" by a
    /// zero span).
    pub fn parse(s: &str) -> Result<Span, SpanError> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| SpanError(format!("`{t}` has no unit (ms, s, m, h, d or w)")))?;
        let (n, unit) = t.split_at(split);
        let n: u64 = n
            .parse()
            .map_err(|_| SpanError(format!("`{t}` does not start with a whole number")))?;
        let per = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, ms)| *ms)
            .ok_or_else(|| {
                SpanError(format!("`{t}`: the unit must be one of ms, s, m, h, d, w"))
            })?;
        if n == 0 {
            return Err(SpanError(format!("`{t}` is no time at all")));
        }
        let ms = n
            .checked_mul(per)
            .filter(|ms| *ms <= i64::MAX as u64)
            .ok_or_else(|| SpanError(format!("`{t}` is too long")))?;
        Ok(Span(Duration::from_millis(ms)))
    }
}

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Span, SpanError> {
        Span::parse(s)
    }
}

impl From<Span> for Duration {
    fn from(s: Span) -> Duration {
        s.0
    }
}

/// The largest unit that writes it whole (`90m` stays `90m`; `7200s` is `2h`).
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0ms");
        }
        let (unit, per) = UNITS
            .iter()
            .rev()
            .find(|(_, per)| ms % per == 0)
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{unit}", ms / per)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_writes_it_back() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
        ] {
            let s = Span::parse(text).unwrap();
            assert_eq!(s.as_millis(), ms, "{text}");
            assert_eq!(s.to_string(), text);
        }
        assert_eq!(Span::parse("7200s").unwrap().to_string(), "2h");
        assert_eq!(Span::parse(" 90m ").unwrap().to_string(), "90m");
    }

    #[test]
    fn refuses_what_is_not_a_span_and_says_why() {
        for (bad, why) in [
            ("soon", "whole number"),
            ("10", "no unit"),
            ("10y", "unit must be"),
            ("0s", "no time"),
            ("-5m", "whole number"),
            ("99999999999999999999d", "whole number"),
            ("9999999999999999w", "too long"),
        ] {
            let e = Span::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_from_configuration() {
        #[derive(Deserialize)]
        struct C {
            t: Span,
        }
        let c: C = serde_json::from_str(r#"{"t":"15s"}"#).unwrap();
        assert_eq!(c.t.duration(), Duration::from_secs(15));
        let e = serde_json::from_str::<C>(r#"{"t":"15 parsecs"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unit must be"), "{e}");
    }
}
