//! Command-line definitions (clap) only; dispatch lives in main.rs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::compare::Gate;
use crate::exit;
use crate::mock::LatencyCurve;
use crate::mock::config::{MockConfig, StreamEnd, parse_error_flag};
use crate::scenario::{MAX_ATTEMPTS, MAX_DURATION, Overrides};

/// The APIs `--api` takes, as `target.api` names them.
const API_NAMES: [&str; 6] = ["chat", "completions", "embeddings", "rerank", "responses", "messages"];
#[derive(Debug, Parser)]
#[command(name = "llmload", version, about = "Load tester for OpenAI-compatible LLM APIs", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and print the comparison table.
    #[command(after_help = exit::help("run"))]
    Run(Box<RunArgs>),
    /// Check scenario files and explain every problem found.
    #[command(after_help = exit::help("validate"))]
    Validate(ValidateArgs),
    /// Serve the OpenAI-compatible mock for other clients.
    #[command(after_help = exit::help("mock"))]
    Mock(Box<MockArgs>),
    /// Write a commented starter scenario that runs on the embedded mock.
    #[command(after_help = exit::help("init"))]
    Init(InitArgs),
    /// Compare a run with a baseline (or several) stage by stage, and gate on changes.
    #[command(after_help = exit::help("compare"))]
    Compare(CompareArgs),
    /// Draw results as one self-contained HTML page of charts (opens offline).
    #[command(after_help = exit::help("report"))]
    Report(ReportArgs),
    /// Merge the results of a run's shards (`run --shard I/N`) into one, exactly.
    #[command(after_help = exit::help("merge"))]
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Every shard's result file (shard-*.json).
    #[arg(value_name = "SHARD.json", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// Where the merged result goes (written whole, or not at all).
    #[arg(short = 'o', long = "output", value_name = "PATH", required = true)]
    pub output: PathBuf,
    /// How the table of the merged result is printed.
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::report::Format,
    /// Print each figure with its confidence interval, formed from the merged seconds.
    #[arg(long)]
    pub ci: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Result files; the first is the baseline the others are laid over and compared with.
    #[arg(value_name = "RESULT", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// Where the page goes.
    #[arg(short = 'o', long = "output", value_name = "PATH", default_value = "report.html")]
    pub output: PathBuf,
    /// A run's `--requests-out` file, for TTFT against input length: give one per result,
    /// in the results' order (the nth goes with the nth result).
    #[arg(long = "requests", value_name = "FILE.jsonl")]
    pub requests: Vec<PathBuf>,
    /// Gates shown against the first run, as `compare --fail-on` takes them.
    #[command(flatten)]
    pub gates: GateArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASE.json NEW.json; or only NEW.json with --base.
    #[arg(value_name = "RESULT", num_args = 1..=2, required = true)]
    pub files: Vec<PathBuf>,
    /// A baseline result; give several (runs of the same scenario) to measure run-to-run noise.
    #[arg(long = "base", value_name = "BASE.json")]
    pub bases: Vec<PathBuf>,
    #[command(flatten)]
    pub gates: GateArgs,
    /// How the table is printed.
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::report::Format,
}

/// `--fail-on` and `--min-effect`, for `compare` and `report` alike: parsed and
/// checked here, once, so a bad one is refused (exit 2) before any file is read.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Fail (`compare`: exit 3) when a metric moves further than this from the baseline,
    /// in every matched stage: p99_ms:+10%, ok_rps:-5%, ttft_p99_ms:+50ms, error_rate:+0.01.
    /// A stage cut short on either side (interrupted, aborted, a checkpoint's) is not
    /// comparable: its gates trip, saying why, as one whose metric was not measured.
    #[arg(long = "fail-on", value_name = "GATE", value_parser = Gate::parse)]
    pub fail_on: Vec<Gate>,
    /// The smallest change, in % of the baseline, that is called beyond noise.
    #[arg(long, value_name = "PERCENT", default_value = "5", value_parser = min_effect, allow_negative_numbers = true)]
    pub min_effect: f64,
}

