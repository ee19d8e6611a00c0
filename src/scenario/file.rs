//! The scenario file as written (serde model). Type errors, unknown keys and
//! out-of-range numbers are caught here by serde, so they carry the toml span.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Problems;

use crate::mock::config::MockConfig;

/// The file's sections, each deserialized on its own so that one broken section does
/// not hide the problems of the others.
#[derive(Debug)]
pub struct ScenarioFile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub target: TargetFile,
    pub mock: Option<Spanned<MockConfig>>,
    pub prompts: Spanned<PromptsFile>,
    pub request: RequestFile,
    pub pricing: Option<Spanned<crate::cost::PricingFile>>,
    pub slo: Option<Spanned<SloFile>>,
    pub check: Option<Spanned<CheckFile>>,
    pub retry: Option<Spanned<RetryFile>>,
    pub rate_limit: Option<Spanned<RateLimitFile>>,
    pub abort_on_error_rate: Option<Spanned<f64>>,
    /// `[thresholds]`: metric = "< bound", for every stage.
    pub thresholds: Option<ThresholdsFile>,
    pub sweep: Option<Spanned<SweepFile>>,
    pub conversation: Option<Spanned<ConversationFile>>,
    pub server_metrics: Option<Spanned<ServerMetricsFile>>,
    /// Span of the whole `[[stage]]` array, and each stage with its own span.
    pub stages: Spanned<Vec<Spanned<StageFile>>>,
    /// `[[task]]`: what a stage's `task = "name"` runs.
    pub tasks: Vec<Spanned<TaskFile>>,
}

const SECTIONS: &str = "`name`, `description`, `abort_on_error_rate`, `thresholds`, `target`, `mock`, `prompts`, `request`, `pricing`, `slo`, `check`, `retry`, `rate_limit`, `sweep`, `conversation`, `server_metrics`, `stage`, `task`";

impl ScenarioFile {
    /// Parses the document, reporting every syntax error, then every section (and every
    /// stage) that does not fit its type. None if anything was reported.
    pub(super) fn parse(src: &str, p: &mut Problems<'_>) -> Option<ScenarioFile> {
        let (root, syntax) = DeTable::parse_recoverable(src);
        if !syntax.is_empty() {
            for e in syntax {
                p.at(e.span(), one_line(e.message()));
            }
            return None;
        }
        let before = p.list.len();
        let mut present = Vec::new();
        let (mut name, mut description, mut target, mut mock, mut prompts, mut request, mut stages) =
            (None, None, None, None, None, None, None);
        let (mut pricing, mut slo, mut check, mut retry, mut rate_limit, mut abort_on_error_rate) = (None, None, None, None, None, None);
        let (mut sweep, mut conversation, mut thresholds, mut server_metrics) = (None, None, None, None);
        let mut tasks = None;
        for (key, value) in root.into_inner() {
            let k = key.get_ref().to_string();
            match k.as_str() {
                "name" => name = section::<String>(value, "name", p),
                "description" => description = section::<String>(value, "description", p),
                "target" => target = section::<TargetFile>(value, "target", p),
                "mock" => mock = section::<Spanned<MockConfig>>(value, "mock", p),
                "prompts" => prompts = section::<Spanned<PromptsFile>>(value, "prompts", p),
                "request" => request = section::<RequestFile>(value, "request", p),
                "pricing" => pricing = section::<Spanned<crate::cost::PricingFile>>(value, "pricing", p),
                "slo" => slo = section::<Spanned<SloFile>>(value, "slo", p),
                "check" => check = section::<Spanned<CheckFile>>(value, "check", p),
                "retry" => retry = section::<Spanned<RetryFile>>(value, "retry", p),
                "rate_limit" => rate_limit = section::<Spanned<RateLimitFile>>(value, "rate_limit", p),
                "abort_on_error_rate" => abort_on_error_rate = section::<Spanned<f64>>(value, "abort_on_error_rate", p),
                "thresholds" => thresholds = section::<ThresholdsFile>(value, "thresholds", p),
                "stage" => stages = stage_list(value, p),
                "task" => tasks = section::<Vec<Spanned<TaskFile>>>(value, "task", p),
                "sweep" => sweep = section::<Spanned<SweepFile>>(value, "sweep", p),
                "conversation" => conversation = section::<Spanned<ConversationFile>>(value, "conversation", p),
                "server_metrics" => server_metrics = section::<Spanned<ServerMetricsFile>>(value, "server_metrics", p),
                other => p.at(Some(key.span()), format!("unknown key `{other}`, expected one of {SECTIONS}")),
            }
            present.push(k);
        }
        // A missing section is reported at the end of the file, where it would go.
        let end = Some(src.len()..src.len());
        for (key, what) in [
            ("target", "missing [target] table (base_url and model)"),
            ("prompts", "missing [prompts] table (list, template or file)"),
            ("stage", "missing [[stage]] or [sweep]: give at least one stage"),
        ] {
            let has = |k: &str| present.iter().any(|p| p == k);
            // A [sweep] makes stages of its own.
            let covered = has(key) || (key == "stage" && has("sweep"));
            if !covered {
                p.at(end.clone(), what);
            }
        }
        if p.list.len() > before {
            return None;
        }
        Some(ScenarioFile {
            name,
            description,
            target: target?,
            mock,
            prompts: prompts?,
            request: request.unwrap_or_default(),
            pricing,
            slo,
            check,
            retry,
            rate_limit,
            abort_on_error_rate,
            thresholds,
            sweep,
            conversation,
            server_metrics,
            stages: stages.unwrap_or_else(|| Spanned::new(end.clone().unwrap_or_default(), Vec::new())),
            tasks: tasks.unwrap_or_default(),
        })
    }
}

