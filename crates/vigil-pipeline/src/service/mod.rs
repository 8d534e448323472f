//! `vigil serve` as a library: the pipeline (sources → detection → the store and
//! the other outputs), the API, the response engine and continuous compliance,
//! wired from one [`ServeConfig`] and run until a shutdown signal.
//!
//! Restarts, `kill -9` included, lose and duplicate nothing: a delivery's
//! findings, its source's checkpoint and its records' identities commit
//! together, so a file is either done or read again from the start, and a
//! record delivered again is skipped; finding and incident ids are derived from
//! their content, so reading again rewrites the same rows; and the findings
//! still open when the process stopped are taken back on start, so later alerts
//! update them instead of opening new ones.

pub mod compliance;
mod config;
pub mod organizations;
#[cfg(feature = "aws")]
pub mod playbook;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vigil_detect::{Finding, Findings};
use vigil_store::{Grouping, SharedStore, Store};

pub use config::{load_library, AwsConfig, ComplianceConfig, ResponseConfig, ServeConfig};
pub use organizations::OrganizationsConfig;

use crate::outputs::{respond::Trigger, store::StoreOutput};
use crate::seen::Seen;
use crate::{Detect, Output, Pipeline, PipelineError};

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn err(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Config(e.to_string())
}

/// The error of a part that needs the AWS SDK in a build made without it.
#[cfg(not(feature = "aws"))]
pub fn without_aws(what: &str) -> PipelineError {
    err(format!(
        "this vigil was built without AWS support, so it cannot {what}; \
         build it with the default features (cargo build --release)"
    ))
}

/// The detect stage as the service runs it: the configured rules, baselines
/// from the data directory, the findings still open taken back from the store,
/// and the record identities it remembers.
pub(crate) fn detect_stage(
    config: &ServeConfig,
    data_dir: &Path,
    store: &SharedStore,
) -> Result<Detect> {
    let (mut detector, issues) =
        vigil_detect::files::build_detector(&config.rules, &config.detector_config());
    for i in &issues {
        tracing::warn!("rule skipped: {i}");
    }
    let baselines = data_dir.join("baselines.json");
    detector.natives_mut().state =
        vigil_detect::native::BaselineState::load(&baselines).map_err(err)?;
    let dedup_ms = config.dedup_window.as_millis();
    let mut findings = Findings::new(dedup_ms).tracking_changes();
    let mut seen = Seen::new(
        config.redelivery_window.as_millis(),
        config.max_remembered_records,
    );
    let s = store.lock();
    for id in s.last_finding_ids()? {
        findings.note_finding_id(&id);
    }
    // The last row first: rows after it are read again, harmlessly.
    let records_after = s.last_records_seq()?;
    let since = crate::now().as_millis() - config.redelivery_window.as_millis();
    seen.restore(s.seen_records(since)?);
    let mut detect = Detect::new(detector, findings)
        .with_seen(seen)
        .with_baselines(baselines)
        .with_records_after(records_after);
    let open = s.recent_findings(dedup_ms)?;
    if !open.is_empty() {
        tracing::info!("took back {} open findings from the store", open.len());
    }
    for f in open {
        detect.reopen(f);
    }
    Ok(detect)
}

/// What every way of running the pipeline starts from: the account registry,
/// the store in the data directory, the detect stage over it, and the outputs
/// (the store first, then the configured ones).
pub(crate) struct Core {
    pub accounts: vigil_model::AccountRegistry,
    pub store: SharedStore,
    pub detect: Detect,
    pub outputs: Vec<Box<dyn Output>>,
    /// The outbox's destinations (its router already in the store).
    pub outbox: Option<crate::notify::Outbox>,
}

pub(crate) fn core(config: &ServeConfig) -> Result<Core> {
    let data_dir = &config.data_dir;
    let accounts = config.registry()?;
    let grouping = Grouping {
        window_ms: config.incident_window.as_millis(),
        accounts: accounts.clone(),
    };
    let store = SharedStore::new(Store::open(data_dir, grouping)?);
    // The outbox's router goes in before anything can commit.
    let (pipeline_outputs, destinations) = split_outputs(&config.outputs)?;
    let outbox = crate::notify::Outbox::build(
        destinations,
        &config.routing,
        accounts.clone(),
        &store,
        &config.aws,
    )?;
    let detect = detect_stage(config, data_dir, &store)?;
    let mut outputs: Vec<Box<dyn Output>> = vec![Box::new(StoreOutput::new(store.clone()))];
    let env = crate::Env {
        data_dir,
        store: &store,
        aws: &config.aws,
    };
    outputs.extend(crate::build_outputs(&pipeline_outputs, &env)?);
    Ok(Core {
        accounts,
        store,
        detect,
        outputs,
        outbox,
    })
}

