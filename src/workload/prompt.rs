//! One prompt, serialized once: the `messages` array of a chat request or the `prompt`
//! text of a completions request, with its token count where known and the output
//! length it asks for; and a JSONL line read as one.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::tokens::Tokenizer;
use crate::model::Api;

/// One prompt, already serialized: the `messages` array of a chat request, or the
/// `prompt` string of a completions request.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub json: Box<RawValue>,
    /// Client-side count of its text, computed on first use only (loading the tokenizer
    /// is not free, and most runs take the server's usage); known at once for prompts
    /// built to a length.
    tokens: std::sync::OnceLock<u64>,
    /// The output length this prompt asks for (a dataset's reply length, a drawn one).
    pub output: Option<u32>,
    /// Texts it carries several of: an embeddings batch's inputs, a rerank's documents.
    pub items: Option<u32>,
    /// Images it carries itself (a dataset's), and what they are.
    pub media: Option<crate::model::Media>,
    /// Body fields of its own (a JSONL line's `tools` and `tool_choice`), serialized
    /// as `,"key":value…`, sent after it.
    pub extra: Option<std::sync::Arc<str>>,
    /// A JSONL line's other lists (a query's retrieved `documents`), which a task's
    /// step may fan out over: one member per item.
    pub lists: Option<std::sync::Arc<Lists>>,
}

/// A JSONL line's list fields beside its prompt, each item as text (a string as it
/// is, anything else as its JSON).
#[derive(Debug, Default)]
pub struct Lists(Vec<(Box<str>, Items)>);

/// A list's items, each as text.
type Items = Box<[std::sync::Arc<str>]>;

impl Lists {
    /// The fields of `v` that are lists, other than those a line's prompt is made of.
    fn of(v: &Value) -> Option<Lists> {
        let Value::Object(o) = v else { return None };
        let lists: Vec<_> = o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "messages" | "prompt" | "tools"))
            .filter_map(|(k, v)| {
                let items = v.as_array()?.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string).into());
                Some((k.as_str().into(), items.collect()))
            })
            .collect();
        (!lists.is_empty()).then_some(Lists(lists))
    }

    /// The list named `field`, if the line has one.
    pub fn get(&self, field: &str) -> Option<&[std::sync::Arc<str>]> {
        self.0.iter().find(|(k, _)| &**k == field).map(|(_, v)| &**v)
    }
}

impl Prompt {
    pub(super) fn from_value(value: &Value) -> Prompt {
        let text = serde_json::to_string(value).expect("a JSON value always serializes");
        Prompt::raw(text)
    }

    fn raw(json: String) -> Prompt {
        Prompt {
            json: RawValue::from_string(json).expect("made of valid JSON"),
            tokens: Default::default(),
            output: None,
            items: None,
            media: None,
            extra: None,
            lists: None,
        }
    }

    /// Several texts joined into one `json` (valid JSON made of valid JSON parts),
    /// counting `items`, `tokens` long where known.
    pub(super) fn joined(json: String, tokens: Option<u64>, items: u32) -> Prompt {
        let mut p = Prompt::raw(json);
        if let Some(n) = tokens {
            p.tokens = n.into();
        }
        p.items = Some(items);
        p
    }

    /// A prompt whose count is known, asking for `output` tokens.
    pub(super) fn counted(mut self, tokens: u64, output: Option<u32>) -> Prompt {
        self.tokens = tokens.into();
        self.output = output;
        self
    }

    /// Tokens of the prompt's text by `tok`: the messages' contents, or the text (no
    /// chat-template overhead).
    pub fn tokens(&self, tok: &Tokenizer) -> u64 {
        *self.tokens.get_or_init(|| serde_json::from_str(self.json.get()).map_or(0, |v| tok.prompt_tokens(&v)))
    }

    /// Its count where known without counting: built to a length, or counted before.
    pub fn known_tokens(&self) -> Option<u64> {
        self.tokens.get().copied()
    }

    /// A text prompt: a user message after `system` (chat), or the text itself
    /// (completions, where a system text goes before it, a blank line apart).
    pub(super) fn from_text(api: Api, system: Option<&str>, text: &str) -> Prompt {
        match api {
            api if api.takes_text() => match system {
                Some(system) => Prompt::from_value(&Value::String(format!("{system}\n\n{text}"))),
                None => Prompt::from_value(&Value::String(text.to_string())),
            },
            api => Prompt::from_value(&conversation(api, system, vec![json!({"role": "user", "content": text})])),
        }
    }
}

