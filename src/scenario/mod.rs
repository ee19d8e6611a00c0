//! Scenario files: the serde model, loading with located errors, and the validated
//! form the engine runs.

mod error;
mod file;
mod prompts;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::{Location, Problem, ScenarioError, line_col};
pub use file::{DurationValue, MAX_DURATION};
pub use prompts::{Prompt, Prompts};

use crate::mock::MockConfig;
use error::Problems;
use file::ScenarioFile;

/// Most requests one stage keeps in flight (each is a task and a connection).
pub const MAX_CONCURRENCY: u32 = 100_000;
pub const DEFAULT_API_KEY_ENV: &str = "OPENAI_API_KEY";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated scenario: everything the engine needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Path the scenario was read from, for messages and the result.
    pub source: Option<PathBuf>,
    pub target: Target,
    pub mock: MockConfig,
    pub prompts: Prompts,
    pub request: RequestParams,
    /// Prices per model (built-in examples plus `[pricing]`), and the currency shown.
    pub pricing: crate::cost::Pricing,
    /// `[slo]`: what a request must meet to count toward goodput.
    pub slo: Option<crate::metrics::Slo>,
    /// `[check]`: what every response's content must be.
    pub check: Option<crate::check::Expect>,
    /// Skip the remaining stages once a stage's error rate exceeds this (0..=1).
    pub abort_on_error_rate: Option<f64>,
    /// `[sweep]`: its stages are `stages[first_stage..]`, one per point.
    pub sweep: Option<Sweep>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub base_url: BaseUrl,
    pub model: String,
    /// Name of the environment variable holding the key (never the key itself).
    pub api_key_env: String,
    pub stream: bool,
    /// With `stream`: send `stream_options.include_usage`.
    pub stream_usage: bool,
    #[serde(serialize_with = "ser_secs", rename = "timeout_s")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_secs", rename = "connect_timeout_s")]
    pub connect_timeout: Duration,
    /// Streams: longest wait for the next bytes of the body.
    #[serde(serialize_with = "ser_opt_secs", rename = "idle_timeout_s")]
    pub idle_timeout: Option<Duration>,
    /// A file holding the key, read when the run starts (its path only is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// TLS certificates not verified (`--insecure` only).
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrl {
    /// Start the embedded mock server on 127.0.0.1 with a free port.
    Mock,
    /// An OpenAI-compatible API root, e.g. `http://127.0.0.1:8000/v1`.
    Url(reqwest::Url),
}

impl Serialize for BaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BaseUrl::Mock => s.serialize_str("mock"),
            BaseUrl::Url(u) => s.serialize_str(&redact_url(u)),
        }
    }
}

/// A URL fit to print: user, password and query (where keys sometimes hide) removed.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("REDACTED"));
    }
    u.to_string().trim_end_matches('/').to_string()
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    #[serde(flatten)]
    pub load: Load,
    /// Measured requests; the stage ends at this count or `duration`, whichever comes first.
    pub requests: Option<u64>,
    #[serde(serialize_with = "ser_opt_secs", rename = "duration_s")]
    pub duration: Option<Duration>,
    /// Model override for this stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Requests run before the measured window, excluded from every figure.
    pub warmup: u64,
    /// After warmup, the load rises linearly to the stage's over this long, outside
    /// the figures (kept in the time series).
    #[serde(serialize_with = "ser_opt_secs", rename = "ramp_s")]
    pub ramp: Option<Duration>,
    /// After the window, the load stays on, up to this long, until every request of the
    /// window has ended: its last ones are measured under the stage's load, not a
    /// draining one. Cooldown requests are outside the figures (kept in the series).
    #[serde(serialize_with = "ser_opt_secs", rename = "cooldown_s")]
    pub cooldown: Option<Duration>,
    /// Retries of failed requests (the scenario's `[retry]`, with this stage's overrides).
    pub retry: RetryPolicy,
    /// Client-side rate limits (the scenario's `[rate_limit]`, with overrides).
    pub rate_limit: RateLimit,
}

