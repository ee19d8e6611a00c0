//! A whole (non-stream) 2xx reply: read within the size and idle bounds, checked as
//! UTF-8, parsed for its choices and usage.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::content::{completion_text, first};
use super::{Client, MAX_BODY_BYTES};
use crate::model::{Expect, FailureKind, RequestRecord, ServerTimings, Usage};

/// A completion as the hot path reads it: only the first choice is looked at, for
/// reasoning text, and none of it is kept.
#[derive(Deserialize)]
struct Completion {
    #[serde(deserialize_with = "first")]
    choices: Option<ProbeChoice>,
    usage: Option<UsageBody>,
    /// llama.cpp's own timing; a malformed one is left out, not a failure.
    #[serde(default, deserialize_with = "lenient")]
    timings: Option<ServerTimings>,
}

/// A value that is taken when it reads, and is None when it does not: a field that is
/// a server's extra, whose absence or odd shape must not fail the reply.
pub(super) fn lenient<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(|v| T::deserialize(v).ok()))
}

#[derive(Deserialize)]
struct ProbeChoice {
    message: Option<ProbeMessage>,
    finish_reason: Option<crate::model::FinishReason>,
}

#[derive(Deserialize)]
struct ProbeMessage {
    /// Present (not null) when the model reasoned, by either name.
    reasoning_content: Option<IgnoredAny>,
    reasoning: Option<IgnoredAny>,
    /// The calls it made instead of (or beside) its text; a shape not read is none, not
    /// a failure (the field is a server's to shape).
    #[serde(default, deserialize_with = "lenient")]
    tool_calls: Option<Vec<super::tools::WholeToolCall>>,
}

impl ProbeChoice {
    fn reasons(&self) -> bool {
        self.message.as_ref().is_some_and(|m| m.reasoning_content.is_some() || m.reasoning.is_some())
    }

    /// Its tool calls, None when it made none.
    fn tool_calls(&mut self) -> Option<Vec<crate::model::ToolCall>> {
        let calls: Vec<_> = self.message.as_mut()?.tool_calls.take()?.into_iter().map(super::tools::WholeToolCall::call).collect();
        (!calls.is_empty()).then_some(calls)
    }
}

#[derive(Deserialize)]
pub(super) struct UsageBody {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    completion_tokens_details: Option<UsageDetails>,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct UsageDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

impl From<UsageBody> for Usage {
    fn from(u: UsageBody) -> Usage {
        let reasoning_tokens = u.completion_tokens_details.and_then(|d| d.reasoning_tokens);
        let cached_tokens = u.prompt_tokens_details.and_then(|d| d.cached_tokens);
        Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, reasoning_tokens, cached_tokens }
    }
}

/// What the bodies being read may still hold, together (see [`super::BODY_BUDGET_BYTES`]).
pub(super) struct Budget {
    left: AtomicUsize,
    total: usize,
}

impl Budget {
    pub(super) fn new(bytes: usize) -> Budget {
        Budget { left: AtomicUsize::new(bytes), total: bytes }
    }

    /// A body's share, empty at first; given back when it is dropped.
    fn hold(&self) -> Held<'_> {
        Held { budget: self, bytes: 0 }
    }
}

/// Bytes one body holds of the [`Budget`].
struct Held<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Held<'_> {
    /// Grows `buf` to hold `len` bytes, its new capacity taken from the budget (the
    /// capacity, not the length: what is allocated is what counts). False when the
    /// budget has not that much left.
    fn grow(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        if buf.capacity() >= len {
            return true;
        }
        let cap = len.max(buf.capacity() * 2).min(MAX_BODY_BYTES.max(len));
        let more = cap - buf.capacity();
        let taken = self.budget.left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(more)).is_ok();
        if taken {
            self.bytes += more;
            buf.reserve_exact(cap - buf.len());
        }
        taken
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.left.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

impl Client {
    /// A body that would take the bodies being read past their shared budget.
    fn over_budget(&self, start: Instant, status: u16, bytes: u64) -> RequestRecord {
        let detail = format!(
            "HTTP {status}: body too large for the run's body budget ({} bytes for all bodies being read at once)",
            self.budget.total
        );
        self.fail(FailureKind::BodyTooLarge, start.elapsed(), Some(status), bytes, &detail)
    }

