//! `vigil serve`: one process running sources → detection → incidents → store → API.
//!
//! - The pipeline is one thread owning the detector and the open findings; it takes
//!   work (an inbox file, telemetry posted over HTTP) from a channel, and stores the
//!   findings each piece of work opened or updated in one transaction — for an
//!   inbox file, together with the file's checkpoint.
//! - The inbox watcher polls a directory and hands over each file once its size
//!   and modification time have held still for one poll and differ from its
//!   checkpoint.
//! - The API (`vigil-server`) runs on tokio beside them.
//!
//! Restarts, `kill -9` included, lose and duplicate nothing: a file's findings and
//! its checkpoint commit together, so a file is either done or read again from the
//! start; finding and incident ids are derived from their content, so reading again
//! rewrites the same rows; and the findings still open when the process stopped are
//! taken back on start, so later alerts update them instead of opening new ones.

mod compliance;
mod config;
mod demo;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use vigil_detect::{Alert, Detector, Finding, Findings};
use vigil_ingest::{DecodeOptions, Item};
use vigil_model::{Event, Timestamp};
use vigil_server::{Ingest, IngestBatch, IngestReceipt};
use vigil_store::{Grouping, Store};

pub use config::ServeConfig;

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
    /// Directory watched for telemetry files [default: <data-dir>/inbox].
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// Replay the bundled attack scenario at start, so incidents show within seconds.
    #[arg(long)]
    demo: bool,
    /// Sigma rules to load besides the built-ins (files or directories).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
}

/// Work for the pipeline thread.
enum Work {
    /// Telemetry posted over HTTP; answered once its findings are stored.
    Batches(Vec<IngestBatch>, SyncSender<Result<IngestReceipt, String>>),
    /// A file of the inbox, with its checkpoint key and fingerprint.
    File {
        path: PathBuf,
        key: String,
        fingerprint: String,
    },
}

/// The handle the API submits telemetry through.
struct PipelineHandle {
    tx: Sender<Work>,
}

impl Ingest for PipelineHandle {
    fn submit(&self, batches: Vec<IngestBatch>) -> Result<IngestReceipt, String> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Work::Batches(batches, reply))
            .map_err(|_| "the pipeline has stopped".to_owned())?;
        answer
            .recv()
            .map_err(|_| "the pipeline stopped before answering".to_owned())?
    }
}

/// Detection and storage, on one thread.
struct Pipeline {
    detector: Detector,
    findings: Findings,
    alerts: Vec<Alert>,
    store: Arc<Mutex<Store>>,
    decode: DecodeOptions,
    baseline_path: PathBuf,
    last_baseline_save: Instant,
    changed: Vec<Finding>,
    closed: Vec<Finding>,
    /// Where findings that trigger a playbook go once stored (response on and
    /// automatic).
    trigger: Option<Trigger>,
    /// Where CloudTrail events that change what the compliance checks judge are
    /// sent (compliance on).
    compliance: Option<tokio::sync::mpsc::UnboundedSender<compliance::Recheck>>,
}

/// The playbooks in force and the engine's inbox of findings that start them.
struct Trigger {
    library: Arc<vigil_respond::Library>,
    tx: tokio::sync::mpsc::UnboundedSender<Finding>,
}

/// How many record errors a receipt or the log lists for one piece of work.
const ERRORS_LISTED: usize = 20;
/// How often learned baselines are written to disk (and at shutdown).
const BASELINE_SAVE: Duration = Duration::from_secs(30);

impl Pipeline {
    /// Decodes `items` into events and runs detection over them, counting events
    /// and noting errors.
    fn detect(&mut self, items: impl Iterator<Item = Item>, receipt: &mut IngestReceipt) {
        let now = vigil_server::now();
        for item in items {
            match item {
                Item::Event(e) => {
                    receipt.events += 1;
                    self.observe(&e, now);
                }
                Item::Error(e) => {
                    if receipt.errors.len() < ERRORS_LISTED {
                        receipt.errors.push(e.to_string());
                    }
                }
            }
        }
    }

