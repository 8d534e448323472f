//! The statuses of playbook runs and their steps, as the response engine moves
//! them, the store keeps them and the API shows them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a status enum with its stored name for each variant, `as_str`, `parse`
/// and `Display`; serde uses the same names.
macro_rules! named {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)*
                }
            }

            /// The status a stored name stands for (exactly as stored).
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$v),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// A run's status.
    RunStatus {
        /// Running, or waiting for its turn.
        InProgress = "IN_PROGRESS",
        /// A gate holds it until a person approves or rejects.
        AwaitingApproval = "AWAITING_APPROVAL",
        /// Undoing the steps that changed something, after a failure.
        RollingBack = "ROLLING_BACK",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
        RolledBack = "ROLLED_BACK",
        Rejected = "REJECTED",
        /// A crash cut off a step that may not run twice: a person decides.
        NeedsAttention = "NEEDS_ATTENTION",
    }
}

impl RunStatus {
    /// Whether the engine moves it on by itself.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::InProgress | RunStatus::RollingBack)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::RolledBack | RunStatus::Rejected
        )
    }
}

named! {
    /// A step's status.
    StepStatus {
        Pending = "PENDING",
        AwaitingApproval = "AWAITING_APPROVAL",
        Running = "RUNNING",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
        Skipped = "SKIPPED",
        /// Cut off by a crash; may or may not have happened.
        Unknown = "UNKNOWN",
        Rejected = "REJECTED",
        /// Never reached (the run stopped before it; a rollback step not needed).
        NotRun = "NOT_RUN",
    }
}

named! {
    /// Which part of a run a step belongs to.
    Phase {
        /// The playbook's own steps.
        Step = "step",
        /// The steps that undo them after a failure.
        Rollback = "rollback",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(*s));
            let j = serde_json::to_value(s).unwrap();
            assert_eq!(j, s.as_str());
        }
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Phase::parse("rollback"), Some(Phase::Rollback));
        assert_eq!(RunStatus::parse("in_progress"), None);
    }
}