    /// Reads a whole 2xx (non-stream) body: a chat completion.
    pub(super) async fn read_body(&self, mut resp: super::Response<'_>, start: Instant, status: u16, expect: Expect) -> RequestRecord {
        // Reserve from Content-Length only up to a small bound: the header is the
        // server's word, and a hostile one could claim 32 MiB for every request.
        let mut held = self.budget.hold();
        let mut buf = Vec::new();
        if !held.grow(&mut buf, resp.content_length().map_or(1024, |n| n.min(64 * 1024) as usize)) {
            return self.over_budget(start, status, 0);
        }
        loop {
            let Some(read) = self.next_chunk(&mut resp, !buf.is_empty()).await else {
                let idle = self.idle_timeout.unwrap_or_default();
                let detail = format!("HTTP {status}: body stalled: no data for {idle:?} after {} body bytes", buf.len());
                return self.fail(FailureKind::IdleTimeout, start.elapsed(), Some(status), buf.len() as u64, &detail);
            };
            match read {
                Ok(Some(chunk)) => {
                    let n = buf.len() + chunk.len();
                    if n > MAX_BODY_BYTES {
                        let detail = format!("HTTP {status}: body larger than {MAX_BODY_BYTES} bytes");
                        return self.fail(FailureKind::BodyTooLarge, start.elapsed(), Some(status), n as u64, &detail);
                    }
                    if !held.grow(&mut buf, n) {
                        return self.over_budget(start, status, n as u64);
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let kind = if e.is_timeout() { FailureKind::Timeout } else { FailureKind::Body };
                    return self.fail(kind, start.elapsed(), Some(status), buf.len() as u64, &e.describe());
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
        if !self.api.generates() {
            return match super::vectors::check(self.api, &buf, expect) {
                Ok(c) => RequestRecord { latency, status: Some(status), bytes, usage: c.usage, ..RequestRecord::default() },
                Err(why) => self.fail(FailureKind::Decode, latency, Some(status), bytes, &format!("HTTP {status}: {why}")),
            };
        }
        if self.api.typed_events() {
            return match super::typed_whole::whole(self.api, &buf) {
                Ok(w) => {
                    let reasons = !w.texts.reasoning.is_empty();
                    let got = Got { latency, status, bytes, usage: w.usage, reasons, finish: w.finish, timings: None, tools: None };
                    self.whole_record(got, || w.texts).await
                }
                Err(why) => self.fail(FailureKind::Decode, latency, Some(status), bytes, &format!("HTTP {status}: {why}")),
            };
        }
        match serde_json::from_slice::<Completion>(&buf) {
            Ok(Completion { choices: Some(mut choice), usage, timings }) => {
                let tools = choice.tool_calls();
                let got = Got {
                    latency,
                    status,
                    bytes,
                    usage: usage.map(Usage::from),
                    reasons: choice.reasons(),
                    finish: choice.finish_reason,
                    timings,
                    tools,
                };
                self.whole_record(got, || completion_text(&buf)).await
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
}

/// What a whole reply said, before its texts are read.
struct Got {
    latency: std::time::Duration,
    status: u16,
    bytes: u64,
    usage: Option<Usage>,
    /// It carries reasoning text.
    reasons: bool,
    finish: Option<crate::model::FinishReason>,
    timings: Option<ServerTimings>,
    /// The calls it made.
    tools: Option<Vec<crate::model::ToolCall>>,
}

impl Client {
    /// A whole reply's record: its usage, and its texts (`texts`, read only when they
    /// are needed) counted where the server gave no count.
    async fn whole_record(&self, got: Got, texts: impl FnOnce() -> super::content::Texts) -> RequestRecord {
        let Got { latency, status, bytes, usage, reasons, finish, timings, tools } = got;
        // Counted here only when the server gave no count: on this path usage is
        // the rule, and tokenizing every reply would cost the generator its speed.
        let count_all = usage.is_none_or(|u| u.completion_tokens.is_none());
        let count_thought = reasons && usage.and_then(|u| u.reasoning_tokens).is_none_or(|n| n == 0);
        let texts = (self.keep_content || count_all || count_thought).then(texts);
        // Each text by itself, as in a stream.
        let (mut client_completion_tokens, mut client_reasoning_tokens, mut uncounted) = (None, None, None);
        // The server's tokenizer is not called while a stage is measured: the
        // texts go to the aggregator, which counts them after the window.
        if let Some(t) = texts.as_ref().filter(|_| self.tokenizer.is_server() && (count_all || count_thought)) {
            uncounted = Some(Box::new(crate::model::Uncounted { answer: t.answer.clone(), reasoning: t.reasoning.clone(), prompt: None }));
        } else if let Some(t) = &texts {
            let thought = if count_all || count_thought { self.count_tokens(&t.reasoning).await } else { 0 };
            if count_all {
                let called = self.tool_tokens(tools.as_deref()).await;
                client_completion_tokens = Some(self.count_tokens(&t.answer).await + thought + called);
            }
            client_reasoning_tokens = (count_thought && !t.reasoning.is_empty()).then_some(thought);
        }
        RequestRecord {
            latency,
            status: Some(status),
            bytes,
            usage,
            client_completion_tokens,
            client_reasoning_tokens,
            counted_by: client_completion_tokens.or(client_reasoning_tokens).map(|_| self.tokenizer.source()),
            uncounted,
            content: texts.filter(|_| self.keep_content).map(|t| t.answer),
            server_timings: timings,
            finish_reason: finish,
            tool_calls: tools,
            ..RequestRecord::default()
        }
    }
}
