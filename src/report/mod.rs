//! Results: the versioned JSON contract (RunResult) and the comparison table.

mod sweep;
mod table;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize};

pub use sweep::{Knee, SloVerdict, SweepPoint, SweepResult};
pub use table::{Columns, failure_notes, fmt_cost, fmt_ms, fmt_rate, fmt_secs, header, render_table, row};

use crate::metrics::{LatencySummary, StageStats};
use crate::mock::MockConfig;
use crate::scenario::{BaseUrl, Scenario};

/// Bumped on any incompatible change to the JSON; see docs/result.schema.json.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    /// The scenario as resolved (defaults filled in). Holds no secret: only the name of
    /// the key's environment variable.
    pub scenario: serde_json::Value,
    pub target: TargetInfo,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    /// True when the run was stopped before all stages finished.
    pub interrupted: bool,
    /// Set when `abort_on_error_rate` ended the run after the stage it names.
    pub aborted: Option<AbortedInfo>,
    pub stages: Vec<StageResult>,
    /// With `[sweep]`: the knee and the SLO's limit, as fields and in words.
    pub sweep: Option<SweepResult>,
    /// Sum of the stages' costs; null when no stage had a price.
    pub cost: Option<Cost>,
    /// How each figure is defined, so results compare across tools.
    pub definitions: BTreeMap<String, String>,
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
    pub throughput: Throughput,
    pub tokens: Tokens,
    /// With `[slo]`: successful requests meeting every objective, and per second.
    pub goodput: Option<Goodput>,
    /// With `[check]`: response checks passed and failed by reason.
    pub checks: Option<Checks>,
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
    pub series: Vec<crate::metrics::SecondStats>,
    pub histograms: Histograms,
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
}

impl Cost {
    /// `usd` shown in the scenario's currency, and per 1,000 of `ok` requests.
    fn new(pricing: &crate::cost::Pricing, usd: f64, ok: u64) -> Cost {
        let amount = pricing.in_currency(usd);
        let per_1k_requests = if ok > 0 { amount * 1000.0 / ok as f64 } else { 0.0 };
        Cost { currency: pricing.currency.clone(), amount, usd, per_1k_requests }
    }
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
    /// Mean over successful requests of output tokens / e2e seconds.
    pub output_tokens_per_s_per_user: f64,
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
    /// Requests where usage and the count here differ.
    pub prompt_disagree: u64,
    pub completion_disagree: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Histograms {
    /// e2e latency of successful requests, µs, HdrHistogram V2 encoding in base64:
    /// lossless, so results can be merged or re-quantiled later.
    pub e2e_us: String,
    /// TTFT and per-request ITL, same encoding; empty strings when not streamed.
    #[serde(default)]
    pub ttft_us: String,
    #[serde(default)]
    pub itl_us: String,
}

/// Scenario fields as recorded in the result.
#[derive(Serialize)]
struct ScenarioRecord<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    target: &'a crate::scenario::Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    mock: Option<&'a MockConfig>,
    prompts: &'a str,
    request: &'a crate::scenario::RequestParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    slo: Option<&'a crate::metrics::Slo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<serde_json::Value>,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    abort_on_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<&'a crate::scenario::Sweep>,
    stages: &'a [crate::scenario::Stage],
}

