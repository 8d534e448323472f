//! `vigil rules list | validate`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use vigil_detect::sigma::correlation::{BaseRef, Correlator};
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

/// How far behind the newest event an event may arrive and still be correlated.
pub const LATENESS_MS: i64 = 5 * 60 * 1000;

/// Loads and indexes rules from `paths`, and sets up their correlations; problems
/// come back as issues, not errors.
pub fn load(paths: &[PathBuf]) -> (RuleSet, Correlator, Vec<vigil_detect::sigma::RuleIssue>) {
    load_with_lateness(paths, LATENESS_MS)
}

pub fn load_with_lateness(
    paths: &[PathBuf],
    lateness_ms: i64,
) -> (RuleSet, Correlator, Vec<vigil_detect::sigma::RuleIssue>) {
    let mut loaded = Loaded::default();
    for p in paths {
        load_path(p, &CompileOptions::default(), &mut loaded);
    }
    // Filters may sit in other files than the rules they tune: apply them once all
    // files are read.
    loaded.apply_filters();
    let (set, mut more) = RuleSet::new(loaded.rules);
    let mut issues = loaded.issues;
    issues.append(&mut more);
    let refs: Vec<BaseRef<'_>> = set
        .rules()
        .iter()
        .map(|r| BaseRef {
            id: r.meta.id.as_deref(),
            name: r.meta.rule_name.as_deref(),
        })
        .collect();
    let (correlator, mut more) = Correlator::new(loaded.correlations, &refs, lateness_ms);
    issues.append(&mut more);
    (set, correlator, issues)
}

pub fn run(cmd: &RulesCommand) -> Result<u8> {
    match cmd {
        RulesCommand::List(p) => {
            let (set, correlator, issues) = load(&p.paths);
            for c in correlator.correlations() {
                println!(
                    "{:<13} {:<38} {} [{} of {}]",
                    c.meta.level.map(|l| l.as_str()).unwrap_or("-"),
                    c.meta.id.as_deref().unwrap_or("-"),
                    c.meta.title,
                    c.kind.as_str(),
                    c.rules.join(", ")
                );
            }
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
            let (set, correlator, issues) = load(&p.paths);
            let unsupported = issues.iter().filter(|i| i.unsupported).count();
            for i in &issues {
                println!("{i}");
            }
            let (indexed, always) = set.index_stats();
            println!(
                "{} rules and {} correlations loaded ({indexed} rules indexed by event name, {always} tried on every event of their source); {} unsupported, {} invalid",
                set.len(),
                correlator.correlations().count(),
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
