//! HTTP client for OpenAI-compatible chat completions: one pooled reqwest client per
//! run, request bodies, response parsing and failure classification.

pub mod sse;

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::scenario::{Prompt, RequestParams};

/// Most chunk gaps one request records (64k gaps = 256 KiB).
const MAX_GAPS: usize = 1 << 16;
/// How long the end of a stream's body is awaited after `[DONE]`.
const DRAIN_LIMIT: Duration = Duration::from_millis(200);
/// Texts longer than this are counted off the async workers, so one huge reply does not
/// hold up the timing of every other stream.
const INLINE_COUNT_BYTES: usize = 64 * 1024;

/// o200k tokens of `text`, on a blocking thread when the text is long.
async fn count_tokens(text: &str) -> u64 {
    if text.len() <= INLINE_COUNT_BYTES {
        return crate::tokens::count(text);
    }
    let owned = text.to_string();
    tokio::task::spawn_blocking(move || crate::tokens::count(&owned)).await.unwrap_or(0)
}

/// Largest single SSE event accepted from a stream.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Responses larger than this are cut off and counted as `body_too_large`, so a broken
/// server cannot exhaust memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Why a request failed. Counted by kind, never by formatted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP/TLS connection could not be made.
    Connect,
    /// The request exceeded its connect or total timeout.
    Timeout,
    /// HTTP 429 Too Many Requests.
    #[serde(rename = "http_429")]
    Http429,
    /// Any other 4xx status.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// Any 5xx status.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// A non-2xx status outside 4xx/5xx (redirects are not followed).
    HttpOther,
    /// A 2xx whose body is not a chat completion.
    Decode,
    /// The connection failed while the body was being read.
    Body,
    /// The body exceeded MAX_BODY_BYTES.
    BodyTooLarge,
    /// Any other transport error (connection closed before a response, protocol error).
    Transport,
    /// A stream that broke off or ended without `data: [DONE]`.
    StreamCut,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Http429 => "http_429",
            FailureKind::Http4xx => "http_4xx",
            FailureKind::Http5xx => "http_5xx",
            FailureKind::HttpOther => "http_other",
            FailureKind::Decode => "decode",
            FailureKind::Body => "body",
            FailureKind::BodyTooLarge => "body_too_large",
            FailureKind::Transport => "transport",
            FailureKind::StreamCut => "stream_cut",
        }
    }

    pub fn from_status(status: u16) -> FailureKind {
        match status {
            429 => FailureKind::Http429,
            400..=499 => FailureKind::Http4xx,
            500..=599 => FailureKind::Http5xx,
            _ => FailureKind::HttpOther,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(FailureKind),
    /// Stopped by the user before it finished.
    Cancelled,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Each as the server sent it; a server may send one without the other.
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// What one finished request left behind. Exactly one per started request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub outcome: Outcome,
    /// Request sent → last byte of the response read.
    pub latency: Duration,
    pub status: Option<u16>,
    pub bytes: u64,
    /// The server's `usage`, when it sent one.
    pub usage: Option<Usage>,
    /// Streams only: request sent → first chunk with non-empty content (kept for cut
    /// streams too, as a partial timing).
    pub ttft: Option<Duration>,
    /// Streams only: chunks that carried content.
    pub chunks: u32,
    /// Streams only: gaps between consecutive content chunks, µs.
    pub gaps_us: Vec<u32>,
    /// Completion tokens counted here (o200k) from the text received.
    pub client_completion_tokens: Option<u64>,
    /// Prompt tokens counted here; set by the engine, which knows the prompt.
    pub client_prompt_tokens: Option<u64>,
    /// The completion text, kept only when a response check needs it.
    pub content: Option<String>,
    /// The response check's verdict, when the scenario has one.
    pub check: Option<Result<(), crate::check::CheckFailure>>,
    /// For failures: a short, secret-free explanation (status and server message).
    pub detail: Option<Box<str>>,
    /// For failures: the wait the server asked for (Retry-After, retry-after-ms).
    pub retry_after: Option<Duration>,
}

impl Default for RequestRecord {
    fn default() -> Self {
        Self {
            outcome: Outcome::Ok,
            latency: Duration::ZERO,
            status: None,
            bytes: 0,
            usage: None,
            ttft: None,
            chunks: 0,
            gaps_us: Vec::new(),
            client_completion_tokens: None,
            client_prompt_tokens: None,
            content: None,
            check: None,
            detail: None,
            retry_after: None,
        }
    }
}

impl RequestRecord {
    pub fn cancelled(latency: Duration) -> Self {
        Self { outcome: Outcome::Cancelled, latency, ..Self::default() }
    }

    fn failed(kind: FailureKind, latency: Duration, status: Option<u16>, bytes: u64, detail: String) -> Self {
        Self { outcome: Outcome::Failed(kind), latency, status, bytes, detail: Some(detail.into_boxed_str()), ..Self::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API key in ${0} is not a valid HTTP header value")]
    BadKey(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

pub struct ClientConfig {
    /// API root, e.g. `http://127.0.0.1:8000/v1`; `/chat/completions` is appended.
    pub base_url: reqwest::Url,
    pub api_key: Option<String>,
    /// Name of the variable the key came from, for messages.
    pub api_key_env: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Idle connections kept per host: at least the highest stage concurrency.
    pub pool_size: usize,
    /// Ask for a stream (`"stream": true`) and measure TTFT and inter-token gaps.
    pub stream: bool,
    /// With `stream`: send `stream_options.include_usage` (some servers reject it).
    pub stream_usage: bool,
    /// Keep each completion's text in its record (for response checks).
    pub keep_content: bool,
}

pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    auth: Option<HeaderValue>,
    stream: bool,
    stream_usage: bool,
    keep_content: bool,
    /// Kept only to scrub it out of server messages that echo it.
    secret: Option<String>,
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: &'a RawValue,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// A chat completion as the hot path reads it: the choices are only counted.
#[derive(Deserialize)]
struct Completion {
    choices: Vec<serde::de::IgnoredAny>,
    usage: Option<UsageBody>,
}

/// The text of the first choice, read only when it is needed (a check, or no usage).
#[derive(Deserialize)]
struct CompletionText {
    choices: Vec<TextChoice>,
}

#[derive(Deserialize)]
struct TextChoice {
    message: Option<TextMessage>,
}

#[derive(Deserialize)]
struct TextMessage {
    /// A string, or an array of parts with `text`.
    content: Option<serde_json::Value>,
}

/// The first choice's text of a completion body, if it has one.
fn completion_text(body: &[u8]) -> String {
    let Ok(c) = serde_json::from_slice::<CompletionText>(body) else { return String::new() };
    match c.choices.into_iter().next().and_then(|ch| ch.message).and_then(|m| m.content) {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(|t| t.as_str())).collect(),
        _ => String::new(),
    }
}

/// One `chat.completion.chunk` of a stream; everything else in it is skipped.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<UsageBody>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    delta: Option<ChunkDelta>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    content: Option<String>,
    /// vLLM and others stream a reasoning model's thinking here.
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct UsageBody {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl From<UsageBody> for Usage {
    fn from(u: UsageBody) -> Usage {
        Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
    }
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let auth = match &cfg.api_key {
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ClientError::BadKey(cfg.api_key_env.clone()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_size.max(1))
            .tcp_nodelay(true)
            // An API POST is never legitimately redirected; following one could carry the
            // key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("llmload/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let mut url = cfg.base_url.clone();
        let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
        url.set_path(&path);
        if cfg.stream {
            // The tokenizer counts every streamed completion; load it before the clock runs.
            crate::tokens::warm_up();
        }
        Ok(Client {
            http,
            url,
            auth,
            stream: cfg.stream,
            stream_usage: cfg.stream_usage,
            keep_content: cfg.keep_content,
            secret: cfg.api_key.filter(|k| !k.is_empty()),
        })
    }

    /// Serializes a chat-completions request body.
    pub fn body(&self, model: &str, prompt: &Prompt, params: &RequestParams) -> Vec<u8> {
        let body = ChatBody {
            model,
            messages: &prompt.messages,
            stream: self.stream,
            stream_options: (self.stream && self.stream_usage).then_some(StreamOptions { include_usage: true }),
            max_tokens: params.max_tokens,
            temperature: params.temperature,
        };
        serde_json::to_vec(&body).expect("request body always serializes")
    }

    /// Sends one request and reads the whole response. Never panics on what the server
    /// sends; every outcome is a record.
    pub async fn send(&self, body: Vec<u8>) -> RequestRecord {
        let start = Instant::now();
        let mut req = self.http.post(self.url.clone()).header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return self.fail(classify(&e), start.elapsed(), None, 0, &describe(&e, &self.url)),
        };
        let status = resp.status().as_u16();
        if self.stream && (200..300).contains(&status) {
            return self.read_stream(resp, start, status).await;
        }
        // Reserve from Content-Length only up to a small bound: the header is the
        // server's word, and a hostile one could claim 32 MiB for every request.
        let mut buf = Vec::with_capacity(resp.content_length().map_or(1024, |n| n.min(64 * 1024) as usize));
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > MAX_BODY_BYTES {
                        let n = (buf.len() + chunk.len()) as u64;
                        let detail = format!("HTTP {status}: body larger than {MAX_BODY_BYTES} bytes");
                        return self.fail(FailureKind::BodyTooLarge, start.elapsed(), Some(status), n, &detail);
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let kind = if e.is_timeout() { FailureKind::Timeout } else { FailureKind::Body };
                    return self.fail(kind, start.elapsed(), Some(status), buf.len() as u64, &describe(&e, &self.url));
                }
            }
        }
        let latency = start.elapsed();
        let bytes = buf.len() as u64;
        if !(200..300).contains(&status) {
            let detail = format!("HTTP {status}: {}", self.server_message(&buf));
            return self.fail(FailureKind::from_status(status), latency, Some(status), bytes, &detail);
        }
        match serde_json::from_slice::<Completion>(&buf) {
            Ok(c) if !c.choices.is_empty() => {
                let usage = c.usage.map(Usage::from);
                let need_text = self.keep_content || usage.is_none_or(|u| u.completion_tokens.is_none());
                let content = need_text.then(|| completion_text(&buf));
                // Counted here only when the server gave no completion count: on this
                // path usage is the rule, and tokenizing every reply would cost the
                // generator its speed.
                let client_completion_tokens = match (&content, usage.and_then(|u| u.completion_tokens)) {
                    (Some(text), None) => Some(count_tokens(text).await),
                    _ => None,
                };
                RequestRecord {
                    latency,
                    status: Some(status),
                    bytes,
                    usage,
                    client_completion_tokens,
                    content: if self.keep_content { content } else { None },
                    ..RequestRecord::default()
                }
            }
            Ok(_) => self.fail(FailureKind::Decode, latency, Some(status), bytes, &format!("HTTP {status}: response has no choices")),
            // Position and category only: serde's message quotes the offending value,
            // which may be anything the server echoed (the key included).
            Err(e) => {
                let what = match e.classify() {
                    serde_json::error::Category::Syntax => "invalid JSON",
                    serde_json::error::Category::Eof => "truncated JSON",
                    _ => "JSON of the wrong shape",
                };
                let detail = format!("HTTP {status}: not a chat completion ({what} at line {} column {})", e.line(), e.column());
                self.fail(FailureKind::Decode, latency, Some(status), bytes, &detail)
            }
        }
    }

    /// Reads an SSE stream of chat.completion.chunk events to `[DONE]`, timing the
    /// first content chunk and the gaps between content chunks as they arrive.
    async fn read_stream(&self, mut resp: reqwest::Response, start: Instant, status: u16) -> RequestRecord {
        let mut parser = sse::SseParser::new(MAX_EVENT_BYTES);
        let mut events = Vec::new();
        let mut rec = RequestRecord { status: Some(status), ..RequestRecord::default() };
        let mut content = String::new();
        let mut last: Option<Instant> = None;
        let mut done = false;
        let mut eof = false;
        let failure = loop {
            let read = resp.chunk().await;
            let now = Instant::now();
            match read {
                Ok(Some(bytes)) => {
                    rec.bytes += bytes.len() as u64;
                    if rec.bytes > MAX_BODY_BYTES as u64 {
                        break Some((FailureKind::BodyTooLarge, format!("HTTP {status}: stream larger than {MAX_BODY_BYTES} bytes")));
                    }
                    if let Err(e) = parser.feed(&bytes, &mut events) {
                        break Some((FailureKind::Decode, format!("HTTP {status}: malformed event stream ({e})")));
                    }
                }
                // The body ended: a last event without its blank line still counts.
                Ok(None) => {
                    eof = true;
                    if let Err(e) = parser.finish(&mut events) {
                        break Some((FailureKind::Decode, format!("HTTP {status}: malformed event stream ({e})")));
                    }
                }
                Err(e) => {
                    let kind = if e.is_timeout() { FailureKind::Timeout } else { FailureKind::StreamCut };
                    break Some((kind, describe(&e, &self.url)));
                }
            }
            let mut bad = None;
            for data in events.drain(..) {
                if data == "[DONE]" {
                    done = true;
                    break;
                }
                let chunk: Chunk = match serde_json::from_str(&data) {
                    Ok(c) => c,
                    // Cut mid-event by the end of the body: the stream broke, the
                    // server did not send a malformed chunk.
                    Err(_) if eof => {
                        bad = Some((FailureKind::StreamCut, format!("HTTP {status}: stream ended inside an event")));
                        break;
                    }
                    Err(e) => {
                        bad = Some((
                            FailureKind::Decode,
                            format!("HTTP {status}: malformed chunk (line {} column {})", e.line(), e.column()),
                        ));
                        break;
                    }
                };
                if let Some(err) = chunk.error {
                    let msg = err.get("message").and_then(|m| m.as_str()).unwrap_or("error event in stream");
                    bad = Some((FailureKind::Decode, format!("HTTP {status}: {msg}")));
                    break;
                }
                // Reasoning tokens are output too: the first of them is the first token.
                let texts = chunk.choices.into_iter().filter_map(|c| c.delta).flat_map(|d| [d.reasoning_content, d.content]).flatten();
                for text in texts.filter(|t| !t.is_empty()) {
                    match last {
                        None => rec.ttft = Some(now - start),
                        // Bounded: a hostile stream of tiny chunks cannot grow it past this.
                        Some(prev) if rec.gaps_us.len() < MAX_GAPS => {
                            rec.gaps_us.push((now - prev).as_micros().min(u32::MAX as u128) as u32)
                        }
                        Some(_) => {}
                    }
                    last = Some(now);
                    rec.chunks += 1;
                    content.push_str(&text);
                }
                if let Some(u) = chunk.usage {
                    rec.usage = Some(u.into());
                }
            }
            if let Some(b) = bad {
                break Some(b);
            }
            if done || eof {
                break None;
            }
        };
        // The end of the response is [DONE] (or where it broke); what follows is framing.
        rec.latency = start.elapsed();
        if done && !eof {
            // Read the body to its end, briefly, so the connection goes back to the pool
            // instead of being closed: the next request must not pay a new handshake.
            let drain = async { while let Ok(Some(_)) = resp.chunk().await {} };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        }
        rec.client_completion_tokens = Some(count_tokens(&content).await);
        if self.keep_content {
            rec.content = Some(content);
        }
        match failure {
            Some((kind, detail)) => {
                rec.outcome = Outcome::Failed(kind);
                rec.detail = Some(truncate(&self.scrub(&detail), DETAIL_CHARS).into_boxed_str());
            }
            // The stream ended without [DONE]: cut short, whatever it carried.
            None if !done => {
                rec.outcome = Outcome::Failed(FailureKind::StreamCut);
                rec.detail = Some(format!("HTTP {status}: stream ended without [DONE] after {} content chunks", rec.chunks).into());
            }
            None => {}
        }
        rec
    }

    /// A failure record whose detail has the key scrubbed out, then cut to length.
    fn fail(&self, kind: FailureKind, latency: Duration, status: Option<u16>, bytes: u64, detail: &str) -> RequestRecord {
        RequestRecord::failed(kind, latency, status, bytes, truncate(&self.scrub(detail), DETAIL_CHARS))
    }

    /// Removes the API key from text a server or library produced.
    fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(k) => text.replace(k.as_str(), "[REDACTED]"),
            None => text.to_string(),
        }
    }

    /// The `error.message` of an OpenAI-style error body, else the start of the body,
    /// with the key scrubbed.
    fn server_message(&self, body: &[u8]) -> String {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
            && let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str())
        {
            return self.scrub(m);
        }
        let mut text = self.scrub(&String::from_utf8_lossy(&body[..body.len().min(SCAN_BYTES)]));
        if body.len() > SCAN_BYTES {
            // A key cut by the window's edge would escape the scrub: drop the tail it
            // could be in.
            let keep = text.len().saturating_sub(self.secret.as_ref().map_or(0, String::len));
            text.truncate(text.floor_char_boundary(keep));
        }
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() { "(empty body)".to_string() } else { text }
    }
}

