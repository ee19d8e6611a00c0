//! The result contract: RunResult and everything in it, serialized as the versioned
//! JSON that CI diffs and gates on (docs/result.schema.json); the definitions of its
//! figures that travel with it are `definitions`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{LatencySummary, LengthSummary, SecondStats};

/// Bumped on any incompatible change to the JSON; see docs/result.schema.json.
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    /// The scenario as resolved (defaults filled in). Holds no secret: only the name of
    /// the key's environment variable.
    pub scenario: serde_json::Value,
    pub target: TargetInfo,
    /// RFC 3339, UTC.
    /// The machine that ran it (`uname -n`), and the command line as given (URLs'
    /// credentials and queries redacted).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub command_line: Vec<String>,
    /// sha256 of the scenario file as read; null for a scenario not read from a file.
    #[serde(default)]
    pub scenario_sha256: Option<String>,
    /// The id the shards of one run share (`--run-id`, else derived from the scenario's
    /// sha256, the shard count and `--start-at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Shard I of N, when the run was split (`--shard`, a Job index, an array task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::model::Shard>,
    /// `--start-at` (RFC 3339, µs), and how late after it the first stage started, ms:
    /// across shards, a spread here is the clocks' and the launch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lag_ms: Option<f64>,
    /// `llmload merge`: the number of shards this result adds up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_shards: Option<u32>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    /// True when the run was stopped before all stages finished.
    pub interrupted: bool,
    /// False in a checkpoint written while the run went on (the stage in progress as it
    /// stood); true in the final result. Absent from results written before it: true.
    #[serde(default = "complete")]
    pub complete: bool,
    /// Set when `abort_on_error_rate` ended the run after the stage it names.
    pub aborted: Option<AbortedInfo>,
    pub stages: Vec<StageResult>,
    /// With `[sweep]`: the knee and the SLO's limit, as fields and in words.
    pub sweep: Option<SweepResult>,
    /// Sum of the stages' costs; null when no stage had a price.
    pub cost: Option<Cost>,
    /// How each figure is defined, so results compare across tools.
    pub definitions: BTreeMap<String, String>,
    /// llmload's own health over the run: whether its figures may carry client delay.
    pub generator: Option<GeneratorInfo>,
    /// The server's own metrics, scraped while the run went on (its series on the wall
    /// clock), or why none were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<crate::servermetrics::summary::ServerMetrics>,
    /// Thresholds judged and stages without success: what the exit code says. Absent
    /// from results written before it.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// `--repeat K`: every repetition's figures and their spread (`stages` above are
    /// the first repetition's, `verdict` the worst one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<super::repeats::Repeats>,
}

/// Whether the run passed, and why not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// Every threshold held and every stage had a successful request.
    pub passed: bool,
    pub thresholds: Vec<ThresholdResult>,
    /// Stages (sweep points aside) that ended without one successful request.
    pub stages_without_success: Vec<String>,
}

/// One threshold of one stage, with what was measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub stage: String,
    pub metric: String,
    /// As written: "p99_ms < 500".
    pub threshold: String,
    /// None when the stage has no such figure (e.g. TTFT of a stage that did not
    /// stream, or latency with no successful request): the threshold then fails.
    pub measured: Option<f64>,
    pub passed: bool,
}