impl GateArgs {
    /// `--min-effect` as a fraction.
    pub fn min_effect(&self) -> f64 {
        self.min_effect / 100.0
    }
}

fn min_effect(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("must be a percentage ≥ 0, got {text}")),
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML). Without one, the quick-run flags (--base-url, --model,
    /// --concurrency or --rate, …) make the scenario.
    pub scenario: Option<PathBuf>,
    /// No dashboard: progress on stderr (when it is a terminal), table at the end.
    #[arg(long)]
    pub headless: bool,
    /// Write the result JSON to PATH, or to stdout with `-` (the table then goes to stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// How the table at the end is printed: aligned, Markdown (to paste into a PR) or CSV (the table alone).
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::report::Format,
    /// Print each figure of the table with its 95 % confidence interval (`181 ms ±3`; the result always has them).
    #[arg(long)]
    pub ci: bool,
    /// Write the verdict as JUnit XML to PATH: a test case per threshold and per stage.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Send requests to this API root instead of the scenario's, e.g. http://127.0.0.1:8000/v1.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Model name to send instead of the scenario's target.model.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Environment variable holding the API key (default: the scenario's api_key_env).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Read the API key from this file instead of an environment variable.
    #[arg(long, value_name = "PATH", conflicts_with = "api_key_env")]
    pub api_key_file: Option<PathBuf>,
    /// Do not verify TLS certificates. Anyone on the path can then read the key.
    #[arg(long)]
    pub insecure: bool,
    /// Whole-request timeout, e.g. 30s (default: the scenario's target.timeout).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Connect timeout, e.g. 5s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub connect_timeout: Option<Duration>,
    /// Longest wait between two chunks once the first token (stream) or body bytes
    /// arrived, e.g. 10s; the wait for the first token is bounded by --timeout only.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub idle_timeout: Option<Duration>,
    /// Client-side limit for every stage: requests per minute.
    #[arg(long, value_name = "N", value_parser = per_minute)]
    pub rpm: Option<f64>,
    /// Client-side limit for every stage: tokens per minute (prompt + max_tokens).
    #[arg(long, value_name = "N", value_parser = per_minute)]
    pub tpm: Option<f64>,
    /// Attempts per request for every stage (1 = no retries), with the scenario's
    /// [retry] policy or its defaults.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_ATTEMPTS as i64))]
    pub max_attempts: Option<u32>,
    /// Never draw the progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Write one JSON line per finished request to PATH, as each ends (see docs/metrics.md).
    #[arg(long, value_name = "PATH.jsonl")]
    pub requests_out: Option<PathBuf>,
    /// With --requests-out: add each request's prompt and reply text (may hold user data).
    #[arg(long, requires = "requests_out")]
    pub requests_out_text: bool,
    /// Run shard I of N: its share of every stage, to be merged with the others
    /// (`llmload merge`). See docs/scale-out.md.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// The number of shards, this one's index read from JOB_COMPLETION_INDEX (a
    /// Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (a Slurm job array).
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
    /// Run the whole scenario K times (fresh connections; the embedded mock restarted)
    /// and add every repetition's figures and their spread to the result; the exit
    /// code is the worst repetition's.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000), conflicts_with_all = ["shard", "shards"])]
    pub repeat: Option<u32>,
    /// With --repeat: wait this long between repetitions (e.g. for a server to cool).
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "repeat")]
    pub repeat_pause: Option<Duration>,
    /// Start the first stage at this wall-clock moment, the same for every shard:
    /// RFC 3339 (2026-12-01T10:00:00Z), or +30s from now (resolve it once, for all).
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// The id the shards of one run record (default: from the scenario's sha256, the
    /// shard count and --start-at).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Read the server's own metrics (the Prometheus text format: vLLM, SGLang, TGI,
    /// llama.cpp, Triton, DCGM) from URL every second while the run goes on; repeatable.
    /// The target's own /metrics is read too when it answers (the first shard only).
    #[arg(long = "server-metrics", value_name = "URL")]
    pub server_metrics: Vec<String>,
    /// Empty the server's prefix cache before each stage, so no stage inherits another's:
    /// vLLM's POST /reset_prefix_cache (served with VLLM_SERVER_DEV_MODE=1) or SGLang's
    /// POST /flush_cache, or POST to PATH on the target's host. The result says, per
    /// stage, whether it worked.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "", require_equals = true)]
    pub reset_prefix_cache: Option<String>,
    /// Serve live figures for Prometheus at http://ADDR/metrics while the run goes on,
    /// e.g. 127.0.0.1:9464 (0.0.0.0:9464 in a pod).
    #[arg(long, value_name = "ADDR")]
    pub prometheus_listen: Option<std::net::SocketAddr>,
    /// Keep the endpoint up this long after the run, for a last scrape (e.g. 15s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s", requires = "prometheus_listen")]
    pub prometheus_linger: std::time::Duration,
    /// Without a scenario file: stages of these concurrencies, e.g. 1,10,20,50.
    #[arg(long, value_name = "N,…", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Vec<u32>,
    /// Without a scenario file: open-loop stages of these arrival rates per second, e.g. 5,10.
    #[arg(long, value_name = "R,…", value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// Without a scenario file: measured requests per stage (default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Without a scenario file: how long each stage sends, e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    pub duration: Option<String>,
    /// Without a scenario file: stream the replies (TTFT, inter-token latency).
    #[arg(long)]
    pub stream: bool,
    /// Without a scenario file: the API spoken — chat, completions, embeddings (the
    /// prompt as the input), rerank (the prompt as the query, against 16 synthetic
    /// documents of 128 tokens), responses (OpenAI's Responses API) or messages
    /// (Anthropic's, max_tokens 1024 unless --max-tokens).
    #[arg(long, value_name = "API", value_parser = API_NAMES)]
    pub api: Option<String>,
    /// Without a scenario file: the prompt every request sends.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Without a scenario file: synthetic prompts of drawn lengths, e.g. "N(480,240)/(300,150)".
    #[arg(long, value_name = "SPEC")]
    pub synthetic: Option<String>,
    /// Without a scenario file: max_tokens of every request.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Without a scenario file: print the scenario the flags make, as TOML, and exit.
    #[arg(long)]
    pub print_scenario: bool,
    /// The scenario the quick-run flags made, kept to be read again (with the server's
    /// tokenizer) after the flags that made it are cleared.
    #[arg(skip)]
    pub quick_scenario: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it (not over an existing file).
    #[arg(default_value = "llmload.toml")]
    pub path: PathBuf,
    /// A streaming starter: TTFT and inter-token latency.
    #[arg(long)]
    pub stream: bool,
    /// A starter speaking this API: chat (the default), completions, embeddings, rerank,
    /// responses or messages.
    #[arg(long, value_name = "API", value_parser = API_NAMES)]
    pub api: Option<String>,
}