    fn observe(&mut self, e: &Event, now: Timestamp) {
        if let Some(tx) = &self.compliance {
            if let Some(r) = compliance::recheck_for(e) {
                // The task ends only at shutdown.
                let _ = tx.send(r);
            }
        }
        vigil_detect::detector::detect_into(
            &mut self.detector,
            &mut self.findings,
            e,
            now,
            &mut self.alerts,
            &mut |_, _| {},
        );
    }

    /// Stores what the work changed (with a checkpoint, for a file).
    fn commit(
        &mut self,
        receipt: &mut IngestReceipt,
        checkpoint: Option<(&str, &str)>,
    ) -> Result<(), String> {
        self.changed.clear();
        self.findings.take_changed(&mut self.changed);
        // Closed findings were stored when they last changed.
        self.findings.drain_closed(&mut self.closed);
        self.closed.clear();
        let now = vigil_server::now();
        let mut store = self
            .store
            .lock()
            .map_err(|_| "the store lock is poisoned")?;
        let done = match checkpoint {
            Some((key, position)) => {
                store.record_with_checkpoint(&self.changed, key, position, now)
            }
            None => store.record_findings(&self.changed, now),
        }
        .map_err(|e| e.to_string())?;
        drop(store);
        if let Some(t) = &self.trigger {
            for f in &self.changed {
                if t.library.for_finding(f).is_some() {
                    // The engine's task ends only at shutdown.
                    let _ = t.tx.send(f.clone());
                }
            }
        }
        receipt.new_findings += done.new_findings;
        receipt.updated_findings += done.updated_findings;
        receipt.new_incidents += done.new_incidents;
        if self.last_baseline_save.elapsed() >= BASELINE_SAVE {
            self.save_baselines();
        }
        Ok(())
    }

    fn save_baselines(&mut self) {
        self.last_baseline_save = Instant::now();
        if let Err(e) = self.detector.natives().state.save(&self.baseline_path) {
            tracing::warn!("baselines not saved: {e}");
        }
    }

    fn batches(&mut self, batches: Vec<IngestBatch>) -> Result<IngestReceipt, String> {
        let mut receipt = IngestReceipt::default();
        for b in batches {
            let reader = Box::new(std::io::Cursor::new(b.body));
            match vigil_ingest::open_reader(Path::new(&b.name), reader, &self.decode) {
                Ok(mut d) => self.detect(d.by_ref(), &mut receipt),
                Err(e) => receipt.errors.push(e.to_string()),
            }
        }
        self.commit(&mut receipt, None)?;
        Ok(receipt)
    }

    fn file(&mut self, path: &Path, key: &str, fingerprint: &str) {
        let mut receipt = IngestReceipt::default();
        match vigil_ingest::open(path, &self.decode) {
            Ok(mut d) => self.detect(d.by_ref(), &mut receipt),
            Err(e) => receipt.errors.push(e.to_string()),
        }
        for e in &receipt.errors {
            tracing::warn!(file = %path.display(), "{e}");
        }
        match self.commit(&mut receipt, Some((key, fingerprint))) {
            Ok(()) => tracing::info!(
                file = %path.display(),
                events = receipt.events,
                new_findings = receipt.new_findings,
                updated_findings = receipt.updated_findings,
                new_incidents = receipt.new_incidents,
                "inbox file read"
            ),
            Err(e) => tracing::error!(file = %path.display(), "not stored: {e}"),
        }
    }

    fn run(mut self, rx: Receiver<Work>) {
        while let Ok(work) = rx.recv() {
            match work {
                Work::Batches(b, reply) => {
                    let answer = self.batches(b);
                    reply.send(answer).ok();
                }
                Work::File {
                    path,
                    key,
                    fingerprint,
                } => self.file(&path, &key, &fingerprint),
            }
        }
        self.save_baselines();
    }
}

/// A file's size and modification time, which say whether it changed.
fn fingerprint(p: &Path) -> Option<String> {
    let m = std::fs::metadata(p).ok()?;
    let modified = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("size={} mtime_ns={modified}", m.len()))
}

