//! Embedded OpenAI-compatible mock server (axum). Every scenario runs against it with
//! no API key and no network.
//!
//! Latency model: the first token comes `base_latency_ms` (± seeded jitter) after
//! arrival plus `per_inflight_ms` for every request in flight at that moment, itself
//! included; each further token `inter_token_ms` later. Closed-loop N-way load therefore
//! sees about base + N × per_inflight: 82 ms alone, 180 ms at 50-way with the defaults —
//! the shape of the seed comparison table. Streams (`"stream": true`) send one token per
//! SSE chunk at those times; every token is one o200k token, so `usage` and a client-side
//! count agree.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
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
    /// Time between two tokens of a completion, in ms (streamed or not).
    pub inter_token_ms: f64,
    /// Completion length in tokens (capped by the request's max_tokens)...
    pub output_tokens: u32,
    /// ...or, when set, a length drawn from `output_tokens..=output_tokens_max`.
    pub output_tokens_max: Option<u32>,
    /// Fraction of requests answered with HTTP 500, drawn from `seed`.
    pub error_rate: f64,
    /// Fraction of replies that carry a JSON object with `summary` and `key_points`
    /// (plain, fenced or inside prose); the rest are prose. For response checks.
    pub json_rate: f64,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            base_latency_ms: 80.0,
            per_inflight_ms: 2.0,
            jitter_ms: 0.0,
            seed: 0,
            inter_token_ms: 0.0,
            output_tokens: 16,
            output_tokens_max: None,
            error_rate: 0.0,
            json_rate: 0.0,
        }
    }
}

impl MockConfig {
    /// Problems with the knobs, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            ("base_latency_ms", self.base_latency_ms),
            ("per_inflight_ms", self.per_inflight_ms),
            ("jitter_ms", self.jitter_ms),
            ("inter_token_ms", self.inter_token_ms),
        ] {
            if !(v.is_finite() && (0.0..=MAX_KNOB_MS).contains(&v)) {
                out.push(format!("{name} must be between 0 and {MAX_KNOB_MS} (one hour), got {v}"));
            }
        }
        if self.output_tokens > MAX_OUTPUT_TOKENS {
            out.push(format!("output_tokens must be at most {MAX_OUTPUT_TOKENS}, got {}", self.output_tokens));
        }
        match self.output_tokens_max {
            Some(m) if m > MAX_OUTPUT_TOKENS => out.push(format!("output_tokens_max must be at most {MAX_OUTPUT_TOKENS}, got {m}")),
            Some(m) if m < self.output_tokens => {
                out.push(format!("output_tokens_max ({m}) must be at least output_tokens ({})", self.output_tokens))
            }
            _ => {}
        }
        if self.jitter_ms > self.base_latency_ms {
            out.push(format!("jitter_ms ({}) must not exceed base_latency_ms ({})", self.jitter_ms, self.base_latency_ms));
        }
        for (name, v) in [("error_rate", self.error_rate), ("json_rate", self.json_rate)] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{name} must be between 0 and 1, got {v}"));
            }
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

/// Decrements the in-flight count however the request ends (also on client disconnect,
/// and for streams only when the stream ends).
struct InFlight(Arc<MockState>);

impl InFlight {
    fn enter(state: &Arc<MockState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
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
        // Token counts need the tokenizer: load it before the first request is timed.
        crate::tokens::warm_up();
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
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The completion's words: each, with its leading space, is one o200k token.
const WORDS: [&str; 16] = [
    "Load", " testing", " shows", " where", " latency", " bends", " under", " load", " so", " measure", " first", " then", " tune", " the",
    " pool", " again",
];

/// Token `i` of a completion.
fn word(i: usize) -> &'static str {
    if i == 0 { WORDS[0] } else { WORDS[1 + (i - 1) % (WORDS.len() - 1)] }
}

async fn chat_completions(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let arrival = tokio::time::Instant::now();
    let guard = InFlight::enter(&state);
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", None, msg);
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

    let cfg = &state.cfg;
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let d = draw(cfg, seq);
    let limit = req.max_completion_tokens.or(req.max_tokens).unwrap_or(u64::MAX);
    let (pieces, tokens, finish) = if d.json {
        // A JSON answer (not capped by max_tokens): its pieces are split at spaces and
        // its usage is its o200k count.
        let text = json_reply(seq);
        let tokens = crate::tokens::count(&text);
        (split_pieces(&text), tokens, "stop")
    } else {
        let n = u64::from(d.output_tokens).min(limit);
        ((0..n as usize).map(|i| word(i).to_string()).collect(), n, if n == limit { "length" } else { "stop" })
    };
    let reply = Reply {
        id: format!("chatcmpl-mock-{seq}"),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: model.to_string(),
        prompt_tokens: messages.iter().map(crate::tokens::message_tokens).sum(),
        pieces,
        tokens,
        finish,
    };

    // Deadlines from arrival, not chained sleeps, so timer rounding is paid once.
    let base = cfg.base_latency_ms + d.jitter;
    if req.stream == Some(true) {
        if d.fail {
            sleep_until_ms(arrival, base).await;
            return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, "mock: injected failure (error_rate)");
        }
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        return stream_reply(state.clone(), guard, reply, arrival, base, include_usage);
    }
    sleep_until_ms(arrival, base).await;
    let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
    sleep_until_ms(arrival, first + cfg.inter_token_ms * reply.pieces.len().saturating_sub(1) as f64).await;
    drop(guard);
    if d.fail {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, "mock: injected failure (error_rate)");
    }
    let content: String = reply.pieces.concat();
    axum::Json(json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": reply.finish
        }],
        "usage": reply.usage()
    }))
    .into_response()
}

