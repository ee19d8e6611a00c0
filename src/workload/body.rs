//! Request bodies: a stage's bodies differ only in their prompt (`messages` for chat,
//! `prompt` for completions), so the bytes before and after it are serialized once per
//! stage and each body is one copy of three slices. `extra_body` is merged last: a field
//! it sets replaces llmload's own, so no key is ever sent twice.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::model::{Api, RequestParams};

/// What Anthropic's Messages asks for when a stage sets no limit (it requires one).
pub const MESSAGES_DEFAULT_MAX_TOKENS: u32 = 1024;

/// `{"model":…,"messages":` and `,"stream":…}`: a body is head + prompt + tail.
#[derive(Debug, Clone)]
pub(super) struct BodyParts {
    head: Vec<u8>,
    tail: Vec<u8>,
    /// `extra_body` sets the prompt field itself: it is sent instead of each prompt.
    fixed_prompt: Option<Box<RawValue>>,
    /// Per request, when prompts carry their own output length and `extra_body` sets
    /// no limit: the limit's field (`,"max_tokens":`) and the stage's own values, sent
    /// for a prompt without a length of its own.
    own: Option<OwnLength>,
    /// Anthropic's: the prompt is `{"system", "messages"}`, its fields spliced in.
    splice: bool,
}

#[derive(Debug, Clone)]
struct OwnLength {
    key: &'static [u8],
    stage_limit: Option<u32>,
    /// `min_tokens`, capped at each request's length (so a `min_tokens` at least as
    /// large as every length asks for exactly that length, and never exceeds the limit).
    min_tokens: Option<u32>,
}

impl BodyParts {
    /// With `stream`, `stream_usage` asks for a final usage chunk (some servers reject it).
    /// With `own_lengths`, each request's output length replaces the stage's limit.
    pub(super) fn new(model: &str, params: &RequestParams, api: Api, stream: bool, stream_usage: bool, own_lengths: bool) -> BodyParts {
        // Embeddings and rerank neither stream nor generate: their own fields only.
        let mut fields: Vec<(&str, Value)> = match api.generates() {
            true => vec![("stream", json!(stream))],
            false => vec![
                ("encoding_format", params.encoding_format.clone().map(Value::from)),
                ("dimensions", params.dimensions.map(Value::from)),
                ("top_n", params.top_n.map(Value::from)),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect(),
        };
        // Typed event streams always end with their usage.
        if stream && stream_usage && !api.typed_events() && api.generates() {
            fields.push(("stream_options", json!({"include_usage": true})));
        }
        // The Responses API has one limit, `max_output_tokens`, whichever was set.
        let (max_tokens, max_completion_tokens) = match api {
            Api::Responses => (params.max_tokens.or(params.max_completion_tokens), None),
            _ => (params.max_tokens, params.max_completion_tokens),
        };
        let optional = [
            (api.limit_field(), max_tokens.map(Value::from)),
            ("max_completion_tokens", max_completion_tokens.map(Value::from)),
            ("temperature", params.temperature.map(Value::from)),
            ("top_p", params.top_p.map(Value::from)),
            ("seed", params.seed.map(Value::from)),
            ("stop", params.stop.clone().map(Value::from)),
            ("ignore_eos", params.ignore_eos.map(Value::from)),
            ("min_tokens", params.min_tokens.map(Value::from)),
            ("tools", params.tools.clone()),
            ("tool_choice", params.tool_choice.clone()),
            ("parallel_tool_calls", params.parallel_tool_calls.map(Value::from)),
            ("response_format", params.response_format.clone()),
        ];
        fields.extend(optional.into_iter().filter(|_| api.generates()).filter_map(|(k, v)| Some((k, v?))));
        let extra_sets_length = params.extra_body.as_ref().is_some_and(|e| {
            e.contains_key("max_tokens") || e.contains_key("max_completion_tokens") || e.contains_key("max_output_tokens")
        });
        let extra_sets_min = params.extra_body.as_ref().is_some_and(|e| e.contains_key("min_tokens"));
        let own = (own_lengths && !extra_sets_length && api.generates()).then(|| {
            let key: &'static [u8] = match api {
                Api::Responses => b",\"max_output_tokens\":",
                _ if params.max_completion_tokens.is_some() => b",\"max_completion_tokens\":",
                _ => b",\"max_tokens\":",
            };
            let min_tokens = params.min_tokens.filter(|_| !extra_sets_min);
            fields.retain(|(k, _)| {
                !matches!(*k, "max_tokens" | "max_completion_tokens" | "max_output_tokens") && (*k != "min_tokens" || min_tokens.is_none())
            });
            OwnLength { key, stage_limit: params.max_tokens.or(params.max_completion_tokens), min_tokens }
        });
        // Anthropic requires a limit: its documented default when none is set.
        if api == Api::Messages && own.is_none() && !extra_sets_length && max_tokens.is_none() {
            fields.push(("max_tokens", json!(MESSAGES_DEFAULT_MAX_TOKENS)));
        }
        let prompt_key = api.prompt_field();
        // Anthropic's `{"system", "messages"}` and a rerank's `{"query", "documents"}`.
        let splice = matches!(api, Api::Messages | Api::Rerank);
        let mut model = json!(model);
        let mut fixed_prompt = None;
        let mut extra: Vec<(&str, &Value)> = Vec::new();
        for (k, v) in params.extra_body.iter().flatten() {
            match k.as_str() {
                "model" => model = v.clone(),
                // Spliced for Anthropic's and rerank's: `{"messages": …}`.
                k if k == prompt_key && splice => fixed_prompt = RawValue::from_string(json!({ k: v }).to_string()).ok(),
                k if k == prompt_key => fixed_prompt = RawValue::from_string(v.to_string()).ok(),
                k => {
                    fields.retain(|(own, _)| *own != k);
                    extra.push((k, v));
                }
            }
        }
        let mut tail = Vec::new();
        for (k, v) in fields.iter().map(|(k, v)| (*k, v)).chain(extra) {
            tail.push(b',');
            tail.extend_from_slice(&serde_json::to_vec(k).expect("a key serializes"));
            tail.push(b':');
            tail.extend_from_slice(&serde_json::to_vec(v).expect("a JSON value serializes"));
        }
        tail.push(b'}');
        let head = match splice {
            true => format!("{{\"model\":{model},").into_bytes(),
            false => format!("{{\"model\":{model},\"{prompt_key}\":").into_bytes(),
        };
        BodyParts { head, tail, fixed_prompt, own, splice }
    }