pub fn definitions() -> BTreeMap<String, String> {
    [
        ("latency_ms", "end-to-end latency of successful requests: request sent -> last byte of the response read, in ms"),
        ("wall_time_s", "measured window of a stage: first measured request sent -> last one finished (warmup excluded)"),
        ("throughput.requests_per_s", "finished requests (ok + failed) / wall_time_s"),
        ("throughput.ok_per_s", "successful requests / wall_time_s"),
        ("throughput.output_tokens_per_s", "tokens.output / wall_time_s"),
        ("error_rate", "failed / (ok + failed)"),
        ("requests", "started = ok + failed + cancelled once a stage ends"),
        (
            "percentiles",
            "HDR histogram values, 3 significant digits (2 for itl and chunk gaps), 1 us resolution; mean, min, max and stddev are exact",
        ),
        ("ttft_ms", "streams: request sent -> first chunk with non-empty content, successful requests"),
        ("itl_ms", "streams: per request (e2e - ttft) / (output tokens - 1); TPOT means this and nothing else"),
        ("chunk_gap_ms", "streams: time between consecutive content chunks, all requests pooled"),
        ("tokens.output", "completion tokens of successful requests: the server's usage where sent, else counted here (o200k_base)"),
        ("throughput.output_tokens_per_s_per_user", "mean over successful requests of output tokens / e2e seconds"),
        ("goodput", "successful requests meeting every [slo] objective / wall_time_s"),
        ("latency_ms (retries)", "a retried request counts from its first send to its final outcome, backoff waits included"),
        (
            "latency_ms (open loop)",
            "open-loop stages: from each request's scheduled start, so a wait inside llmload counts (coordinated omission); open_loop.latency_uncorrected_ms counts from the actual send",
        ),
        ("open_loop.schedule_lag_ms", "first send - scheduled start of every request sent"),
        (
            "open_loop.achieved_rate",
            "requests sent / (first dispatch -> last dispatch + one mean gap); scheduled_rate: arrivals due / (first -> last due + one gap); below_target when over 5 % of the arrivals due were not sent or sending ended over 5 % (and 50 ms) behind the schedule",
        ),
        (
            "sweep.knee",
            "the smallest sweep point from which ok requests/s grow less than knee_gain per doubling of the load at every later point; an automatic sweep reads it from its ladder, narrowed to the smallest bisection point below it that no later point beats by knee_gain",
        ),
        ("sweep.slo", "a point meets the SLO when at least slo_quantile of its finished requests meet every [slo] objective"),
        ("attempt_latency_ms", "each attempt's own latency, request sent -> last byte, failed attempts included"),
        ("retries.total", "attempts sent again after a failure the [retry] policy covers; failures counts final outcomes only"),
        ("rate_limiter.wait_ms", "per delayed request: total time waiting for the client-side rate limiter before its attempts"),
        ("cost", "prompt and output tokens times the price per million of the stage's model, in the scenario's currency"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub struct RunMeta {
    pub started_at: std::time::SystemTime,
    pub finished_at: std::time::SystemTime,
    pub interrupted: bool,
    pub aborted: Option<crate::engine::Aborted>,
    pub mock_url: Option<String>,
}

impl RunResult {
    pub fn build(scenario: &Scenario, stages: &[StageStats], meta: RunMeta) -> RunResult {
        let record = ScenarioRecord {
            name: &scenario.name,
            description: &scenario.description,
            source: scenario.source.as_ref().map(|p| p.display().to_string()),
            target: &scenario.target,
            mock: (scenario.target.base_url == BaseUrl::Mock).then_some(&scenario.mock),
            prompts: &scenario.prompts.source,
            request: &scenario.request,
            slo: scenario.slo.as_ref(),
            check: scenario
                .check
                .as_ref()
                .map(|crate::check::Expect::Json { required_keys }| serde_json::json!({"expect": "json", "required_keys": required_keys})),
            currency: &scenario.pricing.currency,
            abort_on_error_rate: scenario.abort_on_error_rate,
            sweep: scenario.sweep.as_ref(),
            stages: &scenario.stages,
        };
        let t = &scenario.target;
        RunResult {
            schema_version: SCHEMA_VERSION,
            tool: Tool { name: "llmload".into(), version: env!("CARGO_PKG_VERSION").into() },
            scenario: serde_json::to_value(&record).expect("scenario serializes"),
            target: TargetInfo {
                base_url: serde_json::to_value(&t.base_url).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                mock_url: meta.mock_url,
                model: t.model.clone(),
                stream: t.stream,
                timeout_s: t.timeout.as_secs_f64(),
                connect_timeout_s: t.connect_timeout.as_secs_f64(),
                idle_timeout_s: t.idle_timeout.map(|d| d.as_secs_f64()),
                insecure: t.insecure,
            },
            started_at: humantime::format_rfc3339_millis(meta.started_at).to_string(),
            finished_at: humantime::format_rfc3339_millis(meta.finished_at).to_string(),
            duration_s: meta.finished_at.duration_since(meta.started_at).map_or(0.0, |d| d.as_secs_f64()),
            interrupted: meta.interrupted,
            aborted: meta.aborted.map(|a| AbortedInfo {
                stage: a.stage,
                error_rate: a.error_rate,
                requests: a.requests,
                mid_stage: a.mid_stage,
                threshold: a.threshold,
            }),
            stages: stages.iter().map(|s| StageResult::from_stats(s).priced(&scenario.pricing)).collect(),
            sweep: None,
            cost: None,
            definitions: definitions(),
        }
        .total_cost(&scenario.pricing)
        .judge_sweep(scenario)
    }

    fn judge_sweep(mut self, scenario: &Scenario) -> Self {
        let ended_early = match (&self.aborted, self.interrupted) {
            (Some(_), _) => Some("aborted"),
            (None, true) => Some("stopped"),
            (None, false) => None,
        };
        self.sweep = scenario.sweep.as_ref().map(|s| SweepResult::build(s, &self.stages, scenario.slo.as_ref(), ended_early));
        self
    }

    /// Sets the run's total cost from its stages.
    fn total_cost(mut self, pricing: &crate::cost::Pricing) -> Self {
        let priced: Vec<&Cost> = self.stages.iter().filter_map(|s| s.cost.as_ref()).collect();
        if !priced.is_empty() {
            let usd: f64 = priced.iter().map(|c| c.usd).sum();
            let ok: u64 = self.stages.iter().filter(|s| s.cost.is_some()).map(|s| s.requests.ok).sum();
            self.cost = Some(Cost::new(pricing, usd, ok));
        }
        self
    }

    /// Writes the JSON to `path` atomically (temp file, then rename): a crash never
    /// leaves half a result.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map_or("result.json".into(), |n| n.to_string_lossy().to_string());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

impl StageResult {
    /// The stage's result, with its latency histogram encoded.
    pub fn from_stats(s: &StageStats) -> StageResult {
        let encode = |l: &crate::metrics::Latency| {
            if l.count() == 0 {
                return String::new();
            }
            let mut buf = Vec::new();
            V2Serializer::new().serialize(l.histogram(), &mut buf).expect("histogram serializes to memory");
            base64::engine::general_purpose::STANDARD.encode(&buf)
        };
        let mut r = Self::summary(s);
        r.series = s.series.seconds();
        r.histograms = Histograms { e2e_us: encode(&s.latency), ttft_us: encode(&s.ttft), itl_us: encode(&s.itl) };
        r
    }

    /// The stage's cost from the tokens of its successful requests: per request, the
    /// server's usage where sent, else the counts made here.
    pub fn priced(mut self, pricing: &crate::cost::Pricing) -> StageResult {
        if let Some(usd) = pricing.cost_usd(&self.model, self.tokens.input, self.tokens.output) {
            self.cost = Some(Cost::new(pricing, usd, self.requests.ok));
        }
        self
    }

    /// The figures without the encoded histogram: cheap enough for every frame of a
    /// live view.
    pub fn summary(s: &StageStats) -> StageResult {
        StageResult {
            index: s.info.index,
            name: s.info.name.clone(),
            kind: if s.info.rate.is_some() { "open" } else { "closed" }.into(),
            concurrency: s.info.concurrency,
            model: s.info.model.clone(),
            planned: Planned { requests: s.info.planned_requests, duration_s: s.info.planned_duration.map(|d| d.as_secs_f64()) },
            warmup_requests: s.warmup_done,
            cooldown_requests: s.cooldown_done,
            interrupted: s.interrupted,
            aborted: s.aborted,
            wall_time_s: s.wall.as_secs_f64(),
            requests: Requests { started: s.started, ok: s.ok, failed: s.failed, cancelled: s.cancelled },
            error_rate: s.error_rate(),
            failures: s.failures.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
            failure_examples: s.failure_examples.iter().map(|(k, v)| (k.as_str().to_string(), v.to_string())).collect(),
            status_codes: s.status_codes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            latency_ms: s.latency.summary(),
            ttft_ms: s.ttft.summary(),
            itl_ms: s.itl.summary(),
            chunk_gap_ms: s.chunk_gap.summary(),
            partial_ttft_ms: s.partial_ttft.summary(),
            throughput: Throughput {
                requests_per_s: s.requests_per_s(),
                ok_per_s: s.ok_per_s(),
                output_tokens_per_s: s.output_tokens_per_s(),
                output_tokens_per_s_per_user: s.tokens_per_s_per_user(),
            },
            tokens: Tokens {
                prompt: s.prompt_tokens,
                completion: s.completion_tokens,
                requests_with_usage: s.with_usage,
                output: s.output_tokens,
                input: s.input_tokens,
                client_prompt: s.client_prompt_tokens,
                client_completion: s.client_completion_tokens,
                prompt_disagree: s.prompt_disagree,
                completion_disagree: s.completion_disagree,
            },
            goodput: s.goodput().map(|per_s| Goodput { requests: s.slo_met, per_s }),
            checks: {
                let failed: u64 = s.checks_failed.values().sum();
                let total = s.checks_passed + failed;
                (total > 0).then(|| Checks {
                    passed: s.checks_passed,
                    failed,
                    invalid_rate: failed as f64 / total as f64,
                    failures: s.checks_failed.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
                })
            },
            cost: None,
            bytes_received: s.bytes_received,
            retries: Retries {
                attempts: s.attempts,
                total: s.retries(),
                by_cause: s.retries_by_cause.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
                requests_retried: s.retried,
                recovered: s.recovered,
                retry_after_honoured: s.retry_after_waits,
                not_sent: s.retries_not_sent,
            },
            attempt_latency_ms: s.attempt_latency.summary(),
            open_loop: s.info.rate.map(|target_rate| {
                // Rates over spans plus one gap (n arrivals at rate r span (n − 1)/r). The
                // schedule's own rate is the yardstick: random arrivals vary around the
                // target, and that is not llmload falling short. Live: over the wall time.
                let gap = 1.0 / target_rate;
                let (sent_span, due_span) = s
                    .schedule
                    .map_or((s.wall.as_secs_f64(), s.wall.as_secs_f64()), |(a, b)| (a.as_secs_f64() + gap, b.as_secs_f64() + gap));
                let per = |n: u64, span: f64| if span > 0.0 { n as f64 / span } else { 0.0 };
                let achieved_rate = per(s.started, sent_span);
                let scheduled_rate = per(s.started + s.unsent, due_span);
                // Short: over 5 % of the arrivals due were never sent. Late: sending ended
                // behind the schedule by over 5 % of it (at least 50 ms, so one late
                // timer tick on a short stage is no alarm).
                let short = s.unsent as f64 > (1.0 - RATE_WARNING) * (s.started + s.unsent) as f64;
                let late = sent_span - due_span > ((1.0 - RATE_WARNING) * due_span).max(0.05);
                OpenLoop {
                    arrival: s.info.arrival.unwrap_or("constant").to_string(),
                    target_rate,
                    scheduled_rate,
                    achieved_rate,
                    below_target: match s.finished {
                        true => short || late,
                        // Live: the arrival waiting for a slot is due that far back.
                        false => s.behind.as_secs_f64() > ((1.0 - RATE_WARNING) * s.wall.as_secs_f64()).max(0.05),
                    },
                    max_in_flight: s.info.concurrency,
                    not_sent: s.unsent,
                    schedule_lag_ms: s.schedule_lag.summary(),
                    latency_uncorrected_ms: s.latency_uncorrected.summary(),
                }
            }),
            rate_limiter: s.info.rate_limit.is_set().then(|| RateLimiter {
                rpm: s.info.rate_limit.rpm,
                tpm: s.info.rate_limit.tpm,
                delayed: s.limited,
                wait_ms: s.limiter_wait.summary(),
            }),
            // Filled by from_stats: a live view has no use for it.
            series: Vec::new(),
            histograms: Histograms { e2e_us: String::new(), ttft_us: String::new(), itl_us: String::new() },
        }
    }
}
