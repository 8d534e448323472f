//! The `vigil` command: argument parsing and wiring only; the work is in the crates.

mod audit;
mod comply;
mod playbooks;
mod rules;
mod scan;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decoding and detection allocate many small, short-lived strings per record;
/// mimalloc serves them from per-thread free lists, faster than the system
/// allocator, and most of all once findings and baselines are held alongside.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code when the run finished but some records or files could not be decoded.
pub const EXIT_COMPLETED_WITH_ERRORS: u8 = 3;
/// Exit code when the run could not do its job (bad arguments, unreadable input path).
pub const EXIT_FATAL: u8 = 1;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Cloud security monitoring and incident response for multi-account AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode telemetry files and directories and report what they hold.
    Scan(scan::ScanArgs),
    /// Run as a service: watch an inbox and take telemetry over HTTP, detect, group
    /// findings into incidents, store them, and serve the SigV4-signed API.
    Serve(serve::ServeArgs),
    /// Sigma rules: list them, or check that every feature they use is supported.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Response playbooks: list them, show one, or plan one against a finding (a
    /// dry run that calls nothing).
    #[command(subcommand)]
    Playbooks(playbooks::PlaybooksCommand),
    /// The audit log: check its hash chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Compliance: assess an account inventory snapshot against CIS AWS
    /// Foundations (and the other frameworks), list the checks and controls.
    #[command(subcommand)]
    Comply(comply::ComplyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Rules(cmd) => rules::run(&cmd),
        Command::Playbooks(cmd) => playbooks::run(&cmd),
        Command::Audit(cmd) => audit::run(&cmd),
        Command::Comply(cmd) => comply::run(&cmd),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}
