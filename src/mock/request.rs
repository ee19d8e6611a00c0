//! What a request asks the mock for: parsed and checked (400s name the parameter), its
//! prompt's token ids, and how long its completion is — the mock's own length unless
//! `ignore_eos` or `min_tokens` say otherwise, within the request's limit.

use serde::Deserialize;
use serde_json::{Value, json};

use super::config::MAX_OUTPUT_TOKENS;
use crate::model::Api;
use crate::workload::tokens::Tokenizer;

/// What a valid request asks for.
pub(super) struct Asked {
    pub model: String,
    /// The messages (chat) or the text (completions): content only is tokenized.
    pub prompt: Value,
    pub stream: bool,
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub limit: Option<u64>,
    /// vLLM's: write exactly `limit` tokens (the mock's own length with no limit).
    pub ignore_eos: bool,
    /// vLLM's: no end before this many tokens.
    pub min_tokens: Option<u64>,
    /// Embeddings and rerank: what to answer (they generate nothing).
    pub task: Option<super::vectors::Task>,
    /// Chat: the tool it may (or must) call.
    pub tool: Option<super::tools::ToolAsk>,
    /// Chat: `response_format`'s JSON Schema, which a JSON answer then fits.
    pub schema: Option<Value>,
    /// The tokens its images cost (the tile rule), beside its text's; and its images
    /// on 127.0.0.1, to fetch and charge.
    pub image_tokens: u64,
    pub image_urls: Vec<super::images::Fetch>,
}

pub(super) use super::vectors::Invalid;

impl Asked {
    /// The request, or what makes it invalid: the parameter at fault and why.
    pub fn parse(api: Api, body: &[u8]) -> Result<Asked, Invalid> {
        let req: Body =
            serde_json::from_slice(body).map_err(|e| (None, format!("We could not parse the JSON body of your request: {e}")))?;
        let Some(model) = req.model.as_ref().and_then(Value::as_str).filter(|m| !m.is_empty()) else {
            return Err((Some("model"), "you must provide a model parameter".into()));
        };
        if !api.generates() {
            let (prompt, task) = super::vectors::parse(api, body)?;
            let (stream, include_usage, limit, ignore_eos, min_tokens) = (false, false, None, false, None);
            let (task, tool, schema) = (Some(task), None, None);
            return Ok(Asked {
                model: model.to_string(),
                prompt,
                stream,
                include_usage,
                limit,
                ignore_eos,
                min_tokens,
                task,
                tool,
                schema,
                image_tokens: 0,
                image_urls: Vec::new(),
            });
        }
        let prompt = match api {
            Api::Chat => {
                let Some(Value::Array(messages)) = req.messages.filter(|m| m.as_array().is_some_and(|m| !m.is_empty())) else {
                    return Err((Some("messages"), "messages must be a non-empty array".into()));
                };
                if messages.iter().any(|m| m.get("role").and_then(Value::as_str).is_none()) {
                    return Err((Some("messages"), "every message needs a `role`".into()));
                }
                Value::Array(messages)
            }
            // A text, or a list of one (the mock answers one prompt per request).
            Api::Completions => match req.prompt {
                Some(Value::String(text)) => Value::String(text),
                Some(Value::Array(mut one)) if one.len() == 1 && one[0].is_string() => one.remove(0),
                _ => return Err((Some("prompt"), "prompt must be a string".into())),
            },
            // `instructions` first, as a system message, then `input`: a text or items.
            Api::Responses => {
                let mut items: Vec<Value> = req.instructions.iter().map(|i| json!({"role": "system", "content": i})).collect();
                match req.input {
                    Some(Value::String(text)) => items.push(json!({"role": "user", "content": text})),
                    Some(Value::Array(list)) if !list.is_empty() => items.extend(list),
                    _ => return Err((Some("input"), "input must be a string or a non-empty array".into())),
                }
                Value::Array(items)
            }
            // `system` apart (a text or text blocks), then the messages, which it needs.
            // Answered by `vectors` above.
            Api::Embeddings | Api::Rerank => Value::Null,
            Api::Messages => {
                if req.max_tokens.is_none() {
                    return Err((Some("max_tokens"), "max_tokens: Field required".into()));
                }
                let Some(Value::Array(messages)) = req.messages.filter(|m| m.as_array().is_some_and(|m| !m.is_empty())) else {
                    return Err((Some("messages"), "messages: Field required (a non-empty array)".into()));
                };
                let mut all: Vec<Value> = req.system.into_iter().map(|s| json!({"role": "system", "content": s})).collect();
                all.extend(messages);
                Value::Array(all)
            }
        };
        let (image_tokens, image_urls) = super::images::image_tokens(&prompt).map_err(|e| (Some(api.prompt_field()), e))?;
        let (limit_name, limit) = match (req.max_completion_tokens, req.max_output_tokens, req.max_tokens) {
            (Some(n), ..) => ("max_completion_tokens", Some(n)),
            (None, Some(n), _) => ("max_output_tokens", Some(n)),
            (None, None, n) => ("max_tokens", n),
        };
        let ignore_eos = req.ignore_eos == Some(true);
        if let (Some(min), Some(max)) = (req.min_tokens, limit)
            && min > max
        {
            return Err((Some("min_tokens"), format!("min_tokens must be less than or equal to {limit_name}={max}, got {min}.")));
        }
        // Lengths a request sets itself are bounded as the knobs are: memory is finite.
        let most = u64::from(MAX_OUTPUT_TOKENS);
        if let Some(min) = req.min_tokens.filter(|&m| m > most) {
            return Err((Some("min_tokens"), format!("min_tokens must be at most {most} (the mock's longest reply), got {min}")));
        }
        if let Some(max) = limit.filter(|&m| ignore_eos && m > most) {
            return Err((
                Some(limit_name),
                format!("with ignore_eos, {limit_name} must be at most {most} (the mock's longest reply), got {max}"),
            ));
        }
        Ok(Asked {
            model: model.to_string(),
            prompt,
            stream: req.stream == Some(true),
            // Typed streams always end with their usage.
            include_usage: api.typed_events() || req.stream_options.is_some_and(|o| o.include_usage),
            limit,
            ignore_eos,
            min_tokens: req.min_tokens,
            task: None,
            tool: (api == Api::Chat).then(|| super::tools::asked(req.tools.as_ref(), req.tool_choice.as_ref())).flatten(),
            schema: req
                .response_format
                .filter(|f| f["type"] == "json_schema")
                .and_then(|mut f| f["json_schema"].get_mut("schema").map(Value::take)),
            image_tokens,
            image_urls,
        })
    }