/// `[[outputs]]` split into the pipeline's (built by `build_outputs`) and the
/// outbox's destinations (type, name, table); names are unique across both.
#[allow(clippy::type_complexity)]
fn split_outputs(
    tables: &[toml::Table],
) -> Result<(Vec<toml::Table>, Vec<(String, String, toml::Table)>)> {
    let (mut pipeline, mut outbox) = (Vec::new(), Vec::new());
    let mut names = std::collections::HashSet::new();
    for (i, t) in tables.iter().enumerate() {
        let (ty, name, rest) = crate::split("output", i, t.clone())?;
        if !names.insert(name.clone()) {
            return Err(err(format!("two outputs are named `{name}`")));
        }
        if crate::notify::is_destination(&ty) {
            outbox.push((ty, name, rest));
        } else {
            pipeline.push(t.clone());
        }
    }
    Ok((pipeline, outbox))
}

/// The rules and detectors `detector` runs, with the test cases written for
/// them (the built-in ones, and those beside the configured rule files), for
/// the dashboard's rules pages.
fn rule_cards(
    config: &ServeConfig,
    detector: &vigil_detect::Detector,
) -> Vec<vigil_server::web::RuleCard> {
    use vigil_detect::testcases;
    let mut files = Vec::new();
    if config.detector_config().builtin {
        for (name, text) in vigil_detect::builtin::TESTS {
            if let Ok(mut f) = testcases::parse(text, Path::new(name)) {
                files.append(&mut f);
            }
        }
    }
    let (texts, _) = vigil_detect::files::read_files(&config.rules, true);
    for (path, text) in &texts {
        match testcases::parse(text, path) {
            Ok(mut f) => files.append(&mut f),
            Err(e) => tracing::warn!("test file skipped: {e}"),
        }
    }
    /// A test case's input as the page shows it.
    const MAX_INPUT: usize = 16 * 1024;
    detector
        .entries()
        .into_iter()
        .map(|e| {
            let i = e.info;
            let cases = files
                .iter()
                .filter(|f| f.rule == i.key || i.name.as_deref() == Some(f.rule.as_str()))
                .flat_map(|f| f.cases.iter())
                .map(|c| {
                    let mut input = String::from_utf8_lossy(&c.input).into_owned();
                    if input.len() > MAX_INPUT {
                        let mut cut = MAX_INPUT;
                        while !input.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        input.truncate(cut);
                        input.push_str("\n…");
                    }
                    vigil_server::web::RuleCase {
                        name: c.name.clone(),
                        expect_match: c.expect_match,
                        input,
                    }
                })
                .collect();
            vigil_server::web::RuleCard {
                key: i.key.clone(),
                name: i.name.clone(),
                title: i.title.clone(),
                description: i.description.clone(),
                kind: format!("{:?}", i.kind).to_lowercase(),
                severity: i.severity,
                confidence: i.confidence,
                category: i.category.as_str().to_owned(),
                playbook: i.playbook.clone(),
                tactics: i.mitre.tactics.clone(),
                techniques: i.mitre.techniques.clone(),
                falsepositives: i.falsepositives.clone(),
                origin: e.origin,
                silent: e.silent,
                cases,
            }
        })
        .collect()
}

