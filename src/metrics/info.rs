//! What the engine says about a stage and a request beyond its record: the stage's
//! plan (`StageInfo`), which part of the stage a request belongs to, and its attempts.

use std::time::Duration;

use crate::model::{FailureKind, RateLimit, Slo};

/// A request's story beyond its final attempt: retries and rate-limiter waits.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    /// Failed attempts before the final one.
    pub earlier: Vec<FailedAttempt>,
    /// The final attempt's own latency (the record's counts from the first send).
    pub last: Duration,
    /// Retries that waited what the server's Retry-After asked.
    pub retry_after_waits: u32,
    /// The policy called for one more retry, but a stop came first.
    pub retry_not_sent: bool,
    /// Whether the client-side rate limiter held the request back, and for how long.
    pub limited: bool,
    pub limiter_wait: Duration,
    /// When the first attempt was sent.
    pub first_send: Option<std::time::Instant>,
    /// Open loop: first send − scheduled start (already added to the record's latency).
    pub lag: Option<Duration>,
    /// A ramp's request (its part is `Warmup`).
    pub ramp: bool,
}

/// An attempt that failed and was retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailedAttempt {
    pub kind: FailureKind,
    pub latency: Duration,
    pub status: Option<u16>,
}

/// What a stage is, as the aggregator and reports need it.
#[derive(Debug, Clone, Default)]
pub struct StageInfo {
    pub index: usize,
    pub name: String,
    pub concurrency: u32,
    pub model: String,
    pub planned_requests: Option<u64>,
    pub planned_duration: Option<Duration>,
    pub warmup: u64,
    /// `warmup = "auto"`: the warmup runs until the series settle.
    pub warmup_auto: bool,
    /// Objectives for goodput, when the scenario sets them.
    pub slo: Option<Slo>,
    /// The stage's client-side rate limits.
    pub rate_limit: RateLimit,
    /// Open loop: target arrivals per second and their spacing.
    pub rate: Option<f64>,
    pub arrival: Option<&'static str>,
    /// What its requests carry several of: "inputs" (embeddings), "documents" (rerank).
    pub items: Option<&'static str>,
    /// A task stage: the task's name and its steps' (`planned_requests` counts tasks).
    pub task: Option<(String, Vec<String>)>,
}

/// Which part of a stage a request belongs to. Only the window's are measured; the
/// others count in the time series and their own totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Warmup requests and the ramp.
    Warmup,
    Window,
    /// Sent after the window while its last requests end.
    Cooldown,
}
