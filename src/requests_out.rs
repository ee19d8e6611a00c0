//! `--requests-out PATH.jsonl`: one JSON line per finished request, written as it ends
//! from the aggregator's thread (memory stays flat), flushed every 2 s, at every stage
//! end and at the run's end (Ctrl-C included). Prompt and reply text only with
//! `--requests-out-text`: they may hold user data.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::metrics::{Attempts, Part, RecordSink, StageInfo, output_source, output_tokens};
use crate::model::TokenSource;
use crate::model::{Outcome, RequestRecord};

/// How often buffered lines reach the file, at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub struct RequestsOut {
    out: BufWriter<File>,
    /// One instant and its wall-clock time: request times are stamped as instants.
    anchor: (Instant, SystemTime),
    next_index: u64,
    /// Indices are dealt to shards round-robin, so the shards' files pool without clashes.
    shard: crate::model::Shard,
    flushed: Instant,
    text: bool,
}

/// One line.
#[derive(Serialize)]
struct Line<'a> {
    stage: &'a str,
    /// Unique in the run (across its shards too), in the order requests ended.
    index: u64,
    phase: &'static str,
    attempts: u64,
    scheduled_at: Option<String>,
    sent_at: Option<String>,
    e2e_ms: f64,
    ttft_ms: Option<f64>,
    itl_ms: Option<f64>,
    input_tokens: Option<u64>,
    output_tokens: u64,
    /// Where each count came from (the server's usage, its tokenizer, the model's here,
    /// an estimate, a stream's chunks): a line written while its stage is measured
    /// counts by chunks what the server's tokenizer counts after the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_source: Option<TokenSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_source: Option<TokenSource>,
    status: Option<u16>,
    outcome: &'static str,
    /// With `[conversation]`: the request's turn in its session (0 = the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    turn: Option<u32>,
    /// With `[conversation]`: the request's session, numbered in the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<u64>,
    /// A task stage's: the request's task (numbered in the whole run), its step (from
    /// 0) and its member of the step's fan-out (from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<u32>,
    /// Embeddings: the batch's inputs; rerank: the documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<u32>,
    /// The images it carried: how many, their pixels and encoded bytes together.
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_pixels: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_bytes: Option<u64>,
    /// Why the server ended the reply, when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<crate::model::FinishReason>,
    /// Sent again on a new connection after its kept one ended unanswered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reconnected: bool,
    /// The server's own timing, when it sent one (llama.cpp's `timings`), with the
    /// per-token time it implies, comparable to `itl_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_timings: Option<ServerTimingsLine>,
    /// With text: the body's `messages` (chat) or `prompt` (completions), and the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    /// With text: the calls the reply made, each `{id, name, arguments}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize)]
struct ServerTimingsLine {
    #[serde(flatten)]
    timings: crate::model::ServerTimings,
    per_token_ms: Option<f64>,
}

/// What a request body asked: its `messages`, `prompt`, `input` or rerank `query`.
fn prompt_of(body: &[u8]) -> Option<serde_json::Value> {
    let serde_json::Value::Object(mut v) = serde_json::from_slice(body).ok()? else { return None };
    // Chat's and Messages', completions', the Responses API's and embeddings', rerank's.
    ["messages", "prompt", "input", "query"].into_iter().find_map(|k| v.remove(k))
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

impl RequestsOut {
    pub fn create(path: &Path, text: bool, shard: crate::model::Shard) -> std::io::Result<RequestsOut> {
        let out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        Ok(RequestsOut { out, anchor: (Instant::now(), SystemTime::now()), next_index: 0, flushed: Instant::now(), text, shard })
    }

    fn wall(&self, at: Instant) -> String {
        let (i0, t0) = self.anchor;
        let t = if at >= i0 { t0 + (at - i0) } else { t0 - (i0 - at) };
        humantime::format_rfc3339_micros(t).to_string()
    }
}

impl RecordSink for RequestsOut {
    fn record(&mut self, stage: &StageInfo, part: Part, rec: &RequestRecord, att: &Attempts) {
        let phase = match part {
            Part::Warmup if att.ramp => "ramp",
            Part::Warmup => "warmup",
            Part::Window => "window",
            Part::Cooldown => "cooldown",
        };
        let out = output_tokens(rec);
        let itl = match (rec.ttft, out) {
            (Some(ttft), n) if n > 1 && rec.outcome == Outcome::Ok => Some(ms(rec.latency.saturating_sub(ttft)) / (n - 1) as f64),
            _ => None,
        };
        let line = Line {
            stage: &stage.name,
            index: self.shard.dealt(self.next_index),
            phase,
            attempts: att.earlier.len() as u64 + u64::from(att.first_send.is_some()),
            scheduled_at: att.first_send.map(|s| self.wall(s.checked_sub(att.lag.unwrap_or_default()).unwrap_or(s))),
            sent_at: att.first_send.map(|s| self.wall(s)),
            e2e_ms: ms(rec.latency),
            ttft_ms: rec.ttft.map(ms),
            itl_ms: itl,
            // As the stage takes it: the count here where the workload knew it, else
            // the server's usage (a template prompt's count is not known when sent).
            input_tokens: rec.input_tokens.or(rec.usage.and_then(|u| u.prompt_tokens)),
            output_tokens: out,
            input_source: match rec.input_tokens {
                Some(_) => rec.input_by,
                None => rec.usage.and_then(|u| u.prompt_tokens).map(|_| TokenSource::Usage),
            },
            output_source: output_source(rec).filter(|_| rec.outcome == Outcome::Ok),
            status: rec.status,
            outcome: match rec.outcome {
                Outcome::Ok => "ok",
                Outcome::Cancelled => "cancelled",
                Outcome::Failed(kind) => kind.as_str(),
            },
            turn: rec.turn,
            session: rec.session,
            task: rec.task.map(|t| t.task),
            step: rec.task.map(|t| t.step),
            member: rec.task.map(|t| t.member),
            items: rec.items,
            images: rec.media.filter(|m| m.images > 0).map(|m| m.images),
            image_pixels: rec.media.filter(|m| m.images > 0).map(|m| m.pixels),
            image_bytes: rec.media.filter(|m| m.images > 0).map(|m| m.bytes),
            reconnected: rec.reconnected,
            finish_reason: rec.finish_reason,
            server_timings: rec.server_timings.map(|timings| ServerTimingsLine { timings, per_token_ms: timings.per_token_ms() }),
            prompt: rec.sent_body.as_ref().filter(|_| self.text).and_then(|b| prompt_of(b)),
            reply: rec.content.as_deref().filter(|_| self.text),
            tool_calls: rec
                .tool_calls
                .as_ref()
                .filter(|_| self.text)
                .map(|calls| calls.iter().map(|c| serde_json::json!({"id": c.id, "name": c.name, "arguments": c.arguments})).collect()),
        };
        self.next_index += 1;
        // A full disk costs the export, never the run: its figures are kept apart.
        if serde_json::to_writer(&mut self.out, &line).is_ok() {
            let _ = self.out.write_all(b"\n");
        }
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
        self.flushed = Instant::now();
    }
}
