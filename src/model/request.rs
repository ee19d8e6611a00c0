//! What is sent: the request parameters a scenario sets, and a request ready to go.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which OpenAI-compatible endpoint is spoken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST {base_url}/chat/completions` with `messages`.
    #[default]
    Chat,
    /// `POST {base_url}/completions` with a text `prompt`.
    Completions,
    /// `POST {base_url}/responses` (OpenAI's Responses API) with `input` messages.
    Responses,
    /// `POST {base_url}/messages` (Anthropic's Messages) with `system` apart from
    /// `messages`.
    Messages,
    /// `POST {base_url}/embeddings` with an `input` text or a batch of them.
    Embeddings,
    /// `POST {base_url}/rerank` (Cohere's and Jina's shape) with a `query` and its
    /// `documents`.
    Rerank,
}

impl Api {
    /// The endpoint, after the API root.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "chat/completions",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::Embeddings => "embeddings",
            Api::Rerank => "rerank",
        }
    }

    /// Its name, as a scenario says it.
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::Embeddings => "embeddings",
            Api::Rerank => "rerank",
        }
    }

    /// It generates text (tokens out, a stream to time); embeddings and rerank answer
    /// with numbers in one whole reply.
    pub fn generates(self) -> bool {
        !matches!(self, Api::Embeddings | Api::Rerank)
    }

    /// A prompt is one text (completions, an embeddings input, a rerank query), not
    /// messages.
    pub fn takes_text(self) -> bool {
        matches!(self, Api::Completions | Api::Embeddings | Api::Rerank)
    }

    /// What each request carries several of, and is counted by: an embeddings batch's
    /// inputs, a rerank query's documents.
    pub fn items(self) -> Option<&'static str> {
        match self {
            Api::Embeddings => Some("inputs"),
            Api::Rerank => Some("documents"),
            _ => None,
        }
    }

    /// Its streams are typed events (`response.*`, `message_*`), not chunks.
    pub fn typed_events(self) -> bool {
        matches!(self, Api::Responses | Api::Messages)
    }

    /// The body field of the output limit.
    pub fn limit_field(self) -> &'static str {
        match self {
            Api::Responses => "max_output_tokens",
            _ => "max_tokens",
        }
    }

    /// The body field that holds the prompt.
    pub fn prompt_field(self) -> &'static str {
        match self {
            Api::Chat | Api::Messages => "messages",
            Api::Completions => "prompt",
            Api::Responses | Api::Embeddings => "input",
            Api::Rerank => "query",
        }
    }
}

/// Generation parameters sent with every request of a stage. Each goes out only when
/// set: hosted APIs reject fields they do not know (`ignore_eos`, `min_tokens`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// OpenAI's newer name for `max_tokens` (reasoning models reject the old one); a
    /// scenario gives one or the other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// vLLM, SGLang and TGI: generate to the length asked, past any end-of-sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<u32>,
    /// Embeddings: `float` or `base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Embeddings: the vector's length asked for (Matryoshka models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Rerank: the most results to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_n: Option<u32>,
    /// Chat: the functions the model may call, as OpenAI's `tools`, and which it must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Chat: `{"type": "json_schema", …}` (or `json_object`): structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Merged into every body as-is, last: where it sets a field llmload sets, it wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<Map<String, Value>>,
}