/// When and how a failed request is sent again. One attempt means no retries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Backoff before retry n is drawn from 0..=min(max_backoff, backoff × 2^(n−1)).
    #[serde(serialize_with = "ser_secs", rename = "backoff_s")]
    pub backoff: Duration,
    #[serde(serialize_with = "ser_secs", rename = "max_backoff_s")]
    pub max_backoff: Duration,
    pub on: Vec<RetryOn>,
    /// Wait at least what the server's Retry-After / retry-after-ms says (the jittered
    /// backoff goes on top).
    pub respect_retry_after: bool,
    /// Longest server-asked wait honoured; a longer one is cut to this.
    #[serde(serialize_with = "ser_secs", rename = "max_retry_after_s")]
    pub max_retry_after: Duration,
    /// In a stage with a `duration`: how long after the window closes a retry may still
    /// start; later ones are not sent.
    #[serde(serialize_with = "ser_secs", rename = "after_window_s")]
    pub after_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            on: vec![RetryOn::Http429, RetryOn::Http5xx, RetryOn::Connect, RetryOn::Timeout],
            respect_retry_after: true,
            max_retry_after: Duration::from_secs(60),
            after_window: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Whether a request that failed this way is sent again (attempts permitting).
    pub fn retries(&self, kind: crate::client::FailureKind) -> bool {
        self.on.iter().any(|o| o.covers(kind))
    }
}

/// Classes of failure a retry policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RetryOn {
    #[serde(rename = "429")]
    Http429,
    #[serde(rename = "5xx")]
    Http5xx,
    /// Connection refused, or not made in time.
    #[serde(rename = "connect")]
    Connect,
    /// The whole request, or a stream's idle wait, ran out of time.
    #[serde(rename = "timeout")]
    Timeout,
    /// The connection broke after the request was sent (reset, cut stream).
    #[serde(rename = "transport")]
    Transport,
}

impl RetryOn {
    const ALL: [(&'static str, RetryOn); 5] = [
        ("429", RetryOn::Http429),
        ("5xx", RetryOn::Http5xx),
        ("connect", RetryOn::Connect),
        ("timeout", RetryOn::Timeout),
        ("transport", RetryOn::Transport),
    ];

    fn parse(text: &str) -> Option<RetryOn> {
        Self::ALL.iter().find(|(n, _)| *n == text).map(|(_, o)| *o)
    }

    fn covers(self, kind: crate::client::FailureKind) -> bool {
        // By name, so kinds added to the client later fall into the right class.
        let k = kind.as_str();
        match self {
            RetryOn::Http429 => k == "http_429",
            RetryOn::Http5xx => k == "http_5xx",
            RetryOn::Connect => k == "connect" || k == "connect_timeout",
            RetryOn::Timeout => k == "timeout" || k == "idle_timeout",
            RetryOn::Transport => matches!(k, "transport" | "body" | "stream_cut"),
        }
    }
}

/// Requests and tokens per minute, paced by a shared limiter; None = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateLimit {
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
}

impl RateLimit {
    pub fn is_set(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// A series of stages over one load dimension, judged together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    pub kind: SweepKind,
    /// The points, in the order they run. With `auto` they are chosen during the run:
    /// empty before it, and after it the ones that ran.
    pub points: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoSweep>,
    #[serde(skip)]
    pub first_stage: usize,
    /// Throughput must grow at least this fraction per doubling, else it has plateaued.
    pub knee_gain: f64,
    /// Share of a point's requests that must meet every `[slo]` objective.
    pub slo_quantile: f64,
    /// What every point's stage is but its load (and name).
    #[serde(skip)]
    pub template: Stage,
}

/// `concurrency = "auto"` / `rates = "auto"`: double from `start` until throughput
/// plateaus (and, with an SLO, until it breaks), then bisect to the SLO's limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AutoSweep {
    pub start: f64,
    pub max: f64,
    pub max_points: u32,
    /// The bisection stops when the bracket is narrower than this fraction of its
    /// lower end (and, for concurrency, than one worker).
    pub precision: f64,
}

/// Defaults of an automatic sweep.
pub const AUTO_MAX_POINTS: u32 = 16;
pub const AUTO_PRECISION: f64 = 0.05;
pub const AUTO_MAX_CONCURRENCY: f64 = 1024.0;

impl Scenario {
    /// Most requests an automatic concurrency sweep may have in flight at once.
    pub fn auto_sweep_max_concurrency(&self) -> Option<u32> {
        let sweep = self.sweep.as_ref()?;
        let auto = sweep.auto?;
        let template = sweep.stage(auto.max, 0);
        Some(template.load.concurrency())
    }

    /// This scenario as it ran: an automatic sweep's stages and points appended.
    pub fn with_swept(&self, swept: &[Stage]) -> Scenario {
        let mut s = self.clone();
        if let Some(sweep) = &mut s.sweep {
            sweep.points = swept.iter().map(|st| st.load.rate().unwrap_or_else(|| f64::from(st.load.concurrency()))).collect();
        }
        s.stages.extend_from_slice(swept);
        s
    }
}

