//! `vigil audit verify`: walks the audit log's hash chain in a service's store.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited or removed: exit 0 when the chain is
    /// whole, 3 when it is broken (the first broken entry is named). Prints the
    /// head hash: keep it elsewhere to detect the newest entries being cut off.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The service's data directory (as `vigil serve --data-dir`; else
    /// `VIGIL_DATA_DIR`, else `./vigil-data`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(cmd: &AuditCommand) -> Result<u8> {
    let AuditCommand::Verify(args) = cmd;
    let store = crate::open_store(args.data_dir.clone())?;
    let check = store.verify_audit()?;
    let head = check
        .head
        .as_ref()
        .map_or("none".to_owned(), |(seq, hash)| {
            format!("entry {seq}, {hash}")
        });
    match &check.broken {
        None => {
            println!(
                "audit log: {} entries, chain whole; head: {head}",
                check.entries
            );
            Ok(0)
        }
        Some((seq, why)) => {
            println!(
                "audit log: {} entries, chain BROKEN at entry {seq}: {why}; head: {head}",
                check.entries
            );
            Ok(crate::EXIT_COMPLETED_WITH_ERRORS)
        }
    }
}
