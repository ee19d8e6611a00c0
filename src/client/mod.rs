//! HTTP client for OpenAI-compatible chat completions: one pooled reqwest client per
//! run, request bodies, response parsing and failure classification.

pub mod sse;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// 2xx responses larger than this are cut off and counted as `body_too_large`, so a
/// broken server cannot exhaust memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes read of a body that is only wanted for its message (an error reply, a
/// stream answered as something else): the message is near the start, and a hostile
/// server must not make every failure cost megabytes.
pub const ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much shorter than the total timeout the connect timeout is kept: the timers tick
/// in whole milliseconds and a tie goes to the total timeout, so a margin of a few ticks.
const CONNECT_MARGIN: Duration = Duration::from_millis(10);

/// Why a request failed. Counted by kind, never by formatted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP/TLS connection could not be made.
    Connect,
    /// The TCP/TLS connection was not made within the connect timeout.
    ConnectTimeout,
    /// The request exceeded its total timeout.
    Timeout,
    /// A body stalled for longer than the idle timeout after its first token (stream) or
    /// its first bytes (non-stream).
    IdleTimeout,
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
    /// A 2xx whose body is not a chat completion (or not the stream asked for).
    Decode,
    /// The connection failed while a 2xx body was being read.
    Body,
    /// A 2xx body exceeded MAX_BODY_BYTES.
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
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Timeout => "timeout",
            FailureKind::IdleTimeout => "idle_timeout",
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
    /// Non-2xx only: the wait the server asked for (`retry-after-ms` or `Retry-After`),
    /// at most [`MAX_RETRY_AFTER`].
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
    #[error("the API key in {0} is not a valid HTTP header value")]
    BadKey(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

pub struct ClientConfig {
    /// API root, e.g. `http://127.0.0.1:8000/v1`; `/chat/completions` is appended.
    pub base_url: reqwest::Url,
    pub api_key: Option<String>,
    /// Where the key came from ("$VAR" or "the file PATH"), for messages.
    pub api_key_env: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a body once its first token (stream) or first
    /// bytes (non-stream) arrived. The wait before that (queueing, prefill) is bounded by
    /// `timeout` only. None: only `timeout` bounds a stalled body.
    pub idle_timeout: Option<Duration>,
    /// Accept any TLS certificate (self-signed, expired, wrong host).
    pub insecure: bool,
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
    idle_timeout: Option<Duration>,
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
/// Other choices, and everything but the text, are skipped without being kept.
#[derive(Deserialize)]
struct CompletionText {
    #[serde(default, deserialize_with = "first_choice")]
    choices: Option<TextChoice>,
}

#[derive(Deserialize)]
struct TextChoice {
    message: Option<TextMessage>,
}

#[derive(Deserialize)]
struct TextMessage {
    /// A string, or an array of parts with `text`.
    #[serde(default, deserialize_with = "message_content")]
    content: Option<String>,
}

/// The first element of an array; the others are skipped (a reply with `n` = 10⁶ choices
/// costs no more than one with a single choice).
fn first_choice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TextChoice>, D::Error> {
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<TextChoice>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of choices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    d.deserialize_seq(First)
}

fn message_content<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    TextAt::Content.deserialize(d)
}

/// Where [`message_content`] is reading: a message's `content` (a string, or an array of
/// parts), one part (an object with `text`), or a part's `text`. Any other value is no
/// text and is skipped unkept, however large.
#[derive(Clone, Copy, PartialEq)]
enum TextAt {
    Content,
    Part,
    Text,
}

/// A part's keys: only `text` is read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PartKey {
    Text,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for TextAt {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextAt {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok((self != TextAt::Part).then(|| v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<String>, E> {
        Ok((self != TextAt::Part).then_some(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        if self != TextAt::Content {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        let mut text = String::new();
        while let Some(part) = seq.next_element_seed(TextAt::Part)? {
            text.push_str(part.as_deref().unwrap_or(""));
        }
        Ok(Some(text))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut text = None;
        while let Some(key) = map.next_key::<PartKey>()? {
            match key {
                PartKey::Text if self == TextAt::Part => text = map.next_value_seed(TextAt::Text)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(text)
    }
}

/// The first choice's text of a completion body, if it has one.
fn completion_text(body: &[u8]) -> String {
    let Ok(c) = serde_json::from_slice::<CompletionText>(body) else { return String::new() };
    c.choices.and_then(|ch| ch.message).and_then(|m| m.content).unwrap_or_default()
}

/// An OpenAI-style error body: only `error.message` is kept, the rest is skipped unkept.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorMsg,
}

#[derive(Deserialize)]
struct ErrorMsg {
    message: String,
}

/// One `chat.completion.chunk` of a stream; everything else in it is skipped.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<UsageBody>,
    /// Kept raw (a copy of its text, bounded by the event cap), not as a value tree: a
    /// hostile `[0,0,…]` must not cost 32 bytes per element.
    error: Option<Box<RawValue>>,
}

/// The message of a stream's error event: `{"message": …}` or a bare string.
fn stream_error_message(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Msg {
        message: Option<String>,
    }
    serde_json::from_str::<Msg>(raw.get()).ok().and_then(|m| m.message).or_else(|| serde_json::from_str::<String>(raw.get()).ok())
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
        // Kept under the total timeout: else, with `timeout` <= `connect_timeout`, the
        // total timer fires first and a connection that never completes reads `timeout`.
        // (Half the total at least, so a tiny `timeout` does not leave no time to connect.)
        let connect_timeout = cfg.connect_timeout.min(cfg.timeout.saturating_sub(CONNECT_MARGIN).max(cfg.timeout / 2));
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(cfg.pool_size.max(1))
            .tcp_nodelay(true)
            // An API POST is never legitimately redirected; following one could carry the
            // key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(cfg.insecure)
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
            idle_timeout: cfg.idle_timeout,
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
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return self.fail(classify(&e), start.elapsed(), None, 0, &describe(&e, &self.url)),
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            // Read before the body: whatever becomes of it, the server's wish stands.
            let retry_after = retry_after(resp.headers(), SystemTime::now());
            return RequestRecord { retry_after, ..self.read_error(resp, start, status).await };
        }
        if !self.stream {
            return self.read_body(resp, start, status).await;
        }
        match self.not_event_stream(resp.headers()) {
            Some(content_type) => self.not_a_stream(resp, start, status, &content_type).await,
            None => self.read_stream(resp, start, status).await,
        }
    }

    /// The next piece of a body; None when the idle timeout passed without one. Unarmed,
    /// only the whole-request timeout bounds the wait: before a stream's first token, a
    /// long wait is the server's queue and prefill, not a stall.
    async fn next_chunk(&self, resp: &mut reqwest::Response, armed: bool) -> Option<reqwest::Result<Option<Bytes>>> {
        match self.idle_timeout.filter(|_| armed) {
            Some(idle) => tokio::time::timeout(idle, resp.chunk()).await.ok(),
            None => Some(resp.chunk().await),
        }
    }

    /// Reads at most `limit` bytes of a body that is wanted for its message only.
    async fn read_head(&self, resp: &mut reqwest::Response, limit: usize) -> Head {
        let mut head =
            Head { body: Vec::with_capacity(resp.content_length().map_or(1024, |n| n.min(limit as u64) as usize)), ..Head::default() };
        while head.body.len() < limit {
            match self.next_chunk(resp, head.bytes > 0).await {
                None => {
                    head.cut = Some(format!("no data for {:?}", self.idle_timeout.unwrap_or_default()));
                    break;
                }
                Some(Ok(Some(chunk))) => {
                    head.bytes += chunk.len() as u64;
                    let room = limit - head.body.len();
                    head.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Some(Ok(None)) => {
                    head.complete = true;
                    break;
                }
                Some(Err(e)) => {
                    head.cut = Some(describe(&e, &self.url));
                    break;
                }
            }
        }
        head
    }

    /// A non-2xx reply: its kind is its status, whatever becomes of its body, whose
    /// message (from its first [`ERROR_BODY_BYTES`]) is the detail.
    async fn read_error(&self, mut resp: reqwest::Response, start: Instant, status: u16) -> RequestRecord {
        let head = self.read_head(&mut resp, ERROR_BODY_BYTES).await;
        let latency = start.elapsed();
        let detail = match &head.cut {
            None => format!("HTTP {status}: {}", self.server_message(&head.body, head.complete)),
            Some(why) if head.body.is_empty() => format!("HTTP {status}: (body cut: {why})"),
            // The message shortened so that why the body was cut stays in the detail.
            Some(why) => {
                let message = truncate(&self.server_message(&head.body, false), DETAIL_CHARS / 2);
                format!("HTTP {status}: {message} (body cut: {why})")
            }
        };
        self.fail(FailureKind::from_status(status), latency, Some(status), head.bytes, &detail)
    }

    /// A stream reply's Content-Type when it is present and not `text/event-stream`,
    /// scrubbed and shortened for a detail.
    fn not_event_stream(&self, headers: &HeaderMap) -> Option<String> {
        let value = String::from_utf8_lossy(headers.get(CONTENT_TYPE)?.as_bytes()).into_owned();
        let media = value.split(';').next().unwrap_or_default().trim();
        (!media.eq_ignore_ascii_case("text/event-stream")).then(|| truncate(&self.scrub(&value), 80))
    }

    /// A stream was asked for and the reply is something else (a server that ignores
    /// `"stream": true` answers with a whole completion): a decode failure, not a cut stream.
    async fn not_a_stream(&self, mut resp: reqwest::Response, start: Instant, status: u16, content_type: &str) -> RequestRecord {
        let head = self.read_head(&mut resp, ERROR_BODY_BYTES).await;
        let detail = format!("HTTP {status}: asked for a stream, got Content-Type {content_type} (the server ignores \"stream\": true)");
        self.fail(FailureKind::Decode, start.elapsed(), Some(status), head.bytes, &detail)
    }

    /// Reads a whole 2xx (non-stream) body: a chat completion.
    async fn read_body(&self, mut resp: reqwest::Response, start: Instant, status: u16) -> RequestRecord {
        // Reserve from Content-Length only up to a small bound: the header is the
        // server's word, and a hostile one could claim 32 MiB for every request.
        let mut buf = Vec::with_capacity(resp.content_length().map_or(1024, |n| n.min(64 * 1024) as usize));
        loop {
            let Some(read) = self.next_chunk(&mut resp, !buf.is_empty()).await else {
                let idle = self.idle_timeout.unwrap_or_default();
                let detail = format!("HTTP {status}: body stalled: no data for {idle:?} after {} body bytes", buf.len());
                return self.fail(FailureKind::IdleTimeout, start.elapsed(), Some(status), buf.len() as u64, &detail);
            };
            match read {
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
        // JSON is UTF-8 (RFC 8259), and serde_json checks it only in strings it keeps:
        // checked here so a broken reply fails wherever its bad bytes sit.
        if let Err(e) = std::str::from_utf8(&buf) {
            let detail = format!("HTTP {status}: not a chat completion (invalid UTF-8 at byte {})", e.valid_up_to());
            return self.fail(FailureKind::Decode, latency, Some(status), bytes, &detail);
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
            // Armed by the first token: the wait for it is the server's queue and prefill.
            let Some(read) = self.next_chunk(&mut resp, last.is_some()).await else {
                let idle = self.idle_timeout.unwrap_or_default();
                let detail = format!("HTTP {status}: stream stalled: no data for {idle:?} after {} content chunks", rec.chunks);
                break Some((FailureKind::IdleTimeout, detail));
            };
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
                    let msg = stream_error_message(&err).unwrap_or_else(|| "error event in stream".to_string());
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
    /// with the key scrubbed. `complete`: the body was read to its end.
    fn server_message(&self, body: &[u8], complete: bool) -> String {
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            return self.scrub(&e.error.message);
        }
        let mut window = &body[..body.len().min(SCAN_BYTES)];
        if body.len() > SCAN_BYTES || !complete {
            // A key cut by the window's edge (or where the body broke off) would escape
            // the scrub: drop a tail that is the start of the key.
            if let Some(key) = &self.secret {
                let key = key.as_bytes();
                if let Some(n) = (1..key.len()).rev().find(|&n| window.ends_with(&key[..n])) {
                    window = &window[..window.len() - n];
                }
            }
        }
        let text = self.scrub(&String::from_utf8_lossy(window));
        // An error page from a proxy: its words, not its markup.
        let words = html_text(&text).split_whitespace().collect::<Vec<_>>().join(" ");
        match (words.is_empty(), body.is_empty()) {
            (false, _) => words,
            (true, true) => "(empty body)".to_string(),
            (true, false) => format!("({} byte body without text)", body.len()),
        }
    }
}

/// The start of a body read for its message.
#[derive(Default)]
struct Head {
    /// At most the limit asked for.
    body: Vec<u8>,
    /// Bytes read, the last piece whole.
    bytes: u64,
    /// The body was read to its end.
    complete: bool,
    /// Why the body broke off (a stall, a reset, the total timeout), if it did.
    cut: Option<String>,
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
    // reqwest 0.13 reports an expired connect timeout as both: a connect error caused by
    // its own TimedOut or hyper-util's (whichever timer fires first; the OS's ETIMEDOUT
    // too). The total timeout is not a connect error, even when it expires while connecting.
    if e.is_connect() && e.is_timeout() {
        FailureKind::ConnectTimeout
    } else if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else if e.is_body() || e.is_decode() {
        FailureKind::Body
    } else {
        FailureKind::Transport
    }
}

/// Longest server-requested wait kept. A buggy or hostile server may ask for years (or a
/// number past `Duration`'s range); a load test waits minutes at most, and a cap keeps
/// any `Instant + retry_after` a caller computes from overflowing.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait a non-2xx response asks for: `retry-after-ms` (OpenAI, Azure) when valid,
/// else `Retry-After` (decimal seconds, or an HTTP-date), capped at [`MAX_RETRY_AFTER`].
/// Anything unparsable is None. An HTTP-date is counted from the response's `Date` when
/// it has one, so a server whose clock is off still gets the wait it meant; else from `now`.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let server_now = || header(DATE.as_str()).and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or(now);
    header("retry-after-ms")
        .and_then(|v| parse_decimal(v, Unit::Millis))
        .or_else(|| header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, server_now())))
}

#[derive(Clone, Copy)]
enum Unit {
    Secs,
    Millis,
}

/// A non-negative decimal number (`12`, `1.5`, `.5`, `2.`) of `unit`s, rounded up to
/// the nanosecond: the wait is never shorter than asked. Capped at [`MAX_RETRY_AFTER`].
fn parse_decimal(v: &str, unit: Unit) -> Option<Duration> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    // Digits only: a float parser would also take "inf", "NaN", "-1" and "1e9".
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    // Digits beyond u64 are a huge wait, not garbage.
    let whole = if int.is_empty() { 0 } else { int.parse::<u64>().unwrap_or(u64::MAX) };
    let (whole, frac_digits) = match unit {
        Unit::Secs => (Duration::from_secs(whole.min(MAX_RETRY_AFTER.as_secs())), 9),
        Unit::Millis => (Duration::from_millis(whole.min(MAX_RETRY_AFTER.as_millis() as u64)), 6),
    };
    // The fraction in nanoseconds: its first digits, plus one if a further digit is not 0.
    let (head, tail) = frac.split_at(frac.len().min(frac_digits));
    let nanos = format!("{head:0<frac_digits$}").parse::<u64>().unwrap_or(0) + u64::from(tail.bytes().any(|b| b != b'0'));
    Some((whole + Duration::from_nanos(nanos)).min(MAX_RETRY_AFTER))
}

/// `Retry-After`: decimal seconds, or an HTTP-date counted from `now` (a past date is no
/// wait at all).
fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let wait = match parse_decimal(v, Unit::Secs) {
        Some(wait) => wait,
        None => httpdate::parse_http_date(v.trim()).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The text of an HTML page: tags (and the insides of `<script>` and `<style>`) become
/// spaces. Anything that does not start with `<` is returned as it is.
fn html_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.trim_start().starts_with('<') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = &rest[open + 1..];
        let Some(close) = tag.find('>') else {
            // A tag cut by the end of the window.
            return out.into();
        };
        let name = tag[..close].split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or("").to_ascii_lowercase();
        rest = &tag[close + 1..];
        if name == "script" || name == "style" {
            let end = format!("</{name}");
            match rest.to_ascii_lowercase().find(&end) {
                // Lowercasing ASCII keeps byte offsets.
                Some(i) => rest = &rest[i..],
                None => return out.into(),
            }
        }
    }
    out.push_str(rest);
    out.into()
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
        use FailureKind::*;
        let all = [
            Connect,
            ConnectTimeout,
            Timeout,
            IdleTimeout,
            Http429,
            Http4xx,
            Http5xx,
            HttpOther,
            Decode,
            Body,
            BodyTooLarge,
            Transport,
            StreamCut,
        ];
        for k in all {
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
            idle_timeout: None,
            insecure: false,
            pool_size: 1,
            stream: false,
            stream_usage: true,
            keep_content: false,
        })
        .unwrap()
    }

    #[test]
    fn stream_error_events_are_read_without_a_value_tree() {
        let chunk = |text: &str| serde_json::from_str::<Chunk>(text).unwrap().error;
        assert!(chunk(r#"{"choices":[],"error":null}"#).is_none(), "null is no error");
        let msg = |text: &str| stream_error_message(&chunk(text).unwrap());
        assert_eq!(msg(r#"{"error":{"message":"overloaded","code":503}}"#).as_deref(), Some("overloaded"));
        assert_eq!(msg(r#"{"error":"plain text"}"#).as_deref(), Some("plain text"));
        assert_eq!(msg(r#"{"error":[0,0,0]}"#), None);
    }

    #[test]
    fn server_message_prefers_openai_error() {
        let c = client();
        assert_eq!(c.server_message(br#"{"error":{"message":"model not found"}}"#, true), "model not found");
        assert_eq!(c.server_message(b"<html>\n <b>Bad Gateway</b></html>", true), "Bad Gateway");
        assert_eq!(c.server_message(b"upstream <error>", true), "upstream <error>");
        assert_eq!(c.server_message(b"", true), "(empty body)");
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
            let rec = c.fail(FailureKind::Http4xx, Duration::ZERO, Some(401), 0, &c.server_message(&body, true));
            let detail = rec.detail.unwrap();
            assert!(!detail.contains(&KEY[..8]), "{detail}");
            assert!(detail.chars().count() <= DETAIL_CHARS + 1, "{detail}");
        }
        // A short body that broke off inside the key.
        let cut = format!("upstream says hello, {}", &KEY[..14]);
        let message = c.server_message(cut.as_bytes(), false);
        assert_eq!(message, "upstream says hello,");
        // Only a tail that is the start of the key goes: a body that broke off elsewhere
        // keeps all it had.
        assert_eq!(c.server_message(b"{\"error\":{\"message\":\"over", false), "{\"error\":{\"message\":\"over");
    }

    #[test]
    fn error_messages_are_read_typed() {
        let c = client();
        let extra = format!(r#"{{"junk":[{}0],"error":{{"code":5,"message":"overloaded","param":{{"a":[1]}}}}}}"#, "0,".repeat(1000));
        assert_eq!(c.server_message(extra.as_bytes(), true), "overloaded");
        // Not the expected shape: the text of the body instead.
        assert_eq!(c.server_message(br#"{"error":"plain"}"#, true), r#"{"error":"plain"}"#);
        assert_eq!(c.server_message(b"[0,0,0]", true), "[0,0,0]");
    }

    #[test]
    fn completion_text_keeps_the_first_choice_only() {
        let text = |body: &str| completion_text(body.as_bytes());
        assert_eq!(text(r#"{"choices":[{"message":{"content":"one"}},{"message":{"content":"two"}}]}"#), "one");
        let parts = r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},"x",{"text":5},{"text":"b","extra":[1]},7]}}]}"#;
        assert_eq!(text(parts), "ab");
        assert_eq!(text(r#"{"choices":[{"message":{"content":null}}]}"#), "");
        assert_eq!(text(r#"{"choices":[{"message":{"content":{"text":"no"}}}]}"#), "");
        assert_eq!(text(r#"{"choices":[{"message":{"role":"assistant"}}]}"#), "");
        assert_eq!(text(r#"{"choices":[]}"#), "");
        assert_eq!(text(r#"{"id":"x"}"#), "");
        assert_eq!(text("not json"), "");
        // The other choices may be anything, and many.
        let many = format!(r#"{{"choices":[{{"message":{{"content":"first"}}}},{}0]}}"#, "[0],".repeat(10_000));
        assert_eq!(text(&many), "first");
    }

    #[test]
    fn html_pages_read_as_text() {
        let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body { color: red }</style>\
                    <SCRIPT>if (a < b) {}</SCRIPT></head>\r\n<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>";
        assert_eq!(client().server_message(page.as_bytes(), true), "502 Bad Gateway 502 Bad Gateway nginx");
        // Cut by the window: no panic, the text so far.
        assert_eq!(client().server_message(b"<p>over</p><a href=\"x", true), "over");
        assert_eq!(client().server_message(b"<p>x<script>never closed", true), "x");
        assert_eq!(client().server_message("<p>café ☕</p>".as_bytes(), true), "café ☕");
    }

    #[test]
    fn invalid_utf8_in_an_error_body_is_replaced() {
        let c = client();
        assert_eq!(c.server_message(b"bad \xFF\xFE gateway", true), "bad \u{FFFD}\u{FFFD} gateway");
        assert_eq!(c.server_message(b"{\"error\":{\"message\":\"\xFF\"}}", true), "{\"error\":{\"message\":\"\u{FFFD}\"}}");
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_ms() {
        let now = SystemTime::now();
        let ms = |v: &[u8]| retry_after(&headers(&[("retry-after-ms", v)]), now);
        assert_eq!(ms(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(ms(b"12.5"), Some(Duration::from_micros(12_500)));
        assert_eq!(ms(b" 0 "), Some(Duration::ZERO));
        assert_eq!(ms(b".5"), Some(Duration::from_micros(500)));
        // Rounded up, never down, to the nanosecond.
        assert_eq!(ms(b"0.0000011"), Some(Duration::from_nanos(2)));
        assert_eq!(ms(b"1.0000000"), Some(Duration::from_millis(1)));
        assert_eq!(ms(b"7200000"), Some(MAX_RETRY_AFTER));
        assert_eq!(ms("9".repeat(400).as_bytes()), Some(MAX_RETRY_AFTER));
        for bad in [&b""[..], b".", b"-1", b"+1", b"1e3", b"inf", b"NaN", b"1.2.3", b"soon", b"\xFF"] {
            assert_eq!(ms(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retry_after_ms_wins_when_valid() {
        let now = SystemTime::now();
        let both = |ms: &'static [u8]| retry_after(&headers(&[("retry-after-ms", ms), ("retry-after", b"2")]), now);
        assert_eq!(both(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(both(b"garbage"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        let ra = |v: &[u8]| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(ra(b"2"), Some(Duration::from_secs(2)));
        assert_eq!(ra(b"0"), Some(Duration::ZERO));
        assert_eq!(ra(b"86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra(b"99999999999999999999999999"), Some(MAX_RETRY_AFTER));
        for bad in [&b""[..], b".", b"-5", b"1e3", b"inf", b"1.2.3", b"2s", b"soon", b"\xFF", b"Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(ra(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retry_after_decimal_seconds() {
        let now = SystemTime::now();
        let ra = |v: &[u8]| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(ra(b"1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(ra(b" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(ra(b".5"), Some(Duration::from_millis(500)));
        assert_eq!(ra(b"2."), Some(Duration::from_secs(2)));
        // Finer than a nanosecond: rounded up, so the wait is never shorter than asked.
        assert_eq!(ra(b"0.0000000001"), Some(Duration::from_nanos(1)));
        assert_eq!(ra(b"1.1234567891"), Some(Duration::new(1, 123_456_790)));
        assert_eq!(ra(b"3599.9999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra(b"86400.5"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_http_date_counts_from_the_servers_date() {
        // The local clock is an hour ahead of the server's: the server still gets its 30 s.
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let local = server + Duration::from_secs(3600);
        let date = httpdate::fmt_http_date(server);
        let at = httpdate::fmt_http_date(server + Duration::from_secs(30));
        let h = headers(&[("retry-after", at.as_bytes()), ("date", date.as_bytes())]);
        assert_eq!(retry_after(&h, local), Some(Duration::from_secs(30)));
        // An hour behind: the same.
        assert_eq!(retry_after(&h, server - Duration::from_secs(3600)), Some(Duration::from_secs(30)));
        // Without a Date, or with one that does not parse: the local clock.
        let h = headers(&[("retry-after", at.as_bytes())]);
        assert_eq!(retry_after(&h, server + Duration::from_secs(10)), Some(Duration::from_secs(20)));
        assert_eq!(retry_after(&h, local), Some(Duration::ZERO));
        let h = headers(&[("retry-after", at.as_bytes()), ("date", b"yesterday")]);
        assert_eq!(retry_after(&h, server + Duration::from_secs(10)), Some(Duration::from_secs(20)));
        // A Date does not change a wait in seconds.
        let h = headers(&[("retry-after", b"5"), ("date", date.as_bytes())]);
        assert_eq!(retry_after(&h, local), Some(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_http_date() {
        // Whole seconds: HTTP-dates have no finer resolution.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |d: SystemTime| parse_retry_after(&httpdate::fmt_http_date(d), now);
        assert_eq!(at(now + Duration::from_secs(30)), Some(Duration::from_secs(30)));
        assert_eq!(at(now - Duration::from_secs(30)), Some(Duration::ZERO));
        assert_eq!(at(now + Duration::from_secs(10 * 86400)), Some(MAX_RETRY_AFTER));
        // The obsolete forms HTTP still allows.
        assert_eq!(parse_retry_after("Tuesday, 14-Nov-23 22:13:50 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue Nov 14 22:13:50 2023", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), Some(Duration::from_secs(30)));
    }
}