impl Sweep {
    /// The stage of point `k` (run order) at `load` workers or arrivals per second.
    pub fn stage(&self, load: f64, k: usize) -> Stage {
        let mut stage = self.template.clone();
        stage.load = match (self.kind, self.template.load) {
            (SweepKind::Rate, Load::Open { arrival, max_in_flight, .. }) => {
                Load::Open { rate: load, arrival, max_in_flight, seed: k as u64 }
            }
            _ => Load::Closed { concurrency: load as u32 },
        };
        stage.name = match stage.load {
            Load::Closed { concurrency } => default_stage_name(concurrency),
            // Three significant digits at least, so bisected rates keep their names apart.
            Load::Open { rate, arrival, .. } => format!("{} {}/s", arrival.name(), fmt_point(rate)),
        };
        stage
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    Concurrency,
    Rate,
}

/// How a stage generates load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// Closed loop: exactly `concurrency` requests in flight, each worker sends its
    /// next request when the previous one finishes.
    Closed { concurrency: u32 },
    /// Open loop: requests arrive at `rate` per second on a schedule, whether or not
    /// earlier ones have finished; at most `max_in_flight` at once, later arrivals wait.
    Open { rate: f64, arrival: Arrival, max_in_flight: u32, seed: u64 },
}

/// The spacing of open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "process", rename_all = "snake_case")]
pub enum Arrival {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponential gaps (a Poisson process): coefficient of variation 1.
    Poisson,
    /// Gamma-distributed gaps with coefficient of variation `burstiness`.
    Gamma { burstiness: f64 },
}

impl Arrival {
    pub fn name(&self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
            Arrival::Gamma { .. } => "gamma",
        }
    }
}

/// Default cap on an open-loop stage's requests in flight.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
/// Highest open-loop rate accepted, per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Lowest: one request every 1,000 s.
pub const MIN_RATE: f64 = 0.001;

impl Load {
    /// Most requests in flight: the concurrency, or the open loop's cap.
    pub fn concurrency(&self) -> u32 {
        match self {
            Load::Closed { concurrency } => *concurrency,
            Load::Open { max_in_flight, .. } => *max_in_flight,
        }
    }

    /// Arrivals per second of an open-loop stage.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Load::Closed { .. } => None,
            Load::Open { rate, .. } => Some(*rate),
        }
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Scenario {
    /// Reads and validates a scenario file; every problem is reported with file:line:col.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            problems: vec![Problem { file: shown.clone(), location: Location::File, message: format!("cannot read scenario: {e}") }],
        })?;
        let mut scenario = Self::parse(&src, &shown, path.parent())?;
        scenario.source = Some(path.to_path_buf());
        Ok(scenario)
    }

    /// Parses scenario text. `file` names it in errors; relative prompt files resolve
    /// against `base_dir`.
    pub fn parse(src: &str, file: &str, base_dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let mut problems = Problems::new(file, src);
        let Some(raw) = ScenarioFile::parse(src, &mut problems) else {
            return Err(problems.into_error());
        };
        let scenario = validate(raw, &mut problems, base_dir.unwrap_or(Path::new(".")));
        problems.into_result(scenario)
    }

    /// The model a stage sends.
    pub fn stage_model<'a>(&'a self, stage: &'a Stage) -> &'a str {
        stage.model.as_deref().unwrap_or(&self.target.model)
    }
}

