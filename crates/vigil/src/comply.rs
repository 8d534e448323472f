//! `vigil comply`: the compliance checks over an account inventory snapshot,
//! offline (`assess --snapshot FILE`), and what they are (`checks`, `controls`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use vigil_comply::framework::{self, Framework};
use vigil_comply::{checks, run_checks, Snapshot};

#[derive(Subcommand)]
pub enum ComplyCommand {
    /// Read the inventory the checks judge from AWS (read-only calls) in every
    /// account and enabled region asked for, and save it as a snapshot.
    Collect(CollectArgs),
    /// Run every check over a saved snapshot and judge each framework's controls:
    /// exit 0 when every assessed control passes, 3 when one fails or errs.
    Assess(AssessArgs),
    /// List the checks: id, service, severity, the playbook that fixes a failure,
    /// and the Prowler checks each lines up with.
    Checks,
    /// List a framework's controls and the checks Vigil runs for each.
    Controls(ControlsArgs),
}

#[derive(Args)]
pub struct AssessArgs {
    /// The snapshot (`vigil comply collect` writes one).
    #[arg(long, value_name = "FILE")]
    snapshot: PathBuf,
    /// Only this framework (CIS, …; any case). Default: all.
    #[arg(long)]
    framework: Option<String>,
    /// The whole assessment as JSON: every check result and every control.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CollectArgs {
    /// Where to write the snapshot (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// An account to read (repeat for more). Default: the account of the
    /// credentials in use.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// A region to read (repeat for more). Default: every region enabled in
    /// each account.
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// The role assumed in each member account to read it (its name; the ARN is
    /// made from the account id).
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// The external id the role's trust policy asks for.
    #[arg(long, value_name = "ID")]
    external_id: Option<String>,
    /// The account of the credentials in use, where no role is assumed.
    #[arg(long, value_name = "ID")]
    home_account: Option<String>,
    /// The region IAM and STS are called in (default us-east-1).
    #[arg(long, value_name = "REGION")]
    home_region: Option<String>,
    /// Call AWS here instead of its endpoints (an emulator, a proxy). The SDK's
    /// AWS_ENDPOINT_URL is honoured too.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[derive(Args)]
pub struct ControlsArgs {
    /// The framework (CIS, …; any case).
    framework: String,
}

fn pick(wanted: Option<&str>) -> Result<Vec<Framework>> {
    let all = framework::builtin()?;
    let Some(w) = wanted else { return Ok(all) };
    let chosen: Vec<Framework> = all
        .into_iter()
        .filter(|f| f.id.eq_ignore_ascii_case(w))
        .collect();
    if chosen.is_empty() {
        let names: Vec<String> = framework::builtin()?.into_iter().map(|f| f.id).collect();
        bail!("no framework {w:?}; there are: {}", names.join(", "));
    }
    Ok(chosen)
}

/// Writes what `report` prints to stdout; a reader that went away (`| head`)
/// is not an error.
pub fn run(cmd: &ComplyCommand) -> Result<u8> {
    let mut o = String::new();
    let code = report(cmd, &mut o)?;
    match std::io::stdout().lock().write_all(o.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(code),
    }
}

/// `vigil comply collect`: the inventory, written to a file (or stdout), and a
/// line on stderr of what was read and what could not be.
#[cfg(not(feature = "aws"))]
fn collect(_a: &CollectArgs, _o: &mut String) -> Result<u8> {
    Err(crate::without_aws("read an inventory from AWS"))
}

#[cfg(feature = "aws")]
fn collect(a: &CollectArgs, o: &mut String) -> Result<u8> {
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let settings = vigil_aws::AwsSettings {
        endpoint_url: a.endpoint_url.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|u| !u.is_empty())
        }),
        response_role: a.role.clone(),
        external_id: a.external_id.clone(),
        home_account: a.home_account.clone(),
        home_region: a.home_region.clone(),
        credentials: None,
    };
    let scope = vigil_aws::inventory::Scope {
        accounts: a.accounts.clone(),
        regions: a.regions.clone(),
    };
    let snapshot = rt.block_on(async {
        let aws = vigil_aws::Aws::new(settings).await;
        vigil_aws::inventory::collect(&aws, &scope).await
    });
    let text = serde_json::to_string_pretty(&snapshot)?;
    if a.out.as_os_str() == "-" {
        writeln!(o, "{text}")?;
    } else {
        std::fs::write(&a.out, text + "\n")
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.out.display()))?;
    }
    let errors: usize = snapshot.accounts.iter().map(|x| x.errors.len()).sum();
    for x in &snapshot.accounts {
        for e in &x.errors {
            tracing::warn!(
                "{} {} {}: {}: {}",
                if x.account_id.is_empty() {
                    "?"
                } else {
                    &x.account_id
                },
                e.region.as_deref().unwrap_or("global"),
                e.service,
                e.operation,
                e.message
            );
        }
    }
    tracing::info!(
        "collected {} account(s), {} region(s) in {:.2} s; {errors} service read(s) failed",
        snapshot.accounts.len(),
        snapshot
            .accounts
            .iter()
            .map(|x| x.regions.len())
            .sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(if errors > 0 {
        crate::EXIT_COMPLETED_WITH_ERRORS
    } else {
        0
    })
}

fn report(cmd: &ComplyCommand, o: &mut String) -> Result<u8> {
    match cmd {
        ComplyCommand::Collect(a) => collect(a, o),
        ComplyCommand::Checks => {
            let head = [
                "CHECK", "SERVICE", "SEVERITY", "PLAYBOOK", "TITLE", "PROWLER",
            ];
            let mut rows = vec![head.map(String::from).to_vec()];
            rows.extend(checks::all().map(|c| {
                vec![
                    c.id.to_owned(),
                    c.service.to_owned(),
                    c.severity.as_str().to_owned(),
                    c.playbook.unwrap_or("-").to_owned(),
                    c.title.to_owned(),
                    c.prowler.join(", "),
                ]
            }));
            writeln!(o, "{}", vigil_pipeline::report::table(rows))?;
            Ok(0)
        }
        ComplyCommand::Controls(a) => {
            for f in pick(Some(&a.framework))? {
                o.push_str(&vigil_pipeline::report::controls(&f));
            }
            Ok(0)
        }
        ComplyCommand::Assess(a) => {
            let snapshot = Snapshot::read(&a.snapshot)?;
            let results = run_checks(&snapshot);
            let frameworks = pick(a.framework.as_deref())?;
            let verdicts: Vec<_> = frameworks
                .iter()
                .map(|f| framework::assess(f, &results))
                .collect();
            let bad = verdicts.iter().any(|v| v.failed + v.errors > 0);
            if a.json {
                let doc = serde_json::json!({
                    "collected_at": snapshot.collected_at,
                    "accounts": snapshot.accounts.iter().map(|x| &x.account_id).collect::<Vec<_>>(),
                    "frameworks": verdicts,
                    "results": results,
                });
                writeln!(o, "{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                o.push_str(&vigil_pipeline::report::assessment(
                    &snapshot, &results, &verdicts,
                ));
            }
            Ok(if bad {
                crate::EXIT_COMPLETED_WITH_ERRORS
            } else {
                0
            })
        }
    }
}
