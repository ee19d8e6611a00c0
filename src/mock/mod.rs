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
//!
//! Faults, to reproduce a failing endpoint (all off by default). Each request gets at
//! most one, from one seeded uniform draw over the cumulative fractions `error_rate`
//! (HTTP 500), `errors` (status → fraction), `malformed_rate`, `disconnect_rate`,
//! `stall_rate` and `drip_rate`, which must sum to at most 1:
//! - status: an OpenAI-style error body after the base latency (± jitter), except 429s,
//!   which come at once as rate limiters answer. With `retry_after_ms`, 429s and 503s
//!   carry `Retry-After` (whole seconds, rounded up) and `retry-after-ms`.
//! - malformed: a 200 whose body is broken: non-stream, the JSON cut in half; stream, a
//!   `data: {"choices": [` line before the middle token, then the rest and `[DONE]` as
//!   usual, so only a client that parses every chunk notices.
//! - disconnect: the connection drops mid-body: non-stream, after half of the
//!   `Content-Length` bytes; stream, before the middle token (no `[DONE]`).
//! - stall: stream, nothing for `stall_ms` after the first content token, then the rest;
//!   non-stream, the headers come `stall_ms` late.
//! - drip: stream, tokens `drip_ms` apart instead of `inter_token_ms`; non-stream, the
//!   body in 16-byte pieces `drip_ms` apart.
//!
//! `rate_limit_rpm` (burst `rate_limit_burst`, default one second's worth) limits
//! requests server-side: over it, an immediate 429 that says when to retry, before the
//! latency model (not in flight, no draw). `GET /mock/stats` (and [`MockServer::stats`])
//! counts requests, plain successes, rate-limited requests and injected faults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ratelimit::Bucket;

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
    /// Fraction of requests answered with each HTTP status (400–599), e.g. `"503" = 0.05`.
    pub errors: BTreeMap<String, f64>,
    /// Injected 429s and 503s say to retry after this many ms.
    pub retry_after_ms: Option<f64>,
    /// Server-side request limit per minute; over it, 429 at once.
    pub rate_limit_rpm: Option<f64>,
    /// Requests the limit lets through at once (default: one second's worth, at least 1).
    pub rate_limit_burst: Option<f64>,
    /// Fraction of 200s whose body is not valid JSON.
    pub malformed_rate: f64,
    /// Fraction of requests whose connection drops mid-body.
    pub disconnect_rate: f64,
    /// Fraction of requests that stall `stall_ms` (streams: after the first token).
    pub stall_rate: f64,
    pub stall_ms: f64,
    /// Fraction of requests that drip: stream tokens, or 16-byte body pieces, `drip_ms` apart.
    pub drip_rate: f64,
    pub drip_ms: f64,
    /// Most requests served at once; the rest queue, in arrival order, before the
    /// latency model starts for them (a server's capacity, to make a knee).
    pub capacity: Option<u32>,
    /// Request number N (from 0, among valid requests) stalls `stall_ms`, once: one
    /// hiccup at a known point, e.g. to show coordinated omission.
    pub stall_once_at: Option<u64>,
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
            errors: BTreeMap::new(),
            retry_after_ms: None,
            rate_limit_rpm: None,
            rate_limit_burst: None,
            malformed_rate: 0.0,
            disconnect_rate: 0.0,
            stall_rate: 0.0,
            stall_ms: 30_000.0,
            drip_rate: 0.0,
            drip_ms: 500.0,
            capacity: None,
            stall_once_at: None,
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
            ("stall_ms", self.stall_ms),
            ("drip_ms", self.drip_ms),
            ("retry_after_ms", self.retry_after_ms.unwrap_or(0.0)),
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
        let fractions_before = out.len();
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("json_rate", self.json_rate),
            ("malformed_rate", self.malformed_rate),
            ("disconnect_rate", self.disconnect_rate),
            ("stall_rate", self.stall_rate),
            ("drip_rate", self.drip_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        for (key, &v) in &self.errors {
            if status_key(key).is_none() {
                out.push(format!("errors key {key:?} must be an HTTP status from 400 to 599, e.g. \"503\""));
            }
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("errors.\"{key}\" must be between 0 and 1, got {v}"));
            }
        }
        // The sum only means something once every fraction is valid.
        let total: f64 = self.faults().map(|(_, p)| p).sum();
        if out.len() == fractions_before && total > 1.0 + 1e-9 {
            out.push(format!(
                "error_rate + errors + malformed_rate + disconnect_rate + stall_rate + drip_rate must sum to at most 1 \
                 (one fault per request), got {total}"
            ));
        }
        match self.rate_limit_rpm {
            Some(r) if !(r.is_finite() && r > 0.0) => out.push(format!("rate_limit_rpm must be a positive number, got {r}")),
            None if self.rate_limit_burst.is_some() => out.push("rate_limit_burst needs rate_limit_rpm".to_string()),
            _ => {}
        }
        if let Some(b) = self.rate_limit_burst.filter(|b| !(b.is_finite() && *b >= 1.0)) {
            out.push(format!("rate_limit_burst must be at least 1, got {b}"));
        }
        if self.capacity == Some(0) {
            out.push("capacity must be at least 1".to_string());
        }
        out
    }

    /// Every fault with its fraction, in draw order. Unparsable status keys are skipped
    /// (problems() names them).
    fn faults(&self) -> impl Iterator<Item = (Fault, f64)> + '_ {
        let statuses = self.errors.iter().filter_map(|(k, &p)| Some((Fault::Status(status_key(k)?), p)));
        std::iter::once((Fault::Status(500), self.error_rate)).chain(statuses).chain([
            (Fault::Malformed, self.malformed_rate),
            (Fault::Disconnect, self.disconnect_rate),
            (Fault::Stall, self.stall_rate),
            (Fault::Drip, self.drip_rate),
        ])
    }
}