/// Longest failure detail kept, in characters.
const DETAIL_CHARS: usize = 240;
/// How much of a non-JSON error body is read for its detail.
const SCAN_BYTES: usize = 2048;

/// A transport error's source chain, without the URL (it may carry credentials).
fn describe(e: &reqwest::Error, url: &reqwest::Url) -> String {
    let mut text = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let part = err.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cur = err.source();
    }
    text.replace(url.as_str(), "<url>")
}

fn classify(e: &reqwest::Error) -> FailureKind {
    if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else if e.is_body() || e.is_decode() {
        FailureKind::Body
    } else {
        FailureKind::Transport
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_kinds() {
        assert_eq!(FailureKind::from_status(429), FailureKind::Http429);
        assert_eq!(FailureKind::from_status(404), FailureKind::Http4xx);
        assert_eq!(FailureKind::from_status(503), FailureKind::Http5xx);
        assert_eq!(FailureKind::from_status(302), FailureKind::HttpOther);
    }

    #[test]
    fn kind_names_match_serde() {
        for k in [FailureKind::Http429, FailureKind::Http4xx, FailureKind::BodyTooLarge, FailureKind::Connect] {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::from(k.as_str()));
        }
    }

    const KEY: &str = "sk-unit-SECRET-0123456789";

    fn client() -> Client {
        Client::new(ClientConfig {
            base_url: reqwest::Url::parse("http://127.0.0.1:9/v1").unwrap(),
            api_key: Some(KEY.to_string()),
            api_key_env: "K".into(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            pool_size: 1,
            stream: false,
            stream_usage: true,
            keep_content: false,
        })
        .unwrap()
    }

    #[test]
    fn server_message_prefers_openai_error() {
        let c = client();
        assert_eq!(c.server_message(br#"{"error":{"message":"model not found"}}"#), "model not found");
        assert_eq!(c.server_message(b"<html>\n <b>Bad Gateway</b></html>"), "<html> <b>Bad Gateway</b></html>");
        assert_eq!(c.server_message(b""), "(empty body)");
    }

    #[test]
    fn the_key_is_scrubbed_wherever_it_sits_in_a_body() {
        let c = client();
        let echo = format!(r#"{{"error":{{"message":"{} bad key {KEY}"}}}}"#, "x".repeat(300));
        let cases = [
            echo.into_bytes(),
            format!("{}{KEY}", "y".repeat(100)).into_bytes(),
            // The key straddles the scan window's edge, behind a run of whitespace that
            // collapses: no prefix of it may survive.
            format!("a{}{KEY}tail", " ".repeat(SCAN_BYTES - 10)).into_bytes(),
        ];
        for body in cases {
            let rec = c.fail(FailureKind::Http4xx, Duration::ZERO, Some(401), 0, &c.server_message(&body));
            let detail = rec.detail.unwrap();
            assert!(!detail.contains(&KEY[..8]), "{detail}");
            assert!(detail.chars().count() <= DETAIL_CHARS + 1, "{detail}");
        }
    }
}
