//! Embedded OpenAI-compatible mock server (axum). Every scenario runs against it with
//! no API key and no network.
//!
//! Latency model: a request spends `base_latency_ms` (± seeded jitter) in the server,
//! then `per_inflight_ms` for every request in flight at that moment, itself included.
//! Closed-loop N-way load therefore sees about base + N × per_inflight: 82 ms alone,
//! 180 ms at 50-way with the defaults — the shape of the seed comparison table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Mock knobs, shared by the scenario's `[mock]` table and `llmload mock` flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Time every request spends in the server before load-dependent time, in ms.
    pub base_latency_ms: f64,
    /// Extra ms per request in flight (itself included) when the base time has passed.
    pub per_inflight_ms: f64,
    /// Uniform jitter of ± this many ms on the base time, drawn from `seed`.
    pub jitter_ms: f64,
    /// Seed for jitter and injected errors, so runs are reproducible.
    pub seed: u64,
    /// Completion length in tokens (capped by the request's max_tokens).
    pub output_tokens: u32,
    /// Fraction of requests answered with HTTP 500, drawn from `seed`.
    pub error_rate: f64,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self { base_latency_ms: 80.0, per_inflight_ms: 2.0, jitter_ms: 0.0, seed: 0, output_tokens: 16, error_rate: 0.0 }
    }
}

impl MockConfig {
    /// Problems with the knobs, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in
            [("base_latency_ms", self.base_latency_ms), ("per_inflight_ms", self.per_inflight_ms), ("jitter_ms", self.jitter_ms)]
        {
            if !(v.is_finite() && (0.0..=MAX_KNOB_MS).contains(&v)) {
                out.push(format!("{name} must be between 0 and {MAX_KNOB_MS} (one hour), got {v}"));
            }
        }
        if self.output_tokens > MAX_OUTPUT_TOKENS {
            out.push(format!("output_tokens must be at most {MAX_OUTPUT_TOKENS}, got {}", self.output_tokens));
        }
        if self.jitter_ms > self.base_latency_ms {
            out.push(format!("jitter_ms ({}) must not exceed base_latency_ms ({})", self.jitter_ms, self.base_latency_ms));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            out.push(format!("error_rate must be between 0 and 1, got {}", self.error_rate));
        }
        out
    }
}

/// Largest latency knob: one hour, in ms.
const MAX_KNOB_MS: f64 = 3_600_000.0;
/// Largest completion the mock writes, so a typo cannot exhaust memory.
const MAX_OUTPUT_TOKENS: u32 = 100_000;

struct MockState {
    cfg: MockConfig,
    in_flight: AtomicU64,
    seq: AtomicU64,
}

/// Decrements the in-flight count however the request ends (also on client disconnect).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The axum router of the mock, for embedding or serving.
pub fn router(cfg: MockConfig) -> Router {
    let state = Arc::new(MockState { cfg, in_flight: AtomicU64::new(0), seq: AtomicU64::new(0) });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the mock on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: MockConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(cfg)).with_graceful_shutdown(shutdown).await
}