/// Polls the inbox until `stop`, handing each new or changed file to the pipeline
/// once it has held still for one poll.
fn watch_inbox(
    inbox: PathBuf,
    store: Store,
    tx: Sender<Work>,
    poll: Duration,
    stop: Arc<AtomicBool>,
) {
    // What each file looked like at the last poll, and what was handed over.
    let mut last_seen: std::collections::HashMap<PathBuf, String> = Default::default();
    let mut handed: std::collections::HashMap<PathBuf, String> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let mut files = Vec::new();
        vigil_ingest::walk(&inbox, &mut |p| files.push(p), &mut |e| {
            tracing::warn!("inbox: {e}")
        });
        files.sort();
        let mut now_seen = std::collections::HashMap::new();
        for path in files {
            let Some(fp) = fingerprint(&path) else {
                continue;
            };
            let steady = last_seen.get(&path) == Some(&fp);
            now_seen.insert(path.clone(), fp.clone());
            if !steady || handed.get(&path) == Some(&fp) {
                continue;
            }
            let rel = path.strip_prefix(&inbox).unwrap_or(&path);
            let key = format!("inbox:{}", rel.display());
            match store.checkpoint(&key) {
                Ok(Some(done)) if done == fp => {
                    handed.insert(path, fp);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("inbox: checkpoint of {key}: {e}");
                    continue;
                }
            }
            handed.insert(path.clone(), fp.clone());
            let work = Work::File {
                path,
                key,
                fingerprint: fp,
            };
            if tx.send(work).is_err() {
                return;
            }
        }
        last_seen = now_seen;
        // Sleep in short steps so that a stop is noticed quickly.
        let until = Instant::now() + poll;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(poll));
        }
    }
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
        config.inbox = Some(i.clone());
    }
    config.rules.extend(args.rules.iter().cloned());
    let data_dir = config.data_dir.clone();
    let inbox = config
        .inbox
        .clone()
        .unwrap_or_else(|| data_dir.join("inbox"));
    std::fs::create_dir_all(&inbox)
        .with_context(|| format!("inbox {}: cannot create it", inbox.display()))?;
    let keys_file = config.ensure_keys(&data_dir)?;

    let grouping = Grouping {
        window_ms: config.incident_window_ms()?,
        accounts: config.registry()?,
    };
    let store = Store::open(&data_dir, grouping).context("opening the store")?;
    let inbox_reader = store.open_reader()?;
    let writer = Arc::new(Mutex::new(store));

    // The pipeline: detector, open findings taken back from the store, baselines.
    let detect_config = config.detector_config()?;
    let (mut detector, issues) = crate::rules::build_detector(&config.rules, &detect_config);
    for i in &issues {
        tracing::warn!("rule skipped: {i}");
    }
    let baseline_path = data_dir.join("baselines.json");
    detector.natives_mut().state = vigil_detect::native::BaselineState::load(&baseline_path)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dedup_ms = config.dedup_window_ms()?;
    let mut findings = Findings::new(dedup_ms).tracking_changes();
    {
        let w = writer.lock().map_err(|_| anyhow::anyhow!("store lock"))?;
        for id in w.last_finding_ids()? {
            findings.note_finding_id(&id);
        }
        let open = w.recent_findings(dedup_ms)?;
        let n = open.len();
        for f in open {
            findings.reopen(f);
        }
        if n > 0 {
            tracing::info!("took back {n} open findings from the store");
        }
    }
    // Response: the playbook library, and the channel new findings reach the
    // engine by (the engine itself is made on the runtime below).
    let library = if config.response.enabled {
        Some(Arc::new(config.response.library()?))
    } else {
        None
    };
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel::<Finding>();
    let trigger = match &library {
        Some(l) if config.response.automatic => Some(Trigger {
            library: Arc::clone(l),
            tx: trigger_tx,
        }),
        _ => None,
    };
    let (compliance_tx, compliance_rx) = if config.compliance.enabled {
        config.compliance.interval_ms()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let pipeline = Pipeline {
        compliance: compliance_tx,
        trigger,
        detector,
        findings,
        alerts: Vec::new(),
        store: Arc::clone(&writer),
        decode: DecodeOptions::default(),
        baseline_path,
        last_baseline_save: Instant::now(),
        changed: Vec::new(),
        closed: Vec::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<Work>();
    let pipeline_thread = std::thread::Builder::new()
        .name("vigil-pipeline".into())
        .spawn(move || pipeline.run(rx))?;

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (inbox, tx, stop) = (inbox.clone(), tx.clone(), Arc::clone(&stop));
        let poll = Duration::from_millis(config.poll_ms.max(10));
        std::thread::Builder::new()
            .name("vigil-inbox".into())
            .spawn(move || watch_inbox(inbox, inbox_reader, tx, poll, stop))?
    };
    let handle = Arc::new(PipelineHandle { tx: tx.clone() });
    let mut app = vigil_server::AppState::new(
        &config.api,
        Arc::clone(&writer),
        Some(handle.clone() as Arc<dyn Ingest>),
    )
    .map_err(|e| anyhow::anyhow!("api: {e}"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("vigil-api")
        .build()?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = match &config.api.tls {
            Some(files) => {
                Some(vigil_server::tls::server_config(files).map_err(|e| anyhow::anyhow!(e))?)
            }
            None => None,
        };
        announce(
            &config,
            addr,
            tls.is_some(),
            &data_dir,
            &inbox,
            keys_file.as_deref(),
        );
        if let Some(library) = library {
            let engine = start_engine(&config, &writer, library, trigger_rx).await?;
            app = app.with_engine(engine);
        }
        if let Some(rx) = compliance_rx {
            tokio::spawn(compliance::run(
                config.compliance.clone(),
                Arc::clone(&writer),
                rx,
            ));
        }
        if args.demo {
            let handle = Arc::clone(&handle);
            tokio::task::spawn_blocking(move || demo::replay(handle.as_ref()));
        }
        let app = Arc::new(app);
        vigil_server::serve(listener, tls, app, shutdown_signal())
            .await
            .context("serving")
    });
    stop.store(true, Ordering::Relaxed);
    drop(handle);
    drop(tx);
    watcher.join().ok();
    pipeline_thread.join().ok();
    rt.shutdown_timeout(Duration::from_secs(2));
    served?;
    tracing::info!("stopped");
    Ok(0)
}

