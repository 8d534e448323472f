//! `vigil rules list | validate | test | coverage`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use vigil_detect::testcases::{self, Case, TestFile};
use vigil_detect::RuleIssue;
use vigil_detect::{Detector, DetectorConfig};
use vigil_model::Event;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// List rules: the built-in ones, or those in the given files and directories.
    List(RulePaths),
    /// Load rules and report, by rule, any feature that is not supported and any
    /// mistake; exit 3 when there is one.
    Validate(RulePaths),
    /// Run the test cases kept beside rules (`*.tests.yml`): events that must make a
    /// rule fire and near-misses that must not. Exit 3 when a case fails.
    Test(TestArgs),
    /// The MITRE ATT&CK tactics and techniques the detections cover, with the
    /// detections behind each: a table, or an ATT&CK Navigator layer (JSON).
    Coverage(CoverageArgs),
}

#[derive(Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    rules: RulePaths,
    /// `table` (by tactic), `navigator` (an ATT&CK Navigator layer to load in the
    /// Navigator) or `markdown`.
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(Args)]
pub struct RulePaths {
    /// Rule files or directories; none means the built-in rules.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also load the built-in rules when paths are given.
    #[arg(long)]
    with_builtin: bool,
}

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    rules: RulePaths,
    /// Also fail when a rule that raises findings lacks a case that must match or a
    /// near-miss that must not.
    #[arg(long)]
    require_coverage: bool,
}

impl RulePaths {
    fn builtin(&self) -> bool {
        self.paths.is_empty() || self.with_builtin
    }
}

fn load(p: &RulePaths) -> (Detector, Vec<RuleIssue>) {
    vigil_detect::files::build_detector(
        &p.paths,
        &DetectorConfig {
            builtin: p.builtin(),
            ..Default::default()
        },
    )
}

/// Decodes a test case's events with the same decoders `scan` uses.
pub fn decode_case(c: &Case) -> Result<Vec<Event>, String> {
    vigil_ingest::decode_document(&c.input, c.source.as_deref(), c.flow_format.as_deref())
}

fn exit_for(problems: bool) -> u8 {
    if problems {
        crate::EXIT_COMPLETED_WITH_ERRORS
    } else {
        0
    }
}

pub fn run(cmd: &RulesCommand) -> Result<u8> {
    match cmd {
        RulesCommand::List(p) => {
            let (det, issues) = load(p);
            let head = ["SEVERITY", "CATEGORY", "PLAYBOOK", "KIND", "RULE", "TITLE"];
            let mut rows = vec![head.map(String::from).to_vec()];
            for e in det.entries() {
                let i = e.info;
                // A rule that only feeds correlations raises no finding of its own:
                // no severity, category or playbook to show.
                let (severity, category, playbook) = if e.silent {
                    ("-", "-", "-")
                } else {
                    (
                        i.severity.as_str(),
                        i.category.as_str(),
                        i.playbook.as_deref().unwrap_or("-"),
                    )
                };
                let feeds = if e.silent {
                    " (feeds a correlation)"
                } else {
                    ""
                };
                rows.push(vec![
                    severity.to_owned(),
                    category.to_owned(),
                    playbook.to_owned(),
                    format!("{:?}", i.kind).to_lowercase(),
                    i.name.as_deref().unwrap_or(&i.key).to_owned(),
                    format!("{}{feeds}", i.title),
                ]);
            }
            println!("{}", vigil_pipeline::report::table(rows));
            for i in &issues {
                tracing::warn!("{i}");
            }
            Ok(exit_for(!issues.is_empty()))
        }
        RulesCommand::Validate(p) => {
            let (det, issues) = load(p);
            let unsupported = issues.iter().filter(|i| i.unsupported).count();
            for i in &issues {
                println!("{i}");
            }
            let (indexed, always) = det.rule_set().index_stats();
            println!(
                "{} rules, {} correlations and {} native detectors loaded ({indexed} rules indexed by event name or another field's value, {always} tried on every event of their source); {} unsupported, {} invalid",
                det.rule_set().len(),
                det.correlator().correlations().count(),
                det.natives().infos().count(),
                unsupported,
                issues.len() - unsupported
            );
            Ok(exit_for(!issues.is_empty()))
        }
        RulesCommand::Coverage(c) => {
            let (det, issues) = load(&c.rules);
            for i in &issues {
                tracing::warn!("{i}");
            }
            let cov = vigil_detect::coverage::Coverage::of(&det);
            match c.format.as_str() {
                "navigator" => println!(
                    "{}",
                    serde_json::to_string_pretty(&cov.navigator_layer("Vigil detections"))?
                ),
                "table" | "markdown" => {
                    print!(
                        "{}",
                        vigil_pipeline::report::coverage(&cov, c.format == "markdown")
                    )
                }
                other => anyhow::bail!("--format {other}: expected table, navigator or markdown"),
            }
            Ok(exit_for(!issues.is_empty()))
        }
        RulesCommand::Test(t) => {
            let p = &t.rules;
            let (rules, mut issues) = vigil_detect::files::read_rules(&p.paths, p.builtin());
            let mut files: Vec<TestFile> = Vec::new();
            let mut parse_errors = Vec::new();
            if p.builtin() {
                for (name, text) in vigil_detect::builtin::TESTS {
                    match testcases::parse(text, Path::new(name)) {
                        Ok(mut f) => files.append(&mut f),
                        Err(e) => parse_errors.push(e),
                    }
                }
            }
            let (texts, mut more) = vigil_detect::files::read_files(&p.paths, true);
            issues.append(&mut more);
            for (path, text) in &texts {
                match testcases::parse(text, path) {
                    Ok(mut f) => files.append(&mut f),
                    Err(e) => parse_errors.push(e),
                }
            }
            let (det, mut more) = rules.detector(&DetectorConfig::default());
            issues.append(&mut more);
            for i in &issues {
                println!("rule problem: {i}");
            }
            for e in &parse_errors {
                println!("test file problem: {e}");
            }
            let results = testcases::run(&rules, &files, &decode_case);
            let mut failed = 0;
            for r in &results {
                if !r.passed {
                    failed += 1;
                }
                println!(
                    "{} {} :: {} — {}",
                    if r.passed { "ok  " } else { "FAIL" },
                    r.rule,
                    r.case,
                    r.message
                );
            }
            let gaps = if t.require_coverage {
                testcases::coverage_gaps(&det, &files)
            } else {
                Vec::new()
            };
            for g in &gaps {
                println!("missing: {g}");
            }
            println!(
                "{} cases: {} passed, {} failed{}",
                results.len(),
                results.len() - failed,
                failed,
                if t.require_coverage {
                    format!("; {} coverage gaps", gaps.len())
                } else {
                    String::new()
                }
            );
            Ok(exit_for(
                failed > 0 || !gaps.is_empty() || !parse_errors.is_empty() || !issues.is_empty(),
            ))
        }
    }
}