impl RunArgs {
    /// The first quick-run flag given, if any: they make a scenario, so go with none.
    pub fn quick_flag(&self) -> Option<&'static str> {
        [
            (!self.concurrency.is_empty(), "--concurrency"),
            (!self.rate.is_empty(), "--rate"),
            (self.requests.is_some(), "--requests"),
            (self.duration.is_some(), "--duration"),
            (self.stream, "--stream"),
            (self.api.is_some(), "--api"),
            (self.prompt.is_some(), "--prompt"),
            (self.synthetic.is_some(), "--synthetic"),
            (self.max_tokens.is_some(), "--max-tokens"),
            (self.print_scenario, "--print-scenario"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The quick run the flags describe, when no scenario file is given.
    pub fn quick(&self) -> Result<crate::quick::Quick, String> {
        let base_url =
            self.base_url.clone().ok_or("give a scenario file, or --base-url URL (\"mock\" for the embedded mock) and --model")?;
        Ok(crate::quick::Quick {
            base_url,
            model: self.model.clone(),
            concurrency: self.concurrency.clone(),
            rate: self.rate.clone(),
            requests: self.requests,
            duration: self.duration.clone(),
            stream: self.stream,
            api: self.api.clone(),
            prompt: self.prompt.clone(),
            synthetic: self.synthetic.clone(),
            max_tokens: self.max_tokens,
        })
    }

    /// What the flags change in the scenario.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            api_key_file: self.api_key_file.clone(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            insecure: self.insecure,
            rpm: self.rpm,
            tpm: self.tpm,
            max_attempts: self.max_attempts,
        }
    }
}