/// Makes the playbook engine, takes up the runs a stop cut off, and starts the
/// task that runs the playbooks new findings trigger.
#[cfg(not(feature = "aws"))]
async fn start_engine(
    _config: &ServeConfig,
    _writer: &Arc<Mutex<Store>>,
    _library: Arc<vigil_respond::Library>,
    _findings: tokio::sync::mpsc::UnboundedReceiver<Finding>,
) -> Result<vigil_respond::Engine> {
    Err(crate::without_aws("run playbooks ([response] enabled)"))
}

#[cfg(feature = "aws")]
async fn start_engine(
    config: &ServeConfig,
    writer: &Arc<Mutex<Store>>,
    library: Arc<vigil_respond::Library>,
    mut findings: tokio::sync::mpsc::UnboundedReceiver<Finding>,
) -> Result<vigil_respond::Engine> {
    let aws = vigil_aws::Aws::new(config.response.aws_settings()).await;
    let engine = vigil_respond::Engine::new(
        Arc::clone(writer),
        Arc::new(aws),
        library,
        vigil_respond::EngineConfig {
            max_concurrent: config.response.max_concurrent.max(1),
            ..Default::default()
        },
    );
    let resumed = engine.resume_all().await?;
    if !resumed.is_empty() {
        tracing::info!("took up {} unfinished playbook run(s)", resumed.len());
    }
    let (engine2, store) = (engine.clone(), Arc::clone(writer));
    tokio::spawn(async move {
        while let Some(f) = findings.recv().await {
            let store = Arc::clone(&store);
            let key = f.id.clone();
            let incident = tokio::task::spawn_blocking(move || {
                let s = store.lock().unwrap_or_else(|p| p.into_inner());
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
    inbox: &Path,
    keys_file: Option<&Path>,
) {
    // The first line is for scripts and tests: the address actually bound.
    let scheme = if tls { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{addr}");
    tracing::info!("data in {}", data_dir.display());
    tracing::info!("watching {} for telemetry files", inbox.display());
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
