//! HTTP client for OpenAI-compatible chat completions: one per run, over its own
//! connections (`transport`, with `tls` for https), that sends ready request bodies and
//! turns every response into a RequestRecord. The response readers live beside it:
//! whole replies (`reply`), streams (`stream`, over the SSE framing in `sse`), failures
//! and their scrubbed details (`failure`), and the server's Retry-After (`retry_after`).

mod content;
mod failure;
pub mod get;
mod reply;
mod retry_after;
mod scan;
pub mod sse;
mod stream;
#[doc(hidden)]
pub use stream::read_body as read_stream_body;
mod tls;
pub mod tokenize;
mod tools;
mod transport;
mod typed;
mod typed_whole;
mod vectors;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use crate::model::{Api, RequestRecord};
use failure::classify;
use transport::{Response, Transport};

/// Texts longer than this are counted off the async workers, so one huge reply does not
/// hold up the timing of every other stream.
const INLINE_COUNT_BYTES: usize = 64 * 1024;

/// Counts what a stream's record left uncounted (its texts, and its prompt when its
/// count was not known when sent) into its client counts. Run off the request path:
/// the aggregator calls it on its own thread.
pub fn count_uncounted(rec: &mut RequestRecord, counter: &mut crate::workload::pieces::PieceCounter) {
    let Some(u) = rec.uncounted.take() else { return };
    // Each text by itself: joined, a token could merge across the seam.
    let thought = counter.count(&u.reasoning);
    // A tool call's name and arguments are output the model wrote, each by itself.
    let called: u64 = rec.tool_calls.iter().flatten().map(|c| counter.count(&c.name) + counter.count(&c.arguments)).sum();
    rec.client_completion_tokens = Some(counter.count(&u.answer) + thought + called);
    rec.client_reasoning_tokens = (!u.reasoning.is_empty()).then_some(thought);
    rec.counted_by = Some(counter.tokenizer().source());
    if let Some(prompt) = u.prompt {
        let n = serde_json::from_str(&prompt).map_or(0, |v| counter.tokenizer().prompt_tokens(&v));
        rec.client_prompt_tokens = Some(n);
        rec.input_tokens.get_or_insert(n);
    }
}

impl Client {
    /// Tokens of `text` by the counting tokenizer, on a blocking thread when the text
    /// is long.
    async fn count_tokens(&self, text: &str) -> u64 {
        if text.len() <= INLINE_COUNT_BYTES {
            return self.tokenizer.count(text);
        }
        let (owned, tok) = (text.to_string(), self.tokenizer.clone());
        tokio::task::spawn_blocking(move || tok.count(&owned)).await.unwrap_or(0)
    }

    /// Tokens of tool calls' names and arguments, each by itself.
    async fn tool_tokens(&self, calls: Option<&[crate::model::ToolCall]>) -> u64 {
        let mut n = 0;
        for c in calls.into_iter().flatten() {
            n += self.count_tokens(&c.name).await + self.count_tokens(&c.arguments).await;
        }
        n
    }
}

