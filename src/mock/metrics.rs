//! The mock's own metrics at `GET /metrics`, in vLLM's v1 names (the exposition format
//! of `tests/fixtures/metrics/vllm.prom`), true to what it does: requests running (in
//! flight, past `capacity` and the KV-cache budget) and waiting (for either), KV-cache
//! usage (tokens held over `kv_cache_tokens`; 0 without a budget), the prefix cache's
//! queries and hits, prompt and
//! generation tokens, and histograms of its queue time, TTFT and e2e latency with
//! vLLM's bucket bounds. Every family is exported whatever the flags.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// vLLM's bounds: TTFT's, and e2e's (which its queue time shares), seconds.
const TTFT_BOUNDS: [f64; 22] =
    [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
const E2E_BOUNDS: [f64; 21] =
    [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

/// Counts by bound (not cumulative), the sum and count.
#[derive(Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str, bounds: &[f64]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut seen = 0;
        for (i, b) in bounds.iter().enumerate() {
            seen += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{LABELS},le=\"{b:?}\"}} {seen}.0");
        }
        let _ = writeln!(out, "{name}_bucket{{{LABELS},le=\"+Inf\"}} {}.0", self.count);
        let _ = writeln!(out, "{name}_count{{{LABELS}}} {}.0\n{name}_sum{{{LABELS}}} {:?}", self.count, self.sum);
    }
}

/// Every series' labels, as vLLM writes them.
const LABELS: &str = "engine=\"0\",model_name=\"mock-model\"";

#[derive(Default)]
pub(super) struct MockMetrics {
    pub waiting: AtomicU64,
    /// Of those in flight, waiting for KV-cache room (waiting, not running); and the
    /// KV-cache tokens held.
    kv_waiting: AtomicI64,
    kv_held: AtomicI64,
    prompt_tokens: AtomicU64,
    prefix_hits: AtomicU64,
    generation_tokens: AtomicU64,
    /// Queue time, TTFT, e2e.
    hists: Mutex<[Hist; 3]>,
}

impl MockMetrics {
    /// A prompt prefilled (its tokens, of them those its prefix cache held): counted at
    /// its first token, as a server counts it when its prefill step is done.
    pub fn prefilled(&self, prompt: u64, cached: u64) {
        self.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.prefix_hits.fetch_add(cached, Ordering::Relaxed);
    }

    /// A reply's tokens, counted as it ends (a server counts them step by step).
    pub fn generated(&self, output: u64) {
        self.generation_tokens.fetch_add(output, Ordering::Relaxed);
    }

    /// Requests running, of `in_flight` (those waiting for KV-cache room are not).
    pub fn running(&self, in_flight: u64) -> u64 {
        in_flight.saturating_sub(self.kv_waiting.load(Ordering::Relaxed).max(0) as u64)
    }

    pub fn kv_waiting(&self, by: i64) {
        self.kv_waiting.fetch_add(by, Ordering::Relaxed);
    }

    pub fn kv_hold(&self, by: i64) {
        self.kv_held.fetch_add(by, Ordering::Relaxed);
    }

    pub fn queued(&self, seconds: f64) {
        self.observe(0, &E2E_BOUNDS, seconds);
    }

    pub fn first_token(&self, seconds: f64) {
        self.observe(1, &TTFT_BOUNDS, seconds);
    }

    pub fn ended(&self, seconds: f64) {
        self.observe(2, &E2E_BOUNDS, seconds);
    }

    fn observe(&self, which: usize, bounds: &[f64], seconds: f64) {
        self.hists.lock().unwrap_or_else(|p| p.into_inner())[which].observe(bounds, seconds);
    }

    /// The exposition, with `in_flight` requests in the mock (those waiting for KV-cache
    /// room among them) and a KV-cache budget of `kv_budget` tokens.
    pub fn render(&self, in_flight: u64, kv_budget: Option<u64>) -> String {
        let running = self.running(in_flight);
        let kv_usage = kv_budget.map_or(0.0, |b| self.kv_held.load(Ordering::Relaxed).max(0) as f64 / b as f64);
        let mut out = String::with_capacity(8 << 10);
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{LABELS}}} {v:?}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            // As prometheus_client writes a counter in the text format: `_total` throughout.
            let _ = writeln!(out, "# HELP {name}_total {help}\n# TYPE {name}_total counter\n{name}_total{{{LABELS}}} {v}.0");
        };
        gauge(&mut out, "vllm:num_requests_running", "Number of requests in model execution batches.", running as f64);
        let waiting = self.waiting.load(Ordering::Relaxed) + (in_flight - running);
        gauge(&mut out, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting as f64);
        gauge(&mut out, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_usage);
        let prompt = self.prompt_tokens.load(Ordering::Relaxed);
        counter(&mut out, "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", prompt);
        counter(
            &mut out,
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            self.prefix_hits.load(Ordering::Relaxed),
        );
        counter(&mut out, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", 0);
        counter(&mut out, "vllm:prompt_tokens", "Number of prefill tokens processed.", prompt);
        counter(
            &mut out,
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            self.generation_tokens.load(Ordering::Relaxed),
        );
        let h = self.hists.lock().unwrap_or_else(|p| p.into_inner());
        h[0].write(&mut out, "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", &E2E_BOUNDS);
        h[1].write(&mut out, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &TTFT_BOUNDS);
        h[2].write(&mut out, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", &E2E_BOUNDS);
        out
    }
}
/// One request counted in `waiting` while it lives: counted out however it ends.
pub struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    pub fn enter(count: &'a AtomicU64) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