/// Runs the service from `config` until `shutdown` resolves.
pub fn run(
    mut config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let keys_file = config.ensure_keys(&data_dir)?;

    let Core {
        accounts,
        store,
        detect,
        mut outputs,
        outbox,
    } = core(&config)?;
    let rules = rule_cards(&config, detect.detector());
    let env = crate::Env {
        data_dir: &data_dir,
        store: &store,
        aws: &config.aws,
    };
    // Outputs: the store, the configured ones, then response and compliance.
    let library = if config.response.enabled {
        Some(Arc::new(config.response.library()?))
    } else {
        None
    };
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel::<Finding>();
    if let (Some(l), true) = (&library, config.response.automatic) {
        outputs.push(Box::new(Trigger::new(Arc::clone(l), trigger_tx)));
    }
    let compliance_rx = if config.compliance.enabled {
        let (tap, rx) = compliance::tap();
        outputs.push(Box::new(tap));
        Some(rx)
    } else {
        None
    };
    let sources = crate::build_sources(&config.sources(), &env)?;
    let running = Pipeline::new(detect, outputs).start(sources, store.clone())?;

    let mut app = vigil_server::AppState::new(&config.api, store.clone(), running.ingest())
        .map_err(|e| err(format!("api: {e}")))?
        .with_rules(rules)
        .with_sources(running.statuses())
        .with_slack(config.slack.clone());
    let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("vigil-api")
        .build()
        .map_err(|e| PipelineError::Io("starting the API's runtime".into(), e))?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| PipelineError::Io(format!("listening on {}", config.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| PipelineError::Io("the bound address".into(), e))?;
        let tls = match &config.api.tls {
            Some(files) => Some(vigil_server::tls::server_config(files).map_err(err)?),
            None => None,
        };
        announce(
            &config,
            addr,
            tls.is_some(),
            &data_dir,
            keys_file.as_deref(),
        );
        if let Some(library) = library {
            let engine = start_engine(&config, &store, library, trigger_rx).await?;
            app = app.with_engine(engine);
        }
        let delivering = match outbox {
            Some(o) => o.start(Arc::new(outbox_stopped)),
            None => Vec::new(),
        };
        if config.organizations.enabled {
            tokio::spawn(organizations::run(
                config.organizations.clone(),
                config.aws.clone(),
                config.accounts.clone(),
                accounts.clone(),
            ));
        }
        if let Some(rx) = compliance_rx {
            tokio::spawn(compliance::run(
                config.compliance.clone(),
                config.aws.clone(),
                store.clone(),
                rx,
            ));
        }
        let served = vigil_server::serve(listener, tls, Arc::new(app), shutdown)
            .await
            .map_err(|e| PipelineError::Io("serving".into(), e));
        // A delivery cut off here is claimed again after its lease on the next
        // start; its idempotency key makes the repeat harmless.
        let _ = stop_outbox.send(true);
        for d in delivering {
            let _ = tokio::time::timeout(Duration::from_secs(5), d).await;
        }
        served
    });
    running.stop();
    rt.shutdown_timeout(Duration::from_secs(2));
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Makes the playbook engine, takes up the runs a stop cut off, and starts the
/// task that runs the playbooks new findings trigger.
#[cfg(not(feature = "aws"))]
async fn start_engine(
    _config: &ServeConfig,
    _store: &SharedStore,
    _library: Arc<vigil_respond::Library>,
    _findings: tokio::sync::mpsc::UnboundedReceiver<Finding>,
) -> Result<vigil_respond::Engine> {
    Err(without_aws("run playbooks ([response] enabled)"))
}

#[cfg(feature = "aws")]
async fn start_engine(
    config: &ServeConfig,
    store: &SharedStore,
    library: Arc<vigil_respond::Library>,
    mut findings: tokio::sync::mpsc::UnboundedReceiver<Finding>,
) -> Result<vigil_respond::Engine> {
    let aws = vigil_aws::Aws::new(config.aws.response_settings()).await;
    let engine = vigil_respond::Engine::new(
        store.clone(),
        Arc::new(aws),
        library,
        vigil_respond::EngineConfig {
            max_concurrent: config.response.max_concurrent.max(1),
            ..Default::default()
        },
    );
    let resumed = engine.resume_all().await.map_err(err)?;
    if !resumed.is_empty() {
        tracing::info!("took up {} unfinished playbook run(s)", resumed.len());
    }
    let (engine2, store) = (engine.clone(), store.clone());
    tokio::spawn(async move {
        while let Some(f) = findings.recv().await {
            let store = store.clone();
            let key = f.id.clone();
            let incident = tokio::task::spawn_blocking(move || {
                let s = store.lock();
                let id = s.incident_of(&key).ok().flatten()?;
                let view = s.incident(&id).ok().flatten()?;
                Some((id, serde_json::to_value(view).ok()))
            })
            .await
            .ok()
            .flatten();
            let (id, view) = match incident {
                Some((id, view)) => (Some(id), view),
                None => (None, None),
            };
            if let Err(e) = engine2.on_finding(&f, id.as_deref(), view).await {
                tracing::warn!("finding {}: playbook not started: {e}", f.detail.finding_id);
            }
        }
    });
    Ok(engine)
}

fn announce(
    config: &ServeConfig,
    addr: std::net::SocketAddr,
    tls: bool,
    data_dir: &Path,
    keys_file: Option<&Path>,
) {
    // The first line is for scripts and tests: the address actually bound.
    let scheme = if tls { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{addr}");
    tracing::info!("data in {data_dir:?}");
    tracing::info!("dashboard at {scheme}://{addr}/ (sign in with an access key)");
    if let Some(k) = keys_file {
        tracing::info!(
            "no access keys were configured; an admin key was made in {}",
            k.display()
        );
    }
    if let Some(k) = config.api.keys.first() {
        tracing::info!(
            "try  awscurl --service {} --region {} --access_key {} --secret_key <its secret> {scheme}://{addr}/api/v1/metrics",
            config.api.service, config.api.region, k.access_key_id
        );
    }
}