fn validate(raw: ScenarioFile, p: &mut Problems<'_>, base_dir: &Path) -> Scenario {
    let t = raw.target;
    let base_url = {
        let text = t.base_url.get_ref().trim();
        if text == "mock" {
            BaseUrl::Mock
        } else {
            match parse_base_url(text) {
                Ok(u) => BaseUrl::Url(u),
                Err(msg) => {
                    p.at(Some(t.base_url.span()), msg);
                    BaseUrl::Mock
                }
            }
        }
    };
    if t.model.get_ref().trim().is_empty() {
        p.at(Some(t.model.span()), "target.model must not be empty");
    }
    let api_key_env = match &t.api_key_env {
        Some(v) if v.get_ref().trim().is_empty() => {
            p.at(Some(v.span()), "target.api_key_env must name an environment variable");
            String::new()
        }
        Some(v) => v.get_ref().clone(),
        None => DEFAULT_API_KEY_ENV.to_string(),
    };
    let stream = t.stream.unwrap_or(false);
    let stream_usage = t.stream_usage.unwrap_or(true);
    let positive = |d: &Option<toml::Spanned<DurationValue>>, name: &str, default: Duration, p: &mut Problems<'_>| match d {
        Some(v) if v.get_ref().0.is_zero() => {
            p.at(Some(v.span()), format!("target.{name} must be greater than zero"));
            default
        }
        Some(v) => v.get_ref().0,
        None => default,
    };
    let timeout = positive(&t.timeout, "timeout", DEFAULT_TIMEOUT, p);
    let connect_timeout = positive(&t.connect_timeout, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, p);
    let idle_timeout = t.idle_timeout.as_ref().map(|_| positive(&t.idle_timeout, "idle_timeout", DEFAULT_TIMEOUT, p));
    let api_key_file = t.api_key_file.as_ref().map(|f| {
        if let Some(env) = &t.api_key_env {
            p.at(Some(env.span()), "give target.api_key_env or target.api_key_file, not both");
        }
        if f.get_ref().trim().is_empty() {
            p.at(Some(f.span()), "target.api_key_file must name a file");
        }
        base_dir.join(f.get_ref())
    });

    let mock = match raw.mock {
        Some(m) => {
            if base_url != BaseUrl::Mock {
                p.at(Some(m.span()), "[mock] is only used with target.base_url = \"mock\"; remove it or set base_url = \"mock\"");
            }
            for msg in m.get_ref().problems() {
                p.at(Some(m.span()), format!("mock.{msg}"));
            }
            m.into_inner()
        }
        None => MockConfig::default(),
    };

    let prompts = prompts::resolve(raw.prompts, p, base_dir);

    let mut request = RequestParams { max_tokens: raw.request.max_tokens.map(|n| n.get()), temperature: None };
    if let Some(t) = raw.request.temperature {
        let v = *t.get_ref();
        if !(0.0..=2.0).contains(&v) {
            p.at(Some(t.span()), format!("request.temperature must be between 0 and 2, got {v}"));
        }
        request.temperature = Some(v);
    }

    let pricing = match raw.pricing {
        Some(f) => {
            let span = f.span();
            crate::cost::Pricing::with_overrides(f.into_inner()).unwrap_or_else(|problems| {
                for msg in problems {
                    p.at(Some(span.clone()), msg);
                }
                crate::cost::Pricing::builtin()
            })
        }
        None => crate::cost::Pricing::builtin(),
    };
    let slo = raw.slo.map(|f| {
        let span = f.span();
        let f = f.into_inner();
        let mut ms = |name: &str, v: Option<f64>| {
            v.and_then(|v| {
                if v.is_finite() && v > 0.0 && v <= 3_600_000.0 {
                    Some(Duration::from_secs_f64(v / 1000.0))
                } else {
                    p.at(Some(span.clone()), format!("slo.{name} must be between 0 (excluded) and 3600000 ms, got {v}"));
                    None
                }
            })
        };
        let slo = crate::metrics::Slo { ttft: ms("ttft_ms", f.ttft_ms), itl: ms("itl_ms", f.itl_ms), e2e: ms("e2e_ms", f.e2e_ms) };
        if slo.is_empty() {
            p.at(Some(span.clone()), "[slo] sets no objective: give ttft_ms, itl_ms or e2e_ms");
        }
        slo
    });
    let check = raw.check.map(|f| {
        let span = f.span();
        let f = f.into_inner();
        if f.expect != "json" {
            p.at(Some(span), format!("check.expect must be \"json\", got {:?}", f.expect));
        }
        crate::check::Expect::Json { required_keys: f.required_keys }
    });
    if let Some(slo) = &slo
        && (slo.ttft.is_some() || slo.itl.is_some())
        && !stream
    {
        p.field("slo", "ttft_ms and itl_ms need target.stream = true (only streams have a first token)");
    }

    let retry = raw.retry.as_ref().map_or_else(RetryPolicy::default, |f| retry_policy(&RetryPolicy::default(), f, "retry", p));
    let rate_limit = raw.rate_limit.as_ref().map_or_else(RateLimit::default, |f| rate_limit(&RateLimit::default(), f, "rate_limit", p));
    let abort_on_error_rate = raw.abort_on_error_rate.map(|v| {
        let r = *v.get_ref();
        if !(0.0..=1.0).contains(&r) {
            p.at(Some(v.span()), format!("abort_on_error_rate must be between 0 and 1 (a fraction of requests), got {r}"));
        }
        r
    });

    let stages_span = raw.stages.span();
    let raw_stages = raw.stages.into_inner();
    if raw_stages.is_empty() && raw.sweep.is_none() {
        p.at(Some(stages_span), "at least one [[stage]] (or a [sweep]) is needed");
    }
    let mut stages = Vec::with_capacity(raw_stages.len());
    let mut names = std::collections::HashSet::new();
    for (i, s) in raw_stages.into_iter().enumerate() {
        let span = s.span();
        let s = s.into_inner();
        let concurrency = s.concurrency.map_or(1, |c| c.get());
        let load = stage_load(&s, i, &span, p);
        let name = s.name.clone().unwrap_or_else(|| match load {
            Load::Open { rate, arrival, .. } => format!("{} {}/s", arrival.name(), fmt_rate(rate)),
            Load::Closed { .. } => default_stage_name(concurrency),
        });
        if concurrency > MAX_CONCURRENCY {
            p.at(Some(span.clone()), format!("stage {}: concurrency must be at most {MAX_CONCURRENCY}, got {concurrency}", i + 1));
        }
        if name.trim().is_empty() {
            p.at(Some(span.clone()), format!("stage {}: name must not be empty", i + 1));
        }
        if !names.insert(name.clone()) {
            p.at(Some(span.clone()), format!("stage {}: name {name:?} is used twice; stage names label the results", i + 1));
        }
        let duration = match &s.duration {
            Some(d) if d.get_ref().0.is_zero() => {
                p.at(Some(d.span()), format!("stage {name:?}: duration must be greater than zero"));
                None
            }
            Some(d) => Some(d.get_ref().0),
            None => None,
        };
        if s.requests.is_none() && s.duration.is_none() {
            p.at(Some(span.clone()), format!("stage {name:?}: give `requests` or `duration` (or both; the first reached ends the stage)"));
        }
        if let Some(m) = &s.model
            && m.trim().is_empty()
        {
            p.at(Some(span), format!("stage {name:?}: model must not be empty"));
        }
        let ramp = match &s.ramp {
            Some(r) if r.get_ref().0.is_zero() => {
                p.at(Some(r.span()), format!("stage {name:?}: ramp must be greater than zero"));
                None
            }
            r => r.as_ref().map(|r| r.get_ref().0),
        };
        let cooldown = match &s.cooldown {
            Some(c) if c.get_ref().0.is_zero() => {
                p.at(Some(c.span()), format!("stage {name:?}: cooldown must be greater than zero"));
                None
            }
            c => c.as_ref().map(|c| c.get_ref().0),
        };
        let retry = s.retry.as_ref().map_or_else(|| retry.clone(), |f| retry_policy(&retry, f, &format!("stage {name:?}: retry"), p));
        let rate_limit =
            s.rate_limit.as_ref().map_or(rate_limit, |f| self::rate_limit(&rate_limit, f, &format!("stage {name:?}: rate_limit"), p));
        stages.push(Stage {
            name,
            load,
            requests: s.requests.map(|n| n.get()),
            duration,
            model: s.model,
            warmup: s.warmup,
            ramp,
            cooldown,
            retry,
            rate_limit,
        });
    }

    let sweep = raw.sweep.as_ref().and_then(|f| sweep_stages(f, &mut stages, &mut names, &retry, rate_limit, p));
    if request.max_tokens.is_none() && stages.iter().chain(sweep.as_ref().map(|s| &s.template)).any(|s| s.rate_limit.tpm.is_some()) {
        p.field("rate_limit.tpm", TPM_NEEDS_MAX_TOKENS);
    }

    Scenario {
        name: raw.name.unwrap_or_else(|| "unnamed scenario".to_string()),
        description: raw.description,
        source: None,
        target: Target {
            base_url,
            model: t.model.into_inner(),
            api_key_env,
            stream,
            stream_usage,
            timeout,
            connect_timeout,
            idle_timeout,
            api_key_file,
            insecure: false,
        },
        mock,
        prompts,
        request,
        pricing,
        slo,
        check,
        abort_on_error_rate,
        sweep,
        stages,
    }
}

