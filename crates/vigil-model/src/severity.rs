//! The five severity levels of the platform's finding schema, and the mappings from
//! the scores GuardDuty and Security Hub use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Ordered from least to most severe, so `max()` picks the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// GuardDuty's 0.0–10.0 score, by the bands GuardDuty documents: 1.0–3.9 low,
    /// 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0 critical.
    pub fn from_guardduty_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s >= 1.0 => Severity::Low,
            _ => Severity::Informational,
        }
    }

    /// ASFF's normalized 0–100 score, by the bands Security Hub documents.
    pub fn from_asff_normalized(n: f64) -> Severity {
        match n {
            s if s >= 90.0 => Severity::Critical,
            s if s >= 70.0 => Severity::High,
            s if s >= 40.0 => Severity::Medium,
            s if s >= 1.0 => Severity::Low,
            _ => Severity::Informational,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .or_else(|| s.eq_ignore_ascii_case("INFO").then_some(Severity::Informational))
            .ok_or_else(|| format!("unknown severity {s:?} (expected one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardduty_bands() {
        assert_eq!(Severity::from_guardduty_score(5.0), Severity::Medium);
        assert_eq!(Severity::from_guardduty_score(8.9), Severity::High);
        assert_eq!(Severity::from_guardduty_score(2.0), Severity::Low);
        assert_eq!(Severity::from_guardduty_score(9.5), Severity::Critical);
    }

    #[test]
    fn parse_and_order() {
        assert_eq!("high".parse::<Severity>().unwrap(), Severity::High);
        assert!("urgent".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::Low);
    }
}
