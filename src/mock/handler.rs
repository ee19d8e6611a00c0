//! The mock's routes: `POST /v1/chat/completions` and `POST /v1/completions`
//! (admission, validation, the draw, then an injected failure or a reply), `GET
//! /v1/models`, `GET /mock/stats`, and OpenAI-shaped errors for everything else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{Fault, MockConfig, MockStats};
use super::deliver::{sleep_until_ms, stream_reply, whole_reply};
use super::draw::draw;
use super::reply::Reply;
use super::state::{InFlight, MockState};
use crate::model::Api;

pub(super) async fn chat_completions(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Chat, state, req).await
}

pub(super) async fn completions(State(state): State<Arc<MockState>>, req: Request) -> Response {
    answer(Api::Completions, state, req).await
}

async fn answer(api: Api, state: Arc<MockState>, req: Request) -> Response {
    // The headers are copied only when recording: not on every request of a benchmark.
    let headers = state.recording().then(|| req.headers().clone());
    let body = match Bytes::from_request(req, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(headers) = headers {
        state.saw(api, &headers, &body);
    }
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
    let req = match Asked::parse(api, &body) {
        Ok(req) => req,
        Err((param, msg)) => {
            state.count(|s| s.invalid += 1);
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", param, msg);
        }
    };
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
    // Counted only for a reply: an injected failure (a 429 above all) comes at once.
    let prompt_tokens = match &req.prompt {
        Value::Array(messages) => messages.iter().map(crate::workload::tokens::message_tokens).sum(),
        text => crate::workload::tokens::count(text.as_str().unwrap_or_default()),
    };
    let reply = Reply::new(seq, &d, api, req.model, prompt_tokens, req.max_tokens, cfg.reasoning_tokens);
    if req.stream {
        return stream_reply(state.clone(), guard, reply, arrival, base, req.include_usage, d.fault);
    }
    whole_reply(&state, guard, reply, arrival, base, d.fault).await
}

/// What a valid request asks for.
struct Asked {
    model: String,
    /// The messages (chat) or the text (completions), counted for the reply's usage
    /// (o200k, content only).
    prompt: Value,
    stream: bool,
    include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`, else no limit.
    max_tokens: u64,
}

impl Asked {
    /// The request, or what makes it invalid: the parameter at fault and why.
    fn parse(api: Api, body: &[u8]) -> Result<Asked, (Option<&'static str>, String)> {
        let req: ChatRequest =
            serde_json::from_slice(body).map_err(|e| (None, format!("We could not parse the JSON body of your request: {e}")))?;
        let Some(model) = req.model.as_ref().and_then(Value::as_str).filter(|m| !m.is_empty()) else {
            return Err((Some("model"), "you must provide a model parameter".into()));
        };
        let prompt = match api {
            Api::Chat => {
                let Some(Value::Array(messages)) = req.messages.filter(|m| m.as_array().is_some_and(|m| !m.is_empty())) else {
                    return Err((Some("messages"), "messages must be a non-empty array".into()));
                };
                if messages.iter().any(|m| m.get("role").and_then(Value::as_str).is_none()) {
                    return Err((Some("messages"), "every message needs a `role`".into()));
                }
                Value::Array(messages)
            }
            // A text, or a list of one (the mock answers one prompt per request).
            Api::Completions => match req.prompt {
                Some(Value::String(text)) => Value::String(text),
                Some(Value::Array(mut one)) if one.len() == 1 && one[0].is_string() => one.remove(0),
                _ => return Err((Some("prompt"), "prompt must be a string".into())),
            },
        };
        Ok(Asked {
            model: model.to_string(),
            prompt,
            stream: req.stream == Some(true),
            include_usage: req.stream_options.is_some_and(|o| o.include_usage),
            max_tokens: req.max_completion_tokens.or(req.max_tokens).unwrap_or(u64::MAX),
        })
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    model: Option<Value>,
    messages: Option<Value>,
    prompt: Option<Value>,
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

pub(super) async fn stats(State(state): State<Arc<MockState>>) -> axum::Json<MockStats> {
    axum::Json(state.stats())
}

pub(super) async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        "unknown path; the mock serves POST /v1/chat/completions, POST /v1/completions and GET /v1/models",
    )
}

pub(super) async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "llmload"}]
    }))
    .into_response()
}