    /// Whether a request's own output length is what is sent as its limit.
    pub(super) fn sends_own_length(&self) -> bool {
        self.own.is_some()
    }

    /// The body of a request whose prompt (messages array or text) is `prompt`, asking
    /// for `output` tokens when it has a length of its own.
    pub(super) fn body(&self, prompt: &RawValue, output: Option<u32>) -> Bytes {
        self.body_of(prompt.get(), output, None)
    }

    /// [`body`](Self::body) of a prompt's JSON text (valid JSON: a prompt with its
    /// images, which would cost a parse to wrap).
    /// `extra`: body fields of the prompt's own (`,"tools":…`), sent after it.
    pub(super) fn body_of(&self, prompt: &str, output: Option<u32>, extra: Option<&str>) -> Bytes {
        let m = self.fixed_prompt.as_deref().map_or(prompt, RawValue::get).as_bytes();
        let mut out = Vec::with_capacity(self.head.len() + m.len() + self.tail.len() + 32);
        out.extend_from_slice(&self.head);
        // `{"system":…,"messages":[…]}`'s fields (a rerank's `query` and `documents`),
        // after the model's.
        let m = match self.splice {
            true => m.strip_prefix(b"{").and_then(|m| m.strip_suffix(b"}")).unwrap_or(m),
            false => m,
        };
        out.extend_from_slice(m);
        if let Some(extra) = extra {
            out.extend_from_slice(extra.as_bytes());
        }
        if let Some(own) = &self.own {
            let field = |out: &mut Vec<u8>, key: &[u8], n: u32| {
                out.extend_from_slice(key);
                out.extend_from_slice(n.to_string().as_bytes());
            };
            if let Some(limit) = output.or(own.stage_limit) {
                field(&mut out, own.key, limit);
            }
            if let Some(min) = own.min_tokens {
                field(&mut out, b",\"min_tokens\":", output.map_or(min, |n| min.min(n)));
            }
        }
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// The request serialized whole, as bodies were before they were built from parts.
    #[derive(Serialize)]
    struct ChatBody<'a> {
        model: &'a str,
        messages: &'a RawValue,
        stream: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
    }

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn parts_make_the_same_bytes_as_one_serialization() {
        let messages = RawValue::from_string(r#"[{"role":"user","content":"hi \"there\""}]"#.to_string()).unwrap();
        for (stream, usage) in [(false, false), (false, true), (true, false), (true, true)] {
            for (max_tokens, temperature) in [(None, None), (Some(64), None), (None, Some(0.5)), (Some(1), Some(2.0))] {
                let params = RequestParams { max_tokens, temperature, ..RequestParams::default() };
                let model = "gpt-4.1 \"quoted\" ☕";
                let parts = BodyParts::new(model, &params, Api::Chat, stream, usage, false);
                let stream_options = (stream && usage).then(|| json!({"include_usage": true}));
                let whole = serde_json::to_vec(&ChatBody { model, messages: &messages, stream, stream_options, max_tokens, temperature });
                assert_eq!(text(parts.body(&messages, None)), String::from_utf8(whole.unwrap()).unwrap());
            }
        }
    }

    #[test]
    fn every_field_goes_out_once_and_extra_body_wins() {
        let params = RequestParams {
            max_completion_tokens: Some(32),
            top_p: Some(0.9),
            seed: Some(-3),
            stop: Some(vec!["END".into(), "\n\n".into()]),
            ignore_eos: Some(true),
            min_tokens: Some(8),
            extra_body: Some(
                json!({"top_p": 0.5, "model": "other", "chat_template_kwargs": {"enable_thinking": false}}).as_object().unwrap().clone(),
            ),
            ..RequestParams::default()
        };
        let prompt = RawValue::from_string("\"Once upon\"".into()).unwrap();
        let body = text(BodyParts::new("m", &params, Api::Completions, true, true, false).body(&prompt, None));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["model"], "other", "extra_body's model wins");
        assert_eq!((v["prompt"].as_str(), v["stream"].as_bool()), (Some("Once upon"), Some(true)));
        assert_eq!((v["max_completion_tokens"].as_u64(), v["top_p"].as_f64(), v["seed"].as_i64()), (Some(32), Some(0.5), Some(-3)));
        assert_eq!(v["stop"], json!(["END", "\n\n"]));
        assert_eq!((v["ignore_eos"].as_bool(), v["min_tokens"].as_u64()), (Some(true), Some(8)));
        assert_eq!(v["chat_template_kwargs"]["enable_thinking"], false);
        assert!(v.get("max_tokens").is_none() && v.get("messages").is_none());
        for key in ["\"model\"", "\"top_p\"", "\"prompt\""] {
            assert_eq!(body.matches(key).count(), 1, "{key} once in {body}");
        }
        // extra_body's prompt replaces every prompt.
        let fixed =
            RequestParams { extra_body: Some(json!({"prompt": "always"}).as_object().unwrap().clone()), ..RequestParams::default() };
        let v: Value =
            serde_json::from_slice(&BodyParts::new("m", &fixed, Api::Completions, false, true, false).body(&prompt, None)).unwrap();
        assert_eq!(v["prompt"], "always");
    }

