//! `vigil audit verify`: walks the audit log's hash chain in a service's store.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vigil_store::{Grouping, Store};

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
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("VIGIL_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./vigil-data"));
    let db = vigil_store::database_path(&data_dir);
    if !db.exists() {
        anyhow::bail!("{}: no store there", db.display());
    }
    let store = Store::open(&data_dir, Grouping::default())
        .with_context(|| format!("opening {}", db.display()))?;
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