/// Appends the stages of a `[sweep]`, one per point, after the explicit ones. An
/// automatic sweep appends none: its points are chosen as it runs.
fn sweep_stages(
    f: &toml::Spanned<file::SweepFile>,
    stages: &mut Vec<Stage>,
    names: &mut std::collections::HashSet<String>,
    retry: &RetryPolicy,
    rate_limit: RateLimit,
    p: &mut Problems<'_>,
) -> Option<Sweep> {
    let span = f.span();
    let f = f.get_ref();
    let (kind, value) = match (&f.concurrency, &f.rates) {
        (Some(c), None) => (SweepKind::Concurrency, c),
        (None, Some(r)) => (SweepKind::Rate, r),
        _ => {
            p.at(Some(span), "sweep: give `concurrency = [1, 2, 4, …]` or `rates = [5, 10, …]` (one of them), or set it to \"auto\"");
            return None;
        }
    };
    let field = match kind {
        SweepKind::Concurrency => "concurrency",
        SweepKind::Rate => "rates",
    };
    let points = sweep_points(kind, field, value, p)?;
    let mut bad = |msg: String| p.at(Some(span.clone()), format!("sweep: {msg}"));
    let auto = points.is_none();
    if let Some(points) = &points {
        if points.len() < 2 || !points.windows(2).all(|w| w[0] < w[1]) {
            bad("needs at least two points, in increasing order".into());
        }
        if points.iter().any(|&x| !(x.is_finite() && (MIN_RATE..=MAX_RATE).contains(&x))) || points.len() > 64 {
            bad(format!("points must be from {MIN_RATE} to {MAX_RATE} (requests/s or workers), at most 64 of them"));
        }
        if points.iter().any(|&x| kind == SweepKind::Concurrency && x > f64::from(MAX_CONCURRENCY)) {
            bad(format!("concurrency must be at most {MAX_CONCURRENCY}"));
        }
        if f.start.is_some() || f.max.is_some() || f.max_points.is_some() || f.precision.is_some() {
            bad(format!("start, max, max_points and precision are for `{field} = \"auto\"`"));
        }
    }
    if f.max_in_flight.is_some_and(|m| m.get() > MAX_CONCURRENCY) {
        bad(format!("max_in_flight must be at most {MAX_CONCURRENCY}"));
    }
    if f.requests.is_none() && f.duration.is_none() {
        bad("give `requests` or `duration` for each point".into());
    }
    if f.duration.is_some_and(|d| d.0.is_zero()) {
        bad("duration must be greater than zero".into());
    }
    if f.cooldown.is_some_and(|d| d.0.is_zero()) {
        bad("cooldown must be greater than zero".into());
    }
    let arrival = match f.arrival.as_deref() {
        None | Some("constant") => Arrival::Constant,
        Some("poisson") => Arrival::Poisson,
        Some(other) => {
            bad(format!("arrival must be \"constant\" or \"poisson\", got {other:?}"));
            Arrival::Constant
        }
    };
    if kind == SweepKind::Concurrency && (f.arrival.is_some() || f.max_in_flight.is_some()) {
        bad("arrival and max_in_flight are for `rates` sweeps".into());
    }
    let knee_gain = f.knee_gain.unwrap_or(0.1);
    if !(knee_gain > 0.0 && knee_gain < 1.0) {
        bad(format!("knee_gain must be between 0 and 1 (a fraction per doubling), got {knee_gain}"));
    }
    let slo_quantile = f.slo_quantile.unwrap_or(0.99);
    if !(slo_quantile > 0.0 && slo_quantile <= 1.0) {
        bad(format!("slo_quantile must be above 0 and at most 1, got {slo_quantile}"));
    }
    let auto = auto.then(|| {
        let (lowest, highest, default_max) = match kind {
            SweepKind::Concurrency => (1.0, f64::from(MAX_CONCURRENCY), AUTO_MAX_CONCURRENCY),
            SweepKind::Rate => (MIN_RATE, MAX_RATE, MAX_RATE),
        };
        let start = f.start.unwrap_or(1.0);
        let max = f.max.unwrap_or(default_max);
        let whole = |x: f64| kind == SweepKind::Rate || x.fract() == 0.0;
        let number = if kind == SweepKind::Rate { "a number" } else { "a whole number" };
        if !(start.is_finite() && (lowest..=highest).contains(&start) && whole(start)) {
            bad(format!("start must be {number} from {lowest} to {highest}, got {start}"));
        }
        if !(max.is_finite() && max >= start * 2.0 && max <= highest && whole(max)) {
            bad(format!("max must be at least twice start ({start}) and at most {highest}, got {max}"));
        }
        let max_points = f.max_points.map_or(AUTO_MAX_POINTS, |n| n.get());
        if !(3..=64).contains(&max_points) {
            bad(format!("max_points must be from 3 to 64, got {max_points}"));
        }
        let precision = f.precision.unwrap_or(AUTO_PRECISION);
        // Below 1 % the midpoints, rounded to three digits, would land on the bracket.
        if !(0.01..1.0).contains(&precision) {
            bad(format!("precision must be from 0.01 to below 1 (a fraction of the load), got {precision}"));
        }
        if let Some(n) = f.requests.filter(|n| kind == SweepKind::Concurrency && max > n.get() as f64) {
            bad(format!(
                "max ({max}) is more than requests ({n}): a point can never have more than {n} in flight, so throughput would plateau at llmload's limit, not the server's; lower max, or give a duration instead of requests"
            ));
        }
        AutoSweep { start, max, max_points, precision }
    });
    let template = Stage {
        name: String::new(),
        load: match kind {
            SweepKind::Concurrency => Load::Closed { concurrency: 1 },
            SweepKind::Rate => {
                Load::Open { rate: 1.0, arrival, max_in_flight: f.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |m| m.get()), seed: 0 }
            }
        },
        requests: f.requests.map(|n| n.get()),
        duration: f.duration.map(|d| d.0),
        model: None,
        warmup: f.warmup,
        ramp: None,
        cooldown: f.cooldown.map(|d| d.0),
        retry: retry.clone(),
        rate_limit,
    };
    let first_stage = stages.len();
    let sweep = Sweep { kind, points: points.unwrap_or_default(), auto, first_stage, knee_gain, slo_quantile, template };
    for (k, &x) in sweep.points.iter().enumerate() {
        let stage = sweep.stage(x, k);
        if !names.insert(stage.name.clone()) {
            p.at(Some(span.clone()), format!("sweep: point {:?} has the name of another stage", stage.name));
        }
        stages.push(stage);
    }
    Some(sweep)
}