impl RequestParams {
    /// The most output tokens a request asks for, by either name: `extra_body`'s where
    /// it sets one (it is what is sent), else the fields'.
    pub fn max_output_tokens(&self) -> Option<u32> {
        let extra = |k: &str| self.extra_body.as_ref()?.get(k)?.as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32);
        extra("max_tokens").or_else(|| extra("max_completion_tokens")).or(self.max_tokens).or(self.max_completion_tokens)
    }

    /// These parameters with `over`'s set fields on top (a stage's `request` over the
    /// scenario's). A length limit replaces the other name's; `extra_body` merges key by
    /// key, `over`'s keys winning.
    pub fn overlay(&self, over: &RequestParams) -> RequestParams {
        let length_set = over.max_tokens.is_some() || over.max_completion_tokens.is_some();
        let extra_body = match (&self.extra_body, &over.extra_body) {
            (Some(base), Some(top)) => {
                let mut merged = base.clone();
                merged.extend(top.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(merged)
            }
            (base, top) => top.clone().or_else(|| base.clone()),
        };
        RequestParams {
            max_tokens: if length_set { over.max_tokens } else { self.max_tokens },
            max_completion_tokens: if length_set { over.max_completion_tokens } else { self.max_completion_tokens },
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            seed: over.seed.or(self.seed),
            stop: over.stop.clone().or_else(|| self.stop.clone()),
            ignore_eos: over.ignore_eos.or(self.ignore_eos),
            min_tokens: over.min_tokens.or(self.min_tokens),
            encoding_format: over.encoding_format.clone().or_else(|| self.encoding_format.clone()),
            dimensions: over.dimensions.or(self.dimensions),
            top_n: over.top_n.or(self.top_n),
            tools: over.tools.clone().or_else(|| self.tools.clone()),
            tool_choice: over.tool_choice.clone().or_else(|| self.tool_choice.clone()),
            parallel_tool_calls: over.parallel_tool_calls.or(self.parallel_tool_calls),
            response_format: over.response_format.clone().or_else(|| self.response_format.clone()),
            extra_body,
        }
    }
}

/// What a reply must hold, checked by the client: an embeddings reply one vector per
/// input (`items`), a rerank at most `top_n` results, each of a document sent (`items`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    pub items: Option<u32>,
    pub top_n: Option<u32>,
}

/// The images a request carries: how many, their pixels and their encoded bytes
/// (before base64), summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Media {
    pub images: u32,
    pub pixels: u64,
    pub bytes: u64,
}

impl Media {
    /// Both's images together.
    pub fn and(self, o: Media) -> Media {
        Media { images: self.images + o.images, pixels: self.pixels + o.pixels, bytes: self.bytes + o.bytes }
    }
}

/// One request as the workload yields it and the client sends it: the body is
/// serialized once, before the clock runs, and shared by its retries.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The JSON body, ready to send.
    pub body: bytes::Bytes,
    /// Prompt tokens by the counting tokenizer, when the workload knows them already
    /// (synthetic prompts are built to a length; others are counted when needed).
    pub input_tokens: Option<u64>,
    /// The output length asked for, when the workload sets one per request.
    pub output_tokens: Option<u32>,
    /// A conversation's turn (0 = its first request), and its session's number in the
    /// whole run.
    pub turn: Option<u32>,
    pub session: Option<u64>,
    /// Embeddings: the batch's inputs; rerank: the documents and `top_n`. Checked
    /// against the reply.
    pub expect: Expect,
    /// The images it carries, when it carries any.
    pub media: Option<Media>,
    /// A task's request: which task, step and member.
    pub task: Option<TaskStep>,
}

/// Where a task's request belongs: its task (numbered in the whole run), the step (from
/// 0) and the member of the step's fan-out (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskStep {
    pub task: u64,
    pub step: u32,
    pub member: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_overlays_the_fields_it_sets() {
        let extra = |pairs: &[(&str, i64)]| Some(pairs.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<_, _>>());
        let base = RequestParams {
            max_tokens: Some(128),
            temperature: Some(0.5),
            stop: Some(vec!["END".into()]),
            extra_body: extra(&[("a", 1), ("b", 2)]),
            ..RequestParams::default()
        };
        let over =
            RequestParams { max_completion_tokens: Some(64), seed: Some(7), extra_body: extra(&[("b", 3)]), ..RequestParams::default() };
        let r = base.overlay(&over);
        // The stage's length limit replaces the scenario's, whichever name each used.
        assert_eq!((r.max_tokens, r.max_completion_tokens, r.max_output_tokens()), (None, Some(64), Some(64)));
        assert_eq!((r.temperature, r.seed, r.stop.as_deref()), (Some(0.5), Some(7), Some(&["END".to_string()][..])));
        assert_eq!(r.extra_body, extra(&[("a", 1), ("b", 3)]));
        // Nothing set: the scenario's, unchanged.
        assert_eq!(base.overlay(&RequestParams::default()), base);
    }
}