/// A duration as written, checked.
fn duration_text(text: &str) -> Result<String, String> {
    duration(text).map(|_| text.trim().to_string())
}

/// A positive duration such as "30s" or "500ms".
fn duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) if d > MAX_DURATION => Err("at most 365 days".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (write e.g. \"30s\" or \"500ms\")")),
    }
}

/// A rate per minute: positive, at most 1e9.
fn per_minute(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("expected a positive number per minute (at most 1e9), got {text:?}")),
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on. Keep it on loopback unless you mean to share it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Base time every request spends in the server, ms.
    #[arg(long, default_value_t = MockConfig::default().base_latency_ms)]
    pub base_latency_ms: f64,
    /// Extra ms per request in flight.
    #[arg(long, default_value_t = MockConfig::default().per_inflight_ms)]
    pub per_inflight_ms: f64,
    /// Time before the first token by requests in flight, replacing --base-latency-ms:
    /// IN_FLIGHT:MS points, interpolated, e.g. 1:82,10:110,50:180.
    #[arg(long, value_name = "POINTS")]
    pub latency_curve: Option<LatencyCurve>,
    /// Prefill time, ms per 1,000 prompt tokens not in the prefix cache.
    #[arg(long, default_value_t = 0.0)]
    pub prefill_ms_per_1k_tokens: f64,
    /// Prefix cache size, in blocks of 16 prompt tokens (0: no cache).
    #[arg(long, default_value_t = MockConfig::default().prefix_cache_blocks)]
    pub prefix_cache_blocks: u32,
    /// Uniform ± jitter on the base time, ms.
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// Seed for jitter and injected errors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time between two tokens of a completion, ms.
    #[arg(long, default_value_t = 0.0)]
    pub inter_token_ms: f64,
    /// Completion length in tokens.
    #[arg(long, default_value_t = MockConfig::default().output_tokens)]
    pub output_tokens: u32,
    /// Draw each completion's length from output-tokens..=this.
    #[arg(long)]
    pub output_tokens_max: Option<u32>,
    /// Fraction of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of replies that are JSON objects (for response checks).
    #[arg(long, default_value_t = 0.0)]
    pub json_rate: f64,
    /// Fraction of requests answered with HTTP STATUS (400-599), e.g. 503=0.05. Repeatable.
    #[arg(long = "error", value_name = "STATUS=FRACTION", value_parser = parse_error_flag)]
    pub errors: Vec<(String, f64)>,
    /// Injected 429s and 503s carry Retry-After and retry-after-ms for this many ms.
    #[arg(long, value_name = "MS")]
    pub retry_after_ms: Option<f64>,
    /// Server-side limit, requests per minute; over it, 429 at once.
    #[arg(long, value_name = "RPM")]
    pub rate_limit_rpm: Option<f64>,
    /// Requests the limit lets through at once (default: one second's worth).
    #[arg(long, value_name = "N")]
    pub rate_limit_burst: Option<f64>,
    /// Fraction of 200s whose body is not valid JSON.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Fraction of requests whose connection drops mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub disconnect_rate: f64,
    /// Fraction of requests that stall for --stall-ms (streams: after the first token).
    #[arg(long, default_value_t = 0.0)]
    pub stall_rate: f64,
    /// Length of a stall, ms.
    #[arg(long, default_value_t = MockConfig::default().stall_ms)]
    pub stall_ms: f64,
    /// A cold start: the first token waits up to this many ms more at the start,
    /// falling linearly to none over --cold-s seconds.
    #[arg(long, default_value_t = 0.0)]
    pub cold_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    pub cold_s: f64,
    /// Fraction of requests that drip: tokens, or 16-byte body pieces, --drip-ms apart.
    #[arg(long, default_value_t = 0.0)]
    pub drip_rate: f64,
    /// Time between two drips, ms.
    #[arg(long, default_value_t = MockConfig::default().drip_ms)]
    pub drip_ms: f64,
    /// Most requests served at once; the rest queue in arrival order (a server's capacity).
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// A KV-cache budget in tokens: a request holds its prompt and reply while it runs;
    /// one that does not fit waits in arrival order (a memory-bound server's knee).
    #[arg(long, value_name = "TOKENS")]
    pub kv_cache_tokens: Option<u64>,
    /// Each token comes this many ms later for every other request running: a decode
    /// step that grows with the batch (a compute-bound server's knee).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub batch_decode_ms: f64,
    /// Request number N (from 0) stalls --stall-ms, once.
    #[arg(long, value_name = "N")]
    pub stall_once_at: Option<u64>,
    /// Chat replies think first: this many reasoning tokens before the answer.
    #[arg(long, default_value_t = 0)]
    pub reasoning_tokens: u32,
    /// A request that offers tools (under tool_choice "auto") gets a call this often, 0 to 1.
    #[arg(long, default_value_t = 1.0)]
    pub tool_call_rate: f64,
    /// Refuse requests that carry images with a 400, as a model without vision does.
    #[arg(long)]
    pub no_vision: bool,
    /// Embeddings: each vector's length when a request asks for none.
    #[arg(long, default_value_t = crate::mock::config::DEFAULT_EMBEDDING_DIMS)]
    pub embedding_dims: u32,
    /// How a stream ends: done (finish chunk and [DONE]), finish (no [DONE]) or bare (neither).
    #[arg(long, default_value = "done", value_name = "END")]
    pub stream_end: StreamEnd,
}

