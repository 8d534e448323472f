//! A UTC instant with millisecond precision, parsed from the timestamp shapes AWS
//! telemetry uses (RFC 3339 with or without fraction and offset, the compact
//! `20131102T010628Z` form, and epoch seconds in flow logs).
//!
//! Written here rather than pulled from a date crate: the decoders parse one or more
//! timestamps per record, the shapes are few and fixed, and a hand parser is both
//! faster and free of compile time.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Why a timestamp string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid timestamp {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// The system clock's time (the epoch if the clock is set before it).
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.f+][Z|±HH:MM|±HHMM]` (also with a space or
    /// lowercase `t` as separator) and the compact `YYYYMMDDTHHMMSSZ`.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        parse(s.as_bytes()).map_err(|reason| TimestampError {
            input: s.chars().take(64).collect(),
            reason,
        })
    }

    /// Splits into civil UTC parts: (year, month, day, hour, minute, second, millis).
    pub fn to_parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        (
            y,
            m,
            d,
            (secs / 3600) as u32,
            ((secs / 60) % 60) as u32,
            (secs % 60) as u32,
            (ms_of_day % 1000) as u32,
        )
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC; milliseconds only when non-zero, as CloudTrail writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, ms) = self.to_parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<i64, &'static str> {
    let part = b.get(at..at + n).ok_or("too short")?;
    let mut v = 0i64;
    for &c in part {
        if !c.is_ascii_digit() {
            return Err("expected a digit");
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Ok(v)
}

fn parse(b: &[u8]) -> Result<Timestamp, &'static str> {
    if b.len() < 16 {
        return Err("too short");
    }
    let year = digits(b, 0, 4)?;
    // The compact ISO 8601 basic form: 20131102T010628Z.
    let (month, day, hour, minute, second, mut i) = if b[4] == b'-' {
        let month = digits(b, 5, 2)?;
        if b.get(7) != Some(&b'-') {
            return Err("expected '-' after the month");
        }
        let day = digits(b, 8, 2)?;
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
            return Err("expected 'T' between date and time");
        }
        let hour = digits(b, 11, 2)?;
        if b.get(13) != Some(&b':') {
            return Err("expected ':' after the hour");
        }
        let minute = digits(b, 14, 2)?;
        let (second, i) = if b.get(16) == Some(&b':') {
            (digits(b, 17, 2)?, 19)
        } else {
            (0, 16)
        };
        (month, day, hour, minute, second, i)
    } else {
        let month = digits(b, 4, 2)?;
        let day = digits(b, 6, 2)?;
        if !matches!(b.get(8), Some(b'T' | b't')) {
            return Err("expected 'T' between date and time");
        }
        (
            month,
            day,
            digits(b, 9, 2)?,
            digits(b, 11, 2)?,
            digits(b, 13, 2)?,
            15,
        )
    };
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range");
    }
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        let mut scale = 100;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            millis += i64::from(c - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return Err("expected digits after the decimal point");
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let (om, len) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)?, 6)
            } else {
                (digits(b, i + 3, 2)?, 5)
            };
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            i += len;
            let o = oh * 3600 + om * 60;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        // No zone: AWS writes UTC everywhere, so an unzoned time is taken as UTC.
        None => 0,
        Some(_) => return Err("unexpected character after the time"),
    };
    if i != b.len() {
        return Err("trailing characters");
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    Ok(Timestamp(secs * 1000 + millis))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithm (public domain description).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_aws_shapes() {
        let t = Timestamp::parse("2019-10-02T22:12:29Z").unwrap();
        assert_eq!(t.as_secs(), 1_570_054_349);
        assert_eq!(t.to_string(), "2019-10-02T22:12:29Z");
        let t = Timestamp::parse("2016-08-02T02:05:06.123Z").unwrap();
        assert_eq!(t.as_millis() % 1000, 123);
        assert_eq!(t.to_string(), "2016-08-02T02:05:06.123Z");
        assert_eq!(
            Timestamp::parse("2017-03-22T13:22:13.933123456Z").unwrap(),
            Timestamp::parse("2017-03-22T13:22:13.933Z").unwrap()
        );
        assert_eq!(
            Timestamp::parse("2020-01-01T02:00:00+02:00").unwrap(),
            Timestamp::parse("2020-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            Timestamp::parse("20131102T010628Z").unwrap(),
            Timestamp::parse("2013-11-02T01:06:28Z").unwrap()
        );
    }

    #[test]
    fn rejects_garbage_with_reason() {
        for bad in [
            "",
            "yesterday",
            "2019-13-01T00:00:00Z",
            "2019-02-30T00:00:00Z",
            "2019-01-01T25:00:00Z",
            "2019-01-01T00:00:00Zjunk",
            "2019-01-01X00:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(ms in -62_000_000_000_000i64..250_000_000_000_000i64) {
            let t = Timestamp::from_millis(ms);
            let (y, ..) = t.to_parts();
            prop_assume!((0..=9999).contains(&y));
            prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Timestamp::parse(&s);
        }
    }
}
