//! What the mock says: a completion of one-token words (or a JSON answer), after as
//! many reasoning tokens as asked, shaped as a chat completion or a text completion —
//! the whole body, or its stream chunks — and its usage, counted by the mock's tokenizer.
//! The Responses API's and Anthropic's shapes are `typed`'s, which picks for every API.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde_json::{Value, json};

use super::draw::Draw;
use super::request::Length;
use crate::model::Api;
use crate::workload::tokens::Tokenizer;

/// The completion's words: each, with its leading space, is one o200k token.
const WORDS: [&str; 16] = [
    "Load", " testing", " shows", " where", " latency", " bends", " under", " load", " so", " measure", " first", " then", " tune", " the",
    " pool", " again",
];

/// Token `i` of a completion.
fn word(i: usize) -> &'static str {
    if i == 0 { WORDS[0] } else { WORDS[1 + (i - 1) % (WORDS.len() - 1)] }
}

/// How a reply's tokens are counted: by its pieces when every word is one token of the
/// mock's tokenizer (o200k, cl100k), so lengths are exact; else by counting the text
/// sent, so `usage` is still what that tokenizer makes of it.
#[derive(Debug, Clone)]
pub(super) struct Words {
    tokenizer: Tokenizer,
    one_each: bool,
}

impl Words {
    pub fn new(tokenizer: Tokenizer) -> Words {
        // Every prefix of two rounds of words, so no two words merge into one token.
        let mut text = String::new();
        let one_each = (0..2 * WORDS.len()).all(|i| {
            text.push_str(word(i));
            tokenizer.count(word(i)) == 1 && tokenizer.count(&text) == i as u64 + 1
        });
        Words { tokenizer, one_each }
    }

    /// Tokens of these pieces' text; `exact`: one per piece.
    fn count<'a>(&self, pieces: impl Iterator<Item = &'a Piece>, exact: bool) -> u64 {
        if exact && self.one_each {
            return pieces.count() as u64;
        }
        self.tokenizer.count(&pieces.map(|p| p.text.as_str()).collect::<String>())
    }
}

/// One token of a reply, as one stream chunk carries it.
pub(super) struct Piece {
    pub text: String,
    /// Thinking, sent as `reasoning_content` before the answer.
    pub reasoning: bool,
    /// A tool call's fragment: its header (empty text), then argument pieces.
    pub tool: bool,
}

/// The prompt's side of `usage`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PromptUsage {
    pub tokens: u64,
    /// Of them, found in the prefix cache.
    pub cached: u64,
}

/// What a completion will say, streamed or not.
pub(super) struct Reply {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt: PromptUsage,
    /// The reasoning, then the answer, one piece per stream chunk.
    pub pieces: Vec<Piece>,
    /// Completion tokens for `usage`, reasoning included.
    pub tokens: u64,
    pub reasoning_tokens: u64,
    pub finish: &'static str,
    /// Embeddings and rerank: what the answer holds instead of text.
    pub task: Option<super::vectors::Task>,
    /// The tool call it makes instead of an answer.
    pub call: Option<Call>,
}

/// The call a reply makes.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl Reply {
    /// Its answer becomes `text` (a JSON value fitting the request's schema), a piece
    /// per token of `tokenizer`, after any thought.
    pub(super) fn answer_json(&mut self, text: String, tokenizer: &Tokenizer) {
        self.pieces.retain(|p| p.reasoning);
        let ids = tokenizer.encode(&text);
        self.pieces.extend(ids.iter().map(|&id| Piece {
            text: tokenizer.decode(&[id]).unwrap_or_default(),
            reasoning: false,
            tool: false,
        }));
        self.tokens = self.reasoning_tokens + ids.len() as u64;
        self.finish = "stop";
    }

    /// It becomes a call of `name` with `arguments` (after any thought): a piece per
    /// token of `tokenizer`, the name's fragment first; usage counts both.
    pub(super) fn call_tool(&mut self, name: &str, arguments: String, seq: u64, tokenizer: &Tokenizer) {
        self.pieces.retain(|p| p.reasoning);
        // The name's fragment carries no arguments: a token of its own, as OpenAI sends.
        self.pieces.push(Piece { text: String::new(), reasoning: false, tool: true });
        let ids = tokenizer.encode(&arguments);
        // A token a piece, but a character split across tokens waits for its last one
        // (as servers hold back partial UTF-8): the pieces join to the arguments.
        let mut texts = Vec::with_capacity(ids.len());
        let mut pending = Vec::new();
        for &id in &ids {
            pending.push(id);
            if let Some(t) = tokenizer.decode(&pending).filter(|t| !t.contains('\u{FFFD}')) {
                texts.push(t);
                pending.clear();
            }
        }
        if !pending.is_empty() || texts.concat() != arguments {
            texts = vec![arguments.clone()];
        }
        self.pieces.extend(texts.into_iter().map(|text| Piece { text, reasoning: false, tool: true }));
        self.tokens = self.reasoning_tokens + tokenizer.count(name) + ids.len() as u64;
        self.finish = "tool_calls";
        self.call = Some(Call { id: format!("call_mock{seq}"), name: name.to_string(), arguments });
    }
}

