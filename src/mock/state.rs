//! What the mock server shares between requests: its knobs, its tokenizer and prefix
//! cache, the count in flight (the latency model's input), arrival numbers, the rate
//! limit, capacity slots, stats, and (when asked, for tests) the last request it got.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;

use super::config::{MockConfig, MockStats};
use super::prefix::PrefixCache;
use super::reply::Words;
use crate::gcra::Bucket;
use crate::workload::tokens::Tokenizer;

pub(super) struct MockState {
    pub cfg: MockConfig,
    /// Counts prompts (and the prefix cache's blocks) and replies.
    pub tokenizer: Tokenizer,
    /// The reply's words, as `tokenizer` counts them.
    pub words: Words,
    pub prefix: PrefixCache,
    pub in_flight: AtomicU64,
    /// The most in flight at once.
    most_in_flight: AtomicU64,
    pub seq: AtomicU64,
    /// The server-side request limit, when `rate_limit_rpm` is set.
    limit: Option<Mutex<Bucket>>,
    /// Slots to be served in, when `capacity` is set (tokio's semaphore is fair: FIFO).
    pub capacity: Option<Arc<tokio::sync::Semaphore>>,
    /// The KV-cache budget's tokens, when `kv_cache_tokens` is set (fair: FIFO).
    pub kv: Option<Arc<tokio::sync::Semaphore>>,
    stats: Mutex<MockStats>,
    /// What `GET /metrics` says, in vLLM's names.
    pub metrics: super::metrics::MockMetrics,
    /// The last request to a completions endpoint, when recording.
    seen: Option<Mutex<Option<SeenRequest>>>,
    /// When it started: a cold start (`cold_ms`) fades from here.
    born: std::time::Instant,
}

/// A request as the mock got it: for tests that check what reached the server.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `/v1/chat/completions` or `/v1/completions`.
    pub path: String,
    /// Every header, by lowercase name.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl SeenRequest {
    /// The body as JSON (null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl MockState {
    /// With `record`, the last request is kept for [`MockState::last`].
    pub fn new(cfg: MockConfig, record: bool, tokenizer: Tokenizer) -> Arc<MockState> {
        let limit = cfg.rate_limit_rpm.map(|rpm| {
            let burst = cfg.rate_limit_burst.unwrap_or(rpm / 60.0).max(1.0);
            Mutex::new(Bucket::per_minute(rpm, burst, std::time::Instant::now()))
        });
        let capacity = cfg.capacity.map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize)));
        let seen = record.then(Mutex::default);
        let kv =
            cfg.kv_cache_tokens.map(|n| Arc::new(tokio::sync::Semaphore::new(n.min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize)));
        Arc::new(MockState {
            words: Words::new(tokenizer.clone()),
            prefix: PrefixCache::new(cfg.prefix_cache_blocks),
            tokenizer,
            cfg,
            in_flight: AtomicU64::new(0),
            most_in_flight: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            limit,
            capacity,
            kv,
            stats: Mutex::default(),
            metrics: Default::default(),
            seen,
            born: std::time::Instant::now(),
        })
    }

    /// What a cold start adds to a request that arrived `at`, ms: `cold_ms` at the
    /// mock's start, falling linearly to none at `cold_s`.
    pub fn cold_ms(&self, at: std::time::Instant) -> f64 {
        let (ms, s) = (self.cfg.cold_ms, self.cfg.cold_s);
        if ms <= 0.0 || s <= 0.0 {
            return 0.0;
        }
        ms * (1.0 - at.saturating_duration_since(self.born).as_secs_f64() / s).max(0.0)
    }

    pub fn count(&self, f: impl FnOnce(&mut MockStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn stats(&self) -> MockStats {
        let most_in_flight = self.most_in_flight.load(Ordering::Relaxed);
        MockStats { most_in_flight, ..self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone() }
    }

    /// Empties the prefix cache, as vLLM's `POST /reset_prefix_cache` does.
    pub fn reset_prefix_cache(&self) {
        self.prefix.clear();
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).prefix_cache_resets += 1;
    }

    /// Whether the last request is kept.
    pub fn recording(&self) -> bool {
        self.seen.is_some()
    }

    /// Keeps this request as the last one, when recording.
    pub fn saw(&self, path: String, headers: &axum::http::HeaderMap, body: &Bytes) {
        if let Some(seen) = &self.seen {
            let headers =
                headers.iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(SeenRequest { path, headers, body: body.clone() });
        }
    }

    /// The last request, when recording.
    pub fn last(&self) -> Option<SeenRequest> {
        self.seen.as_ref()?.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long until a request fits, when the limit refuses this one.
    pub fn over_limit(&self) -> Option<Duration> {
        let mut bucket = self.limit.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        bucket.try_take(std::time::Instant::now()).err()
    }
}

/// Decrements the in-flight count however the request ends (also on client disconnect,
/// and for streams only when the stream ends).
/// Holds the request's capacity slot too, so a stream keeps it until its end.
/// Its e2e latency (from when it was received) goes to the metrics then.
/// The tokens its reply carries go to the metrics then too.
pub(super) struct InFlight {
    state: Arc<MockState>,
    #[allow(dead_code)]
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    received: std::time::Instant,
    output: u64,
    /// The KV-cache tokens it holds, given back at its end.
    kv: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl InFlight {
    /// Counts the request in, and says how many are in flight with it.
    pub fn enter(state: &Arc<MockState>, slot: Option<tokio::sync::OwnedSemaphorePermit>, received: std::time::Instant) -> (Self, u64) {
        let n = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_in_flight.fetch_max(n, Ordering::Relaxed);
        (InFlight { state: state.clone(), slot, received, output: 0, kv: None }, n)
    }

    /// Waits (in arrival order) until `tokens` of the KV-cache budget are free, then
    /// holds them: the wait counted as waiting, not running. The seconds it waited.
    pub async fn hold_kv(&mut self, tokens: u64) -> f64 {
        let Some(kv) = self.state.kv.clone() else { return 0.0 };
        let budget = self.state.cfg.kv_cache_tokens.unwrap_or(0);
        // A request larger than the whole cache takes all of it (a server would refuse it).
        let n = tokens.clamp(1, budget).min(u64::from(u32::MAX)) as u32;
        let m = &self.state.metrics;
        let t0 = std::time::Instant::now();
        m.kv_waiting(1);
        self.kv = kv.acquire_many_owned(n).await.ok();
        m.kv_waiting(-1);
        m.kv_hold(i64::from(n));
        t0.elapsed().as_secs_f64()
    }

    /// The reply's length, counted as generated when it ends.
    pub fn will_generate(&mut self, tokens: u64) {
        self.output = tokens;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.state.metrics.generated(self.output);
        if let Some(kv) = &self.kv {
            self.state.metrics.kv_hold(-(kv.num_permits() as i64));
        }
        self.state.metrics.ended(self.received.elapsed().as_secs_f64());
    }
}