/// Deserializes one section; a problem is reported at its place, prefixed with the
/// section's name.
fn section<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, name: &str, p: &mut Problems<'_>) -> Option<T> {
    let span = value.span();
    T::deserialize(value.into_deserializer()).map_err(|e| p.at(e.span().or(Some(span)), format!("{name}: {}", one_line(e.message())))).ok()
}

fn stage_list(value: Spanned<DeValue<'_>>, p: &mut Problems<'_>) -> Option<Spanned<Vec<Spanned<StageFile>>>> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        p.at(Some(span), "stage: expected an array of tables, written [[stage]]");
        return None;
    };
    let mut stages = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        match section::<Spanned<StageFile>>(item, &format!("stage {}", i + 1), p) {
            Some(s) => stages.push(s),
            None => ok = false,
        }
    }
    ok.then(|| Spanned::new(span, stages))
}

/// toml messages can span lines; a problem is one line.
pub(super) fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub base_url: Spanned<String>,
    /// "chat" (default), "completions", "embeddings", "rerank", "responses" or
    /// "messages".
    pub api: Option<crate::model::Api>,
    /// The endpoint's path instead of the API's.
    pub path: Option<Spanned<String>>,
    pub model: Spanned<String>,
    pub api_key_env: Option<Spanned<String>>,
    pub stream: Option<bool>,
    /// With `stream`: ask for a final usage chunk (`stream_options.include_usage`).
    pub stream_usage: Option<bool>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub connect_timeout: Option<Spanned<DurationValue>>,
    /// Streams: longest wait for the next bytes.
    pub idle_timeout: Option<Spanned<DurationValue>>,
    /// A file holding the key (instead of an environment variable).
    pub api_key_file: Option<Spanned<String>>,
    /// Extra headers: a literal value, or `{ env = "VAR" }` read when the run starts.
    /// Checked by hand, so each problem names its header.
    pub headers: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsFile {
    pub list: Option<Spanned<Vec<String>>>,
    pub template: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    /// Prompts of drawn lengths: a shorthand, `{ input, output }` or weighted buckets.
    pub synthetic: Option<Spanned<toml::Value>>,
    /// A ShareGPT-format JSON file.
    pub sharegpt: Option<Spanned<String>>,
    /// A timestamped trace to replay (Mooncake or plain JSONL).
    pub trace: Option<Spanned<TraceFile>>,
    /// Optional system message put before every text prompt.
    pub system: Option<Spanned<String>>,
    /// Synthetic prompts: groups of requests that start with the same prefix.
    pub shared_prefix: Option<Spanned<SharedPrefixFile>>,
    /// The counting tokenizer (top-level `[prompts]` only).
    pub tokenizer: Option<Spanned<toml::Value>>,
    /// Seed of synthetic lengths and texts, and of dataset sampling.
    pub seed: Option<u64>,
    /// ShareGPT: prompts drawn, and length filters (tokens).
    pub sample: Option<Spanned<u64>>,
    pub min_input: Option<Spanned<u32>>,
    pub max_input: Option<Spanned<u32>>,
    pub min_output: Option<Spanned<u32>>,
    pub max_output: Option<Spanned<u32>>,
}

