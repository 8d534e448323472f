//! The Sigma standard: detection rules (`rule`), their condition grammar
//! (`condition`) and value matching (`value`).

pub mod condition;
pub mod correlation;
pub mod rule;
pub mod value;

pub use rule::{
    is_test_file, load_path, load_str, CompileOptions, CompiledRule, Level, Loaded, LogSource,
    RuleIssue, RuleMeta, Subject,
};