/// A conversation as `api` takes it: chat's and the Responses API's `messages` (a
/// system text first, as a message), or Anthropic's `{"system", "messages"}` (spliced
/// into the body: its system text stands apart).
pub(super) fn conversation(api: Api, system: Option<&str>, mut messages: Vec<Value>) -> Value {
    match api {
        // One text: the system text and the messages' contents, a blank line apart.
        api if api.takes_text() => {
            let contents = messages.iter().map(|m| m["content"].as_str().map_or_else(|| m["content"].to_string(), str::to_string));
            Value::String(system.map(str::to_string).into_iter().chain(contents).collect::<Vec<_>>().join("\n\n"))
        }
        Api::Messages => {
            let mut out = serde_json::Map::new();
            if let Some(system) = system {
                out.insert("system".into(), json!(system));
            }
            out.insert("messages".into(), Value::Array(messages));
            Value::Object(out)
        }
        _ => {
            if let Some(system) = system {
                messages.insert(0, json!({"role": "system", "content": system}));
            }
            Value::Array(messages)
        }
    }
}

/// A JSONL line is `{"messages": [{"role": …, "content": …}, …]}` (chat only) or
/// `{"prompt": "text"}`, with an optional `output_tokens` (the length to ask for).
pub(super) fn parse_jsonl_line(api: Api, line: &str, system: Option<&str>) -> Result<Prompt, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let output = match v.get("output_tokens") {
        None => None,
        Some(n) => match n.as_u64().filter(|n| (1..=u64::from(super::dist::MAX_TOKENS)).contains(n)) {
            Some(n) => Some(n as u32),
            None => return Err(format!("output_tokens must be a whole number from 1 to {}, got {n}", super::dist::MAX_TOKENS)),
        },
    };
    let mut prompt = parse_prompt(api, &v, system)?;
    prompt.output = output;
    if let Some(messages) = v.get("messages").and_then(Value::as_array) {
        prompt.media = super::images::media_of(messages)?;
    }
    prompt.extra = own_fields(api, &v)?;
    prompt.lists = Lists::of(&v).map(std::sync::Arc::new);
    Ok(prompt)
}

/// A line's own `tools` (function tools, each with a name and a schema that compiles)
/// and `tool_choice`, as body fields; chat's only.
fn own_fields(api: Api, v: &Value) -> Result<Option<std::sync::Arc<str>>, String> {
    let mut out = String::new();
    for key in ["tools", "tool_choice"] {
        let Some(field) = v.get(key) else { continue };
        if api != Api::Chat {
            return Err(format!("`{key}` is sent on target.api = \"chat\" only, not {:?}", api.name()));
        }
        if key == "tools" {
            let list = field.as_array().filter(|l| !l.is_empty()).ok_or("`tools` must be a non-empty list of function tools")?;
            for (i, t) in list.iter().enumerate() {
                if t["type"] != "function" || t["function"]["name"].as_str().is_none_or(str::is_empty) {
                    return Err(format!("tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": …}}}}"));
                }
                if let Some(schema) = t["function"].get("parameters") {
                    jsonschema::validator_for(schema).map_err(|e| format!("tools[{i}].function.parameters is not a JSON Schema: {e}"))?;
                }
            }
        }
        out.push_str(&format!(",{}:{field}", json!(key)));
    }
    Ok((!out.is_empty()).then(|| out.into()))
}

fn parse_prompt(api: Api, v: &Value, system: Option<&str>) -> Result<Prompt, String> {
    if let Some(text) = v.get("prompt").and_then(Value::as_str) {
        return Ok(Prompt::from_text(api, system, text));
    }
    if api.takes_text() {
        return Err(match v.get("messages") {
            Some(_) => format!("a `messages` prompt needs a chat API; target.api = {:?} takes a `prompt` text", api.name()),
            None => "expected an object with a `prompt` string".into(),
        });
    }
    let messages =
        v.get("messages").and_then(Value::as_array).ok_or("expected an object with a `messages` array (or a `prompt` string)")?;
    if messages.is_empty() {
        return Err("`messages` is empty".to_string());
    }
    for (i, m) in messages.iter().enumerate() {
        if m.get("role").and_then(Value::as_str).is_none() {
            return Err(format!("messages[{i}] has no `role` string"));
        }
    }
    if api != Api::Messages {
        return Ok(Prompt::from_value(&Value::Array(messages.clone())));
    }
    // Anthropic's system text stands apart from its messages.
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().ok_or("a system message's `content` must be a string for target.api = \"messages\""))
        .collect::<Result<_, _>>()?;
    let rest: Vec<Value> = messages.iter().filter(|m| m["role"] != "system").cloned().collect();
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok(Prompt::from_value(&conversation(api, system.as_deref(), rest)))
}
