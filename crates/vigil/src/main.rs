//! The `vigil` command: argument parsing and wiring only; the work is in the crates.

mod audit;
mod comply;
mod logging;
mod outbox;
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

/// The error of a command that needs the AWS SDK in a build made without it
/// (`cargo build --no-default-features`, the quick first look).
#[cfg(not(feature = "aws"))]
pub fn without_aws(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this vigil was built without AWS support, so it cannot {what}; \
         build it with the default features (cargo build --release)"
    )
}

/// A service's store, for the commands that read or tend one: `data_dir`, else
/// `VIGIL_DATA_DIR`, else `./vigil-data`; an error when there is no store there.
pub fn open_store(data_dir: Option<std::path::PathBuf>) -> anyhow::Result<vigil_store::Store> {
    use anyhow::Context;
    let data_dir = data_dir
        .or_else(|| std::env::var_os("VIGIL_DATA_DIR").map(std::path::PathBuf::from))
        .unwrap_or_else(|| std::path::PathBuf::from("./vigil-data"));
    let db = vigil_store::database_path(&data_dir);
    if !db.exists() {
        anyhow::bail!("{}: no store there", db.display());
    }
    vigil_store::Store::open(&data_dir, vigil_store::Grouping::default())
        .with_context(|| format!("opening {}", db.display()))
}

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
    /// How much Vigil logs to standard error (RUST_LOG, when set, overrides it).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogLevel::Info)]
    log_level: logging::LogLevel,
    /// The log's form: text for a person, json (one object a line) for a shipper.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Decode telemetry files and directories and report what they hold.
    Scan(scan::ScanArgs),
    /// Run as a service: watch an inbox and take telemetry over HTTP, detect, group
    /// findings into incidents, store them, and serve the SigV4-signed API.
    Serve(serve::ServeArgs),
    /// Run as an AWS Lambda function for SQS events (the same detection as
    /// `serve`'s sqs source), reporting failed records as batch item failures.
    Lambda(serve::LambdaArgs),
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
    /// The outbox: what the outputs were told; replay dead deliveries.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_level, cli.log_format) {
        // No log to report it in: the one message that cannot go through tracing.
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("vigil: {e:#}\n"));
        return ExitCode::from(EXIT_FATAL);
    }
    let result = match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Lambda(args) => serve::lambda(&args),
        Command::Rules(cmd) => rules::run(&cmd),
        Command::Playbooks(cmd) => playbooks::run(&cmd),
        Command::Audit(cmd) => audit::run(&cmd),
        Command::Comply(cmd) => comply::run(&cmd),
        Command::Outbox(cmd) => outbox::run(&cmd),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}