/// A sweep's list of points, or None for "auto"; problems reported at the value.
fn sweep_points(kind: SweepKind, field: &str, value: &toml::Spanned<toml::Value>, p: &mut Problems<'_>) -> Option<Option<Vec<f64>>> {
    let at = Some(value.span());
    let what = match kind {
        SweepKind::Concurrency => "worker counts (whole numbers)",
        SweepKind::Rate => "requests per second",
    };
    let number = |v: &toml::Value| match (kind, v) {
        (_, toml::Value::Integer(n)) if *n >= 1 => Some(*n as f64),
        (SweepKind::Rate, toml::Value::Float(x)) => Some(*x),
        _ => None,
    };
    match value.get_ref() {
        toml::Value::String(s) if s == "auto" => Some(None),
        toml::Value::Array(items) => match items.iter().map(number).collect::<Option<Vec<f64>>>() {
            Some(points) => Some(Some(points)),
            None => {
                p.at(at, format!("sweep: {field} must list {what}"));
                None
            }
        },
        _ => {
            p.at(at, format!("sweep: {field} must be a list of {what} or \"auto\""));
            None
        }
    }
}

/// `base` with the fields `f` sets; problems reported at `f`, prefixed with `what`.
fn retry_policy(base: &RetryPolicy, f: &toml::Spanned<file::RetryFile>, what: &str, p: &mut Problems<'_>) -> RetryPolicy {
    let span = f.span();
    let f = f.get_ref();
    let mut r = base.clone();
    if let Some(n) = f.max_attempts {
        r.max_attempts = n.get();
        if r.max_attempts > MAX_ATTEMPTS {
            p.at(Some(span.clone()), format!("{what}.max_attempts must be at most {MAX_ATTEMPTS}, got {}", r.max_attempts));
        }
    }
    r.backoff = f.backoff.map_or(r.backoff, |d| d.0);
    r.max_backoff = f.max_backoff.map_or(r.max_backoff, |d| d.0);
    r.max_retry_after = f.max_retry_after.map_or(r.max_retry_after, |d| d.0);
    r.after_window = f.after_window.map_or(r.after_window, |d| d.0);
    if r.max_retry_after > crate::client::MAX_RETRY_AFTER {
        p.at(Some(span.clone()), format!("{what}.max_retry_after must be at most {} s", crate::client::MAX_RETRY_AFTER.as_secs()));
    }
    r.respect_retry_after = f.respect_retry_after.unwrap_or(r.respect_retry_after);
    if r.backoff > r.max_backoff {
        p.at(Some(span.clone()), format!("{what}.backoff ({:?}) must not exceed max_backoff ({:?})", r.backoff, r.max_backoff));
    }
    if let Some(on) = &f.on {
        r.on = Vec::new();
        for o in on {
            match RetryOn::parse(o.get_ref()) {
                Some(c) if !r.on.contains(&c) => r.on.push(c),
                Some(_) => {}
                None => {
                    let names: Vec<&str> = RetryOn::ALL.iter().map(|(n, _)| *n).collect();
                    p.at(Some(o.span()), format!("{what}.on: unknown outcome {:?}, expected one of {}", o.get_ref(), names.join(", ")))
                }
            }
        }
    }
    r
}

