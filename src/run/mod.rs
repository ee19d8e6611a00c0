//! One run of a scenario: start the mock if asked, wire engine → aggregator → watchers,
//! handle Ctrl-C, and build the result. Output formatting stays with the caller.

mod contract;
mod judges;
mod server;
mod target;
mod until;
mod watcher;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoints;
use crate::engine::{Engine, STOP_GRACE, Stop};
use crate::metrics::{Aggregator, Health, Snapshot};
use crate::mock::MockServer;
use crate::model::Aborted;
use crate::report::{RunMeta, RunResult};
use crate::scenario::{BaseUrl, Scenario};
use crate::servermetrics::scrape::{Scrapes, ServerRead};

use crate::workload::Workload;
pub use contract::{Notes, RunError};
use server::{prefix_reset, server_endpoints};
pub use target::server_tokenizer;
use target::{Target, client, clients_of_stages, extra_headers};

/// How often the aggregator publishes a Snapshot.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

/// Starts a view of the run (progress line, dashboard) from its snapshots. The run
/// waits for the view's task before returning, so a view can hold the screen until the
/// user is done with it.
pub type Watcher = Box<dyn FnOnce(watch::Receiver<Arc<Snapshot>>, Stop) -> JoinHandle<()> + Send>;

pub struct RunOptions {
    pub notes: Notes,
    pub watcher: Option<Watcher>,
    /// The result file, checkpointed while the run goes on (`checkpoint`).
    pub checkpoint: Option<std::path::PathBuf>,
    /// `--requests-out`: a line per finished request (`requests_out`), with its prompt
    /// and reply when `requests_out_text`.
    pub requests_out: Option<std::path::PathBuf>,
    pub requests_out_text: bool,
    /// `--start-at`, the run id.
    pub launch: crate::launch::Launch,
    /// `--prometheus-listen`: the bound endpoint, and how long it stays up after the run.
    pub prometheus: Option<(crate::export::Endpoint, std::time::Duration)>,
    /// `--server-metrics`: the server's metrics endpoints to scrape (none named: the
    /// target's `/metrics`, when it answers).
    pub server_metrics: Vec<url::Url>,
    /// `--reset-prefix-cache`: the server's prefix cache emptied before each stage
    /// (else as the scenario says).
    pub reset_prefix_cache: Option<crate::scenario::ResetAt>,
}

impl RunOptions {
    /// No notes, no view: for tests and embedding.
    pub fn quiet() -> RunOptions {
        RunOptions {
            notes: Arc::new(|_| {}),
            watcher: None,
            checkpoint: None,
            requests_out: None,
            requests_out_text: false,
            launch: crate::launch::Launch::default(),
            prometheus: None,
            server_metrics: Vec::new(),
            reset_prefix_cache: None,
        }
    }
}

pub struct RunOutcome {
    pub result: RunResult,
    pub interrupted: bool,
    /// `abort_on_error_rate` ended the run early.
    pub aborted: Option<Aborted>,
}

/// Runs `scenario` to the end or until Ctrl-C / SIGTERM; what was measured is always
/// returned.
pub async fn run(scenario: Scenario, opts: RunOptions) -> Result<RunOutcome, RunError> {
    let stop = Stop::default();
    // Registered before any request leaves, so an early Ctrl-C is never the default
    // "kill the process" that would lose the result.
    let signals = Signals::register();
    let signals = tokio::spawn(watch_signals(signals, stop.clone(), opts.notes.clone()));
    let out = run_with_stop(scenario, opts, stop).await;
    signals.abort();
    out
}