/// An `errors` key as a status: canonical digits in 400..=599, so "503" and "0503" can
/// not both name 503.
fn status_key(key: &str) -> Option<u16> {
    key.parse::<u16>().ok().filter(|s| (400..=599).contains(s) && s.to_string() == key)
}

/// Parses `STATUS=FRACTION` for `llmload mock --error`.
pub fn parse_error_flag(s: &str) -> Result<(String, f64), String> {
    let (status, fraction) = s.split_once('=').ok_or_else(|| format!("expected STATUS=FRACTION, e.g. 503=0.05, got {s:?}"))?;
    let status = status.trim();
    if status_key(status).is_none() {
        return Err(format!("status must be an HTTP status from 400 to 599, got {status:?}"));
    }
    let fraction: f64 = fraction.trim().parse().map_err(|_| format!("fraction must be a number between 0 and 1, got {fraction:?}"))?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(format!("fraction must be between 0 and 1, got {fraction}"));
    }
    Ok((status.to_string(), fraction))
}

/// What the mock did, for `GET /mock/stats` and [`MockServer::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Every `POST /v1/chat/completions`, including rate-limited and invalid ones (400s).
    pub requests: u64,
    /// Valid requests answered without any fault.
    pub ok: u64,
    /// Requests refused by `rate_limit_rpm`.
    pub rate_limited: u64,
    /// Requests refused as malformed (HTTP 400): requests = ok + rate_limited + invalid
    /// + Σ injected.
    #[serde(default)]
    pub invalid: u64,
    /// Injected faults by kind: the status ("500", "503", "429", …), "malformed",
    /// "disconnect", "stall" or "drip". Kinds never injected are absent.
    pub injected: BTreeMap<String, u64>,
}

/// Largest latency knob: one hour, in ms.
const MAX_KNOB_MS: f64 = 3_600_000.0;
/// Largest completion the mock writes, so a typo cannot exhaust memory.
const MAX_OUTPUT_TOKENS: u32 = 100_000;

struct MockState {
    cfg: MockConfig,
    in_flight: AtomicU64,
    seq: AtomicU64,
    /// The server-side request limit, when `rate_limit_rpm` is set.
    limit: Option<Mutex<Bucket>>,
    /// Slots to be served in, when `capacity` is set (tokio's semaphore is fair: FIFO).
    capacity: Option<Arc<tokio::sync::Semaphore>>,
    stats: Mutex<MockStats>,
}

