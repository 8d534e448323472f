//! `vigil outbox list | replay`: what the outputs were told, from a service's
//! store, and putting a dead delivery back in line once its destination is
//! fixed (a running `vigil serve` takes it up within a second).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use vigil_store::outbox::State;
use vigil_store::Store;

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// List deliveries, newest first, with each destination's counts.
    List(ListArgs),
    /// Put dead deliveries back in line, their tries reset (audited).
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    /// The service's data directory (as `vigil serve --data-dir`; else
    /// `VIGIL_DATA_DIR`, else `./vigil-data`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only deliveries in this state: pending, done, folded or dead.
    #[arg(long)]
    state: Option<String>,
    /// Only this output's.
    #[arg(long)]
    destination: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object a line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The deliveries' ids (as `list` shows them).
    #[arg(required = true)]
    ids: Vec<i64>,
}

fn open(s: &StoreArgs) -> Result<Store> {
    crate::open_store(s.data_dir.clone())
}

pub fn run(cmd: &OutboxCommand) -> Result<u8> {
    match cmd {
        OutboxCommand::List(a) => list(a),
        OutboxCommand::Replay(a) => replay(a),
    }
}

fn list(a: &ListArgs) -> Result<u8> {
    let state =
        match a.state.as_deref() {
            None => None,
            Some(s) => Some(State::parse(s).ok_or_else(|| {
                anyhow::anyhow!("--state {s}: one of pending, done, folded, dead")
            })?),
        };
    let store = open(&a.store)?;
    let page = store.outbox(state, a.destination.as_deref(), a.limit, None)?;
    if a.json {
        for d in &page.items {
            println!("{}", serde_json::to_string(d)?);
        }
        return Ok(0);
    }
    println!(
        "{:>8}  {:<16} {:<24} {:<8} {:>5}  {:<20}  last error",
        "id", "destination", "event", "state", "tries", "created"
    );
    for d in &page.items {
        let err: String = d
            .last_error
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        println!(
            "{:>8}  {:<16} {:<24} {:<8} {:>5}  {:<20}  {}",
            d.id,
            d.destination,
            d.event,
            d.state.as_str(),
            d.attempts,
            d.created_at.to_string(),
            err
        );
    }
    println!();
    for c in store.outbox_counts()? {
        println!(
            "{}: {} pending, {} done, {} folded, {} dead",
            c.destination, c.pending, c.done, c.folded, c.dead
        );
    }
    Ok(0)
}

fn replay(a: &ReplayArgs) -> Result<u8> {
    let mut store = open(&a.store)?;
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let mut failed = 0;
    for id in &a.ids {
        match store.replay_outbox(*id, &actor, vigil_server::now()) {
            Ok(Some(d)) => println!("delivery {id} to {} is pending again", d.destination),
            Ok(None) => {
                eprintln!("delivery {id}: no such delivery");
                failed += 1;
            }
            Err(e) => {
                eprintln!("delivery {id}: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        0
    } else {
        crate::EXIT_COMPLETED_WITH_ERRORS
    })
}
