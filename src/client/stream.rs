//! A 2xx stream: SSE events of `chat.completion.chunk` read to `[DONE]`, timing the
//! first content chunk and the gaps between content chunks as they arrive.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::failure::{DETAIL_CHARS, truncate};
use super::reply::UsageBody;
use super::{Client, MAX_BODY_BYTES, sse};
use crate::model::{FailureKind, FinishReason, Outcome, RequestRecord, Uncounted};

/// Most chunk gaps one request records (64k gaps = 256 KiB).
const MAX_GAPS: usize = 1 << 16;
/// How long the end of a stream's body is awaited after `[DONE]`.
const DRAIN_LIMIT: Duration = Duration::from_millis(200);

/// Largest single SSE event accepted from a stream.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One `chat.completion.chunk` of a stream; everything else in it is skipped, and its
/// texts are borrowed from the event where they hold no escapes.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Choices<'a>,
    usage: Option<UsageBody>,
    /// llama.cpp's own timing, on the last chunk.
    #[serde(default, deserialize_with = "super::reply::lenient")]
    timings: Option<crate::model::ServerTimings>,
    /// Kept raw (a copy of its text, bounded by the event cap), not as a value tree: a
    /// hostile `[0,0,…]` must not cost 32 bytes per element.
    error: Option<Box<RawValue>>,
}

/// A chunk's choices: nearly always one, kept without an allocation then.
#[derive(Default)]
struct Choices<'a> {
    first: Option<ChunkChoice<'a>>,
    rest: Vec<ChunkChoice<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Seq<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut c = Choices { first: seq.next_element()?, rest: Vec::new() };
                while let Some(more) = seq.next_element()? {
                    c.rest.push(more);
                }
                Ok(c)
            }
        }
        d.deserialize_seq(Seq(std::marker::PhantomData))
    }
}

/// A scanned chunk as serde would have read it (for tests that hold one to the other).
#[cfg(test)]
impl<'a> From<super::scan::Scanned<'a>> for Chunk<'a> {
    fn from(s: super::scan::Scanned<'a>) -> Chunk<'a> {
        let first = s.choice.map(|c| ChunkChoice {
            index: c.index,
            delta: c.delta.map(|d| ChunkDelta {
                content: d.content,
                reasoning_content: d.reasoning_content,
                reasoning: d.reasoning,
                tool_calls: None,
            }),
            text: c.text,
            finish_reason: c.finish,
        });
        Chunk { choices: Choices { first, rest: Vec::new() }, usage: None, timings: None, error: None }
    }
}

/// The message of a stream's error event: `{"message": …}` or a bare string.
fn stream_error_message(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Msg {
        message: Option<String>,
    }
    serde_json::from_str::<Msg>(raw.get()).ok().and_then(|m| m.message).or_else(|| serde_json::from_str::<String>(raw.get()).ok())
}

/// A choice of a chunk: chat streams carry a `delta`, completions streams a `text`.
#[derive(Deserialize)]
struct ChunkChoice<'a> {
    /// Which choice (with `n` > 1): tool calls are assembled for the first only.
    #[serde(default)]
    index: u32,
    #[serde(borrow)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    /// Present (not null) on the chunk that ends the choice.
    finish_reason: Option<FinishReason>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    /// A reasoning model's thinking: `reasoning` (vLLM now, OpenRouter) or
    /// `reasoning_content` (DeepSeek, older vLLM).
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    /// Tool calls, in fragments; a shape not read is none, not a broken stream.
    #[serde(default, deserialize_with = "super::reply::lenient")]
    tool_calls: Option<Vec<super::tools::DeltaToolCall<'a>>>,
}

/// What a stream has carried so far: timings as its tokens arrive, its texts, usage.
struct Received {
    rec: RequestRecord,
    start: Instant,
    /// When the last content chunk (of any kind) arrived.
    last: Option<Instant>,
    answer: String,
    reasoning: String,
    /// A choice ended (`finish_reason`): without `[DONE]` after it, still an answer.
    finished: bool,
    /// Tool calls, as their fragments come.
    tools: super::tools::Assembly,
    /// The shape of its chunks (their bytes around their text), once one is read whole.
    shape: super::scan::Shape,
}