    /// The prompt's token ids: each message's text in order (system first, so a shared
    /// system prompt is a shared prefix), or the completion prompt's.
    pub fn prompt_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut text = |t: &str| crate::workload::pieces::encode_into(tokenizer, t, &mut ids);
        match &self.prompt {
            Value::Array(messages) => {
                for m in messages {
                    // An embeddings input, a rerank's query or document.
                    if let Value::String(s) = m {
                        text(s);
                    }
                    match m.get("content") {
                        Some(Value::String(s)) => text(s),
                        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).for_each(&mut text),
                        _ => {}
                    }
                }
            }
            Value::String(s) => text(s),
            _ => {}
        }
        ids
    }

    /// The completion's length: `own` is the mock's drawn answer length, `reasoning`
    /// its thought (0 but for chat); the limit and `min_tokens` count both.
    pub fn length(&self, own: u32, reasoning: u32) -> Length {
        let limit = self.limit.unwrap_or(u64::MAX);
        let thought = u64::from(reasoning).min(limit);
        let natural = (thought + u64::from(own)).max(self.min_tokens.unwrap_or(0));
        let total = if self.ignore_eos { self.limit.unwrap_or(natural) } else { natural.min(limit) };
        // At the limit, the end the model would have written next never came.
        let finish = if self.limit == Some(total) { "length" } else { "stop" };
        Length { reasoning: thought.min(total), answer: total - thought.min(total), finish }
    }
}

/// How long a completion is, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Length {
    pub reasoning: u64,
    pub answer: u64,
    pub finish: &'static str,
}

