//! `vigil-bench`: the benchmark behind `scripts/bench`. Not a test: it prints numbers.
//!
//! `gen` writes a deterministic corpus in the S3 delivery layout (gzip'd CloudTrail
//! `Records` files with a realistic mix of services, operations, identity types and
//! errors, each account's under its own prefix; gzip'd VPC flow logs with header
//! lines, from a bounded set of interfaces per account). `run` measures, in one process
//! run so the ratios hold on a noisy machine: (a) gunzip alone, (b) gunzip plus a
//! plain typed serde parse, (c) `vigil scan` decoding only, (d) with the SigmaHQ rules,
//! (e) with every built-in detection too, (f) (e) on all cores, (g) the peer Sigma
//! engine (`peer`, built with `--features peer`), and peak RSS.

mod api;
mod corpus;
mod measure;
mod outbox;
#[cfg(feature = "peer")]
mod peer;
mod queue;
mod respond;

use std::path::PathBuf;

use anyhow::{bail, Result};

fn usage() -> ! {
    eprintln!(
        "usage:\n  vigil-bench gen --out DIR [--cloudtrail-mb N] [--flow-mb N] [--file-mb N] [--seed N] [--ordinary]\n  vigil-bench run --dir DIR --vigil PATH [--rounds N] [--rules DIR]\n  vigil-bench peer --dir DIR --rules DIR   (built with --features peer)\n  vigil-bench api --dir DIR --vigil PATH [--findings N] [--clients N] [--seconds N]\n  vigil-bench respond --dir DIR --vigil PATH --moto PATH [--rounds N]\n  vigil-bench queue --dir DIR --vigil PATH --moto PATH [--cargo-lambda PATH] [--objects N] [--records N] [--samples N]\n  vigil-bench outbox --dir DIR --vigil PATH [--findings N] [--samples N]\n  vigil-bench fill --dir DIR [--findings N]   (prints the filled store's data directory)"
    );
    std::process::exit(2)
}

/// The same allocator as `vigil`, so that the rows it measures itself (the plain
/// serde parse, the peer) are compared on equal terms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    // Progress goes to standard error through tracing (RUST_LOG to change the
    // level); the tables go to standard output.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let get = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: u64| -> Result<u64> {
        match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}: not a number: {v}")),
        }
    };
    match cmd.as_str() {
        "gen" => {
            let Some(out) = get("--out") else { usage() };
            let spec = corpus::Spec {
                out: PathBuf::from(out),
                cloudtrail_bytes: num("--cloudtrail-mb", 1100)? * 1_000_000,
                flow_bytes: num("--flow-mb", 300)? * 1_000_000,
                file_bytes: num("--file-mb", 24)? * 1_000_000,
                seed: num("--seed", 42)?,
                ordinary: args.iter().any(|a| a == "--ordinary"),
            };
            corpus::generate(&spec)
        }
        "run" => {
            let (Some(dir), Some(vigil)) = (get("--dir"), get("--vigil")) else {
                usage()
            };
            let rules = get("--rules").map(PathBuf::from);
            measure::run(
                &PathBuf::from(dir),
                &PathBuf::from(vigil),
                num("--rounds", 3)? as usize,
                rules.as_deref(),
            )
        }
        #[cfg(feature = "peer")]
        "peer" => {
            let (Some(dir), Some(rules)) = (get("--dir"), get("--rules")) else {
                usage()
            };
            peer::run(&PathBuf::from(dir), &PathBuf::from(rules))
        }
        "api" => {
            let (Some(dir), Some(vigil)) = (get("--dir"), get("--vigil")) else {
                usage()
            };
            api::run(&api::Spec {
                dir: PathBuf::from(dir),
                vigil: PathBuf::from(vigil),
                findings: num("--findings", 1_000_000)?,
                clients: num("--clients", 50)? as usize,
                seconds: num("--seconds", 10)?,
            })
        }
        "fill" => {
            let Some(dir) = get("--dir") else { usage() };
            let data_dir = api::store_dir(&PathBuf::from(dir), num("--findings", 1_000_000)?)?;
            // Absolute: the caller runs the browser from another directory.
            println!("{}", std::fs::canonicalize(&data_dir)?.display());
            Ok(())
        }
        "respond" => {
            let (Some(dir), Some(vigil), Some(moto)) =
                (get("--dir"), get("--vigil"), get("--moto"))
            else {
                usage()
            };
            respond::run(&respond::Spec {
                dir: PathBuf::from(dir),
                vigil: PathBuf::from(vigil),
                moto: PathBuf::from(moto),
                rounds: num("--rounds", 20)?,
            })
        }
        "queue" => {
            let (Some(dir), Some(vigil), Some(moto)) =
                (get("--dir"), get("--vigil"), get("--moto"))
            else {
                usage()
            };
            queue::run(&queue::Spec {
                dir: PathBuf::from(dir),
                vigil: PathBuf::from(vigil),
                moto: PathBuf::from(moto),
                cargo_lambda: get("--cargo-lambda").map(PathBuf::from),
                objects: num("--objects", 400)?,
                records: num("--records", 500)?,
                samples: num("--samples", 100)?,
            })
        }
        "outbox" => {
            let (Some(dir), Some(vigil)) = (get("--dir"), get("--vigil")) else {
                usage()
            };
            outbox::run(&outbox::Spec {
                dir: PathBuf::from(dir),
                vigil: PathBuf::from(vigil),
                findings: num("--findings", 2000)?,
                samples: num("--samples", 60)?,
            })
        }
        other => bail!("unknown command {other:?}"),
    }
}