    #[test]
    fn a_requests_own_length_replaces_the_stages() {
        let prompt = RawValue::from_string("\"hi\"".into()).unwrap();
        let body = |params: &RequestParams, out| {
            let b = BodyParts::new("m", params, Api::Completions, false, false, true).body(&prompt, out);
            serde_json::from_slice::<Value>(&b).unwrap()
        };
        let v = body(&RequestParams { max_tokens: Some(64), ..RequestParams::default() }, Some(300));
        assert_eq!((v["max_tokens"].as_u64(), v.get("max_completion_tokens")), (Some(300), None));
        let v = body(&RequestParams { max_completion_tokens: Some(64), ignore_eos: Some(true), ..RequestParams::default() }, Some(7));
        assert_eq!((v["max_completion_tokens"].as_u64(), v.get("max_tokens"), v["ignore_eos"].as_bool()), (Some(7), None, Some(true)));
        // A prompt without a length keeps the stage's limit; min_tokens is capped at each length.
        let both = RequestParams { max_tokens: Some(64), min_tokens: Some(100_000), ..RequestParams::default() };
        let v = body(&both, None);
        assert_eq!((v["max_tokens"].as_u64(), v["min_tokens"].as_u64()), (Some(64), Some(100_000)));
        let v = body(&both, Some(300));
        assert_eq!((v["max_tokens"].as_u64(), v["min_tokens"].as_u64()), (Some(300), Some(300)));
        let text = String::from_utf8(BodyParts::new("m", &both, Api::Chat, false, false, true).body(&prompt, Some(9)).to_vec()).unwrap();
        assert_eq!((text.matches("min_tokens").count(), text.matches("max_tokens").count()), (1, 1), "{text}");
        // extra_body's limit is what is sent.
        let extra = RequestParams { extra_body: Some(json!({"max_tokens": 5}).as_object().unwrap().clone()), ..RequestParams::default() };
        assert_eq!(body(&extra, Some(300))["max_tokens"], 5);
        assert!(!BodyParts::new("m", &extra, Api::Chat, false, false, true).sends_own_length());
    }
}