/// `[server_metrics]`: the server's own metrics endpoints to read beside the run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerMetricsFile {
    /// Each endpoint: `{ url, name, interval, headers }`.
    #[serde(default)]
    pub endpoints: Vec<Spanned<MetricsEndpointFile>>,
    /// With no endpoint named: whether the target's `/metrics` is probed (default true).
    pub probe: Option<bool>,
    /// Regular expressions: families outside the vocabulary whose names match are
    /// recorded raw.
    #[serde(default)]
    pub keep: Vec<Spanned<String>>,
    /// `true` (vLLM's or SGLang's route) or a path: the prefix cache emptied before
    /// each stage.
    pub reset_prefix_cache: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsEndpointFile {
    pub url: Spanned<String>,
    pub name: Option<String>,
    pub interval: Option<Spanned<DurationValue>>,
    /// As `target.headers`: a literal, or `{ env = "VAR" }` read when the run starts.
    pub headers: Option<Spanned<toml::Table>>,
}

/// `[conversation]`: multi-turn sessions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationFile {
    /// Turns per session: a count or a distribution.
    pub turns: Spanned<toml::Value>,
    /// After each reply: a duration, or a distribution of milliseconds.
    pub think_time: Option<Spanned<toml::Value>>,
    pub history: Option<bool>,
    pub max_context_tokens: Option<Spanned<u32>>,
}

/// `trace = { file = "…jsonl", format = "mooncake", block_tokens = 512, speed = 1.0,
/// start = "0s", requests = N, duration = "…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFile {
    pub file: Spanned<String>,
    /// "mooncake" (the default) or "jsonl".
    pub format: Option<Spanned<String>>,
    /// Tokens per hash id (Mooncake's 512 by default).
    pub block_tokens: Option<Spanned<u32>>,
    /// The clock's speed: 2 replays twice as fast.
    pub speed: Option<Spanned<f64>>,
    /// Skip this far into the trace (trace time).
    pub start: Option<Spanned<DurationValue>>,
    /// At most this many lines, this much trace time.
    pub requests: Option<Spanned<u64>>,
    pub duration: Option<Spanned<DurationValue>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixFile {
    pub tokens: u32,
    pub groups: u32,
}

/// Generation parameters, for every request (`[request]`) or a stage's (`request = {…}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    pub max_tokens: Option<Spanned<NonZeroU32>>,
    /// OpenAI's newer name for `max_tokens`; give one of them.
    pub max_completion_tokens: Option<Spanned<NonZeroU32>>,
    pub temperature: Option<Spanned<f64>>,
    pub top_p: Option<Spanned<f64>>,
    pub seed: Option<i64>,
    /// A stop sequence, or a list of them.
    pub stop: Option<Spanned<StopFile>>,
    pub ignore_eos: Option<bool>,
    pub min_tokens: Option<Spanned<u32>>,
    /// Embeddings: inputs per request, a count or a distribution (none: one text,
    /// sent as a string); `float` or `base64`; the vector's length asked for.
    pub batch_size: Option<Spanned<toml::Value>>,
    pub encoding_format: Option<Spanned<String>>,
    pub dimensions: Option<Spanned<NonZeroU32>>,
    /// Rerank: documents per query and their lengths, each a count or a distribution;
    /// the most results asked for.
    pub documents: Option<Spanned<toml::Value>>,
    pub document_tokens: Option<Spanned<toml::Value>>,
    pub top_n: Option<Spanned<NonZeroU32>>,
    /// Chat: OpenAI's `tools` (function tools), `tool_choice`, `parallel_tool_calls`,
    /// and `response_format`, sent as written.
    pub tools: Option<Spanned<toml::Value>>,
    pub tool_choice: Option<Spanned<toml::Value>>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<Spanned<toml::Value>>,
    /// Chat, the Responses API, Messages: images each request carries (drawn, or a
    /// folder's files).
    pub images: Option<Spanned<toml::Value>>,
    /// Merged into every request body as-is, last.
    pub extra_body: Option<Spanned<toml::Table>>,
}

