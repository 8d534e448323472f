//! The Sigma standard: detection rules (`rule`), their condition grammar
//! (`condition`), value matching (`value`), correlation rules (`correlation`) and
//! the keys they group by (`keys`), and rules over typed fields compiled together
//! (`program`).

pub mod condition;
pub mod correlation;
pub mod keys;
pub mod program;
pub mod rule;
pub mod value;

pub use rule::{
    is_test_file, load_path, load_str, CompileOptions, CompiledRule, Level, Loaded, LogSource,
    RuleIssue, RuleMeta, Subject,
};
