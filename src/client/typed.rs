//! Typed event streams: OpenAI's Responses API (`response.output_text.delta` …
//! `response.completed`) and Anthropic's Messages (`message_start` … `message_stop`),
//! each event's `data` read into what a chat chunk would say — text (answer or
//! reasoning), usage, why it ended, that it ended, or an error — so TTFT, ITL, tokens and
//! finish reasons mean for them what they mean for chat. Both put the event's type in
//! its data (`"type"`), so the `event:` line is not needed. Shapes, with their sources,
//! in tests/fixtures/apis/ (captured from llama-server, or the SDKs' own fixtures).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{FinishReason, ServerTimings, Usage};

/// An event with no `type`: the server speaks another API (a chat completion chunk?).
const ANOTHER_API: &str = "an event without a `type`, not {api} (is the server speaking another API, chat completions say?)";

/// What one event said.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Said<'a> {
    /// A piece of text: the answer's, or (true) the reasoning's.
    pub text: Option<(Cow<'a, str>, bool)>,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
    /// The stream's last event (it has no `[DONE]`).
    pub end: bool,
    pub error: Option<String>,
    pub timings: Option<ServerTimings>,
}

/// A Responses API event (every kind's fields that matter, all optional).
#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
    response: Option<ResponseBody>,
    /// The `error` event's own message.
    message: Option<String>,
    /// llama.cpp's mid-stream error: `{"error": {…}}` with no type.
    error: Option<Box<RawValue>>,
    /// llama.cpp's own timings, beside `response` on `response.completed`.
    #[serde(default, deserialize_with = "super::reply::lenient")]
    timings: Option<ServerTimings>,
}

#[derive(Deserialize)]
struct ResponseBody {
    status: Option<String>,
    usage: Option<ResponsesUsage>,
    incomplete_details: Option<Reason>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<serde_json::Value>,
    message: Option<String>,
}

impl ErrorBody {
    /// "overloaded_error: Overloaded", or what there is of it.
    fn line(&self) -> String {
        let code = self.code.as_ref().map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string));
        let kind = self.kind.clone().or(code);
        match (kind, &self.message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (Some(k), None) => k,
            (None, Some(m)) => m.clone(),
            (None, None) => "error event in stream".into(),
        }
    }
}

/// The Responses API's usage (`input_tokens`, `output_tokens`, their details).
#[derive(Deserialize)]
pub(super) struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Cached>,
    output_tokens_details: Option<Reasoning>,
}

#[derive(Deserialize)]
struct Cached {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Reasoning {
    reasoning_tokens: Option<u64>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Usage {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            reasoning_tokens: u.output_tokens_details.and_then(|d| d.reasoning_tokens),
            cached_tokens: u.input_tokens_details.and_then(|d| d.cached_tokens),
        }
    }
}

/// Why a response ended, from its status and `incomplete_details.reason`.
pub(super) fn responses_finish(status: Option<&str>, reason: Option<&str>) -> FinishReason {
    match (status, reason) {
        (_, Some("max_output_tokens")) => FinishReason::Length,
        (_, Some("content_filter")) => FinishReason::ContentFilter,
        (Some("completed"), _) => FinishReason::Stop,
        _ => FinishReason::Other,
    }
}

/// One Responses API event. Err: it is not JSON (line, column).
pub(super) fn responses(data: &str) -> Result<Said<'_>, serde_json::Error> {
    let e: ResponsesEvent = serde_json::from_str(data)?;
    let mut said = Said { timings: e.timings, ..Said::default() };
    match e.kind.as_ref() {
        "response.output_text.delta" => said.text = e.delta.map(|t| (t, false)),
        "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => said.text = e.delta.map(|t| (t, true)),
        "response.completed" | "response.incomplete" => {
            if let Some(r) = e.response {
                let reason = r.incomplete_details.as_ref().and_then(|d| d.reason.as_deref());
                said.finish = Some(responses_finish(r.status.as_deref(), reason));
                said.usage = r.usage.map(Usage::from);
            }
            said.end = true;
        }
        "response.failed" => {
            let error = e.response.and_then(|r| r.error).map(|x| x.line());
            said.error = Some(error.unwrap_or_else(|| "response.failed".into()));
        }
        "error" => said.error = Some(e.message.unwrap_or_else(|| "error event in stream".into())),
        _ => {}
    }
    if let Some(raw) = e.error.filter(|_| said.error.is_none()) {
        said.error = Some(error_line(&raw));
    } else if e.kind.is_empty() && said.error.is_none() {
        said.error = Some(ANOTHER_API.replace("{api}", "the Responses API's"));
    }
    Ok(said)
}

