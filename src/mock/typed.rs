//! The mock's replies in the Responses API's and Anthropic's shapes: the whole body,
//! and the typed events of a stream in their order — Responses: `response.created`,
//! `response.in_progress`, an output item and its content part, `response.output_text.delta`
//! (`response.reasoning_text.delta` for thought) per token, then the item's and part's
//! `done` and `response.completed` (or `response.incomplete` at the length limit) with
//! usage; Messages: `message_start` with the input's usage, `content_block_start`, a
//! `content_block_delta` per token (`thinking_delta`, then `text_delta` in a block of
//! its own), `content_block_stop`, `message_delta` with `stop_reason` and the output's
//! usage, `message_stop`. Shapes as tests/fixtures/apis holds them (OpenAI's SDK types,
//! Anthropic's SDK fixtures, llama-server's captures).

use axum::body::Bytes;
use serde_json::{Value, json};

use super::reply::{Piece, Reply};
use crate::model::Api;

/// The whole reply's body, in its API's shape.
pub(super) fn body(r: &Reply) -> Bytes {
    match r.api {
        Api::Responses => Bytes::from(responses_body(r).to_string()),
        Api::Messages => Bytes::from(messages_body(r).to_string()),
        Api::Embeddings | Api::Rerank => match &r.task {
            Some(task) => Bytes::from(super::vectors::body(task, &r.id, &r.model, r.prompt.tokens).to_string()),
            None => Bytes::new(),
        },
        _ => r.body(),
    }
}

/// A stream's piece in its API's shape: the opening (`None`, no finish), a token, or
/// the end (`finish`).
pub(super) fn chunk(r: &Reply, piece: Option<&Piece>, finish: Option<&str>) -> Bytes {
    match r.api.typed_events() {
        true => events(r, piece, finish),
        false => r.chunk(piece, finish),
    }
}

/// The usage chunk of a chat or completions stream; typed streams say their usage in
/// their last events.
pub(super) fn usage_chunk(r: &Reply) -> Bytes {
    match r.api.typed_events() {
        true => Bytes::new(),
        false => r.usage_chunk(),
    }
}

/// One SSE event, named as its data's type.
fn sse(v: &Value) -> String {
    format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("message"))
}

fn responses_usage(r: &Reply) -> Value {
    json!({
        "input_tokens": r.prompt.tokens, "input_tokens_details": {"cached_tokens": r.prompt.cached},
        "output_tokens": r.tokens, "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
        "total_tokens": r.prompt.tokens + r.tokens
    })
}

/// Anthropic's usage: the input apart from what the cache held.
fn messages_usage(r: &Reply, output: u64) -> Value {
    json!({
        "input_tokens": r.prompt.tokens - r.prompt.cached, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": r.prompt.cached, "output_tokens": output
    })
}

fn stop_reason(r: &Reply) -> &'static str {
    if r.finish == "length" { "max_tokens" } else { "end_turn" }
}

/// The Responses API's `response` object, `status` as given.
fn response(r: &Reply, status: &str, output: Vec<Value>, usage: Value) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": r.id, "object": "response", "created_at": r.created, "status": status, "model": r.model,
        "error": null, "incomplete_details": incomplete, "output": output, "usage": usage
    })
}

fn responses_output(r: &Reply) -> Vec<Value> {
    let mut out = Vec::new();
    if r.reasoning_tokens > 0 {
        out.push(json!({"id": format!("rs_{}", r.id), "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": r.text(true)}]}));
    }
    out.push(json!({
        "id": format!("msg_{}", r.id), "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": r.text(false), "annotations": []}]
    }));
    out
}

fn final_status(r: &Reply) -> &'static str {
    if r.finish == "length" { "incomplete" } else { "completed" }
}

fn responses_body(r: &Reply) -> Value {
    response(r, final_status(r), responses_output(r), responses_usage(r))
}

fn messages_body(r: &Reply) -> Value {
    let mut content = Vec::new();
    if r.reasoning_tokens > 0 {
        content.push(json!({"type": "thinking", "thinking": r.text(true), "signature": ""}));
    }
    content.push(json!({"type": "text", "text": r.text(false)}));
    json!({
        "id": r.id, "type": "message", "role": "assistant", "model": r.model, "content": content,
        "stop_reason": stop_reason(r), "stop_sequence": null, "usage": messages_usage(r, r.tokens)
    })
}