/// `stop = "END"` or `stop = ["END", "\n\n"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub enum StopFile {
    One(String),
    Many(Vec<String>),
}

/// Service-level objectives: a request meets them when every one given holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    pub ttft_ms: Option<f64>,
    pub itl_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    /// A task's whole latency.
    pub task_ms: Option<f64>,
}

/// Thresholds as written: metric name → "< bound", each with its place.
pub type ThresholdsFile = std::collections::BTreeMap<String, Spanned<String>>;

/// A check of every response's content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// "json" (with `required_keys`), or "schema" (with `schema`).
    pub expect: Option<String>,
    #[serde(default)]
    pub required_keys: Vec<String>,
    /// A JSON Schema file, relative to the scenario: every reply (or a call's
    /// arguments) must fit it.
    pub schema: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub name: Option<String>,
    pub concurrency: Option<NonZeroU32>,
    /// Open loop: arrivals per second, whether or not earlier requests have finished.
    pub rate: Option<Spanned<f64>>,
    /// "constant", "poisson" or "gamma".
    pub arrival: Option<Spanned<String>>,
    /// Gamma arrivals: the coefficient of variation of the gaps (1 = Poisson).
    pub burstiness: Option<Spanned<f64>>,
    /// Open loop: most requests in flight; later arrivals wait (and the wait counts).
    pub max_in_flight: Option<NonZeroU32>,
    /// Seed of random arrivals.
    pub seed: Option<u64>,
    /// A trace stage: its clock's speed, instead of the trace's.
    pub speed: Option<Spanned<f64>>,
    /// Raise the load linearly to the stage's over this long before measuring.
    pub ramp: Option<Spanned<DurationValue>>,
    /// Keep the load on after the window, up to this long, while its last requests end.
    pub cooldown: Option<Spanned<DurationValue>>,
    pub requests: Option<NonZeroU64>,
    pub duration: Option<Spanned<DurationValue>>,
    /// Run until these figures are known this precisely (a table, or a list of them).
    pub until: Option<Spanned<toml::Value>>,
    pub model: Option<String>,
    /// The API this stage speaks instead of `target.api`.
    pub api: Option<crate::model::Api>,
    /// Runs this `[[task]]` instead of single requests; `requests` then counts tasks.
    pub task: Option<Spanned<String>>,
    /// Requests before the window, or "auto": until the per-second series settle.
    pub warmup: Option<Spanned<toml::Value>>,
    /// Open loop: end the window early once the backlog grows without bound.
    pub stop_on_saturation: Option<bool>,
    /// This stage's own prompts (e.g. other lengths), instead of `[prompts]`.
    pub prompts: Option<Spanned<PromptsFile>>,
    /// Overrides of the scenario's `[request]`, `[retry]` and `[rate_limit]` for this
    /// stage.
    pub request: Option<Spanned<RequestFile>>,
    pub retry: Option<Spanned<RetryFile>>,
    pub rate_limit: Option<Spanned<RateLimitFile>>,
    /// This stage's thresholds, beside (or instead of, metric by metric) `[thresholds]`.
    pub thresholds: Option<ThresholdsFile>,
}

/// A series of stages over concurrency levels or arrival rates, to find where
/// throughput stops growing and where the SLO breaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// A list of worker counts, or "auto".
    pub concurrency: Option<Spanned<toml::Value>>,
    /// A list of arrival rates, or "auto".
    pub rates: Option<Spanned<toml::Value>>,
    /// `auto`: the first point, the largest one tried, the most points run, and the
    /// SLO bisection's resolution (a fraction of the load).
    pub start: Option<f64>,
    pub max: Option<f64>,
    pub max_points: Option<NonZeroU32>,
    pub precision: Option<f64>,
    /// Open-loop sweeps: arrival process of every point.
    pub arrival: Option<String>,
    pub max_in_flight: Option<NonZeroU32>,
    pub requests: Option<NonZeroU64>,
    pub duration: Option<DurationValue>,
    pub warmup: Option<Spanned<toml::Value>>,
    /// Rate sweeps: a point whose backlog grows without bound ends early (default on).
    pub stop_on_saturation: Option<bool>,
    pub cooldown: Option<DurationValue>,
    /// Throughput must grow by at least this fraction per doubling of the load, else
    /// it has plateaued.
    pub knee_gain: Option<f64>,
    /// Share of a point's requests that must meet every `[slo]` objective.
    pub slo_quantile: Option<f64>,
    /// A `[[task]]` each point runs: its load is tasks in flight or arriving per second.
    pub task: Option<Spanned<String>>,
    /// Each point runs until these figures are known this precisely.
    pub until: Option<Spanned<toml::Value>>,
}