/// Why a tokens-per-minute limit needs `max_tokens`, for the scenario and `--tpm`.
pub const TPM_NEEDS_MAX_TOKENS: &str = "needs request.max_tokens: a request weighs its prompt plus max_tokens, as providers count it; without it completions would go uncounted";

/// Most attempts per request: enough for any sane policy, bounded so a typo cannot
/// multiply the load a thousandfold.
pub const MAX_ATTEMPTS: u32 = 20;
/// Highest rate accepted, per minute.
const MAX_PER_MINUTE: f64 = 1e9;

fn rate_limit(base: &RateLimit, f: &toml::Spanned<file::RateLimitFile>, what: &str, p: &mut Problems<'_>) -> RateLimit {
    let span = f.span();
    let f = f.get_ref();
    let mut check = |name: &str, v: Option<f64>, old: Option<f64>| match v {
        Some(v) if !(v.is_finite() && v > 0.0 && v <= MAX_PER_MINUTE) => {
            p.at(Some(span.clone()), format!("{what}.{name} must be a positive number per minute (at most 1e9), got {v}"));
            old
        }
        Some(v) => Some(v),
        None => old,
    };
    let limit = RateLimit { rpm: check("rpm", f.rpm, base.rpm), tpm: check("tpm", f.tpm, base.tpm) };
    if f.rpm.is_none() && f.tpm.is_none() {
        p.at(Some(span), format!("{what} sets no limit: give rpm, tpm or both"));
    }
    limit
}