/// 2xx responses larger than this are cut off and counted as `body_too_large`, so a
/// broken server cannot exhaust memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes all whole (non-stream) bodies being read may hold at once, together: the
/// per-body cap alone would let 100 requests hold 3.2 GB. A body that would take the
/// run past it fails as `body_too_large`, like one past its own cap. (Peak RSS runs to
/// about twice it: a growing body is copied, and the allocator keeps what was freed.)
pub const BODY_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Most bytes read of a body that is only wanted for its message (an error reply, a
/// stream answered as something else): the message is near the start, and a hostile
/// server must not make every failure cost megabytes.
pub const ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much shorter than the total timeout the connect timeout is kept: the timers tick
/// in whole milliseconds and a tie goes to the total timeout, so a margin of a few ticks.
const CONNECT_MARGIN: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API key in {0} is not a valid HTTP header value")]
    BadKey(String),
    #[error("target.headers.{name:?}: the value in {from} is not a valid HTTP header value")]
    BadHeader { name: String, from: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

pub struct ClientConfig {
    /// API root, e.g. `http://127.0.0.1:8000/v1`; the endpoint's path is appended.
    pub base_url: url::Url,
    /// The endpoint spoken: `/chat/completions`, `/completions`, `/responses`, `/messages`.
    pub api: Api,
    /// `target.path`: the endpoint's path instead of the API's (after the API root; from
    /// the host's root when it starts with `/`).
    pub path: Option<String>,
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
    /// Keep each completion's text in its record (for response checks).
    pub keep_content: bool,
    /// `--requests-out-text`: every record carries its body sent and its reply's text
    /// to the aggregator (which writes them out).
    pub texts_out: bool,
    /// Extra headers for every request. An `Authorization` among them replaces the
    /// Bearer key.
    pub headers: Vec<ExtraHeader>,
    /// Counts completions where the server sends no usage (and every stream's).
    pub tokenizer: crate::workload::Tokenizer,
    /// Bytes all bodies being read may hold at once ([`BODY_BUDGET_BYTES`]).
    pub body_budget: usize,
}

/// A header sent with every request.
#[derive(Clone)]
pub struct ExtraHeader {
    pub name: String,
    pub value: String,
    /// Where the value came from ("$VAR"), when it is a secret: never shown, scrubbed
    /// from every message like the key.
    pub secret_from: Option<String>,
}

pub struct Client {
    transport: Transport,
    /// Bytes the bodies being read may still take, together.
    budget: reply::Budget,
    idle_timeout: Option<Duration>,
    /// Which API's replies are read.
    api: Api,
    stream: bool,
    keep_content: bool,
    texts_out: bool,
    tokenizer: crate::workload::Tokenizer,
    /// The key and secret header values, kept only to scrub them out of server messages
    /// that echo them.
    secrets: Vec<String>,
}

/// The `anthropic-version` sent with Anthropic's Messages (its SDK's).
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A transport to `path` on `cfg`'s host, with its headers (the key, the extra ones)
/// and TLS: the endpoint's, or another on the same server (its tokenize endpoint).
fn transport_to(cfg: &ClientConfig, path: &str, pool: usize) -> Result<Transport, ClientError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(USER_AGENT, HeaderValue::from_static(concat!("llmload/", env!("CARGO_PKG_VERSION"))));
    for h in &cfg.headers {
        let bad = || ClientError::BadHeader { name: h.name.clone(), from: h.secret_from.clone().unwrap_or_else(|| "the scenario".into()) };
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad())?;
        let mut value = HeaderValue::from_str(&h.value).map_err(|_| bad())?;
        value.set_sensitive(h.secret_from.is_some());
        headers.append(name, value);
    }
    // Anthropic's Messages: the key as `x-api-key`, and the API's version.
    let x_api_key = HeaderName::from_static("x-api-key");
    if cfg.api == Api::Messages {
        if !headers.contains_key("anthropic-version") {
            headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        }
        if let Some(key) = cfg.api_key.as_ref().filter(|_| !headers.contains_key(&x_api_key) && !headers.contains_key(AUTHORIZATION)) {
            let mut v = HeaderValue::from_str(key).map_err(|_| ClientError::BadKey(cfg.api_key_env.clone()))?;
            v.set_sensitive(true);
            headers.insert(x_api_key, v);
        }
    }
    // A gateway that wants another scheme gets its own Authorization, not the key's.
    if let Some(key) = cfg.api_key.as_ref().filter(|_| cfg.api != Api::Messages && !headers.contains_key(AUTHORIZATION)) {
        let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ClientError::BadKey(cfg.api_key_env.clone()))?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let connect_timeout = connect_within(cfg.connect_timeout, cfg.timeout);
    let target = target(&cfg.base_url, path, http::Method::POST, cfg.insecure)?;
    Ok(Transport::new(target, headers, pool.max(1), cfg.timeout, connect_timeout))
}

/// The connect timeout, kept under the total: else, with `timeout` <= `connect`, the
/// total timer fires first and a connection that never completes reads `timeout`.
/// (Half the total at least, so a tiny `timeout` does not leave no time to connect.)
fn connect_within(connect: Duration, timeout: Duration) -> Duration {
    connect.min(timeout.saturating_sub(CONNECT_MARGIN).max(timeout / 2))
}