/// A mock running on its own thread and runtime, so its timers never queue behind the
/// load generator's work. Stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Binds `addr` (port 0 picks a free one) and starts serving.
    pub fn start(cfg: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("llmload-mock".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("mock runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("mock listener");
                let _ = serve(listener, cfg, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
        Ok(MockServer { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// API root to put in `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: StatusCode, kind: &str, param: Option<&str>, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": null}});
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        "unknown path; the mock serves POST /v1/chat/completions and GET /v1/models",
    )
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "llmload"}]
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<Value>,
    messages: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

const WORDS: [&str; 16] = [
    "Load", "testing", "shows", "where", "latency", "bends:", "measure", "first,", "then", "tune", "the", "pool,", "the", "limits,", "and",
    "retry.",
];

async fn chat_completions(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let arrival = tokio::time::Instant::now();
    let _guard = InFlight::enter(&state.in_flight);
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                format!("We could not parse the JSON body of your request: {e}"),
            );
        }
    };
    let Some(model) = req.model.as_ref().and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("model"), "you must provide a model parameter");
    };
    let Some(messages) = req.messages.as_ref().and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("messages"), "messages must be a non-empty array");
    };
    if messages.iter().any(|m| m.get("role").and_then(Value::as_str).is_none()) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("messages"), "every message needs a `role`");
    }
    if req.stream == Some(true) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("stream"), "this mock does not stream yet");
    }

    let cfg = &state.cfg;
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let (jitter, fail) = draw(cfg, seq);

    // Deadlines from arrival, not chained sleeps, so timer rounding is paid once.
    let base = cfg.base_latency_ms + jitter;
    sleep_until_ms(arrival, base).await;
    let load = state.in_flight.load(Ordering::SeqCst) as f64;
    sleep_until_ms(arrival, base + cfg.per_inflight_ms * load).await;

    if fail {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, "mock: injected failure (error_rate)");
    }

    let limit = req.max_completion_tokens.or(req.max_tokens).unwrap_or(u64::MAX);
    let completion_tokens = (cfg.output_tokens as u64).min(limit);
    let content = (0..completion_tokens as usize).map(|i| WORDS[i % WORDS.len()]).collect::<Vec<_>>().join(" ");
    let prompt_tokens: u64 = messages.iter().map(message_words).sum();
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    axum::Json(json!({
        "id": format!("chatcmpl-mock-{seq}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": if completion_tokens == limit { "length" } else { "stop" }
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
    .into_response()
}

/// The random part of request number `seq`: (jitter in ms, inject a failure?). One
/// generator per request, derived from (seed, arrival number): reproducible without a
/// lock shared by all requests.
fn draw(cfg: &MockConfig, seq: u64) -> (f64, bool) {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let jitter = if cfg.jitter_ms > 0.0 { rng.random_range(-cfg.jitter_ms..=cfg.jitter_ms) } else { 0.0 };
    let fail = cfg.error_rate > 0.0 && rng.random_bool(cfg.error_rate);
    (jitter, fail)
}

/// The mock counts tokens as whitespace-separated words.
fn message_words(m: &Value) -> u64 {
    match m.get("content") {
        Some(Value::String(s)) => s.split_whitespace().count() as u64,
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(|s| s.split_whitespace().count() as u64).sum()
        }
        _ => 0,
    }
}

async fn sleep_until_ms(from: tokio::time::Instant, ms: f64) {
    if ms > 0.0 {
        tokio::time::sleep_until(from + Duration::from_secs_f64(ms / 1000.0)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_model() {
        let c = MockConfig::default();
        assert_eq!((c.base_latency_ms, c.per_inflight_ms), (80.0, 2.0));
        assert!(c.problems().is_empty());
    }

    #[test]
    fn bad_knobs_are_named() {
        let c = MockConfig { error_rate: 1.5, base_latency_ms: -1.0, ..MockConfig::default() };
        let p = c.problems().join("; ");
        assert!(p.contains("error_rate"), "{p}");
        assert!(p.contains("base_latency_ms"), "{p}");
    }

    #[test]
    fn draws_are_seeded_bounded_and_spread() {
        let cfg = MockConfig { jitter_ms: 20.0, error_rate: 0.25, seed: 42, ..MockConfig::default() };
        let a: Vec<(f64, bool)> = (0..1000).map(|i| draw(&cfg, i)).collect();
        let b: Vec<(f64, bool)> = (0..1000).map(|i| draw(&cfg, i)).collect();
        assert_eq!(a, b, "same seed, same draws");
        let other: Vec<(f64, bool)> = (0..1000).map(|i| draw(&MockConfig { seed: 43, ..cfg.clone() }, i)).collect();
        assert_ne!(a, other, "another seed, other draws");
        assert!(a.iter().all(|(j, _)| (-20.0..=20.0).contains(j)));
        let mean = a.iter().map(|(j, _)| j).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 1.5, "uniform around 0, mean {mean}");
        let fails = a.iter().filter(|(_, f)| *f).count();
        assert!((200..300).contains(&fails), "error_rate 0.25 gave {fails}/1000");
    }

    #[test]
    fn huge_knobs_are_refused() {
        let c = MockConfig { base_latency_ms: 1e300, output_tokens: 4_000_000_000, ..MockConfig::default() };
        let p = c.problems().join("; ");
        assert!(p.contains("base_latency_ms must be between 0 and 3600000"), "{p}");
        assert!(p.contains("output_tokens must be at most 100000"), "{p}");
    }

    #[test]
    fn words_count_text_and_parts() {
        assert_eq!(message_words(&json!({"role": "user", "content": "a b  c"})), 3);
        assert_eq!(message_words(&json!({"role": "user", "content": [{"type": "text", "text": "x y"}]})), 2);
    }
}
