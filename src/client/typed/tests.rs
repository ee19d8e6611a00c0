//! Each committed stream (tests/fixtures/apis: llama-server's captured, the Anthropic
//! SDK's own fixtures, and the Responses API's events as its SDK types them) read event
//! by event, as the client reads it: texts, usage, why it ended, that it ended, errors.

use super::*;
use crate::client::sse::SseParser;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apis").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A stream's events, through the SSE parser.
fn events(text: &str) -> Vec<String> {
    let mut parser = SseParser::new(1 << 20);
    let mut events = Vec::new();
    parser.feed(text.as_bytes(), &mut events).unwrap();
    parser.finish(&mut events).unwrap();
    events
}

/// What a whole stream said: answer, reasoning, usage, finish, ended, error.
#[derive(Debug, Default)]
struct Read {
    answer: String,
    reasoning: String,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    end: bool,
    error: Option<String>,
    timings: bool,
}

fn read(text: &str, each: for<'a> fn(&'a str) -> Result<Said<'a>, serde_json::Error>) -> Read {
    let mut r = Read::default();
    for data in events(text) {
        let said = each(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
        if let Some((t, reasoning)) = said.text {
            if reasoning { &mut r.reasoning } else { &mut r.answer }.push_str(&t);
        }
        if let Some(u) = said.usage {
            merge(&mut r.usage, u);
        }
        r.finish = said.finish.or(r.finish);
        r.end |= said.end;
        r.error = said.error.or(r.error);
        r.timings |= said.timings.is_some();
    }
    r
}

fn usage(prompt: u64, completion: u64, cached: Option<u64>, reasoning: Option<u64>) -> Option<Usage> {
    Some(Usage { prompt_tokens: Some(prompt), completion_tokens: Some(completion), reasoning_tokens: reasoning, cached_tokens: cached })
}

#[test]
fn llama_servers_responses_stream_is_read_whole() {
    let r = read(&fixture("llamacpp_responses_stream.sse"), responses);
    assert_eq!(r.answer, "Say hi<|");
    assert!(r.end && r.error.is_none() && r.timings, "{r:?}");
    // llama.cpp says "completed" even at the length limit.
    assert_eq!(r.finish, Some(FinishReason::Stop));
    let u = r.usage.unwrap();
    assert_eq!((u.completion_tokens, u.prompt_tokens.is_some()), (Some(4), true), "{u:?}");
}

#[test]
fn the_responses_apis_own_events_end_and_fail_as_it_types_them() {
    let r = read(&fixture("openai_responses_stream_reference.sse"), responses);
    assert!(!r.answer.is_empty() && r.end && r.finish == Some(FinishReason::Stop), "{r:?}");
    assert!(r.usage.and_then(|u| u.completion_tokens).is_some(), "{r:?}");
    // The alternatives, one event each.
    fn said(data: &str) -> Said<'_> {
        responses(data).unwrap()
    }
    let thinking = said(
        r#"{"type":"response.reasoning_summary_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking about"}"#,
    );
    assert_eq!(thinking.text, Some((Cow::Borrowed("Thinking about"), true)));
    let cut = said(
        r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":16,"output_tokens_details":{"reasoning_tokens":10}}}}"#,
    );
    assert_eq!((cut.finish, cut.end, cut.usage), (Some(FinishReason::Length), true, usage(12, 16, Some(4), Some(10))));
    let failed = said(
        r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model failed to generate a response."}}}"#,
    );
    assert_eq!(failed.error.as_deref(), Some("server_error: The model failed to generate a response."));
    let error = said(r#"{"type":"error","sequence_number":9,"code":"rate_limit_exceeded","message":"Rate limit reached","param":null}"#);
    assert_eq!(error.error.as_deref(), Some("Rate limit reached"));
    // llama.cpp's mid-stream error: no type, an `error` object.
    let llama = said(r#"{"error":{"code":500,"message":"slot died","type":"server_error"}}"#);
    assert_eq!(llama.error.as_deref(), Some("server_error: slot died"));
    // Every event of the terminal variants' file reads.
    for data in events(&fixture("openai_responses_stream_terminal_variants.sse")) {
        responses(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
    }
}

#[test]
fn llama_servers_messages_stream_is_read_whole() {
    let r = read(&fixture("llamacpp_messages_stream.sse"), messages);
    assert_eq!(r.answer, "Say hi<|");
    assert!(r.end && r.error.is_none(), "{r:?}");
    assert_eq!(r.finish, Some(FinishReason::Length), "max_tokens");
    // Its input excludes what the cache held (38 of 43): the prompt is both.
    assert_eq!(r.usage, usage(43, 4, Some(38), None));
}

#[test]
fn anthropics_streams_read_as_its_sdk_reads_them() {
    let text = read(&fixture("anthropic_messages_stream_text.sse"), messages);
    assert!(
        !text.answer.is_empty() && text.end && text.finish.is_some() && text.usage.and_then(|u| u.completion_tokens).is_some(),
        "{text:?}"
    );
    let thinking = read(&fixture("anthropic_messages_stream_thinking.sse"), messages);
    assert!(thinking.reasoning.starts_with("Simple educ") && !thinking.answer.is_empty(), "{thinking:?}");
    let tools = read(&fixture("anthropic_messages_stream_tool_use.sse"), messages);
    assert_eq!(tools.finish, Some(FinishReason::ToolCalls), "{tools:?}");
    let error = read(&fixture("anthropic_messages_stream_error.sse"), messages);
    assert_eq!(error.error.as_deref(), Some("overloaded_error: Overloaded"));
    // llama.cpp's `event: error`: its own body.
    let llama = messages(r#"{"code":500,"message":"slot died","type":"server_error"}"#).unwrap();
    assert_eq!(llama.error.as_deref(), Some("server_error: slot died"));
    // A chat chunk where typed events were expected: said so, for either API.
    let chat = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}]}"#;
    for said in [messages(chat).unwrap(), responses(chat).unwrap()] {
        assert!(said.error.unwrap().starts_with("an event without a `type`, not "), "named");
    }
    // A ping, a block's start and stop say nothing.
    for quiet in [r#"{"type": "ping"}"#, r#"{"type":"content_block_stop","index":0}"#] {
        assert_eq!(messages(quiet).unwrap(), Said::default());
    }
}