impl MockArgs {
    pub fn config(&self) -> MockConfig {
        MockConfig {
            base_latency_ms: self.base_latency_ms,
            latency_curve: self.latency_curve.clone(),
            prefill_ms_per_1k_tokens: self.prefill_ms_per_1k_tokens,
            prefix_cache_blocks: self.prefix_cache_blocks,
            per_inflight_ms: self.per_inflight_ms,
            jitter_ms: self.jitter_ms,
            seed: self.seed,
            inter_token_ms: self.inter_token_ms,
            batch_decode_ms: self.batch_decode_ms,
            output_tokens: self.output_tokens,
            output_tokens_max: self.output_tokens_max,
            error_rate: self.error_rate,
            json_rate: self.json_rate,
            // A repeated status: the last one wins.
            errors: self.errors.iter().cloned().collect(),
            retry_after_ms: self.retry_after_ms,
            rate_limit_rpm: self.rate_limit_rpm,
            rate_limit_burst: self.rate_limit_burst,
            malformed_rate: self.malformed_rate,
            disconnect_rate: self.disconnect_rate,
            stall_rate: self.stall_rate,
            stall_ms: self.stall_ms,
            cold_ms: self.cold_ms,
            cold_s: self.cold_s,
            drip_rate: self.drip_rate,
            drip_ms: self.drip_ms,
            capacity: self.capacity,
            kv_cache_tokens: self.kv_cache_tokens,
            stall_once_at: self.stall_once_at,
            reasoning_tokens: self.reasoning_tokens,
            embedding_dims: self.embedding_dims,
            tool_call_rate: self.tool_call_rate,
            vision: !self.no_vision,
            stream_end: self.stream_end,
        }
    }
}
