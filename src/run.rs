//! One run of a scenario: start the mock if asked, wire engine → aggregator → watchers,
//! handle Ctrl-C, and build the result. Output formatting stays with the caller.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoints;
use crate::client::{Client, ClientConfig, ClientError, ExtraHeader};
use crate::engine::{Engine, STOP_GRACE, Stop};
use crate::metrics::{Aggregator, Health, Snapshot};
use crate::mock::MockServer;
use crate::model::Aborted;
use crate::report::{RunMeta, RunResult};
use crate::scenario::{BaseUrl, HeaderSource, Scenario};
use crate::servermetrics::scrape::{Endpoint, Scrapes, ServerRead};
use crate::workload::Workload;

/// How often the aggregator publishes a Snapshot.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the embedded mock on 127.0.0.1: {0}")]
    Mock(std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read target.api_key_file {path}: {error}")]
    KeyFile { path: String, error: std::io::Error },
    #[error("target.api_key_file {0} is empty")]
    EmptyKeyFile(String),
    #[error("target.headers.{name:?}: ${var} is not set (or empty)")]
    HeaderEnv { name: String, var: String },
    #[error("{0}")]
    OpenFiles(String),
    #[error("cannot write --requests-out {path}: {error}")]
    RequestsOut { path: String, error: std::io::Error },
    #[error("{0}")]
    ServerMetrics(String),
}

impl RunError {
    /// The scenario, its files or its environment are at fault, not the run: exit 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RunError::HeaderEnv { .. }
                | RunError::KeyFile { .. }
                | RunError::EmptyKeyFile(_)
                | RunError::Client(ClientError::BadHeader { .. })
                | RunError::ServerMetrics(_)
        )
    }
}

/// Receives notes for the user (key missing, stop requested), one line each.
pub type Notes = Arc<dyn Fn(&str) + Send + Sync>;

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
    let engine = Engine::new(scenario.clone(), workload, client, events, stop.clone());
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
    let view = opts.watcher.map(|w| w(snapshots, stop.clone()));
    let end = engine.run().await;
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
    };
    let result = RunResult::build(&scenario, &stages, meta);
    drop(target);
    Ok(RunOutcome { result, interrupted: end.interrupted, aborted: end.aborted })
}

/// Where the requests go: the embedded mock (started here, kept running while the
/// target lives) or the scenario's URL, with the API key read for it.
struct Target {
    mock: Option<MockServer>,
    base_url: url::Url,
    api_key: Option<String>,
}

impl Target {
    fn open(scenario: &Scenario, notes: &Notes) -> Result<Target, RunError> {
        match &scenario.target.base_url {
            // The mock needs no key, so none is read or sent. It counts, caches and
            // answers in the scenario's tokenizer, as a server serving that model would.
            BaseUrl::Mock => {
                let at = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                let mock = MockServer::start_with_tokenizer(scenario.mock.clone(), at, scenario.prompts.tokenizer().clone())
                    .map_err(RunError::Mock)?;
                let base_url = url::Url::parse(&mock.base_url()).expect("mock URL parses");
                Ok(Target { mock: Some(mock), base_url, api_key: None })
            }
            BaseUrl::Url(u) => {
                let api_key = match &scenario.target.api_key_file {
                    Some(path) => Some(read_key_file(path)?),
                    None => std::env::var(&scenario.target.api_key_env).ok().filter(|k| !k.is_empty()),
                };
                let own_auth = scenario.target.headers.iter().any(|h| h.name.eq_ignore_ascii_case("authorization"));
                if api_key.is_none() && !own_auth {
                    let var = &scenario.target.api_key_env;
                    notes(&format!("note: ${var} is not set; sending requests without an Authorization header"));
                }
                Ok(Target { mock: None, base_url: u.clone(), api_key })
            }
        }
    }
}

/// The client for `target`, its pool sized for the run's most requests in flight
/// (the open-file limit raised for them first).
fn client(scenario: &Scenario, target: &Target, headers: Vec<ExtraHeader>, texts_out: bool) -> Result<Client, RunError> {
    let max_concurrency =
        scenario.stages.iter().map(|s| s.load.concurrency()).chain(scenario.auto_sweep_max_concurrency()).max().unwrap_or(1);
    // Each connection is a file descriptor (and its other end too, with the mock here).
    crate::limits::ensure(crate::limits::needed(u64::from(max_concurrency), target.mock.is_some())).map_err(RunError::OpenFiles)?;
    Ok(Client::new(config(scenario, target, headers, texts_out, max_concurrency as usize))?)
}

/// What a client of `target` is: its key and headers, timeouts, TLS, the stream asked.
fn config(scenario: &Scenario, target: &Target, headers: Vec<ExtraHeader>, texts_out: bool, pool_size: usize) -> ClientConfig {
    let t = &scenario.target;
    ClientConfig {
        base_url: target.base_url.clone(),
        api: t.api,
        api_key: target.api_key.clone(),
        // Names the key's source in the one message about a malformed key.
        api_key_env: match &t.api_key_file {
            Some(path) => format!("the file {}", path.display()),
            None => format!("${}", t.api_key_env),
        },
        timeout: t.timeout,
        connect_timeout: t.connect_timeout,
        idle_timeout: t.idle_timeout,
        insecure: t.insecure,
        pool_size,
        stream: t.stream,
        keep_content: scenario.check.is_some() || scenario.conversation.is_some(),
        texts_out,
        headers,
        // The mock counts in the scenario's tokenizer: there, it is the model's.
        tokenizer: match target.mock {
            Some(_) => scenario.prompts.tokenizer().clone().as_the_models(),
            None => scenario.prompts.tokenizer().clone(),
        },
        body_budget: crate::client::BODY_BUDGET_BYTES,
    }
}