/// The first answer piece after thought, which opens a block (an item) of its own.
fn opens_answer(r: &Reply, piece: &Piece) -> bool {
    r.reasoning_tokens > 0 && r.pieces.iter().find(|p| !p.reasoning).is_some_and(|first| std::ptr::eq(first, piece))
}

/// A stream's events: its opening (`None`, no finish), a token, or its end (`finish`).
fn events(r: &Reply, piece: Option<&Piece>, finish: Option<&str>) -> Bytes {
    let out = match r.api {
        Api::Messages => messages_events(r, piece, finish.is_some()),
        _ => responses_events(r, piece, finish.is_some()),
    };
    Bytes::from(out.iter().map(sse).collect::<String>())
}

fn responses_events(r: &Reply, piece: Option<&Piece>, end: bool) -> Vec<Value> {
    let (msg, rs) = (format!("msg_{}", r.id), format!("rs_{}", r.id));
    // The answer's item follows the reasoning's, when there is one.
    let at = usize::from(r.reasoning_tokens > 0);
    let answer_item = |status: &str, text: &str| json!({"id": msg, "type": "message", "status": status, "role": "assistant", "content": if text.is_empty() { json!([]) } else { json!([{"type": "output_text", "text": text, "annotations": []}]) }});
    let open_answer = || {
        vec![
            json!({"type": "response.output_item.added", "output_index": at, "item": answer_item("in_progress", "")}),
            json!({"type": "response.content_part.added", "item_id": msg, "output_index": at, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ]
    };
    match (piece, end) {
        (None, false) => {
            let mut v = vec![
                json!({"type": "response.created", "response": response(r, "in_progress", Vec::new(), Value::Null)}),
                json!({"type": "response.in_progress", "response": response(r, "in_progress", Vec::new(), Value::Null)}),
            ];
            if r.reasoning_tokens > 0 {
                v.push(json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": rs, "type": "reasoning", "summary": []}}));
            } else {
                v.extend(open_answer());
            }
            v
        }
        (Some(p), _) if p.reasoning => {
            vec![json!({"type": "response.reasoning_text.delta", "item_id": rs, "output_index": 0, "content_index": 0, "delta": p.text})]
        }
        (Some(p), _) => {
            let mut v = if opens_answer(r, p) { open_answer() } else { Vec::new() };
            v.push(json!({"type": "response.output_text.delta", "item_id": msg, "output_index": at, "content_index": 0, "delta": p.text, "logprobs": []}));
            v
        }
        (None, true) => {
            let text = r.text(false);
            let status = final_status(r);
            vec![
                json!({"type": "response.output_text.done", "item_id": msg, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                json!({"type": "response.content_part.done", "item_id": msg, "output_index": at, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                json!({"type": "response.output_item.done", "output_index": at, "item": answer_item("completed", &text)}),
                json!({"type": format!("response.{status}"), "response": response(r, status, responses_output(r), responses_usage(r))}),
            ]
        }
    }
}

fn messages_events(r: &Reply, piece: Option<&Piece>, end: bool) -> Vec<Value> {
    let thought = r.reasoning_tokens > 0;
    let block = |index: usize, kind: &str| {
        let empty = if kind == "thinking" {
            json!({"type": "thinking", "thinking": "", "signature": ""})
        } else {
            json!({"type": "text", "text": ""})
        };
        json!({"type": "content_block_start", "index": index, "content_block": empty})
    };
    let answer_index = usize::from(thought);
    match (piece, end) {
        (None, false) => {
            let message = json!({
                "id": r.id, "type": "message", "role": "assistant", "content": [], "model": r.model,
                "stop_reason": null, "stop_sequence": null, "usage": messages_usage(r, 1)
            });
            vec![
                json!({"type": "message_start", "message": message}),
                block(0, if thought { "thinking" } else { "text" }),
                json!({"type": "ping"}),
            ]
        }
        (Some(p), _) if p.reasoning => {
            vec![json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": p.text}})]
        }
        (Some(p), _) => {
            let mut v = Vec::new();
            if opens_answer(r, p) {
                v.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": ""}}));
                v.push(json!({"type": "content_block_stop", "index": 0}));
                v.push(block(answer_index, "text"));
            }
            v.push(json!({"type": "content_block_delta", "index": answer_index, "delta": {"type": "text_delta", "text": p.text}}));
            v
        }
        (None, true) => vec![
            json!({"type": "content_block_stop", "index": answer_index}),
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(r), "stop_sequence": null}, "usage": {"output_tokens": r.tokens}}),
            json!({"type": "message_stop"}),
        ],
    }
}