/// The stage's load: closed (`concurrency`) or open (`rate`, `arrival`, …); problems
/// reported at the stage.
fn stage_load(s: &file::StageFile, i: usize, span: &std::ops::Range<usize>, p: &mut Problems<'_>) -> Load {
    let concurrency = s.concurrency.map_or(1, |c| c.get());
    let at = |v: Option<std::ops::Range<usize>>| Some(v.unwrap_or_else(|| span.clone()));
    let Some(rate) = &s.rate else {
        for (set, field) in [
            (s.arrival.is_some(), "arrival"),
            (s.burstiness.is_some(), "burstiness"),
            (s.max_in_flight.is_some(), "max_in_flight"),
            (s.seed.is_some(), "seed"),
        ] {
            if set {
                p.at(at(None), format!("stage {}: {field} is for open-loop stages: give `rate` (requests/s) too", i + 1));
            }
        }
        return Load::Closed { concurrency };
    };
    if s.concurrency.is_some() {
        p.at(at(None), format!("stage {}: give `concurrency` (closed loop) or `rate` (open loop), not both", i + 1));
    }
    let r = *rate.get_ref();
    if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
        p.at(at(Some(rate.span())), format!("stage {}: rate must be from {MIN_RATE} to {MAX_RATE} requests/s, got {r}", i + 1));
    }
    let burstiness = s.burstiness.as_ref().map(|b| {
        let v = *b.get_ref();
        if !(v.is_finite() && v > 0.0 && v <= 100.0) {
            p.at(at(Some(b.span())), format!("stage {}: burstiness must be above 0 and at most 100, got {v}", i + 1));
        }
        (v, b.span())
    });
    let arrival = match s.arrival.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
        None | Some(("constant", _)) => Arrival::Constant,
        Some(("poisson", _)) => Arrival::Poisson,
        Some(("gamma", _)) => Arrival::Gamma { burstiness: burstiness.as_ref().map_or(2.0, |b| b.0) },
        Some((other, sp)) => {
            p.at(at(Some(sp)), format!("stage {}: arrival must be \"constant\", \"poisson\" or \"gamma\", got {other:?}", i + 1));
            Arrival::Constant
        }
    };
    if let Some((_, sp)) = burstiness
        && !matches!(arrival, Arrival::Gamma { .. })
    {
        p.at(at(Some(sp)), format!("stage {}: burstiness is for arrival = \"gamma\"", i + 1));
    }
    let max_in_flight = s.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |m| m.get());
    if max_in_flight > MAX_CONCURRENCY {
        p.at(at(None), format!("stage {}: max_in_flight must be at most {MAX_CONCURRENCY}, got {max_in_flight}", i + 1));
    }
    Load::Open { rate: r, arrival, max_in_flight, seed: s.seed.unwrap_or(i as u64) }
}

/// A sweep's rate as its point's name shows it: three significant digits, trailing
/// zeros dropped: "20", "13.8", "0.0123", "1230".
fn fmt_point(x: f64) -> String {
    let decimals = (2 - x.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A rate as a stage name shows it: "20", "2.5", "0.25".
fn fmt_rate(r: f64) -> String {
    let s = format!("{r:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn default_stage_name(concurrency: u32) -> String {
    if concurrency == 1 { "sequential".to_string() } else { format!("{concurrency}-way") }
}

/// Parses an API root such as `http://127.0.0.1:8000/v1`.
pub fn parse_base_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("base_url {text:?} is not a URL ({e}); use \"mock\" or e.g. \"http://127.0.0.1:8000/v1\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("base_url must start with http:// or https://, got {:?}", url.scheme()));
    }
    if url.host_str().is_none() {
        return Err("base_url has no host".to_string());
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
