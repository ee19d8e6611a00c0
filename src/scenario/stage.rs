//! A stage as the engine runs it: its load (closed loop or open-loop arrivals), its
//! bounds (requests, duration, warmup, ramp, cooldown), its retry policy and rate
//! limits; and how a stage is named when the file gives no name.

use std::time::Duration;

use serde::Serialize;

use super::{ser_opt_secs, ser_secs};
use crate::model::threshold::Threshold;
use crate::model::{FailureKind, Numbers, RateLimit, RequestParams};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    #[serde(flatten)]
    pub load: Load,
    /// Measured requests; the stage ends at this count or `duration`, whichever comes first.
    pub requests: Option<u64>,
    #[serde(serialize_with = "ser_opt_secs", rename = "duration_s")]
    pub duration: Option<Duration>,
    /// Runs until these figures' intervals are this narrow (`duration` is then its
    /// `max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<crate::model::UntilSpec>,
    /// Model override for this stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Requests run before the measured window, excluded from every figure.
    pub warmup: u64,
    /// `warmup = "auto"`: the load runs, outside the figures, until its per-second
    /// throughput and latency settle (MSER), and the window opens then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warmup_auto: bool,
    /// Open loop: the window ends early once its backlog grows without bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stop_on_saturation: bool,
    /// After warmup, the load rises linearly to the stage's over this long, outside
    /// the figures (kept in the time series).
    #[serde(serialize_with = "ser_opt_secs", rename = "ramp_s")]
    pub ramp: Option<Duration>,
    /// After the window, the load stays on, up to this long, until every request of the
    /// window has ended: its last ones are measured under the stage's load, not a
    /// draining one. Cooldown requests are outside the figures (kept in the series).
    #[serde(serialize_with = "ser_opt_secs", rename = "cooldown_s")]
    pub cooldown: Option<Duration>,
    /// What every request of the stage asks for (the scenario's `[request]`, with this
    /// stage's overrides).
    pub request: RequestParams,
    /// The API it speaks: `target.api`, or the stage's own.
    pub api: crate::model::Api,
    /// How many texts a request carries (embeddings, rerank): the scenario's, with this
    /// stage's overrides.
    #[serde(skip)]
    pub texts: crate::workload::texts::TextsSpec,
    /// Retries of failed requests (the scenario's `[retry]`, with this stage's overrides).
    pub retry: RetryPolicy,
    /// Client-side rate limits (the scenario's `[rate_limit]`, with overrides).
    pub rate_limit: RateLimit,
    /// What the stage must meet (`[thresholds]` and its own), judged when the run ends.
    #[serde(serialize_with = "ser_thresholds", skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// On a shard: how its request numbers map to the whole run's (the identity else).
    #[serde(skip)]
    pub numbers: Numbers,
    /// The `[[task]]` it runs instead of single requests (`requests` then counts tasks).
    #[serde(serialize_with = "ser_task", skip_serializing_if = "Option::is_none")]
    pub task: Option<std::sync::Arc<crate::workload::task::TaskDef>>,
    /// A task stage: the most requests in flight across its tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_in_flight: Option<u32>,
}

impl Stage {
    /// The most requests it may have in flight at once: its load's, or a task stage's
    /// tasks in flight times its widest step's (at most its `max_in_flight`).
    pub fn requests_in_flight(&self) -> u32 {
        let Some(t) = &self.task else { return self.load.concurrency() };
        let widest = t.steps.iter().map(|s| s.concurrency.min(s.fan_out.most())).max().unwrap_or(1);
        let n = self.load.concurrency().saturating_mul(widest);
        self.max_requests_in_flight.map_or(n, |m| m.min(n)).min(super::MAX_CONCURRENCY)
    }
}

fn ser_task<S: serde::Serializer>(t: &Option<std::sync::Arc<crate::workload::task::TaskDef>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.name),
        None => s.serialize_none(),
    }
}

fn ser_thresholds<S: serde::Serializer>(t: &[Threshold], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(Threshold::text))
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
    pub fn retries(&self, kind: FailureKind) -> bool {
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
    pub(super) const ALL: [(&'static str, RetryOn); 5] = [
        ("429", RetryOn::Http429),
        ("5xx", RetryOn::Http5xx),
        ("connect", RetryOn::Connect),
        ("timeout", RetryOn::Timeout),
        ("transport", RetryOn::Transport),
    ];

    pub(super) fn parse(text: &str) -> Option<RetryOn> {
        Self::ALL.iter().find(|(n, _)| *n == text).map(|(_, o)| *o)
    }

    fn covers(self, kind: FailureKind) -> bool {
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
    /// A trace's own timestamps, its clock run `speed` times as fast.
    Trace { speed: f64 },
}

impl Arrival {
    pub fn name(&self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
            Arrival::Gamma { .. } => "gamma",
            Arrival::Trace { .. } => "trace",
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

/// A rate as a stage's name shows it: three significant digits and at least
/// `min_decimals` decimals, trailing zeros dropped. A sweep point takes none ("13.8",
/// "0.0123", "1230": bisected rates keep their names apart); a stage of the file takes
/// two, so rates it tells apart keep apart names ("12.26" and "12.3").
pub(super) fn rate_name(x: f64, min_decimals: i32) -> String {
    // Any number: a stage named before its rate is checked may carry a bad one.
    let magnitude = if x.is_finite() && x > 0.0 { x.log10().floor() as i32 } else { 0 };
    let decimals = 2i32.saturating_sub(magnitude).clamp(min_decimals, 6) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// "sequential", or "N-way".
pub(super) fn default_stage_name(concurrency: u32) -> String {
    if concurrency == 1 { "sequential".to_string() } else { format!("{concurrency}-way") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_named_with_three_significant_digits() {
        for (rate, point, stage) in [
            (20.0, "20", "20"),
            (2.5, "2.5", "2.5"),
            (0.25, "0.25", "0.25"),
            (13.75, "13.8", "13.75"),
            (12.26, "12.3", "12.26"),
            (0.0123, "0.0123", "0.0123"),
            (1230.0, "1230", "1230"),
            (1000.4, "1000", "1000.4"),
        ] {
            assert_eq!((rate_name(rate, 0).as_str(), rate_name(rate, 2).as_str()), (point, stage), "{rate}");
        }
        // The slowest rate accepted keeps its digit (two decimals alone would read "0").
        assert_eq!(rate_name(MIN_RATE, 2), "0.001");
        assert_ne!(rate_name(0.001, 2), rate_name(0.004, 2));
        // Rates not yet checked name a stage without a panic.
        for bad in [0.0, -5.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(!rate_name(bad, 2).is_empty());
        }
    }
}