/// An error value: `{"type"/"code", "message"}`, or a bare string.
fn error_line(raw: &RawValue) -> String {
    serde_json::from_str::<ErrorBody>(raw.get())
        .map(|b| b.line())
        .or_else(|_| serde_json::from_str::<String>(raw.get()))
        .unwrap_or_else(|_| "error event in stream".into())
}

/// An Anthropic Messages event.
#[derive(Deserialize)]
struct MessagesEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: Option<MessagesDelta<'a>>,
    /// `message_start`'s message (with the input's usage); in llama.cpp's mid-stream
    /// error, its own body unwrapped, the error's text.
    message: Option<Box<RawValue>>,
    /// `message_delta`'s usage: the output's, cumulative.
    usage: Option<MessagesUsage>,
    error: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct MessagesDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageStart {
    usage: Option<MessagesUsage>,
}

/// Anthropic's usage: the prompt is input + what the cache held + what it wrote.
#[derive(Deserialize)]
pub(super) struct MessagesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl MessagesUsage {
    /// The prompt's tokens (all of them), and of them those the cache held.
    fn prompt(&self) -> Option<(u64, Option<u64>)> {
        let input = self.input_tokens?;
        let (read, written) = (self.cache_read_input_tokens, self.cache_creation_input_tokens.unwrap_or(0));
        Some((input + read.unwrap_or(0) + written, read))
    }
}

impl From<MessagesUsage> for Usage {
    fn from(u: MessagesUsage) -> Usage {
        let prompt = u.prompt();
        Usage {
            prompt_tokens: prompt.map(|p| p.0),
            completion_tokens: u.output_tokens,
            reasoning_tokens: None,
            cached_tokens: prompt.and_then(|p| p.1),
        }
    }
}

/// `new` over `into`: each figure it says replaces the one before (a Messages stream
/// says the input's at its start and the output's at its end).
pub(super) fn merge(into: &mut Option<Usage>, new: Usage) {
    let old = into.take().unwrap_or_default();
    *into = Some(Usage {
        prompt_tokens: new.prompt_tokens.or(old.prompt_tokens),
        completion_tokens: new.completion_tokens.or(old.completion_tokens),
        reasoning_tokens: new.reasoning_tokens.or(old.reasoning_tokens),
        cached_tokens: new.cached_tokens.or(old.cached_tokens),
    });
}

/// Why a message ended (`stop_reason`).
pub(super) fn messages_finish(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// One Messages event. Its usage is split: `message_start` says the input, and
/// `message_delta` the output — `usage` then holds what this event said (the caller
/// keeps the input's). Err: it is not JSON.
pub(super) fn messages(data: &str) -> Result<Said<'_>, serde_json::Error> {
    let e: MessagesEvent = serde_json::from_str(data)?;
    let mut said = Said::default();
    match e.kind.as_ref() {
        "content_block_delta" => {
            if let Some(d) = e.delta {
                said.text = match d.kind.as_deref() {
                    Some("thinking_delta") => d.thinking.map(|t| (t, true)),
                    Some("text_delta") | None => d.text.map(|t| (t, false)),
                    _ => None,
                };
            }
        }
        "message_start" => {
            let start = e.message.and_then(|m| serde_json::from_str::<MessageStart>(m.get()).ok());
            said.usage = start.and_then(|m| m.usage).map(Usage::from);
        }
        "message_delta" => {
            said.finish = e.delta.and_then(|d| d.stop_reason).map(|r| messages_finish(&r));
            said.usage = e.usage.map(Usage::from);
        }
        "message_stop" => said.end = true,
        "error" => said.error = Some(e.error.as_deref().map_or_else(|| "error event in stream".into(), error_line)),
        "ping" | "content_block_start" | "content_block_stop" => {}
        "" => said.error = Some(ANOTHER_API.replace("{api}", "Anthropic's Messages'")),
        // llama.cpp's `event: error` carries its own body: `{"code", "message", "type"}`.
        kind => said.error = e.message.and_then(|m| serde_json::from_str::<String>(m.get()).ok()).map(|m| format!("{kind}: {m}")),
    }
    Ok(said)
}

#[cfg(test)]
mod tests;