impl Received {
    fn new(status: u16, start: Instant) -> Received {
        let rec = RequestRecord { status: Some(status), ..RequestRecord::default() };
        let (answer, reasoning) = (String::new(), String::new());
        Received { rec, start, last: None, answer, reasoning, finished: false, tools: Default::default(), shape: Default::default() }
    }

    fn token(&mut self, now: Instant, text: &str, reasoning: bool) {
        self.arrived(now);
        self.text(now, text, reasoning);
    }

    /// A text's arrival at `now` (its chunk counted by the caller, once).
    fn text(&mut self, now: Instant, text: &str, reasoning: bool) {
        if reasoning {
            self.rec.first_reasoning.get_or_insert(now - self.start);
            self.reasoning.push_str(text);
        } else {
            self.rec.ttft_answer.get_or_insert(now - self.start);
            self.answer.push_str(text);
        }
    }

    /// A chunk that carried a token of any kind, at `now`: the first token, a gap.
    fn arrived(&mut self, now: Instant) {
        match self.last {
            None => self.rec.ttft = Some(now - self.start),
            // Bounded: a hostile stream of tiny chunks cannot grow it past this.
            // Chunks of one read share its instant: no clock arithmetic for their gap.
            Some(prev) if self.rec.gaps_us.len() < MAX_GAPS => {
                let gap = if now == prev { 0 } else { (now - prev).as_micros().min(u32::MAX as u128) as u32 };
                self.rec.gaps_us.push(gap);
            }
            Some(_) => {}
        }
        self.last = Some(now);
        self.rec.chunks += 1;
    }