/// What a completion will say, streamed or not.
struct Reply {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    /// The text, one piece per stream chunk.
    pieces: Vec<String>,
    /// Completion tokens for `usage`.
    tokens: u64,
    finish: &'static str,
}

impl Reply {
    fn usage(&self) -> Value {
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": self.tokens, "total_tokens": self.prompt_tokens + self.tokens})
    }

    /// One `chat.completion.chunk` as an SSE event.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        Bytes::from(format!("data: {v}\n\n"))
    }
}

/// An SSE stream: the role chunk at once (as real servers do, so TTFT must skip it),
/// one token per chunk at the model's times, the finish chunk, usage if asked, [DONE].
/// A writer task feeds the body; a client that hangs up ends it (and its in-flight count).
fn stream_reply(
    state: Arc<MockState>,
    guard: InFlight,
    reply: Reply,
    arrival: tokio::time::Instant,
    base: f64,
    include_usage: bool,
) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(8);
    tokio::spawn(async move {
        let _guard = guard;
        let cfg = &state.cfg;
        if tx.send(Ok(reply.chunk(json!({"role": "assistant", "content": ""}), None))).await.is_err() {
            return;
        }
        sleep_until_ms(arrival, base).await;
        let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
        for (i, piece) in reply.pieces.iter().enumerate() {
            sleep_until_ms(arrival, first + cfg.inter_token_ms * i as f64).await;
            if tx.send(Ok(reply.chunk(json!({"content": piece}), None))).await.is_err() {
                return;
            }
        }
        let mut tail = vec![reply.chunk(json!({}), Some(reply.finish))];
        if include_usage {
            let v = json!({
                "id": reply.id, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model,
                "system_fingerprint": null, "choices": [], "usage": reply.usage()
            });
            tail.push(Bytes::from(format!("data: {v}\n\n")));
        }
        tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
        for b in tail {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A JSON answer in one of three wrappings real models use: bare, fenced, in prose.
fn json_reply(seq: u64) -> String {
    let obj = format!(
        r#"{{"summary": "Document {seq} explains where the load test found its limit.", "key_points": ["throughput plateaus", "latency rises with load"]}}"#
    );
    match seq % 3 {
        0 => obj,
        1 => format!("```json\n{obj}\n```"),
        _ => format!("Here is the summary you asked for: {obj} Let me know if you need more."),
    }
}

/// Text cut before each space, so every piece but the first starts with one.
fn split_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(text[start..i].to_string());
            start = i;
        }
    }
    out.push(text[start..].to_string());
    out
}

/// The random part of request number `seq`: (jitter in ms, inject a failure?). One
/// generator per request, derived from (seed, arrival number): reproducible without a
/// lock shared by all requests.
fn draw(cfg: &MockConfig, seq: u64) -> Draw {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let jitter = if cfg.jitter_ms > 0.0 { rng.random_range(-cfg.jitter_ms..=cfg.jitter_ms) } else { 0.0 };
    let fail = cfg.error_rate > 0.0 && rng.random_bool(cfg.error_rate);
    let output_tokens = match cfg.output_tokens_max {
        Some(max) if max > cfg.output_tokens => rng.random_range(cfg.output_tokens..=max),
        _ => cfg.output_tokens,
    };
    let json = cfg.json_rate > 0.0 && rng.random_bool(cfg.json_rate);
    Draw { jitter, fail, output_tokens, json }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    jitter: f64,
    fail: bool,
    output_tokens: u32,
    json: bool,
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
        let cfg = MockConfig { jitter_ms: 20.0, error_rate: 0.25, seed: 42, output_tokens_max: Some(40), ..MockConfig::default() };
        let a: Vec<Draw> = (0..1000).map(|i| draw(&cfg, i)).collect();
        let b: Vec<Draw> = (0..1000).map(|i| draw(&cfg, i)).collect();
        assert_eq!(a, b, "same seed, same draws");
        let other: Vec<Draw> = (0..1000).map(|i| draw(&MockConfig { seed: 43, ..cfg.clone() }, i)).collect();
        assert_ne!(a, other, "another seed, other draws");
        assert!(a.iter().all(|d| (-20.0..=20.0).contains(&d.jitter)));
        let mean = a.iter().map(|d| d.jitter).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 1.5, "uniform around 0, mean {mean}");
        let fails = a.iter().filter(|d| d.fail).count();
        assert!((200..300).contains(&fails), "error_rate 0.25 gave {fails}/1000");
        assert!(a.iter().all(|d| (16..=40).contains(&d.output_tokens)));
        let mean_len = a.iter().map(|d| d.output_tokens as f64).sum::<f64>() / 1000.0;
        assert!((26.0..30.0).contains(&mean_len), "uniform 16..=40, mean {mean_len}");
    }

    #[test]
    fn huge_knobs_are_refused() {
        let c = MockConfig { base_latency_ms: 1e300, output_tokens: 4_000_000_000, ..MockConfig::default() };
        let p = c.problems().join("; ");
        assert!(p.contains("base_latency_ms must be between 0 and 3600000"), "{p}");
        assert!(p.contains("output_tokens must be at most 100000"), "{p}");
    }

    #[test]
    fn json_replies_pass_checks_and_split_back_whole() {
        let expect = crate::check::Expect::Json { required_keys: vec!["summary".into(), "key_points".into()] };
        for seq in 0..3 {
            let text = json_reply(seq);
            assert_eq!(crate::check::check(&text, &expect), Ok(()), "{text}");
            assert_eq!(split_pieces(&text).concat(), text);
        }
        let prose: String = (0..10).map(word).collect();
        assert!(crate::check::check(&prose, &expect).is_err());
    }

    #[test]
    fn every_word_is_one_token() {
        let text: String = (0..100).map(word).collect();
        assert_eq!(crate::tokens::count(&text), 100, "{text}");
    }
}