/// As `run`, stopped by `stop` instead of signals (tests drive it directly).
pub async fn run_with_stop(scenario: Scenario, opts: RunOptions, stop: Stop) -> Result<RunOutcome, RunError> {
    let headers = extra_headers(&scenario)?;
    let target = Target::open(&scenario, &opts.notes)?;
    let others = clients_of_stages(&scenario, &target, &headers, opts.requests_out_text)?;
    let client = Arc::new(client(&scenario, &target, headers, opts.requests_out_text)?);
    // The bodies ask for what the client reads: one stream flag for both.
    let workload = Workload::new(scenario.prompts.clone(), client.stream(), scenario.target.stream_usage)
        .with_stage_prompts(scenario.stage_prompts.clone());
    let scenario = Arc::new(scenario);
    // The generator watches itself: a ticker on this runtime, its cores in use.
    let health = Health::new();
    let ticker = tokio::spawn(health.clone().watch());
    let (aggregator, events, snapshots) = Aggregator::new(scenario.stages.len(), SNAPSHOT_INTERVAL);
    let aggregator = fed(aggregator, &scenario, &opts, &health)?;
    // The scraper's live figures join the engine's events (dropped with its tasks, so the
    // aggregator still ends when the run does).
    let server_events = events.clone();
    let mut engine = Engine::new(scenario.clone(), workload, client, events, stop.clone()).with_clients(others);
    let (reset, resets) = prefix_reset(&scenario, opts.reset_prefix_cache.as_ref(), &target, &opts.notes)?.unzip();
    // A stage after one stopped at saturation waits for the server to be done with it.
    let recover = watcher::recovery(engine.watch_hook(), snapshots.clone(), opts.notes.clone(), reset);
    engine = engine.before_each_stage(recover);
    let launch = launch(&engine, &opts.launch, &stop).await;
    let started_at = SystemTime::now();
    let aggregated = aggregator.spawn();
    let mock_url = target.mock.as_ref().map(MockServer::base_url);
    let (checkpoints_stop, stop_checkpoints) = tokio::sync::oneshot::channel();
    let checkpoints = opts.checkpoint.map(|path| {
        let c = Checkpoints { path, scenario: scenario.clone(), started_at, mock_url: mock_url.clone(), launch: launch.clone() };
        tokio::spawn(c.run(snapshots.clone(), stop_checkpoints))
    });
    let prometheus = opts.prometheus.map(|(ep, linger)| {
        let labels = crate::export::Labels {
            run_id: opts.launch.run_id.clone().unwrap_or_default(),
            shard: format!("{}/{}", scenario.shard.index, scenario.shard.count),
        };
        (tokio::spawn(ep.serve(snapshots.clone(), labels)), linger)
    });
    let (endpoints, note) = server_endpoints(&scenario, &opts.server_metrics, &target, &opts.notes).await?;
    let scrapes =
        Scrapes::start(endpoints, scenario.target.insecure, snapshots.clone(), Some(server_events)).map_err(RunError::ServerMetrics)?;
    let found = watcher::Findings::default();
    let watcher = tokio::spawn(watcher::watch(scenario.clone(), engine.watch_hook(), snapshots.clone(), found.clone()));
    let view = opts.watcher.map(|w| w(snapshots, stop.clone()));
    let end = engine.run().await;
    watcher.abort();
    let server_read = ServerRead { scraped: scrapes.finish().await, note };
    // The engine dropped its sender: the aggregator drains and returns.
    let stages = aggregated.await.expect("aggregator task does not panic");
    ticker.abort();
    // The last checkpoint is written (or never begun) before the caller's final write.
    let _ = checkpoints_stop.send(());
    if let Some(c) = checkpoints {
        let _ = c.await;
    }
    if let Some((ep, linger)) = prometheus {
        // Up a while longer for a last scrape of the final figures (a Ctrl-C ends it).
        if !linger.is_zero() && !stop.soft.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = stop.soft.cancelled() => {}
            }
        }
        ep.abort();
    }
    let generator = health.view();
    if let Some(v) = view {
        // A view that failed (or panicked, its hook having restored the terminal) costs
        // nothing measured: the result below is built all the same.
        let _ = v.await;
    }
    let meta = RunMeta {
        started_at,
        finished_at: SystemTime::now(),
        interrupted: end.interrupted,
        aborted: end.aborted.clone(),
        mock_url,
        // An automatic sweep's stages were chosen as it ran: the result records them.
        swept: end.swept,
        generator: Some(generator),
        launch,
        server_metrics: Some(server_read).filter(|r| !r.scraped.is_empty() || r.note.is_some()),
        prefix_resets: resets.map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone()).unwrap_or_default(),
    };
    let mut result = RunResult::build(&scenario, &stages, meta);
    if watcher::annotate(&mut result, &scenario, &found) {
        result.conclude(&scenario);
    }
    drop(target);
    Ok(RunOutcome { result, interrupted: end.interrupted, aborted: end.aborted })
}