/// Where `method` requests to `path` on `url`'s host go, TLS included (its query kept).
fn target(url: &url::Url, path: &str, method: http::Method, insecure: bool) -> Result<transport::Target, ClientError> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let tls = match url.scheme() {
        "https" => Some(tls::connector(&host, insecure).map_err(ClientError::Build)?),
        _ => None,
    };
    let mut path = path.to_string();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let path = path.parse().map_err(|e| ClientError::Build(format!("the request path {path:?}: {e}")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    Ok(transport::Target { host, port, path, tls, method })
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let url = &cfg.base_url;
        let path = match cfg.path.as_deref() {
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("{}/{p}", url.path().trim_end_matches('/')),
            None => format!("{}/{}", url.path().trim_end_matches('/'), cfg.api.path()),
        };
        let transport = transport_to(&cfg, &path, cfg.pool_size)?;
        Ok(Client {
            transport,
            budget: reply::Budget::new(cfg.body_budget),
            idle_timeout: cfg.idle_timeout,
            api: cfg.api,
            stream: cfg.stream,
            keep_content: cfg.keep_content || cfg.texts_out,
            texts_out: cfg.texts_out,
            tokenizer: cfg.tokenizer,
            secrets: cfg
                .api_key
                .into_iter()
                .chain(cfg.headers.into_iter().filter(|h| h.secret_from.is_some()).map(|h| h.value))
                .filter(|k| !k.is_empty())
                .collect(),
        })
    }

    /// Whether records carry their texts out (`--requests-out-text`).
    pub fn texts_out(&self) -> bool {
        self.texts_out
    }

    /// Where its counts come from (the counting tokenizer's kind).
    pub fn counts_by(&self) -> crate::model::TokenSource {
        self.tokenizer.source()
    }

    /// Whether it asks for streams: request bodies must say `"stream": true` then.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// Sends one request and reads the whole response. Never panics on what the server
    /// sends; every outcome is a record.
    /// An embeddings or rerank reply is checked against `expect`.
    pub async fn send(&self, body: Bytes, expect: crate::model::Expect) -> RequestRecord {
        let start = Instant::now();
        let resp = match self.transport.post(body).await {
            Ok(r) => r,
            Err(e) => return self.fail(classify(&e), start.elapsed(), None, 0, &e.describe()),
        };
        let reconnected = resp.reconnected();
        let status = resp.status();
        let rec = if !(200..300).contains(&status) {
            // Read before the body: whatever becomes of it, the server's wish stands.
            let retry_after = retry_after::retry_after(resp.headers(), SystemTime::now());
            RequestRecord { retry_after, ..self.read_error(resp, start, status).await }
        } else if !self.stream {
            self.read_body(resp, start, status, expect).await
        } else {
            match self.not_event_stream(resp.headers()) {
                Some(content_type) => self.not_a_stream(resp, start, status, &content_type).await,
                None => self.read_stream(resp, start, status).await,
            }
        };
        RequestRecord { reconnected, ..rec }
    }

    /// The next piece of a body; None when the idle timeout passed without one. Unarmed,
    /// only the whole-request timeout bounds the wait: before a stream's first token, a
    /// long wait is the server's queue and prefill, not a stall.
    async fn next_chunk(&self, resp: &mut Response<'_>, armed: bool) -> Option<Result<Option<Bytes>, transport::Error>> {
        match self.idle_timeout.filter(|_| armed) {
            Some(idle) => tokio::time::timeout(idle, resp.chunk()).await.ok(),
            None => Some(resp.chunk().await),
        }
    }

    /// Reads at most `limit` bytes of a body that is wanted for its message only.
    async fn read_head(&self, resp: &mut Response<'_>, limit: usize) -> Head {
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
                    head.cut = Some(e.describe());
                    break;
                }
            }
        }
        head
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client for unit tests that never send: pointed at the discard port on loopback.
    pub(crate) fn unsent(api_key: Option<&str>) -> Client {
        unsent_with(api_key, Vec::new())
    }

    /// The same, with extra headers.
    pub(crate) fn unsent_with(api_key: Option<&str>, headers: Vec<ExtraHeader>) -> Client {
        Client::new(ClientConfig { headers, ..config(api_key) }).unwrap()
    }

    /// The configuration of those clients.
    pub(crate) fn config(api_key: Option<&str>) -> ClientConfig {
        ClientConfig {
            base_url: url::Url::parse("http://127.0.0.1:9/v1").unwrap(),
            api: Api::Chat,
            path: None,
            api_key: api_key.map(str::to_string),
            api_key_env: "K".into(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: None,
            insecure: false,
            pool_size: 1,
            stream: false,
            keep_content: false,
            texts_out: false,
            headers: Vec::new(),
            tokenizer: crate::workload::Tokenizer::o200k(),
            body_budget: BODY_BUDGET_BYTES,
        }
    }
}