    /// A chunk's tool-call fragments: true when any carried a name or arguments (a
    /// call is an answer: it starts the answer's clock too).
    fn tool_fragments(&mut self, now: Instant, fragments: &[super::tools::DeltaToolCall<'_>]) -> bool {
        let mut said = false;
        for f in fragments {
            said |= self.tools.fragment(f);
        }
        if said {
            self.rec.first_tool.get_or_insert(now - self.start);
            self.rec.ttft_answer.get_or_insert(now - self.start);
        }
        said
    }

    /// A choice ended (the first reason given is the record's).
    fn ended(&mut self, why: FinishReason) {
        self.finished = true;
        self.rec.finish_reason.get_or_insert(why);
    }

    /// Takes what one typed event (Responses, Messages) said, at `now`.
    fn said(&mut self, now: Instant, said: super::typed::Said<'_>) {
        if let Some(why) = said.finish {
            self.ended(why);
        }
        if let Some((text, reasoning)) = said.text.filter(|(t, _)| !t.is_empty()) {
            self.token(now, &text, reasoning);
        }
        if let Some(u) = said.usage {
            super::typed::merge(&mut self.rec.usage, u);
        }
        if let Some(t) = said.timings {
            self.rec.server_timings = Some(t);
        }
    }

    /// Takes one chunk that arrived at `now`. Reasoning tokens are output too: the first
    /// of them is the first token.
    fn chunk(&mut self, now: Instant, chunk: Chunk<'_>) {
        let Choices { first, rest } = chunk.choices;
        for choice in first.into_iter().chain(rest) {
            if let Some(why) = choice.finish_reason {
                self.ended(why);
            }
            let (texts, tools) = match choice.delta {
                Some(d) => (delta_texts(d.content, d.reasoning_content, d.reasoning), d.tool_calls),
                None => ([(None, true), (choice.text, false)], None),
            };
            let mut any = self.texts(now, texts);
            // Tool calls of the first choice only: other choices' would mix into its.
            if let Some(tools) = tools.filter(|_| choice.index == 0) {
                any |= self.tool_fragments(now, &tools);
            }
            if any {
                self.arrived(now);
            }
        }
        if let Some(u) = chunk.usage {
            self.rec.usage = Some(u.into());
        }
        if let Some(t) = chunk.timings {
            self.rec.server_timings = Some(t);
        }
    }

    /// Takes one common chunk, as the scan read it (one choice, its texts only): the
    /// same as [`Received::chunk`] without building a [`Chunk`].
    fn scanned(&mut self, now: Instant, scanned: super::scan::Scanned<'_>) {
        let Some(choice) = scanned.choice else { return };
        if let Some(why) = choice.finish {
            self.ended(why);
        }
        let texts = match choice.delta {
            Some(d) => delta_texts(d.content, d.reasoning_content, d.reasoning),
            None => [(None, true), (choice.text, false)],
        };
        if self.texts(now, texts) {
            self.arrived(now);
        }
    }

    /// A choice's texts (reasoning or not) at `now`: true when any carried a token.
    /// A delta is one chunk, whatever kinds of token it carries.
    fn texts(&mut self, now: Instant, texts: [(Option<Cow<'_, str>>, bool); 2]) -> bool {
        let mut any = false;
        for (text, reasoning) in texts {
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                self.text(now, &text, reasoning);
                any = true;
            }
        }
        any
    }
}

/// A delta's texts, reasoning first. One reasoning text per delta: vLLM has sent both
/// names at once, the same text in each, while it moved from one to the other.
fn delta_texts<'a>(
    content: Option<Cow<'a, str>>,
    reasoning_content: Option<Cow<'a, str>>,
    reasoning: Option<Cow<'a, str>>,
) -> [(Option<Cow<'a, str>>, bool); 2] {
    [(reasoning.filter(|t| !t.is_empty()).or(reasoning_content), true), (content, false)]
}

/// One event's data, read into `got` as its API shapes it: Ok(true) at a typed stream's
/// last event; Err: the failure it is.
fn event(
    api: crate::model::Api,
    data: &str,
    now: Instant,
    got: &mut Received,
    eof: bool,
    status: u16,
) -> Result<bool, (FailureKind, String)> {
    // Cut mid-event by the end of the body: the stream broke, the server did not send a
    // malformed event.
    let malformed = |e: serde_json::Error| match eof {
        true => (FailureKind::StreamCut, format!("HTTP {status}: stream ended inside an event")),
        false => (FailureKind::Decode, format!("HTTP {status}: malformed chunk (line {} column {})", e.line(), e.column())),
    };
    if api.typed_events() {
        let said = match api {
            crate::model::Api::Messages => super::typed::messages(data),
            _ => super::typed::responses(data),
        }
        .map_err(malformed)?;
        if let Some(why) = &said.error {
            return Err((FailureKind::Decode, format!("HTTP {status}: {why}")));
        }
        let end = said.end;
        got.said(now, said);
        return Ok(end);
    }
    // The common chunk without serde (it agrees with serde where it reads one).
    if let Some(scanned) = super::scan::chunk_in(data, &mut got.shape) {
        got.scanned(now, scanned);
        return Ok(false);
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(malformed)?;
    if let Some(err) = chunk.error {
        let msg = stream_error_message(&err).unwrap_or_else(|| "error event in stream".to_string());
        return Err((FailureKind::Decode, format!("HTTP {status}: {msg}")));
    }
    got.chunk(now, chunk);
    Ok(false)
}

/// How a stream's events ended it: `[DONE]` (or a typed stream's last event), or the
/// failure one of them was.
type Ended = Result<(), (FailureKind, String)>;

/// Takes each event as the parser completes it, straight from the bytes read: no event
/// is copied or buffered. Events after the end are not read.
struct Taker<'r> {
    api: crate::model::Api,
    got: &'r mut Received,
    now: Instant,
    eof: bool,
    status: u16,
    end: Option<Ended>,
}

impl sse::EventSink for Taker<'_> {
    fn event(&mut self, data: &str) {
        if self.end.is_some() {
            return;
        }
        if data == "[DONE]" {
            self.end = Some(Ok(()));
            return;
        }
        match event(self.api, data, self.now, self.got, self.eof, self.status) {
            Ok(false) => {}
            Ok(true) => self.end = Some(Ok(())),
            Err(bad) => self.end = Some(Err(bad)),
        }
    }
}

/// A whole chat stream's body read as a request reads it, in one piece (events parsed,
/// chunks scanned, texts kept, gaps timed): for `benches/chunks.rs`, which measures the
/// part of a stream's cost that is llmload's own. The record's chunk count, or the failure.
#[doc(hidden)]
pub fn read_body(body: &[u8]) -> Result<u32, String> {
    let mut got = Received::new(200, Instant::now());
    let mut parser = sse::SseParser::new(MAX_EVENT_BYTES);
    let mut taker = Taker { api: crate::model::Api::Chat, got: &mut got, now: Instant::now(), eof: false, status: 200, end: None };
    parser.feed(body, &mut taker).map_err(|e| e.to_string())?;
    match taker.end {
        Some(Ok(())) => Ok(got.rec.chunks),
        Some(Err((_, why))) => Err(why),
        None => Err("no [DONE]".into()),
    }
}

impl Client {
    /// Reads an SSE stream of completion chunks to `[DONE]` (or a clean end after a
    /// `finish_reason`), timing the first token, the first answer token and the gaps
    /// between content chunks as they arrive.
    pub(super) async fn read_stream(&self, mut resp: super::Response<'_>, start: Instant, status: u16) -> RequestRecord {
        let mut parser = sse::SseParser::new(MAX_EVENT_BYTES);
        let mut got = Received::new(status, start);
        let mut done = false;
        let mut eof = false;
        let failure = loop {
            // Armed by the first token: the wait for it is the server's queue and prefill.
            let Some(read) = self.next_chunk(&mut resp, got.last.is_some()).await else {
                let idle = self.idle_timeout.unwrap_or_default();
                let detail = format!("HTTP {status}: stream stalled: no data for {idle:?} after {} content chunks", got.rec.chunks);
                break Some((FailureKind::IdleTimeout, detail));
            };
            let now = Instant::now();
            let mut taker = Taker { api: self.api, got: &mut got, now, eof: false, status, end: None };
            let parsed = match read {
                Ok(Some(bytes)) => {
                    taker.got.rec.bytes += bytes.len() as u64;
                    if taker.got.rec.bytes > MAX_BODY_BYTES as u64 {
                        break Some((FailureKind::BodyTooLarge, format!("HTTP {status}: stream larger than {MAX_BODY_BYTES} bytes")));
                    }
                    parser.feed(&bytes, &mut taker)
                }
                // The body ended: a last event without its blank line still counts.
                Ok(None) => {
                    eof = true;
                    taker.eof = true;
                    parser.finish(&mut taker)
                }
                Err(e) => {
                    let kind = if e.is_timeout() { FailureKind::Timeout } else { FailureKind::StreamCut };
                    break Some((kind, e.describe()));
                }
            };
            // An end the events said comes before what broke after it in the same read.
            match (taker.end, parsed) {
                (Some(Ok(())), _) => {
                    done = true;
                    break None;
                }
                (Some(Err(bad)), _) => break Some(bad),
                (None, Err(e)) => break Some((FailureKind::Decode, format!("HTTP {status}: malformed event stream ({e})"))),
                (None, Ok(())) if eof => break None,
                (None, Ok(())) => {}
            }
        };
        // The end of the response is [DONE] (or where it broke); what follows is framing.
        let Received { mut rec, answer, reasoning, finished, tools, .. } = got;
        rec.latency = start.elapsed();
        rec.tool_calls = tools.finish();
        if done && !eof {
            // Read the body to its end, briefly, so the connection goes back to the pool
            // instead of being closed: the next request must not pay a new handshake.
            let drain = async { while let Ok(Some(_)) = resp.chunk().await {} };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        }
        if self.keep_content && !self.tokenizer.is_server() {
            // A conversation's history (or a check) needs the count with the text: here.
            // Each text by itself: joined, a token could merge across the seam.
            let thought = self.count_tokens(&reasoning).await;
            let called = self.tool_tokens(rec.tool_calls.as_deref()).await;
            rec.client_completion_tokens = Some(self.count_tokens(&answer).await + thought + called);
            rec.client_reasoning_tokens = (!reasoning.is_empty()).then_some(thought);
            rec.counted_by = Some(self.tokenizer.source());
            rec.content = Some(answer);
        } else if self.keep_content {
            // The server's tokenizer is not called while a stage is measured: counted
            // after its window, by the aggregator.
            rec.content = Some(answer.clone());
            rec.uncounted = Some(Box::new(Uncounted { answer, reasoning, prompt: None }));
        } else {
            // Else counted off the request path, where it delays no other stream's chunk
            // timestamps (the aggregator's thread): see `count_uncounted`.
            rec.uncounted = Some(Box::new(Uncounted { answer, reasoning, prompt: None }));
        }
        match failure {
            Some((kind, detail)) => {
                rec.outcome = Outcome::Failed(kind);
                rec.detail = Some(truncate(&self.scrub(&detail), DETAIL_CHARS).into_boxed_str());
            }
            // A clean end after a finish_reason is a whole answer, as the official SDK
            // reads it; counted apart.
            None if !done && finished => rec.without_done = true,
            // The stream ended with neither: cut short, whatever it carried.
            None if !done => {
                rec.outcome = Outcome::Failed(FailureKind::StreamCut);
                rec.detail = Some(
                    format!("HTTP {status}: stream ended without [DONE] after {} content chunks, and no finish_reason", rec.chunks).into(),
                );
            }
            None => {}
        }
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_events_are_read_without_a_value_tree() {
        let chunk = |text: &str| serde_json::from_str::<Chunk>(text).unwrap().error;
        assert!(chunk(r#"{"choices":[],"error":null}"#).is_none(), "null is no error");
        let msg = |text: &str| stream_error_message(&chunk(text).unwrap());
        assert_eq!(msg(r#"{"error":{"message":"overloaded","code":503}}"#).as_deref(), Some("overloaded"));
        assert_eq!(msg(r#"{"error":"plain text"}"#).as_deref(), Some("plain text"));
        assert_eq!(msg(r#"{"error":[0,0,0]}"#), None);
    }

    /// A choice as read: index, content, reasoning_content, reasoning, text, why it
    /// ended, tool calls.
    type Read = (u32, Option<String>, Option<String>, Option<String>, Option<String>, Option<FinishReason>, bool);

    /// A chunk's choices as read, and whether it carried usage and an error.
    type Reading = (Vec<Read>, bool, bool);

    /// What a reading of a chunk amounts to, to hold the scan against serde.
    fn reading(c: Chunk<'_>) -> Reading {
        let Choices { first, rest } = c.choices;
        let out: Vec<_> = first
            .into_iter()
            .chain(rest)
            .map(|c| {
                let d = c.delta.as_ref();
                let s = |x: Option<&std::borrow::Cow<'_, str>>| x.map(|t| t.to_string());
                let (content, rc, r) = (
                    s(d.and_then(|d| d.content.as_ref())),
                    s(d.and_then(|d| d.reasoning_content.as_ref())),
                    s(d.and_then(|d| d.reasoning.as_ref())),
                );
                (c.index, content, rc, r, s(c.text.as_ref()), c.finish_reason, d.is_some_and(|d| d.tool_calls.is_some()))
            })
            .collect();
        (out, c.usage.is_some(), c.error.is_some())
    }

    use proptest::prelude::*;

    /// A JSON string's text: plain words, escapes, non-ASCII, control characters.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("a".to_string()),
                Just(" ".into()),
                Just("\n".into()),
                Just("é".into()),
                Just("😀".into()),
                Just("\\".into()),
                Just("\\u00e9".into()),
                Just("\"".into()),
                Just("\t".into()),
                Just("{}[]".into()),
                "[a-z]{1,5}"
            ],
            0..6,
        )
        .prop_map(|v| v.concat())
    }

    /// A value a chunk's field may hold, well formed or not.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            text().prop_map(|t| format!("\"{t}\"")),
            Just("0".into()),
            Just("7".into()),
            Just("-1".into()),
            Just("1.5e3".into()),
            Just("01".into()),
            Just("true".into()),
            Just("[1, {\"x\": [null]}]".into()),
            Just("{\"a\":{}}".into()),
            Just("\"\\ud800\"".into()),
            Just("\"stop\"".into()),
            Just("\"length\"".into()),
            Just("[]".into()),
            Just("{,}".into()),
        ]
    }

    fn fields(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec((prop::sample::select(keys), value()), 0..5)
            .prop_map(|kv| format!("{{{}}}", kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(", ")))
    }

    /// A chunk: top-level fields, and a choices array of objects with deltas.
    fn chunk_text() -> impl Strategy<Value = String> {
        let delta = fields(&["content", "reasoning", "reasoning_content", "role", "tool_calls", "refusal"]);
        let choice = (fields(&["index", "text", "finish_reason", "logprobs"]), prop::option::of(delta)).prop_map(|(f, d)| match d {
            Some(d) if f == "{}" => format!("{{\"delta\": {d}}}"),
            Some(d) => format!("{{\"delta\": {d}, {}", &f[1..]),
            None => f,
        });
        (
            fields(&["id", "object", "created", "model", "usage", "error", "system_fingerprint"]),
            prop::collection::vec(choice, 0..3),
            any::<bool>(),
        )
            .prop_map(|(top, choices, trailing)| {
                let choices = format!("\"choices\": [{}]", choices.join(","));
                let body = if top == "{}" { format!("{{{choices}}}") } else { format!("{{{choices}, {}", &top[1..]) };
                if trailing { format!(" {body}\n") } else { body }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        /// Wherever the scan reads a chunk, serde reads it too, and the same.
        #[test]
        fn the_scan_agrees_with_serde(text in chunk_text()) {
            if let Some(scanned) = super::super::scan::chunk(&text) {
                let serde: Result<Chunk, _> = serde_json::from_str(&text);
                prop_assert!(serde.is_ok(), "the scan read what serde refuses: {} ({:?})", text, serde.err());
                prop_assert_eq!(reading(scanned.into()), reading(serde.unwrap()), "{}", text);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        /// A chunk read by the shape of one before it reads as serde reads it: the shape
        /// learned from a chunk (generated, or a common one), the next made by putting
        /// any text (well formed or not) where its text was, or generated apart.
        #[test]
        fn a_chunk_read_by_its_shape_agrees_with_serde(
            first in prop_oneof![chunk_text(), text().prop_map(|t| { let q = serde_json::to_string(&t).unwrap(); common(&q[1..q.len() - 1]) })],
            second in text(),
            apart in chunk_text(),
            spliced in any::<bool>(),
        ) {
            let mut shape = super::super::scan::Shape::default();
            let _ = super::super::scan::chunk_in(&first, &mut shape);
            let next = match (shape.hole(), spliced) {
                (Some((from, to)), true) => format!("{}{second}{}", &first[..from], &first[to..]),
                _ => apart,
            };
            if let Some(scanned) = super::super::scan::chunk_in(&next, &mut shape) {
                let serde: Result<Chunk, _> = serde_json::from_str(&next);
                prop_assert!(serde.is_ok(), "read by its shape what serde refuses: {} ({:?})", next, serde.err());
                prop_assert_eq!(reading(scanned.into()), reading(serde.unwrap()), "{}", next);
            }
        }
    }

    /// A common chunk of an OpenAI-style stream with this (raw) content.
    fn common(content: &str) -> String {
        format!(
            r#"{{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1733000000,"model":"m","choices":[{{"index":0,"delta":{{"content":"{content}"}},"logprobs":null,"finish_reason":null}}]}}"#
        )
    }

    #[test]
    fn a_streams_chunks_are_read_by_their_shape() {
        let mut shape = super::super::scan::Shape::default();
        let texts = ["Hello", r#" wor\\ld\n"#, "", r#"\u00e9\\\""#, " end"];
        for (k, t) in texts.iter().enumerate() {
            let text = common(t);
            let read = super::super::scan::chunk_in(&text, &mut shape).unwrap_or_else(|| panic!("not read: {text}"));
            assert_eq!(reading(read.into()), reading(serde_json::from_str(&text).unwrap()), "{text}");
            assert!(shape.hole().is_some(), "chunk {k} leaves a shape");
        }
        // Not this shape: an unescaped quote ends the text before the shape's end.
        let broken = common(r#"a","x":"b"#);
        let read = super::super::scan::chunk_in(&broken, &mut shape).map(|c| reading(c.into()));
        assert_eq!(read, Some(reading(serde_json::from_str(&broken).unwrap())), "read whole instead");
    }

    #[test]
    fn the_common_chunks_are_scanned() {
        for text in [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733000000,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"fn main() {\n    println!(\"hi\");\n}"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"text":" more","index":0,"finish_reason":null}]}"#,
        ] {
            let scanned = super::super::scan::chunk(text).unwrap_or_else(|| panic!("not scanned: {text}"));
            assert_eq!(reading(scanned.into()), reading(serde_json::from_str(text).unwrap()));
        }
    }

    #[test]
    fn reasoning_by_either_name_is_taken_once() {
        fn chunk(text: &str) -> Chunk<'_> {
            serde_json::from_str(text).unwrap()
        }
        let t0 = Instant::now();
        let mut got = Received::new(200, t0);
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"reasoning_content":"hm","reasoning":"hm"}}]}"#));
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"reasoning_content":" so"}}]}"#));
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"reasoning":" then"}}]}"#));
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"content":"42"},"finish_reason":"stop"}]}"#));
        assert_eq!((got.reasoning.as_str(), got.answer.as_str(), got.rec.chunks), ("hm so then", "42", 4));
        assert!(got.finished && got.rec.first_reasoning.is_some() && got.rec.ttft_answer.is_some());
        // Several choices in one chunk: each is taken.
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"content":" a"}},{"delta":{"content":" b"}},{"delta":{"content":" c"}}]}"#));
        assert_eq!((got.answer.as_str(), got.rec.chunks), ("42 a b c", 7));
        // A completions stream: `text`, no delta.
        got.chunk(t0, chunk(r#"{"choices":[{"text":" more","index":0,"finish_reason":null}]}"#));
        assert_eq!(got.answer, "42 a b c more");
        // Text and a call's fragment in one delta are one chunk; a call in a shape not
        // read (an object) is none, and the stream goes on; a second choice's calls are
        // not mixed into the first's.
        let chunks = got.rec.chunks;
        got.chunk(
            t0,
            chunk(
                r#"{"choices":[{"delta":{"content":" x","tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            ),
        );
        got.chunk(t0, chunk(r#"{"choices":[{"delta":{"tool_calls":{"odd":1}}}]}"#));
        got.chunk(
            t0,
            chunk(r#"{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"c2","function":{"name":"g","arguments":"[]"}}]}}]}"#),
        );
        assert_eq!(got.rec.chunks, chunks + 1);
        let calls = std::mem::take(&mut got.tools).finish().unwrap();
        assert_eq!((calls.len(), calls[0].name.as_str(), calls[0].arguments.as_str()), (1, "f", "{}"));
    }
}