/// The aggregator with what the run asks of it: the generator's health, the
/// `--requests-out` file, and the counting of streams.
fn fed(aggregator: Aggregator, scenario: &Scenario, opts: &RunOptions, health: &Arc<Health>) -> Result<Aggregator, RunError> {
    let mut aggregator = aggregator.with_health(health.clone());
    if let Some(path) = &opts.requests_out {
        let out = crate::requests_out::RequestsOut::create(path, opts.requests_out_text, scenario.shard)
            .map_err(|error| RunError::RequestsOut { path: path.display().to_string(), error })?;
        aggregator = aggregator.with_sink(Box::new(out));
    }
    let server = scenario.prompts.tokenizer().is_server();
    if server {
        aggregator = aggregator.counting_after_window();
    }
    if scenario.target.stream || server {
        // Every stream is counted (its reply, and its prompt where not known): on the
        // aggregator's thread, with the tokenizer and the listed prompts' counts loaded
        // on another meanwhile, so the first request need not wait for them.
        let tok = scenario.prompts.tokenizer().clone();
        let tok = if scenario.target.base_url == BaseUrl::Mock { tok.as_the_models() } else { tok };
        let mut counter = crate::workload::pieces::PieceCounter::new(tok);
        aggregator = aggregator.with_counter(Box::new(move |rec| crate::client::count_uncounted(rec, &mut counter)));
        let prompts = scenario.prompts.clone();
        std::thread::spawn(move || prompts.count_listed());
    }
    Ok(aggregator)
}

/// How the run was launched, waiting for `--start-at` when given: every shard of a run
/// starts at one moment, everything ready by then, the first stage's prompts too.
async fn launch(engine: &Engine, launch: &crate::launch::Launch, stop: &Stop) -> crate::report::LaunchMeta {
    let start_lag = match launch.start_at {
        Some(at) => {
            engine.prepare_first().await;
            Some(wait_until(at, stop).await)
        }
        None => None,
    };
    crate::report::LaunchMeta { shard: launch.shard, run_id: launch.run_id.clone(), start_at: launch.start_at, start_lag }
}

/// Sleeps until `at` on the wall clock (or a stop); how late the run then started, ms
/// (negative when a stop cut the wait short).
async fn wait_until(at: SystemTime, stop: &Stop) -> f64 {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.soft.cancelled() => {}
        }
    }
    match SystemTime::now().duration_since(at) {
        Ok(late) => late.as_secs_f64() * 1e3,
        Err(early) => -early.duration().as_secs_f64() * 1e3,
    }
}

/// First Ctrl-C (or SIGTERM): start nothing new, give in-flight requests STOP_GRACE.
/// Second: cancel them now. Either way the result is still written.
async fn watch_signals(mut signals: Signals, stop: Stop, notes: Notes) {
    signals.recv().await;
    notes(&format!("stopping: waiting up to {} s for requests in flight (Ctrl-C again to stop now)", STOP_GRACE.as_secs()));
    stop.gracefully(signals.recv()).await;
}

/// Ctrl-C and (on unix) SIGTERM, registered at once.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals { streams: signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()) }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.streams {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
