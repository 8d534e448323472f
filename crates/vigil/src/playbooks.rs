//! `vigil playbooks list | show | plan | run | actions`: the response playbooks in
//! force (built in, overridden from `--dir`), the dry run of one against a
//! finding, and a run of one against AWS, recorded in the store.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use clap::{Args, Subcommand};
use vigil_detect::Finding;

use vigil_model::Environment;
use vigil_respond::{plan, Context, Library};

#[derive(Subcommand)]
pub enum PlaybooksCommand {
    /// List the playbooks in force: id, automation, steps, name.
    List(LibraryArgs),
    /// Print one playbook: its triggers and each step's action, API calls,
    /// parameters, condition, retries, timeout and failure handling.
    Show(ShowArgs),
    /// Dry run: what a playbook would do for a finding (a JSON file, as the API
    /// serves it), step by step — the exact API calls and their parameters, which
    /// steps skip and which wait for approval. Calls nothing, changes nothing. Exit
    /// 3 when a step that would run cannot (a parameter with no value).
    Plan(PlanArgs),
    /// Run a playbook for a finding against AWS, through the engine, as `vigil
    /// serve` does: the finding is filed in the store (opening its incident), the
    /// run and every step are recorded there and in the audit log, and the AWS
    /// settings are those of the serve configuration's `[response]`. A gate stops
    /// the run (exit 3) unless `--approve` is given, which approves it as you.
    /// Exit 0 when the run succeeds, 3 when it does not.
    Run(RunArgs),
    /// List the actions a step may name, with their parameters and API calls.
    Actions,
}

#[derive(Args)]
pub struct LibraryArgs {
    /// A directory of playbook files (`*.yaml`) that replace built-in playbooks of
    /// the same id and add new ones.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    library: LibraryArgs,
    /// The playbook id (PB-001…).
    id: String,
    /// Print it as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    library: LibraryArgs,
    /// The playbook id; by default the one the finding names.
    #[arg(long)]
    playbook: Option<String>,
    /// The finding, as JSON (`GET /api/v1/findings/{id}` gives one).
    #[arg(long, value_name = "FILE")]
    finding: PathBuf,
    /// The environment of the finding's account (destructive steps wait for
    /// approval in production and security-tooling).
    #[arg(long, value_parser = parse_environment)]
    environment: Option<Environment>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_environment(s: &str) -> Result<Environment, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| "one of security-tooling, production, development, sandbox".to_owned())
}

#[derive(Args)]
pub struct RunArgs {
    /// The playbook id; by default the one the finding triggers.
    #[arg(long)]
    playbook: Option<String>,
    /// The finding, as JSON.
    #[arg(long, value_name = "FILE")]
    finding: PathBuf,
    /// The serve configuration (`[response]`, accounts, data_dir).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory (else the configuration's).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Approve every gate, as the user running this.
    #[arg(long)]
    approve: bool,
    /// Print the run as JSON at the end.
    #[arg(long)]
    json: bool,
}

fn load(args: &LibraryArgs) -> Result<Library> {
    load_library(args.dir.as_deref())
}

/// The built-in playbooks with those of `dir` over them; every refusal listed.
pub fn load_library(dir: Option<&Path>) -> Result<Library> {
    Ok(vigil_pipeline::service::load_library(dir)?)
}