/// The generator watching itself (docs/metrics.md, "The generator's health").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorInfo {
    /// Cores llmload may use (its affinity and CPU quota).
    pub cores: usize,
    /// Cores used: on average over the run, and in its busiest whole second (the
    /// embedded mock's work included when it runs in the process).
    pub cpu_cores_mean: f64,
    pub cpu_cores_busiest_second: f64,
    /// The machine's busy share (0–1, all processes) in its busiest second; null where
    /// the system does not say.
    pub machine_busy_busiest_second: Option<f64>,
    /// How late a 10 ms ticker on the request runtime woke.
    pub scheduling_delay_ms: Delay,
    pub ticks: u64,
    /// llmload itself was near saturation: latencies above p99 may include client delay.
    pub near_saturation: bool,
    /// Why, in one line, when it was.
    pub warning: Option<String>,
    /// When other processes kept the machine busy while llmload was not near its limit:
    /// a line saying the machine was shared, by how much, and llmload's own delay.
    #[serde(default)]
    pub shared: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delay {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbortedInfo {
    pub stage: String,
    /// The error rate judged, over `requests` finished requests of the stage.
    pub error_rate: f64,
    pub requests: u64,
    /// Judged mid-stage (the stage was cut short) rather than at its end.
    pub mid_stage: bool,
    pub threshold: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// "mock" or the API root with credentials and query removed.
    pub base_url: String,
    /// The endpoint spoken.
    #[serde(default)]
    pub api: crate::model::Api,
    /// The address the embedded mock listened on, when used.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mock_url: Option<String>,
    pub model: String,
    pub stream: bool,
    pub timeout_s: f64,
    pub connect_timeout_s: f64,
    pub idle_timeout_s: Option<f64>,
    /// TLS certificates were not verified (`--insecure`).
    pub insecure: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageResult {
    pub index: usize,
    pub name: String,
    /// "closed": a fixed number of requests in flight.
    pub kind: String,
    pub concurrency: u32,
    pub model: String,
    pub planned: Planned,
    pub warmup_requests: u64,
    /// Requests sent during the cooldown (after the window, while its last requests
    /// ended): outside every figure, like warmup.
    pub cooldown_requests: u64,
    pub interrupted: bool,
    /// Cut short by `abort_on_error_rate`.
    pub aborted: bool,
    pub wall_time_s: f64,
    /// The measured window on the wall clock, RFC 3339 (µs): its opening, and the
    /// opening plus `wall_time_s`. Null for a stage whose window never opened.
    #[serde(default)]
    pub window_start: Option<String>,
    #[serde(default)]
    pub window_end: Option<String>,
    /// The window's opening in seconds since the stage started, on the clock of
    /// `series` (what came before was warmup or ramp); null where it never opened.
    #[serde(default)]
    pub window_offset_s: Option<f64>,
    pub requests: Requests,
    pub error_rate: f64,
    pub failures: BTreeMap<String, u64>,
    /// First server or transport message seen per failure kind.
    pub failure_examples: BTreeMap<String, String>,
    pub status_codes: BTreeMap<String, u64>,
    /// End-to-end latency of successful requests; null when none succeeded.
    pub latency_ms: Option<LatencySummary>,
    /// Streams: request sent → first content chunk, successful requests; else null.
    pub ttft_ms: Option<LatencySummary>,
    /// Streams: per-request inter-token latency (e2e − TTFT) / (output tokens − 1).
    pub itl_ms: Option<LatencySummary>,
    /// Streams: gaps between consecutive content chunks.
    pub chunk_gap_ms: Option<LatencySummary>,
    /// Streams that failed after a first token: their TTFT, kept apart.
    pub partial_ttft_ms: Option<LatencySummary>,
    /// Streams: request sent → first answer (`content`) token; equal to `ttft_ms` for a
    /// model that does not reason aloud.
    #[serde(default)]
    pub ttft_answer_ms: Option<LatencySummary>,
    /// Streams that reasoned: first reasoning token → first answer token; else null.
    #[serde(default)]
    pub thinking_ms: Option<LatencySummary>,
    /// Successful streams that ended after a `finish_reason` without `data: [DONE]`.
    #[serde(default)]
    pub streams_without_done: u64,
    /// Requests sent again, once, on a new connection: the reused connection they first
    /// went out on ended before any byte of the response came. Not failures.
    #[serde(default)]
    pub reconnects: u64,
    /// Successful replies by their `finish_reason`.
    #[serde(default)]
    pub finish_reasons: crate::model::FinishReasons,
    pub throughput: Throughput,
    pub tokens: Tokens,
    /// Embeddings' inputs or rerank's documents (`target.api` says which): absent for
    /// the APIs that generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<super::ItemsResult>,
    /// The tool calls replies made: absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<super::ToolCallsResult>,
    /// The images requests carried: absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<super::images::ImagesResult>,
    /// With `[conversation]`: the stage's sessions and its figures by turn.
    #[serde(default)]
    pub sessions: Option<super::sessions::Sessions>,
    /// A task stage's tasks: absent for other stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<super::tasks::Tasks>,
    /// With `[slo]`: successful requests meeting every objective, and per second.
    pub goodput: Option<Goodput>,
    /// With `[check]`: response checks passed and failed by reason.
    pub checks: Option<Checks>,
    /// The server's own figures over the stage's window, per endpoint scraped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<crate::servermetrics::summary::StageServer>,
    /// With `reset_prefix_cache`: whether the server's prefix cache was emptied before
    /// the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_reset: Option<crate::servermetrics::reset::ResetOutcome>,
    /// Token cost at the scenario's prices; null when the model has no price.
    pub cost: Option<Cost>,
    pub bytes_received: u64,
    /// Attempts and retries; every attempt's own latency is `attempt_latency_ms`.
    pub retries: Retries,
    /// Each attempt's own latency (failed attempts included); `latency_ms` counts a
    /// retried request from its first send to its final outcome.
    pub attempt_latency_ms: Option<LatencySummary>,
    /// With a client-side rate limit: requests held back and how long.
    pub rate_limiter: Option<RateLimiter>,
    /// Open-loop stages: the schedule and how well it was kept; null for closed loops.
    pub open_loop: Option<OpenLoop>,
    /// Per second since the stage started (warmup seconds included and marked).
    #[serde(default)]
    pub series: Vec<SecondStats>,
    pub histograms: super::dists::Histograms,
    /// Confidence intervals of its figures (docs/metrics.md); absent where nothing was
    /// measured, and in results before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<super::ci::StageCi>,
    /// A stage that ran `until` its figures were known: whether they were, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<super::ci::UntilResult>,
    /// `warmup = "auto"`: where the window opened, seconds since the stage started
    /// (every second before it was warmup), and how that was found, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_detected_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_said: Option<String>,
    /// `stop_on_saturation`: the window was ended because the server could not keep up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturated: Option<Saturated>,
}

/// An open-loop window ended early because its backlog grew without bound: a verdict
/// on the offered rate, not a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saturated {
    /// Seconds into the window when it became clear.
    pub after_s: f64,
    /// The fitted backlog (requests in flight plus arrivals overdue) and per-second
    /// e2e p50 at the first and the last second judged.
    pub backlog: [f64; 2],
    pub p50_ms: [f64; 2],
    pub said: String,
}

/// Below this share of its target rate, an open-loop stage is flagged.
pub const RATE_WARNING: f64 = 0.95;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenLoop {
    /// "constant", "poisson" or "gamma".
    pub arrival: String,
    pub target_rate: f64,
    /// Arrivals due per second of the schedule as drawn (the target for constant
    /// arrivals; random ones vary around it).
    pub scheduled_rate: f64,
    /// Requests sent per second, first dispatch to last.
    pub achieved_rate: f64,
    /// The schedule was not kept: over 5 % of the arrivals due were not sent, or sending
    /// ended over 5 % (and 50 ms) behind the schedule.
    pub below_target: bool,
    pub max_in_flight: u32,
    /// Arrivals due in the window that found every slot taken until it closed.
    pub not_sent: u64,
    /// First send − scheduled start, every request sent.
    pub schedule_lag_ms: Option<LatencySummary>,
    /// e2e of successful requests from their actual send (`latency_ms` counts from the
    /// scheduled start, so time waiting inside llmload is not hidden).
    pub latency_uncorrected_ms: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retries {
    /// Attempts sent for the stage's finished requests (requests + retries).
    pub attempts: u64,
    /// Retries sent, and by the failure that caused each.
    pub total: u64,
    pub by_cause: BTreeMap<String, u64>,
    /// Requests sent more than once; of those, the ones that ended ok.
    pub requests_retried: u64,
    pub recovered: u64,
    /// Retries that waited what the server's Retry-After asked.
    pub retry_after_honoured: u64,
    /// Retries the policy called for that a stop (Ctrl-C, SIGTERM) prevented.
    pub not_sent: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimiter {
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
    /// Requests the limiter held back, and each one's total wait.
    pub delayed: u64,
    pub wait_ms: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goodput {
    pub requests: u64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checks {
    pub passed: u64,
    pub failed: u64,
    /// failed / (passed + failed)
    pub invalid_rate: f64,
    pub failures: BTreeMap<String, u64>,
    /// Schema checks: failed replies by the rule the first violation broke (its path in
    /// the schema), at most 32 rules a stage (the rest as "other"; a merge adds them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_failures: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    pub currency: String,
    /// In `currency`.
    pub amount: f64,
    pub usd: f64,
    /// In `currency`, per 1,000 successful requests.
    pub per_1k_requests: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Planned {
    pub requests: Option<u64>,
    pub duration_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Requests {
    pub started: u64,
    pub ok: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub requests_per_s: f64,
    pub ok_per_s: f64,
    pub output_tokens_per_s: f64,
    /// Mean over successful requests of output tokens / e2e seconds, TTFT included
    /// (AIPerf's "E2E output token throughput").
    pub output_tokens_per_s_per_user: f64,
    /// Mean over successful streams of 1 / ITL: the decode speed one user sees once
    /// tokens flow (AIPerf's "output token throughput per user"); null without streams.
    #[serde(default)]
    pub output_tokens_per_s_per_user_itl: Option<f64>,
    /// Input (prompt) tokens of successful requests per second, and input + output.
    #[serde(default)]
    pub input_tokens_per_s: f64,
    #[serde(default)]
    pub total_tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// From the server's `usage`.
    pub prompt: u64,
    pub completion: u64,
    pub requests_with_usage: u64,
    /// Output tokens of successful requests: usage where sent, else counted here.
    pub output: u64,
    /// Prompt tokens of successful requests, on the same rule per request.
    pub input: u64,
    /// Counted here with o200k_base (streams always; other replies when usage is absent).
    pub client_prompt: u64,
    pub client_completion: u64,
    /// Requests where usage and the count here differ, of those where both exist
    /// (`*_compared`); null when none had both (a stream without usage, replies not
    /// counted here): not known, which 0 would hide as agreement.
    pub prompt_disagree: Option<u64>,
    pub completion_disagree: Option<u64>,
    #[serde(default)]
    pub prompt_compared: u64,
    #[serde(default)]
    pub completion_compared: u64,
    /// Of `output`, the reasoning's: `usage.completion_tokens_details.reasoning_tokens`
    /// where sent, else counted here from the reasoning text.
    #[serde(default)]
    pub reasoning: u64,
    /// Per successful request: tokens sent (by the counting tokenizer) and received
    /// (usage where sent, else counted here).
    #[serde(default)]
    pub input_length: Option<LengthSummary>,
    #[serde(default)]
    pub output_length: Option<LengthSummary>,
    /// When prompts ask for output lengths of their own: asked vs received.
    #[serde(default)]
    pub target_output: Option<TargetOutput>,
    /// When the server says `prompt_tokens_details.cached_tokens`: what its prefix
    /// cache held.
    #[serde(default)]
    pub cached: Option<Cached>,
    /// Successful requests by where their counts came from.
    #[serde(default)]
    pub source: CountSources,
}

/// Where the output and input counts of successful requests came from: the server's
/// `usage`, its tokenizer, the model's tokenizer here, an estimate in another model's,
/// or a stream's content chunks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountSources {
    pub output: crate::model::TokenSources,
    pub input: crate::model::TokenSources,
}

/// Prompt tokens the server's prefix cache held, over the requests whose usage said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub requests: u64,
    pub tokens: u64,
    /// Of those requests' prompt tokens.
    pub share: f64,
    /// Those requests' prompt tokens (the share's denominator), so shards merge exactly.
    #[serde(default)]
    pub of: u64,
}

/// Output lengths asked for (sent as each request's limit) and how replies met them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetOutput {
    pub target: LengthSummary,
    /// Mean output length of the replies to those requests.
    pub achieved_mean: f64,
    /// Replies that ended before their target, and their share.
    pub ended_short: u64,
    pub ended_short_share: f64,
    /// Of those replies, how many were judged by their `finish_reason` (`length` met the
    /// target, any other reason ended short); the others by their token count.
    #[serde(default)]
    pub judged_by_finish_reason: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResult {
    /// "concurrency" or "rate".
    pub kind: String,
    /// The points were chosen during the run (`concurrency = "auto"` or `rates = "auto"`).
    pub auto: bool,
    /// The points that ran to their end, in increasing load.
    pub points: Vec<SweepPoint>,
    /// Throughput must grow at least this fraction per doubling, else it has plateaued.
    pub knee_gain: f64,
    /// The smallest point from which throughput grows less than `knee_gain` per
    /// doubling at every later point; null while it still grows at the last point.
    pub knee: Option<Knee>,
    /// With `[slo]`: the points judged against it.
    pub slo: Option<SloVerdict>,
    /// The answer in words, as the table and the dashboard show it.
    pub summary: String,
    /// The `[[task]]` its points ran: load, throughput, p99 and SLO are then tasks'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub stage: String,
    /// Concurrency, or arrivals per second.
    pub load: f64,
    /// "list" (given in the file), or for an automatic sweep "ladder" (start, 2×, 4×,
    /// …) or "bisection" (between the SLO's last success and first failure).
    pub phase: String,
    /// Successful requests per second (a task sweep's answered tasks).
    pub throughput: f64,
    pub p99_ms: Option<f64>,
    /// With `[slo]`: share of the point's finished requests meeting every objective.
    pub slo_met: Option<f64>,
    /// Ended early at saturation (`stop_on_saturation`): over the limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saturated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knee {
    pub stage: String,
    pub load: f64,
    /// The highest throughput from the knee on: the plateau.
    pub throughput: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloVerdict {
    /// Share of requests that must meet every objective.
    pub quantile: f64,
    /// The objectives, in words.
    pub objectives: String,
    /// The last point of the unbroken run of points meeting it, from the first.
    pub largest_meeting: Option<String>,
    pub largest_meeting_load: Option<f64>,
    /// The first point that does not meet it.
    pub first_breaking: Option<String>,
    pub first_breaking_load: Option<f64>,
}

fn complete() -> bool {
    true
}
