//! What a stage is held to: service-level objectives (goodput), client-side rate
//! limits, and the precision it runs until (`until`).

use std::time::Duration;

/// Service-level objectives: a request is "good" when it succeeded and meets each one
/// set. Goodput = good requests / stage wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Slo {
    #[serde(serialize_with = "ser_opt_ms", rename = "ttft_ms")]
    pub ttft: Option<Duration>,
    #[serde(serialize_with = "ser_opt_ms", rename = "itl_ms")]
    pub itl: Option<Duration>,
    #[serde(serialize_with = "ser_opt_ms", rename = "e2e_ms")]
    pub e2e: Option<Duration>,
    /// A task stage's: a task's whole latency (its requests are held to the others).
    #[serde(serialize_with = "ser_opt_ms", rename = "task_ms", skip_serializing_if = "Option::is_none")]
    pub task: Option<Duration>,
}

impl Slo {
    pub fn is_empty(&self) -> bool {
        self.ttft.is_none() && self.itl.is_none() && self.e2e.is_none() && self.task.is_none()
    }

    /// Whether it holds requests to anything (a task's objective is its tasks').
    pub fn for_requests(&self) -> bool {
        self.ttft.is_some() || self.itl.is_some() || self.e2e.is_some()
    }

    /// Whether a successful request with these timings meets every objective set. A
    /// timing the request lacks (no TTFT without a stream) fails its objective.
    pub fn met(&self, e2e: Duration, ttft: Option<Duration>, itl: Option<Duration>) -> bool {
        let ok = |limit: Option<Duration>, v: Option<Duration>| limit.is_none_or(|l| v.is_some_and(|v| v <= l));
        ok(self.e2e, Some(e2e)) && ok(self.ttft, ttft) && ok(self.itl, itl)
    }
}

/// A stage that runs until its figures are known: every goal's interval at most
/// `within` of its figure, or `max` of window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UntilSpec {
    pub goals: Vec<Until>,
    #[serde(serialize_with = "ser_secs", rename = "max_s")]
    pub max: Duration,
}

/// One figure's precision: its `confidence` interval's half-width (the wider side) at
/// most `within` (a share) of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Until {
    /// A figure of the threshold vocabulary that has an interval (`p99_ms`, `ok_rps`, …).
    pub metric: String,
    pub within: f64,
    pub confidence: f64,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

/// Requests and tokens per minute, paced by a shared limiter; None = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RateLimit {
    pub rpm: Option<f64>,
    pub tpm: Option<f64>,
}

impl RateLimit {
    pub fn is_set(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}
