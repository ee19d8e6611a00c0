//! The mock's routes: `POST /v1/chat/completions`, `/v1/completions`, `/v1/responses`,
//! `/v1/messages`, `/v1/embeddings` and `/v1/rerank` (`/rerank` too)
//! (admission, validation, the draw, then an injected failure or a reply), `GET
//! /v1/models`, `GET /mock/stats`, and OpenAI-shaped errors for everything else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::{Fault, MockConfig, MockStats};
use super::deliver::{Start, sleep_until_ms, stream_reply, whole_reply};
use super::draw::draw;
use super::reply::{PromptUsage, Reply};
use super::request::Asked;
use super::state::{InFlight, MockState};
use crate::model::Api;

pub(super) async fn chat_completions(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Chat, state, req).await
}

pub(super) async fn completions(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Completions, state, req).await
}

pub(super) async fn responses(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Responses, state, req).await
}

pub(super) async fn messages(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Messages, state, req).await
}

pub(super) async fn embeddings(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Embeddings, state, req).await
}

pub(super) async fn rerank(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Rerank, state, req).await
}

async fn answer(api: Api, state: Arc<MockState>, req: Request) -> Response {
    // The headers are copied only when recording: not on every request of a benchmark.
    let headers = state.recording().then(|| (req.uri().path().to_string(), req.headers().clone()));
    let body = match Bytes::from_request(req, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some((path, headers)) = headers {
        state.saw(path, &headers, &body);
    }
    state.count(|s| s.requests += 1);
    // The limiter answers before the model: a refused request is never in flight.
    if let Some(wait) = state.over_limit() {
        state.count(|s| s.rate_limited += 1);
        return rate_limited(&state.cfg, wait);
    }
    // Beyond the capacity, requests queue here; their service starts when they get in.
    let received = std::time::Instant::now();
    let slot = match &state.capacity {
        Some(c) => {
            // Counted out on drop too: a client that gives up while queued leaves.
            let _waiting = super::metrics::Waiting::enter(&state.metrics.waiting);
            c.clone().acquire_owned().await.ok()
        }
        None => None,
    };
    let arrival = tokio::time::Instant::now();
    let queued = received.elapsed().as_secs_f64();
    let (guard, in_flight) = InFlight::enter(&state, slot, received);
    let req = match asked(&state, api, &body).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let cfg = &state.cfg;
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let d = draw(cfg, seq);
    // Counted before any byte goes out, so a client that has its answer sees it counted.
    state.count(|s| match d.fault {
        Some(f) => *s.injected.entry(f.key()).or_default() += 1,
        None => s.ok += 1,
    });
    // Deadlines from arrival, not chained sleeps, so timer rounding is paid once (and
    // tokenizing the prompt takes none of the model's time).
    let mut start = Start::new(cfg, arrival, in_flight, d.jitter, queued);
    if let Some(Fault::Status(status)) = d.fault {
        if status != 429 {
            sleep_until_ms(arrival, start.base).await;
        }
        let key = format!("errors.\"{status}\"");
        let why = match (status, cfg.errors.contains_key(&status.to_string())) {
            (500, false) => "error_rate".to_string(),
            (500, true) if cfg.error_rate > 0.0 => format!("error_rate or {key}"),
            _ => key,
        };
        return injected_error(api, status, cfg, format!("mock: injected failure ({why})"));
    }
    // Read only for a reply: an injected failure (a 429 above all) comes at once.
    let (mut req, prompt) = read_prompt(&state, req, body.len()).await;
    start.prefill = (prompt.tokens - prompt.cached) as f64 * cfg.prefill_ms_per_1k_tokens / 1000.0;
    let reasoning = if api == Api::Completions { 0 } else { cfg.reasoning_tokens };
    let mut task = req.task.take();
    let tool = req.tool.take().filter(|t| super::tools::calls(t, cfg.tool_call_rate, seq));
    // A JSON answer (`json_rate`) fits the request's schema when it gives one.
    let schema = req.schema.take().filter(|_| d.json);
    let prompt_text = if tool.is_some() || schema.is_some() { req.prompt.to_string() } else { String::new() };
    if let Some(super::vectors::Task::Embed { dims, .. }) = &mut task {
        dims.get_or_insert(cfg.embedding_dims);
    }
    // Embeddings and rerank: the prompt's time, and no output.
    let len = match task {
        Some(_) => super::request::Length { reasoning: 0, answer: 0, finish: "stop" },
        None => req.length(d.output_tokens, reasoning),
    };
    start.prompt = (prompt.tokens, prompt.cached);
    let mut guard = guard;
    guard.will_generate(len.reasoning + len.answer);
    // With a KV-cache budget, the model starts once the prompt and reply fit in it.
    let mut waited = 0.0;
    if state.kv.is_some() {
        waited = guard.hold_kv(prompt.tokens + len.reasoning + len.answer).await;
        start.wait(waited);
    }
    // Queue time: for a capacity slot, then for KV-cache room.
    state.metrics.queued(queued + waited);
    let mut reply = Reply::new(seq, &d, api, req.model, prompt, len, &state.words);
    if task.is_some() {
        // No text, whatever the draw said (a JSON answer): numbers only.
        (reply.pieces, reply.tokens, reply.task) = (Vec::new(), 0, task);
    }
    if let Some(schema) = schema.as_ref().filter(|_| tool.is_none()) {
        reply.answer_json(super::tools::fit(schema, super::vectors::hash(&[&prompt_text])).to_string(), &state.tokenizer);
    }
    if let Some(ask) = &tool {
        // Arguments by the prompt (the same prompt, the same call), the id by the request.
        let by_prompt = super::vectors::hash(&[&prompt_text]);
        let (name, schema) = ask.pick(seq);
        reply.call_tool(name, super::tools::fit(schema, by_prompt).to_string(), seq, &state.tokenizer);
    }
    if req.stream {
        return stream_reply(state.clone(), guard, reply, start, req.include_usage, d.fault);
    }
    whole_reply(&state, guard, reply, start, d.fault).await
}

/// Bodies from this size on are tokenized off the mock's runtime thread, so a long
/// prompt does not hold every other request's timers back.
const TOKENIZE_APART: usize = 32 * 1024;

/// The prompt's tokens, and of them those the prefix cache held (its blocks go in).
/// The request, its images on 127.0.0.1 fetched and charged; or its 400 (counted).
async fn asked(state: &MockState, api: Api, body: &[u8]) -> Result<Asked, Response> {
    let parsed = match Asked::parse(api, body) {
        Ok(req) if !state.cfg.vision && (req.image_tokens > 0 || !req.image_urls.is_empty()) => {
            Err((Some(api.prompt_field()), "this model does not support image input (mock: vision = false)".to_string()))
        }
        // Images on 127.0.0.1 are fetched and measured before the request is served.
        Ok(mut req) if !req.image_urls.is_empty() => match super::images::fetched_tokens(&req.image_urls).await {
            Ok(n) => {
                req.image_tokens += n;
                Ok(req)
            }
            Err(msg) => Err((Some(api.prompt_field()), msg)),
        },
        other => other,
    };
    parsed.map_err(|(param, msg)| {
        state.count(|s| s.invalid += 1);
        match api {
            Api::Messages => anthropic_error(StatusCode::BAD_REQUEST, msg),
            _ => error(StatusCode::BAD_REQUEST, "invalid_request_error", param, msg),
        }
    })
}

async fn read_prompt(state: &Arc<MockState>, req: Asked, body_len: usize) -> (Asked, PromptUsage) {
    let read = |state: &MockState, req: &Asked| {
        let ids = req.prompt_ids(&state.tokenizer);
        // Embeddings and rerank keep no KV cache to reuse.
        let cached = if req.task.is_some() { 0 } else { state.prefix.admit(&ids) };
        PromptUsage { tokens: ids.len() as u64 + req.image_tokens, cached }
    };
    if body_len < TOKENIZE_APART {
        let prompt = read(state, &req);
        return (req, prompt);
    }
    let shared = state.clone();
    let apart = tokio::task::spawn_blocking(move || {
        let prompt = read(&shared, &req);
        (req, prompt)
    });
    // The blocking task cannot fail but by a panic in the tokenizer: pass that on.
    apart.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn error(status: StatusCode, kind: &str, param: Option<&str>, message: impl Into<String>) -> Response {
    error_with_code(status, kind, param, None, message)
}

fn error_with_code(status: StatusCode, kind: &str, param: Option<&str>, code: Option<&str>, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// Anthropic's error envelope, its type by the status (as its API names them; 529 is
/// `overloaded_error`).
fn anthropic_error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    (status, axum::Json(json!({"type": "error", "error": {"type": kind, "message": message.into()}}))).into_response()
}

/// An injected status, shaped like the API's errors (OpenAI's, or Anthropic's); 429s,
/// 503s and 529s say when to retry.
fn injected_error(api: Api, status: u16, cfg: &MockConfig, message: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match status {
        _ if api == Api::Messages => anthropic_error(code, message),
        429 => error_with_code(code, "requests", None, Some("rate_limit_exceeded"), message),
        500..=599 => error(code, "server_error", None, message),
        _ => error(code, "invalid_request_error", None, message),
    };
    if let Some(ms) = cfg.retry_after_ms.filter(|_| matches!(status, 429 | 503 | 529)) {
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

pub(super) async fn stats(State(state): State<Arc<MockState>>) -> axum::Json<MockStats> {
    axum::Json(state.stats())
}

/// `POST /reset_prefix_cache`: as vLLM's (served there in its dev mode), 200 and no body.
pub(super) async fn reset_prefix_cache(State(state): State<Arc<MockState>>) -> StatusCode {
    state.reset_prefix_cache();
    StatusCode::OK
}

/// `GET /metrics`: the mock's own, in vLLM's names (`metrics.rs`).
pub(super) async fn metrics(State(state): State<Arc<MockState>>) -> Response {
    let text = state.metrics.render(state.in_flight.load(Ordering::SeqCst), state.cfg.kv_cache_tokens);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub(super) async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        "unknown path; the mock serves POST /v1/chat/completions, /v1/completions, /v1/responses, /v1/messages, /v1/embeddings and /v1/rerank (/rerank), and GET /v1/models",
    )
}

pub(super) async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "llmload"}]
    }))
    .into_response()
}