impl MockState {
    fn new(cfg: MockConfig) -> Arc<MockState> {
        let limit = cfg.rate_limit_rpm.map(|rpm| {
            let burst = cfg.rate_limit_burst.unwrap_or(rpm / 60.0).max(1.0);
            Mutex::new(Bucket::per_minute(rpm, burst, std::time::Instant::now()))
        });
        let capacity = cfg.capacity.map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize)));
        Arc::new(MockState { cfg, in_flight: AtomicU64::new(0), seq: AtomicU64::new(0), limit, capacity, stats: Mutex::default() })
    }

    fn count(&self, f: impl FnOnce(&mut MockStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn stats(&self) -> MockStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long until a request fits, when the limit refuses this one.
    fn over_limit(&self) -> Option<Duration> {
        let mut bucket = self.limit.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        bucket.try_take(std::time::Instant::now()).err()
    }
}

/// Decrements the in-flight count however the request ends (also on client disconnect,
/// and for streams only when the stream ends).
/// Holds the request's capacity slot too, so a stream keeps it until its end.
struct InFlight(Arc<MockState>, #[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl InFlight {
    fn enter(state: &Arc<MockState>, slot: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(state.clone(), slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The axum router of the mock, for embedding or serving.
pub fn router(cfg: MockConfig) -> Router {
    app(MockState::new(cfg))
}

fn app(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/mock/stats", get(stats))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the mock on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: MockConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, MockState::new(cfg), shutdown).await
}

async fn serve_state(
    listener: tokio::net::TcpListener,
    state: Arc<MockState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// A mock running on its own thread and runtime, so its timers never queue behind the
/// load generator's work. Stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    state: Arc<MockState>,
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
        let state = MockState::new(cfg);
        let served = state.clone();
        let thread = std::thread::Builder::new().name("llmload-mock".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("mock runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("mock listener");
                let _ = serve_state(listener, served, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
        Ok(MockServer { addr, state, shutdown: Some(tx), thread: Some(thread) })
    }

    /// What the mock has served and injected so far.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
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
    error_with_code(status, kind, param, None, message)
}

fn error_with_code(status: StatusCode, kind: &str, param: Option<&str>, code: Option<&str>, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// An injected status, shaped like OpenAI's errors; 429s and 503s say when to retry.
fn injected_error(status: u16, cfg: &MockConfig, message: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match status {
        429 => error_with_code(code, "requests", None, Some("rate_limit_exceeded"), message),
        500..=599 => error(code, "server_error", None, message),
        _ => error(code, "invalid_request_error", None, message),
    };
    if let Some(ms) = cfg.retry_after_ms.filter(|_| matches!(status, 429 | 503)) {
        set_retry_after(&mut resp, (ms / 1000.0).ceil() as u64, &ms.to_string());
    }
    resp
}

/// `Retry-After` in whole seconds (all that most clients read) and OpenAI's `retry-after-ms`.
fn set_retry_after(resp: &mut Response, secs: u64, ms: &str) {
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    if let Ok(v) = HeaderValue::from_str(ms) {
        h.insert("retry-after-ms", v);
    }
}

/// The limiter's 429: at once, with the wait rounded up (to whole ms and whole seconds)
/// so a client that waits as told gets in.
fn rate_limited(cfg: &MockConfig, wait: Duration) -> Response {
    let ms = wait.as_nanos().div_ceil(1_000_000);
    let limit = cfg.rate_limit_rpm.unwrap_or(0.0);
    let message = format!("mock: rate limit reached for requests per min (RPM): limit {limit}; please try again in {ms}ms");
    let mut resp = error_with_code(StatusCode::TOO_MANY_REQUESTS, "requests", None, Some("rate_limit_exceeded"), message);
    set_retry_after(&mut resp, ms.div_ceil(1000) as u64, &ms.to_string());
    resp
}

async fn stats(State(state): State<Arc<MockState>>) -> axum::Json<MockStats> {
    axum::Json(state.stats())
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
    state.count(|s| s.requests += 1);
    // The limiter answers before the model: a refused request is never in flight.
    if let Some(wait) = state.over_limit() {
        state.count(|s| s.rate_limited += 1);
        return rate_limited(&state.cfg, wait);
    }
    // Beyond the capacity, requests queue here; their service starts when they get in.
    let slot = match &state.capacity {
        Some(c) => c.clone().acquire_owned().await.ok(),
        None => None,
    };
    let arrival = tokio::time::Instant::now();
    let guard = InFlight::enter(&state, slot);
    let invalid = |param: Option<&str>, msg: String| {
        state.count(|s| s.invalid += 1);
        error(StatusCode::BAD_REQUEST, "invalid_request_error", param, msg)
    };
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return invalid(None, format!("We could not parse the JSON body of your request: {e}")),
    };
    let Some(model) = req.model.as_ref().and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return invalid(Some("model"), "you must provide a model parameter".into());
    };
    let Some(messages) = req.messages.as_ref().and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return invalid(Some("messages"), "messages must be a non-empty array".into());
    };
    if messages.iter().any(|m| m.get("role").and_then(Value::as_str).is_none()) {
        return invalid(Some("messages"), "every message needs a `role`".into());
    }

    let cfg = &state.cfg;
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let d = draw(cfg, seq);
    // Counted before any byte goes out, so a client that has its answer sees it counted.
    state.count(|s| match d.fault {
        Some(f) => *s.injected.entry(f.key()).or_default() += 1,
        None => s.ok += 1,
    });
    // Deadlines from arrival, not chained sleeps, so timer rounding is paid once.
    let base = cfg.base_latency_ms + d.jitter;
    if let Some(Fault::Status(status)) = d.fault {
        if status != 429 {
            sleep_until_ms(arrival, base).await;
        }
        let key = format!("errors.\"{status}\"");
        let why = match (status, cfg.errors.contains_key(&status.to_string())) {
            (500, false) => "error_rate".to_string(),
            (500, true) if cfg.error_rate > 0.0 => format!("error_rate or {key}"),
            _ => key,
        };
        return injected_error(status, cfg, format!("mock: injected failure ({why})"));
    }

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

    if req.stream == Some(true) {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        return stream_reply(state.clone(), guard, reply, arrival, base, include_usage, d.fault);
    }
    sleep_until_ms(arrival, base).await;
    let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
    let stall = if d.fault == Some(Fault::Stall) { cfg.stall_ms } else { 0.0 };
    sleep_until_ms(arrival, first + cfg.inter_token_ms * reply.pieces.len().saturating_sub(1) as f64 + stall).await;
    let content: String = reply.pieces.concat();
    let body = json!({
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
    });
    let body = Bytes::from(body.to_string());
    let half = body.slice(..body.len() / 2);
    let headers =
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::CONTENT_LENGTH, HeaderValue::from(body.len()))];
    match d.fault {
        Some(Fault::Malformed) => ([(header::CONTENT_TYPE, "application/json")], half).into_response(),
        Some(Fault::Disconnect) => {
            let (tx, out) = channel_body();
            tokio::spawn(async move {
                let _guard = guard;
                if tx.send(Ok(half)).await.is_ok() {
                    let _ = tx.send(Err(std::io::Error::other("mock: injected disconnect"))).await;
                }
            });
            (headers, out).into_response()
        }
        Some(Fault::Drip) => {
            let (tx, out) = channel_body();
            let drip_ms = cfg.drip_ms;
            tokio::spawn(async move {
                let _guard = guard;
                let start = tokio::time::Instant::now();
                for (i, piece) in body.chunks(DRIP_BYTES).enumerate() {
                    sleep_until_ms(start, drip_ms * i as f64).await;
                    if tx.send(Ok(body.slice_ref(piece))).await.is_err() {
                        return;
                    }
                }
            });
            (headers, out).into_response()
        }
        _ => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// Bytes per piece of a dripped non-stream body.
const DRIP_BYTES: usize = 16;

type Chunk = Result<Bytes, std::io::Error>;

/// A body fed by a writer task. hyper drops what it has buffered when a body fails, so
/// an error is held back one poll (reporting Pending, waking at once): hyper flushes the
/// bytes before it, and a disconnect comes after the data it promised.
fn channel_body() -> (tokio::sync::mpsc::Sender<Chunk>, axum::body::Body) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let mut held: Option<std::io::Error> = None;
    let stream = futures_util::stream::poll_fn(move |cx| {
        if let Some(e) = held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                held = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    });
    (tx, axum::body::Body::from_stream(stream))
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
/// Malformed and disconnect faults strike before the middle token (`n / 2`).
fn stream_reply(
    state: Arc<MockState>,
    guard: InFlight,
    reply: Reply,
    arrival: tokio::time::Instant,
    base: f64,
    include_usage: bool,
    fault: Option<Fault>,
) -> Response {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let _guard = guard;
        let cfg = &state.cfg;
        if tx.send(Ok(reply.chunk(json!({"role": "assistant", "content": ""}), None))).await.is_err() {
            return;
        }
        sleep_until_ms(arrival, base).await;
        let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
        let gap = if fault == Some(Fault::Drip) { cfg.drip_ms } else { cfg.inter_token_ms };
        let n = reply.pieces.len();
        let cut = n / 2;
        // Token i is due at origin + offset + gap × i; a stall restarts the clock once the
        // first token is out, so the silence is measured from what the client saw.
        let (mut origin, mut offset) = (arrival, first);
        for i in 0..=n {
            if i < n || i == cut {
                sleep_until_ms(origin, offset + gap * i as f64).await;
            }
            if i == cut && fault == Some(Fault::Disconnect) {
                let _ = tx.send(Err(std::io::Error::other("mock: injected disconnect"))).await;
                return;
            }
            if i == cut && fault == Some(Fault::Malformed) && tx.send(Ok(Bytes::from_static(b"data: {\"choices\": [\n\n"))).await.is_err() {
                return;
            }
            let Some(piece) = reply.pieces.get(i) else {
                if n == 0 && fault == Some(Fault::Stall) {
                    // No token to stall after: the silence comes before the finish chunk.
                    sleep_until_ms(tokio::time::Instant::now(), cfg.stall_ms).await;
                }
                break;
            };
            if tx.send(Ok(reply.chunk(json!({"content": piece}), None))).await.is_err() {
                return;
            }
            if i == 0 && fault == Some(Fault::Stall) {
                // Silence from when token 0 left (also before a lone token's finish chunk);
                // token 1 then follows one gap later.
                sleep_until_ms(tokio::time::Instant::now(), cfg.stall_ms).await;
                (origin, offset) = (tokio::time::Instant::now(), 0.0);
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

/// The random part of request number `seq`: jitter in ms, length, JSON or prose, and
/// its fault if any. One generator per request, derived from (seed, arrival number):
/// reproducible without a lock shared by all requests.
fn draw(cfg: &MockConfig, seq: u64) -> Draw {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let jitter = if cfg.jitter_ms > 0.0 { rng.random_range(-cfg.jitter_ms..=cfg.jitter_ms) } else { 0.0 };
    let output_tokens = match cfg.output_tokens_max {
        Some(max) if max > cfg.output_tokens => rng.random_range(cfg.output_tokens..=max),
        _ => cfg.output_tokens,
    };
    let json = cfg.json_rate > 0.0 && rng.random_bool(cfg.json_rate);
    Draw { jitter, output_tokens, json, fault: fault_for(cfg, seq) }
}

/// Request `seq`'s fault: one uniform draw over the cumulative fractions, from a
/// generator of its own, so fault knobs never shift the other draws nor they the faults.
fn fault_for(cfg: &MockConfig, seq: u64) -> Option<Fault> {
    if cfg.stall_once_at == Some(seq) {
        return Some(Fault::Stall);
    }
    let total: f64 = cfg.faults().map(|(_, p)| p.max(0.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    seed[8..16].copy_from_slice(&seq.to_le_bytes());
    seed[16..22].copy_from_slice(b"faults");
    let u: f64 = StdRng::from_seed(seed).random();
    let mut acc = 0.0;
    cfg.faults().find_map(|(f, p)| {
        acc += p.max(0.0);
        (u < acc).then_some(f)
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    jitter: f64,
    output_tokens: u32,
    json: bool,
    fault: Option<Fault>,
}

/// At most one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// An HTTP error status, from `error_rate` (500) or `errors`.
    Status(u16),
    Malformed,
    Disconnect,
    Stall,
    Drip,
}

impl Fault {
    /// Its key in [`MockStats::injected`].
    fn key(self) -> String {
        match self {
            Fault::Status(s) => s.to_string(),
            Fault::Malformed => "malformed".into(),
            Fault::Disconnect => "disconnect".into(),
            Fault::Stall => "stall".into(),
            Fault::Drip => "drip".into(),
        }
    }
}

async fn sleep_until_ms(from: tokio::time::Instant, ms: f64) {
    if ms > 0.0 {
        // Saturating: knobs are validated, but an unchecked config must not panic here.
        let d = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
        match from.checked_add(d) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(d).await,
        }
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
        let fails = a.iter().filter(|d| d.fault == Some(Fault::Status(500))).count();
        assert!((200..300).contains(&fails), "error_rate 0.25 gave {fails}/1000");
        assert!(a.iter().all(|d| (16..=40).contains(&d.output_tokens)));
        let mean_len = a.iter().map(|d| d.output_tokens as f64).sum::<f64>() / 1000.0;
        assert!((26.0..30.0).contains(&mean_len), "uniform 16..=40, mean {mean_len}");
    }

    /// A config with every fault at once: 50% of requests.
    fn faulty() -> MockConfig {
        MockConfig {
            seed: 9,
            error_rate: 0.05,
            errors: [("503".to_string(), 0.1), ("429".to_string(), 0.05)].into(),
            malformed_rate: 0.1,
            disconnect_rate: 0.05,
            stall_rate: 0.05,
            drip_rate: 0.1,
            ..MockConfig::default()
        }
    }

    #[test]
    fn faults_are_drawn_near_their_rates() {
        let cfg = faulty();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        const N: u64 = 10_000;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for seq in 0..N {
            *counts.entry(draw(&cfg, seq).fault.map_or("none".into(), Fault::key)).or_default() += 1;
        }
        let expect = [
            ("none", 0.5),
            ("500", 0.05),
            ("503", 0.1),
            ("429", 0.05),
            ("malformed", 0.1),
            ("disconnect", 0.05),
            ("stall", 0.05),
            ("drip", 0.1),
        ];
        assert_eq!(counts.len(), expect.len(), "{counts:?}");
        for (key, p) in expect {
            // Binomial: within 4.5 standard deviations (±98 at 5%, ±135 at 10%, ±225 at 50%).
            let (mean, sd) = (N as f64 * p, (N as f64 * p * (1.0 - p)).sqrt());
            let got = counts[key] as f64;
            assert!((got - mean).abs() <= 4.5 * sd, "{key}: {got} of {N}, expected {mean} ± {}", 4.5 * sd);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = |cfg: &MockConfig| (0..2000).map(|i| draw(cfg, i).fault).collect::<Vec<_>>();
        let cfg = faulty();
        assert_eq!(faults(&cfg), faults(&cfg.clone()));
        assert_ne!(faults(&cfg), faults(&MockConfig { seed: 10, ..cfg.clone() }), "another seed, other faults");
        // Faults and the other draws do not shift each other.
        let shaped = MockConfig { jitter_ms: 20.0, output_tokens_max: Some(40), json_rate: 0.5, ..cfg.clone() };
        assert_eq!(faults(&cfg), faults(&shaped));
        let quiet =
            MockConfig { jitter_ms: 20.0, output_tokens_max: Some(40), json_rate: 0.5, ..MockConfig { seed: 9, ..MockConfig::default() } };
        let rest = |cfg: &MockConfig| (0..2000).map(|i| draw(cfg, i)).map(|d| (d.jitter, d.output_tokens, d.json)).collect::<Vec<_>>();
        assert_eq!(rest(&quiet), rest(&shaped));
    }

    #[test]
    fn a_fraction_of_one_is_certain() {
        for (cfg, fault) in [
            (MockConfig { errors: [("429".to_string(), 1.0)].into(), ..MockConfig::default() }, Fault::Status(429)),
            (MockConfig { disconnect_rate: 1.0, ..MockConfig::default() }, Fault::Disconnect),
            (MockConfig { drip_rate: 1.0, ..MockConfig::default() }, Fault::Drip),
        ] {
            assert!((0..1000).all(|i| draw(&cfg, i).fault == Some(fault)), "{fault:?}");
        }
        assert!((0..1000).all(|i| draw(&MockConfig::default(), i).fault.is_none()));
    }

    #[test]
    fn bad_fault_knobs_are_named() {
        let p = |cfg: MockConfig| cfg.problems().join("; ");
        let errors = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let bad_keys =
            p(MockConfig { errors: errors(&[("abc", 0.1), ("600", 0.1), ("0503", 0.1), ("399", 0.1)]), ..MockConfig::default() });
        for key in ["\"abc\"", "\"600\"", "\"0503\"", "\"399\""] {
            assert!(bad_keys.contains(&format!("errors key {key} must be an HTTP status from 400 to 599")), "{bad_keys}");
        }
        let big = p(MockConfig { errors: errors(&[("503", 1.5)]), stall_rate: -0.1, drip_rate: f64::NAN, ..MockConfig::default() });
        for name in
            ["errors.\"503\" must be between 0 and 1, got 1.5", "stall_rate must be between 0 and 1", "drip_rate must be between 0 and 1"]
        {
            assert!(big.contains(name), "{big}");
        }
        assert!(!big.contains("sum"), "no sum while a fraction is itself wrong: {big}");
        let sum = p(MockConfig { error_rate: 0.5, errors: errors(&[("429", 0.3)]), malformed_rate: 0.3, ..MockConfig::default() });
        assert_eq!(
            sum,
            "error_rate + errors + malformed_rate + disconnect_rate + stall_rate + drip_rate must sum to at most 1 (one fault per request), got 1.1"
        );
        // Exactly 1 (in float sums) is fine.
        let one = MockConfig { error_rate: 0.1, errors: errors(&[("503", 0.2)]), drip_rate: 0.7, ..MockConfig::default() };
        assert!(one.problems().is_empty(), "{:?}", one.problems());
        let limits =
            p(MockConfig { rate_limit_burst: Some(0.5), stall_ms: -1.0, retry_after_ms: Some(f64::INFINITY), ..MockConfig::default() });
        for name in [
            "rate_limit_burst needs rate_limit_rpm",
            "rate_limit_burst must be at least 1",
            "stall_ms must be between",
            "retry_after_ms must be between",
        ] {
            assert!(limits.contains(name), "{limits}");
        }
        assert!(
            p(MockConfig { rate_limit_rpm: Some(0.0), ..MockConfig::default() })
                .contains("rate_limit_rpm must be a positive number, got 0")
        );
    }

    #[test]
    fn error_flags_parse_or_say_why() {
        assert_eq!(parse_error_flag("503=0.05"), Ok(("503".to_string(), 0.05)));
        assert_eq!(parse_error_flag(" 429 = 1 "), Ok(("429".to_string(), 1.0)));
        for (bad, why) in [
            ("503", "expected STATUS=FRACTION"),
            ("200=0.1", "status must be an HTTP status from 400 to 599"),
            ("x=0.1", "status must be"),
            ("503=2", "fraction must be between 0 and 1, got 2"),
            ("503=NaN", "fraction must be between 0 and 1"),
            ("503=lots", "fraction must be a number"),
        ] {
            let e = parse_error_flag(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn fault_knobs_round_trip_through_toml() {
        let cfg: MockConfig = toml::from_str(
            "errors = { \"503\" = 0.05, 429 = 0.1 }\nretry_after_ms = 1500\nrate_limit_rpm = 60\nmalformed_rate = 0.1\nstall_ms = 300\n",
        )
        .unwrap();
        assert_eq!(cfg.errors, BTreeMap::from([("429".to_string(), 0.1), ("503".to_string(), 0.05)]));
        assert_eq!((cfg.retry_after_ms, cfg.rate_limit_rpm, cfg.rate_limit_burst), (Some(1500.0), Some(60.0), None));
        assert_eq!((cfg.malformed_rate, cfg.stall_ms, cfg.drip_ms), (0.1, 300.0, 500.0));
        assert!(cfg.problems().is_empty());
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