impl Call {
    /// A stream's fragment: the header (`first`: id, type, name, empty arguments), or
    /// an argument piece alone.
    fn fragment(&self, piece: &str, first: bool) -> Value {
        match first {
            true => json!([{"index": 0, "id": self.id, "type": "function", "function": {"name": self.name, "arguments": ""}}]),
            false => json!([{"index": 0, "function": {"arguments": piece}}]),
        }
    }

    /// The whole reply's `tool_calls`.
    fn whole(&self) -> Value {
        json!([{"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}])
    }
}

impl Reply {
    /// Request `seq`'s completion: `len.reasoning` tokens of thought, then `len.answer`
    /// tokens of words; or a JSON answer (its own length: its pieces are split at
    /// spaces and its usage is its token count).
    pub(super) fn new(seq: u64, d: &Draw, api: Api, model: String, prompt: PromptUsage, len: Length, words: &Words) -> Reply {
        let mut pieces: Vec<Piece> =
            (0..len.reasoning as usize).map(|i| Piece { text: word(i).to_string(), reasoning: true, tool: false }).collect();
        let finish = if d.json {
            pieces.extend(split_pieces(&json_reply(seq)).into_iter().map(|text| Piece { text, reasoning: false, tool: false }));
            "stop"
        } else {
            pieces.extend((0..len.answer as usize).map(|i| Piece { text: word(i).to_string(), reasoning: false, tool: false }));
            len.finish
        };
        let reasoning_tokens = words.count(pieces.iter().filter(|p| p.reasoning), true);
        let tokens = reasoning_tokens + words.count(pieces.iter().filter(|p| !p.reasoning), !d.json);
        let id = match api {
            Api::Chat => format!("chatcmpl-mock-{seq}"),
            Api::Completions => format!("cmpl-mock-{seq}"),
            Api::Responses => format!("resp_mock{seq}"),
            Api::Messages => format!("msg_mock{seq}"),
            Api::Embeddings => format!("embd-mock-{seq}"),
            Api::Rerank => format!("rerank-mock-{seq}"),
        };
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Reply { api, id, created, model, prompt, pieces, tokens, reasoning_tokens, finish, task: None, call: None }
    }

    fn usage(&self) -> Value {
        let prompt = self.prompt.tokens;
        let mut usage = json!({
            "prompt_tokens": prompt, "completion_tokens": self.tokens, "total_tokens": prompt + self.tokens,
            "prompt_tokens_details": {"cached_tokens": self.prompt.cached}
        });
        if self.reasoning_tokens > 0 {
            usage["completion_tokens_details"] = json!({"reasoning_tokens": self.reasoning_tokens});
        }
        usage
    }

    pub(super) fn text(&self, reasoning: bool) -> String {
        self.pieces.iter().filter(|p| p.reasoning == reasoning && !p.tool).map(|p| p.text.as_str()).collect()
    }

    /// The whole reply's JSON.
    pub(super) fn body(&self) -> Bytes {
        let v = match self.api {
            Api::Chat => {
                let mut message = json!({"role": "assistant", "content": self.text(false), "refusal": null});
                if self.reasoning_tokens > 0 {
                    message["reasoning_content"] = Value::String(self.text(true));
                }
                if let Some(call) = &self.call {
                    (message["content"], message["tool_calls"]) = (Value::Null, call.whole());
                }
                json!({
                    "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                    "system_fingerprint": null,
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish}],
                    "usage": self.usage()
                })
            }
            Api::Completions => json!({
                "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "system_fingerprint": null,
                "choices": [{"index": 0, "text": self.text(false), "logprobs": null, "finish_reason": self.finish}],
                "usage": self.usage()
            }),
            // Typed APIs' bodies are `typed`'s.
            _ => Value::Null,
        };
        Bytes::from(v.to_string())
    }

    /// A stream chunk: the opening role chunk (`None`), a token, or the finish (`finish`).
    pub(super) fn chunk(&self, piece: Option<&Piece>, finish: Option<&str>) -> Bytes {
        let choice = match self.api {
            Api::Chat => {
                let delta = match (piece, &self.call) {
                    (Some(p), Some(call)) if p.tool => json!({"tool_calls": call.fragment(&p.text, p.text.is_empty())}),
                    (piece, _) => match piece {
                        Some(p) if p.reasoning => json!({"reasoning_content": p.text}),
                        Some(p) => json!({"content": p.text}),
                        None if finish.is_some() => json!({}),
                        None => json!({"role": "assistant", "content": ""}),
                    },
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            _ => json!({"index": 0, "text": piece.map_or("", |p| p.text.as_str()), "logprobs": null, "finish_reason": finish}),
        };
        self.event(vec![choice], None)
    }

    /// The last chunk, with `usage` and no choices (`stream_options.include_usage`).
    pub(super) fn usage_chunk(&self) -> Bytes {
        self.event(Vec::new(), Some(self.usage()))
    }

    fn event(&self, choices: Vec<Value>, usage: Option<Value>) -> Bytes {
        let object = match self.api {
            Api::Chat => "chat.completion.chunk",
            _ => "text_completion",
        };
        let mut v = json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "system_fingerprint": null, "choices": choices});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        Bytes::from(format!("data: {v}\n\n"))
    }
}

/// A JSON answer in one of three wrappings real models use: bare, fenced, in prose.
fn json_reply(seq: u64) -> String {
    let obj = format!(
        r#"{{"summary": "Document {seq} explains where the load test found its limit.", "key_points": ["throughput plateaus", "latency rises with load"]}}"#
    );
    match seq % 3 {
        0 => obj,
        1 => format!("```json\n{obj}\n```"),
        _ => format!("Here is the summary you asked for: {obj} Let me know if you need more."),
    }
}

/// Text cut before each space, so every piece but the first starts with one.
fn split_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(text[start..i].to_string());
            start = i;
        }
    }
    out.push(text[start..].to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_replies_pass_checks_and_split_back_whole() {
        let expect = crate::check::Expect::Json { required_keys: vec!["summary".into(), "key_points".into()] };
        for seq in 0..3 {
            let text = json_reply(seq);
            assert_eq!(crate::check::check(&text, &expect), Ok(()), "{text}");
            assert_eq!(split_pieces(&text).concat(), text);
        }
        let prose: String = (0..10).map(word).collect();
        assert!(crate::check::check(&prose, &expect).is_err());
    }

    #[test]
    fn a_calls_pieces_join_to_its_arguments_whatever_their_characters() {
        let tok = Tokenizer::o200k();
        for args in [r#"{"city":"Paris"}"#, r#"{"city":"Zürich ☕ 東京 🌧️"}"#] {
            let mut r = reply(3, &draw(4), Api::Chat, 3, len(0, 4, "stop"));
            r.call_tool("get_weather", args.to_string(), 3, &tok);
            let texts: Vec<&str> = r.pieces.iter().filter(|p| p.tool).map(|p| p.text.as_str()).collect();
            assert_eq!(texts.concat(), args);
            assert!(texts.iter().all(|t| !t.contains('\u{FFFD}')) && texts.len() > 3, "{texts:?}");
        }
    }

    #[test]
    fn every_word_is_one_token() {
        let text: String = (0..100).map(word).collect();
        assert_eq!(Tokenizer::o200k().count(&text), 100, "{text}");
    }

    fn draw(output_tokens: u32) -> Draw {
        Draw { jitter: 0.0, output_tokens, json: false, fault: None }
    }

    fn event(b: &Bytes) -> Value {
        let text = std::str::from_utf8(b).unwrap();
        serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap()
    }

    fn len(reasoning: u64, answer: u64, finish: &'static str) -> Length {
        Length { reasoning, answer, finish }
    }

    fn reply(seq: u64, d: &Draw, api: Api, prompt: u64, l: Length) -> Reply {
        Reply::new(seq, d, api, "m".into(), PromptUsage { tokens: prompt, cached: 0 }, l, &Words::new(Tokenizer::o200k()))
    }

    #[test]
    fn a_reasoning_reply_thinks_first() {
        let r = reply(1, &draw(5), Api::Chat, 3, len(4, 5, "stop"));
        let kinds: Vec<bool> = r.pieces.iter().map(|p| p.reasoning).collect();
        assert_eq!(kinds, [true, true, true, true, false, false, false, false, false]);
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["usage"]["completion_tokens"], 9);
        assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 4);
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "Load testing shows where");
        assert_eq!(event(&r.chunk(Some(&r.pieces[0]), None))["choices"][0]["delta"], json!({"reasoning_content": "Load"}));
        assert_eq!(event(&r.chunk(Some(&r.pieces[4]), None))["choices"][0]["delta"], json!({"content": "Load"}));
        let r = reply(1, &draw(5), Api::Chat, 3, len(4, 2, "length"));
        assert_eq!((r.pieces.len(), r.finish), (6, "length"));
    }

    #[test]
    fn usage_says_what_the_prefix_cache_held() {
        let r = Reply::new(2, &draw(3), Api::Chat, "m".into(), PromptUsage { tokens: 2010, cached: 2000 }, len(0, 3, "stop"), &words());
        let body: Value = serde_json::from_slice(&r.body()).unwrap();
        let chunk = event(&r.usage_chunk());
        for usage in [&body["usage"], &chunk["usage"]] {
            assert_eq!(usage["prompt_tokens"], 2010);
            assert_eq!(usage["prompt_tokens_details"], json!({"cached_tokens": 2000}));
        }
        let r = reply(2, &draw(3), Api::Completions, 5, len(0, 3, "stop"));
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["usage"]["prompt_tokens_details"], json!({"cached_tokens": 0}), "always there");
    }

    fn words() -> Words {
        Words::new(Tokenizer::o200k())
    }

    #[test]
    fn usage_is_what_the_mocks_tokenizer_counts() {
        assert!(words().one_each);
        assert!(Words::new(Tokenizer::built_in("cl100k_base").unwrap()).one_each);
        // A tokenizer of one token per character: the words are not one token each, so
        // usage counts the text sent.
        let chars = Tokenizer::from_bytes(CHARS.as_bytes(), "chars").unwrap();
        assert_eq!(chars.count("Load testing"), 12);
        let w = Words::new(chars);
        assert!(!w.one_each);
        let r = Reply::new(0, &draw(3), Api::Chat, "m".into(), PromptUsage::default(), len(2, 3, "stop"), &w);
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Load testing shows");
        assert_eq!(v["usage"]["completion_tokens"], 12 + 18);
        assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 12);
    }

    /// A Hugging Face tokenizer.json: every character its own (unknown) token.
    const CHARS: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
        "pre_tokenizer":{"type":"Split","pattern":{"Regex":"."},"behavior":"Isolated","invert":false},
        "post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0},"unk_token":"[UNK]"}}"#;

    #[test]
    fn a_text_completion_has_the_shape_of_one() {
        let r = reply(7, &draw(3), Api::Completions, 2, len(0, 3, "stop"));
        let v: Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!((v["object"].as_str(), v["id"].as_str()), (Some("text_completion"), Some("cmpl-mock-7")));
        assert_eq!(
            (v["choices"][0]["text"].as_str(), v["choices"][0]["finish_reason"].as_str()),
            (Some("Load testing shows"), Some("stop"))
        );
        assert!(v["usage"].get("completion_tokens_details").is_none());
        let chunk = event(&r.chunk(Some(&r.pieces[1]), None));
        assert_eq!((chunk["choices"][0]["text"].as_str(), chunk["choices"][0]["finish_reason"].is_null()), (Some(" testing"), true));
        assert_eq!(event(&r.chunk(None, Some("stop")))["choices"][0]["finish_reason"], "stop");
        assert_eq!(event(&r.usage_chunk())["usage"]["completion_tokens"], 3);
    }
}
