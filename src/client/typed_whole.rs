//! A whole (non-stream) reply of the Responses API or of Anthropic's Messages: its
//! answer and reasoning texts, usage and why it ended. Responses: `output[]` items — a
//! `message`'s `output_text` parts, a `reasoning` item's text (or its summary) — with
//! `status` / `incomplete_details`; Messages: `content[]` blocks (`text`, `thinking`)
//! with `stop_reason`. Shapes in tests/fixtures/apis.

use serde::Deserialize;
use serde_json::Value;

use super::content::Texts;
use super::typed::{MessagesUsage, ResponsesUsage, messages_finish, responses_finish};
use crate::model::{Api, FinishReason, Usage};

/// What a whole reply said.
pub(super) struct Whole {
    pub texts: Texts,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
}

#[derive(Deserialize)]
struct Response {
    output: Option<Vec<Value>>,
    status: Option<String>,
    incomplete_details: Option<Value>,
    #[serde(default, deserialize_with = "super::reply::lenient")]
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<Vec<Value>>,
    stop_reason: Option<String>,
    #[serde(default, deserialize_with = "super::reply::lenient")]
    usage: Option<MessagesUsage>,
}

/// The texts of `parts` whose `type` is one of `kinds`, from their `field`.
fn texts<'a>(parts: impl Iterator<Item = &'a Value>, kinds: &[&str], field: &str) -> String {
    parts.filter(|p| kinds.contains(&p["type"].as_str().unwrap_or_default())).filter_map(|p| p[field].as_str()).collect()
}

/// `body` as `api` shapes it. Err: one line saying what it is not.
pub(super) fn whole(api: Api, body: &[u8]) -> Result<Whole, String> {
    let what = |e: serde_json::Error| format!("not {} (JSON of the wrong shape at line {} column {})", api_name(api), e.line(), e.column());
    match api {
        Api::Messages => {
            let m: Message = serde_json::from_slice(body).map_err(what)?;
            let content = m.content.ok_or_else(|| format!("not {} (no `content`; came {})", api_name(api), came(body)))?;
            let texts =
                Texts { answer: texts(content.iter(), &["text"], "text"), reasoning: texts(content.iter(), &["thinking"], "thinking") };
            Ok(Whole { texts, usage: m.usage.map(Usage::from), finish: m.stop_reason.as_deref().map(messages_finish) })
        }
        _ => {
            let r: Response = serde_json::from_slice(body).map_err(what)?;
            let output = r.output.ok_or_else(|| format!("not {} (no `output`; came {})", api_name(api), came(body)))?;
            // The parts under `field` of the items of `kind`.
            let parts = |kind: &'static str, field: &'static str| {
                output.iter().filter(move |o| o["type"] == kind).flat_map(move |m| m[field].as_array().into_iter().flatten())
            };
            let answer = texts(parts("message", "content"), &["output_text"], "text");
            // A reasoning item's own text, else its summary.
            let mut reasoning = texts(parts("reasoning", "content"), &["reasoning_text"], "text");
            if reasoning.is_empty() {
                reasoning = texts(parts("reasoning", "summary"), &["summary_text"], "text");
            }
            let reason = r.incomplete_details.as_ref().and_then(|d| d["reason"].as_str());
            Ok(Whole {
                texts: Texts { answer, reasoning },
                usage: r.usage.map(Usage::from),
                finish: Some(responses_finish(r.status.as_deref(), reason)),
            })
        }
    }
}

/// What `body` is instead, by its keys.
fn came(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).map_or_else(|_| "something else".into(), |v| super::vectors::what_came(&v))
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::Messages => "an Anthropic message",
        _ => "a Responses API response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apis").join(name)).unwrap()
    }

    #[test]
    fn whole_replies_are_read_as_each_api_shapes_them() {
        let r = whole(Api::Responses, &fixture("llamacpp_responses_response.json")).unwrap();
        assert!(!r.texts.answer.is_empty() && r.usage.and_then(|u| u.completion_tokens).is_some(), "{:?}", r.texts);
        assert_eq!(r.finish, Some(FinishReason::Stop));
        let m = whole(Api::Messages, &fixture("llamacpp_messages_response.json")).unwrap();
        assert!(!m.texts.answer.is_empty() && m.finish.is_some(), "{:?}", m.texts);
        let u = m.usage.unwrap();
        assert!(u.prompt_tokens >= u.cached_tokens && u.completion_tokens.is_some(), "{u:?}");
        let a = whole(Api::Messages, &fixture("anthropic_messages_response.json")).unwrap();
        assert!(!a.texts.answer.is_empty() && a.usage.is_some(), "{:?}", a.texts);
        // A chat completion where a message was expected: said so.
        let chat = br#"{"choices":[{"message":{"content":"hi"}}]}"#;
        assert_eq!(
            whole(Api::Messages, chat).err().as_deref(),
            Some("not an Anthropic message (no `content`; came a chat or text completion)")
        );
        assert_eq!(
            whole(Api::Responses, chat).err().as_deref(),
            Some("not a Responses API response (no `output`; came a chat or text completion)")
        );
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}]}"#;
        assert_eq!(
            whole(Api::Responses, embeddings).err().as_deref(),
            Some("not a Responses API response (no `output`; came an embeddings list)")
        );
        let thought = br#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"hm"}]},{"type":"message","content":[{"type":"output_text","text":"4"},{"type":"output_text","text":"2"}]}]}"#;
        let t = whole(Api::Responses, thought).unwrap();
        assert_eq!((t.texts.answer.as_str(), t.texts.reasoning.as_str(), t.finish), ("42", "hm", Some(FinishReason::Length)));
    }
}