/// The longest a tokenize call may take: a count is quick, even of a long prompt (and a
/// server that does not answer must not hold the run back long).
const TOKENIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// The target server's own tokenizer (`tokenizer = "server"` or `"auto"`), found through
/// its tokenize endpoint and called with the target's key and headers. Err: why not,
/// in one line.
pub fn server_tokenizer(scenario: &Scenario) -> Result<crate::workload::Tokenizer, String> {
    let headers = extra_headers(scenario).map_err(|e| e.to_string())?;
    let quiet: Notes = Arc::new(|_| {});
    let target = Target::open(scenario, &quiet).map_err(|e| e.to_string())?;
    let mut cfg = config(scenario, &target, headers, false, 1);
    cfg.timeout = cfg.timeout.min(TOKENIZE_TIMEOUT);
    let endpoint = crate::client::tokenize::Endpoint::find(cfg, &scenario.target.model)?;
    Ok(crate::workload::Tokenizer::server(Box::new(endpoint)))
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

/// The server's metrics endpoints to scrape, and a note when none was found: those
/// named, each checked once (one that does not answer in the Prometheus text format is
/// refused, before any request); else the target's `/metrics`, used when it answers
/// with a server's names (the mock's too). Only the first shard scrapes, so a merge
/// carries the server's series once.
async fn server_endpoints(
    scenario: &Scenario,
    flags: &[url::Url],
    target: &Target,
    notes: &Notes,
) -> Result<(Vec<Endpoint>, Option<String>), RunError> {
    let config = &scenario.server_metrics;
    if scenario.shard.index != 0 || (flags.is_empty() && config.endpoints.is_empty() && !config.probe) {
        return Ok((Vec::new(), None));
    }
    let insecure = scenario.target.insecure;
    if flags.is_empty() && config.endpoints.is_empty() {
        return Ok(match crate::servermetrics::scrape::probe(&target.base_url, insecure).await {
            Ok(e) => (vec![e], None),
            Err(why) => {
                let note = format!("no server metrics found ({why})");
                notes(&format!("note: {note}"));
                (Vec::new(), Some(note))
            }
        });
    }
    // The scenario's, then the flags' (named after them).
    let mut named = Vec::new();
    for (i, e) in config.endpoints.iter().enumerate() {
        let headers = headers_of(&e.headers, false)?;
        named.push((
            format!("server_metrics.endpoints[{i}]"),
            Endpoint { name: e.name.clone(), url: e.url.clone(), interval: e.interval, headers },
        ));
    }
    for url in flags {
        let name = match named.len() {
            0 if flags.len() == 1 => "server".to_string(),
            n => format!("server{}", n + 1),
        };
        named.push((
            "--server-metrics".to_string(),
            Endpoint { name, url: url.clone(), interval: Duration::from_secs(1), headers: Vec::new() },
        ));
    }
    let mut out = Vec::new();
    for (from, e) in named {
        let checked = crate::servermetrics::scrape::check(e, insecure).await;
        out.push(checked.map_err(|why| RunError::ServerMetrics(format!("{from} {why}")))?);
    }
    Ok((out, None))
}

/// `[target] headers` with their values: literals as written, variables read now (for
/// the mock, which needs no secret, none is read or sent). An unset variable is an error
/// before any request.
fn extra_headers(scenario: &Scenario) -> Result<Vec<ExtraHeader>, RunError> {
    headers_of(&scenario.target.headers, scenario.target.base_url == BaseUrl::Mock)
}

/// Headers with their values, variables read now (skipped for the mock, when `mock`).
fn headers_of(headers: &[crate::scenario::Header], mock: bool) -> Result<Vec<ExtraHeader>, RunError> {
    let mut out = Vec::new();
    for h in headers {
        let (value, secret_from) = match &h.value {
            HeaderSource::Literal(v) => (v.clone(), None),
            HeaderSource::Env(_) if mock => continue,
            HeaderSource::Env(var) => match std::env::var(var).ok().filter(|v| !v.is_empty()) {
                Some(v) => (v, Some(format!("${var}"))),
                None => return Err(RunError::HeaderEnv { name: h.name.clone(), var: var.clone() }),
            },
        };
        out.push(ExtraHeader { name: h.name.clone(), value, secret_from });
    }
    Ok(out)
}

/// The key in `path`, surrounding whitespace (a trailing newline) removed. Errors name
/// the file, never its content.
fn read_key_file(path: &std::path::Path) -> Result<String, RunError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| RunError::KeyFile { path: shown.clone(), error })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(RunError::EmptyKeyFile(shown));
    }
    Ok(key.to_string())
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