#[derive(Deserialize)]
struct Body {
    model: Option<Value>,
    messages: Option<Value>,
    prompt: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    /// The Responses API's: `input` (a text or items), `instructions`, its limit.
    input: Option<Value>,
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    /// Anthropic's system text (or text blocks).
    system: Option<Value>,
    ignore_eos: Option<bool>,
    min_tokens: Option<u64>,
    /// Chat: the tools offered, and the choice among them.
    tools: Option<Value>,
    tool_choice: Option<Value>,
    response_format: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(extra: &str) -> Result<Asked, Invalid> {
        Asked::parse(Api::Chat, format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#).as_bytes())
    }

    fn length(extra: &str, own: u32, reasoning: u32) -> (u64, u64, &'static str) {
        let l = asked(extra).unwrap().length(own, reasoning);
        (l.reasoning, l.answer, l.finish)
    }

    #[test]
    fn the_mock_writes_its_own_length_unless_asked_otherwise() {
        // Asking for 300 tokens does not make them: the model ends at its own 16.
        assert_eq!(length(r#","max_tokens":300"#, 16, 0), (0, 16, "stop"));
        assert_eq!(length("", 16, 0), (0, 16, "stop"));
        assert_eq!(length(r#","max_tokens":10"#, 16, 0), (0, 10, "length"));
        assert_eq!(length(r#","max_tokens":16"#, 16, 0), (0, 16, "length"), "the end would have been token 17");
        // ignore_eos: exactly the limit, max_completion_tokens first.
        assert_eq!(length(r#","max_tokens":300,"ignore_eos":true"#, 16, 0), (0, 300, "length"));
        assert_eq!(length(r#","max_tokens":9,"max_completion_tokens":300,"ignore_eos":true"#, 16, 0), (0, 300, "length"));
        assert_eq!(length(r#","max_tokens":5,"ignore_eos":true"#, 16, 0), (0, 5, "length"));
        assert_eq!(length(r#","ignore_eos":true"#, 16, 0), (0, 16, "stop"), "no limit: the own length");
        assert_eq!(length(r#","ignore_eos":true,"min_tokens":20"#, 16, 0), (0, 20, "stop"));
        assert_eq!(length(r#","ignore_eos":false,"max_tokens":300"#, 16, 0), (0, 16, "stop"));
        // min_tokens raises the own length, and the limit still caps.
        assert_eq!(length(r#","min_tokens":40"#, 16, 0), (0, 40, "stop"));
        assert_eq!(length(r#","min_tokens":40,"max_tokens":40"#, 16, 0), (0, 40, "length"));
        assert_eq!(length(r#","min_tokens":8"#, 16, 0), (0, 16, "stop"));
        // The limit counts the thought.
        assert_eq!(length(r#","max_tokens":6"#, 5, 4), (4, 2, "length"));
        assert_eq!(length(r#","max_tokens":3,"ignore_eos":true"#, 5, 4), (3, 0, "length"));
        assert_eq!(length(r#","max_tokens":20,"ignore_eos":true"#, 5, 4), (4, 16, "length"));
        assert_eq!(length(r#","min_tokens":12"#, 5, 4), (4, 8, "stop"));
    }

    #[test]
    fn impossible_lengths_are_refused_naming_the_parameter() {
        let e = asked(r#","min_tokens":10,"max_tokens":5"#).err().unwrap();
        assert_eq!(e, (Some("min_tokens"), "min_tokens must be less than or equal to max_tokens=5, got 10.".to_string()));
        let e = asked(r#","min_tokens":10,"max_completion_tokens":5,"max_tokens":50"#).err().unwrap();
        assert_eq!(e.1, "min_tokens must be less than or equal to max_completion_tokens=5, got 10.");
        assert_eq!(asked(r#","min_tokens":200000"#).err().unwrap().0, Some("min_tokens"));
        assert_eq!(asked(r#","max_tokens":200000,"ignore_eos":true"#).err().unwrap().0, Some("max_tokens"));
        assert!(asked(r#","max_tokens":200000"#).is_ok(), "a limit alone writes nothing");
        assert_eq!(asked(r#","min_tokens":-1"#).err().unwrap().0, None, "not a length: not JSON we take");
    }

    #[test]
    fn prompt_ids_follow_the_messages_in_order() {
        let t = Tokenizer::o200k();
        let body = r#"{"model":"m","messages":[{"role":"system","content":"hello world"},
            {"role":"user","content":[{"type":"text","text":"say"},{"type":"image_url","image_url":{"url":"https://example.invalid/a.png"}},{"type":"text","text":" hi"}]}]}"#;
        let a = Asked::parse(Api::Chat, body.as_bytes()).unwrap();
        let want = [t.encode("hello world"), t.encode("say"), t.encode(" hi")].concat();
        assert_eq!(a.prompt_ids(&t), want);
        assert_eq!(a.prompt_ids(&t).len() as u64, t.prompt_tokens(&a.prompt), "the same count as the client's");
        let a = Asked::parse(Api::Completions, br#"{"model":"m","prompt":["hello world"]}"#).unwrap();
        assert_eq!(a.prompt_ids(&t), t.encode("hello world"));
    }
}