pub fn run(cmd: &PlaybooksCommand) -> Result<u8> {
    match cmd {
        PlaybooksCommand::List(args) => {
            let lib = load(args)?;
            let mut rows = vec![vec![
                "ID".into(),
                "AUTO".into(),
                "STEPS".into(),
                "NAME".into(),
            ]];
            rows.extend(lib.all().iter().map(|p| {
                vec![
                    p.id.clone(),
                    format!("{:?}", p.automation).to_lowercase(),
                    p.steps.len().to_string(),
                    p.name.clone(),
                ]
            }));
            println!("{}", vigil_pipeline::report::table(rows));
            Ok(0)
        }
        PlaybooksCommand::Show(args) => {
            let lib = load(&args.library)?;
            let p = lib
                .get(&args.id)
                .ok_or_else(|| anyhow!("no playbook {} (`vigil playbooks list`)", args.id))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(p)?);
                return Ok(0);
            }
            println!(
                "{} {} ({:?}, about {:?}; from {})",
                p.id, p.name, p.automation, p.expected_duration, p.source
            );
            println!("{}", p.description.trim());
            let t = &p.triggers;
            println!(
                "triggers: categories {:?}, rules {:?}, GuardDuty types {:?}",
                t.categories, t.rules, t.guardduty_types
            );
            for (list, steps) in [("step", &p.steps), ("rollback", &p.rollback)] {
                for (i, s) in steps.iter().enumerate() {
                    println!("\n{list} {} {}: {}", i + 1, s.id, s.action.name);
                    println!("  calls: {}", s.action.calls.join(", "));
                    println!("  parameters: {}", serde_json::to_string(&s.parameters)?);
                    if let Some(w) = &s.when {
                        println!("  when: {}", serde_json::to_string(w)?);
                    }
                    println!(
                        "  timeout {:?}, retries {}, on failure {:?}{}{}",
                        s.timeout,
                        s.retries.as_ref().map_or("none".to_owned(), |r| format!(
                            "{} (backoff {:?})",
                            r.max, r.backoff
                        )),
                        s.on_failure,
                        if s.approval {
                            ", waits for approval"
                        } else {
                            ""
                        },
                        if s.action.destructive {
                            ", hard to undo"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(0)
        }
        PlaybooksCommand::Plan(args) => {
            let lib = load(&args.library)?;
            let finding = read_finding(&args.finding)?;
            let id = match &args.playbook {
                Some(id) => id.clone(),
                None => finding.detail.remediation.playbook.clone().ok_or_else(|| {
                    anyhow!(
                        "{}: the finding names no playbook; give --playbook",
                        args.finding.display()
                    )
                })?,
            };
            let p = lib
                .get(&id)
                .ok_or_else(|| anyhow!("no playbook {id} (`vigil playbooks list`)"))?;
            let ctx = Context::new(&finding, None, "dry-run");
            let plan = plan(p, &ctx, args.environment);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                vigil_pipeline::report::plan(&plan, &p.name);
            }
            Ok(if plan.problems().next().is_some() {
                crate::EXIT_COMPLETED_WITH_ERRORS
            } else {
                0
            })
        }
        PlaybooksCommand::Run(args) => run_playbook(args),
        PlaybooksCommand::Actions => {
            for a in vigil_respond::CATALOGUE {
                println!(
                    "{}{}",
                    a.name,
                    if a.destructive { " (hard to undo)" } else { "" }
                );
                println!("  {}", a.summary);
                println!("  requires: {}", list_or_none(a.required));
                println!("  optional: {}", list_or_none(a.optional));
                println!("  calls: {}", a.calls.join(", "));
            }
            Ok(0)
        }
    }
}

fn list_or_none(v: &[&str]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn read_finding(path: &Path) -> Result<Finding> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a Vigil finding", path.display()))
}

/// `vigil playbooks run`.
#[cfg(not(feature = "aws"))]
fn run_playbook(_args: &RunArgs) -> Result<u8> {
    Err(crate::without_aws("run a playbook against AWS"))
}

#[cfg(feature = "aws")]
fn run_playbook(args: &RunArgs) -> Result<u8> {
    use vigil_respond::RunStatus;

    let mut config = match &args.config {
        Some(p) => vigil_pipeline::service::ServeConfig::load(p)?,
        None => vigil_pipeline::service::ServeConfig::default(),
    };
    config.apply_env()?;
    let data_dir = args.data_dir.clone().unwrap_or(config.data_dir.clone());
    let finding = read_finding(&args.finding)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let record = vigil_pipeline::service::playbook::run_once(
        &config,
        &data_dir,
        finding,
        args.playbook.clone(),
        args.approve,
        &format!("cli:{user}"),
    )
    .with_context(|| args.finding.display().to_string())?;
    let status = record.status;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "{} {} {}: {}",
            record.id,
            record.playbook,
            record.status,
            record.note.as_deref().unwrap_or("")
        );
        print!("{}", vigil_pipeline::report::run_steps(&record));
        if status == RunStatus::AwaitingApproval {
            println!("waits for approval: run again with --approve, or approve it through the API");
        }
    }
    Ok(if status == RunStatus::Succeeded {
        0
    } else {
        crate::EXIT_COMPLETED_WITH_ERRORS
    })
}