/// Retries of failed requests; off unless `max_attempts` > 1.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub max_attempts: Option<NonZeroU32>,
    /// First backoff; each further one doubles, up to `max_backoff`; full jitter.
    pub backoff: Option<DurationValue>,
    pub max_backoff: Option<DurationValue>,
    /// Which outcomes are retried: "429", "5xx", "connect", "timeout", "transport".
    pub on: Option<Vec<Spanned<String>>>,
    pub respect_retry_after: Option<bool>,
    pub max_retry_after: Option<DurationValue>,
    pub after_window: Option<DurationValue>,
}

/// Client-side limits shared by every worker of a stage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// Requests per minute.
    pub rpm: Option<f64>,
    /// Tokens per minute: prompt tokens plus max_tokens, as providers count them.
    pub tpm: Option<f64>,
}

/// Longest duration accepted anywhere: far beyond any load test, short enough that
/// deadline arithmetic never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration written as a string ("30s", "1m 30s", "250ms") or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        let secs = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"30s\", \"500ms\" or a number of seconds"))?
        {
            Raw::Text(s) => {
                let d = humantime::parse_duration(s.trim())
                    .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e} (write e.g. \"30s\" or \"500ms\")")))?;
                return DurationValue::checked(d);
            }
            Raw::Int(i) => i as f64,
            Raw::Float(f) => f,
        };
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(serde::de::Error::custom(format!("invalid duration {secs}: must be zero or more seconds")));
        }
        DurationValue::checked(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }
}

impl DurationValue {
    fn checked<E: serde::de::Error>(d: Duration) -> Result<DurationValue, E> {
        if d > MAX_DURATION {
            return Err(E::custom("duration too long: at most 365 days"));
        }
        Ok(DurationValue(d))
    }
}

/// One `[[task]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub step: Vec<Spanned<StepFile>>,
}

/// One `[[task.step]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    pub name: Option<String>,
    pub model: Option<Spanned<String>>,
    /// The API its requests speak (the target's where not set).
    pub api: Option<Spanned<crate::model::Api>>,
    pub prompt: Spanned<String>,
    /// A count, or a distribution drawn per task.
    pub fan_out: Option<Spanned<toml::Value>>,
    pub concurrency: Option<Spanned<u32>>,
    pub first: Option<Spanned<u32>>,
    pub quorum: Option<Spanned<u32>>,
    pub on_error: Option<Spanned<String>>,
    pub document_tokens: Option<Spanned<toml::Value>>,
    /// The step whose answers `{answers…}` takes (the one before, unless named).
    pub answers_from: Option<Spanned<String>>,
    pub top_by: Option<Spanned<String>>,
    pub request: Option<Spanned<RequestFile>>,
    /// An agent loop: the model's calls per task at most, while it calls `tool`s.
    pub max_steps: Option<Spanned<u32>>,
    /// `[[task.step.tool]]`: simulated tools the step's model may call.
    #[serde(default)]
    pub tool: Vec<Spanned<ToolFile>>,
}

/// One simulated tool as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFile {
    pub name: Spanned<String>,
    pub description: Option<String>,
    /// How long a call takes, ms: a number or a DIST.
    pub latency_ms: Option<Spanned<toml::Value>>,
    /// Its result's length in tokens: a count or a DIST.
    pub result_tokens: Option<Spanned<toml::Value>>,
    /// Its arguments' JSON Schema (`{ query: string }` when not given).
    pub parameters: Option<Spanned<toml::Value>>,
}
