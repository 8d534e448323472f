//! `vigil rules list | validate`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use vigil_detect::sigma::{load_path, CompileOptions, Loaded};
use vigil_detect::RuleSet;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// List the rules in files or directories of Sigma YAML.
    List(RulePaths),
    /// Load every rule and report, by rule, any feature that is not supported and
    /// any mistake; exit 3 when there is one.
    Validate(RulePaths),
}

#[derive(Args)]
pub struct RulePaths {
    /// Rule files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Loads and indexes rules from `paths`; problems come back as issues, not errors.
pub fn load(paths: &[PathBuf]) -> (RuleSet, Vec<vigil_detect::sigma::RuleIssue>) {
    let mut loaded = Loaded::default();
    for p in paths {
        load_path(p, &CompileOptions::default(), &mut loaded);
    }
    let (set, mut more) = RuleSet::new(loaded.rules);
    let mut issues = loaded.issues;
    issues.append(&mut more);
    (set, issues)
}

pub fn run(cmd: &RulesCommand) -> Result<u8> {
    match cmd {
        RulesCommand::List(p) => {
            let (set, issues) = load(&p.paths);
            for r in set.rules() {
                let m = &r.meta;
                println!(
                    "{:<13} {:<38} {}",
                    m.level.map(|l| l.as_str()).unwrap_or("-"),
                    m.id.as_deref().unwrap_or("-"),
                    m.title
                );
            }
            for i in &issues {
                eprintln!("{i}");
            }
            Ok(if issues.is_empty() {
                0
            } else {
                crate::EXIT_COMPLETED_WITH_ERRORS
            })
        }
        RulesCommand::Validate(p) => {
            let (set, issues) = load(&p.paths);
            let unsupported = issues.iter().filter(|i| i.unsupported).count();
            for i in &issues {
                println!("{i}");
            }
            let (indexed, always) = set.index_stats();
            println!(
                "{} rules loaded ({indexed} indexed by event name, {always} tried on every event of their source); {} unsupported, {} invalid",
                set.len(),
                unsupported,
                issues.len() - unsupported
            );
            Ok(if issues.is_empty() {
                0
            } else {
                crate::EXIT_COMPLETED_WITH_ERRORS
            })
        }
    }
}
