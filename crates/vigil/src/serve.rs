//! `vigil serve`: arguments and configuration; the service itself is
//! `vigil_pipeline::service`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vigil_pipeline::service::{self, ServeConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (TOML); without one, the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the store, the inbox and the baselines live [default: ./vigil-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve the API on [default: 127.0.0.1:8750; port 0 picks a free one].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Directory watched for telemetry files (the inbox source's path)
    /// [default: <data-dir>/inbox].
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// Replay the bundled attack scenario at start, so incidents show within seconds.
    #[arg(long)]
    demo: bool,
    /// Sigma rules to load besides the built-ins (files or directories).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
}

pub fn run(args: &ServeArgs) -> Result<u8> {
    let mut config = match &args.config {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::default(),
    };
    config.apply_env()?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(i) = &args.inbox {
        config.set_inbox(i.clone());
    }
    if args.demo {
        config.add_demo();
    }
    config.rules.extend(args.rules.iter().cloned());
    service::run(config, shutdown_signal())?;
    Ok(0)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `vigil lambda`: the arguments.
#[derive(Args)]
pub struct LambdaArgs {
    /// The configuration file (TOML): rules, outputs, `[aws]`; its sources and
    /// API are not used [default: $VIGIL_CONFIG, else the embedded defaults].
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs as an AWS Lambda function for SQS events (a custom runtime's
/// bootstrap: `exec vigil lambda`).
#[cfg(feature = "aws")]
pub fn lambda(args: &LambdaArgs) -> Result<u8> {
    let mut config = match &args.config {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::default(),
    };
    config.apply_env()?;
    vigil_pipeline::lambda::run(config)?;
    Ok(0)
}

#[cfg(not(feature = "aws"))]
pub fn lambda(_args: &LambdaArgs) -> Result<u8> {
    Err(service::without_aws("run as a Lambda function").into())
}
