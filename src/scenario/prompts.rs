//! Prompt sources: an inline list, a template with `{i}`, or a file (plain lines or
//! JSONL with a `messages` array per line). Messages are serialized once at load time
//! so the request path only copies bytes.

use std::path::Path;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use toml::Spanned;

use super::error::Problems;
use super::file::PromptsFile;

/// One prompt: the `messages` array of a chat request, already serialized.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub messages: Box<RawValue>,
    /// Client-side count of the messages' text, computed on first use only (loading
    /// the tokenizer is not free, and most runs take the server's usage).
    tokens: std::sync::OnceLock<u64>,
}

impl Prompt {
    fn from_messages(messages: &Value) -> Prompt {
        let text = serde_json::to_string(messages).expect("a JSON value always serializes");
        Prompt { messages: RawValue::from_string(text).expect("serde_json output is valid JSON"), tokens: Default::default() }
    }

    /// Tokens of the messages' text (o200k, no chat-template overhead).
    pub fn tokens(&self) -> u64 {
        *self.tokens.get_or_init(|| {
            let messages: Vec<Value> = serde_json::from_str(self.messages.get()).unwrap_or_default();
            messages.iter().map(crate::tokens::message_tokens).sum()
        })
    }

    fn from_text(system: Option<&str>, text: &str) -> Prompt {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": text}));
        Prompt::from_messages(&Value::Array(messages))
    }
}

/// Where prompts come from; request `i` of a stage uses `prompt(i)`.
#[derive(Debug, Clone)]
pub struct Prompts {
    kind: Kind,
    system: Option<String>,
    /// Human summary for results: "list of 3", "template", "file data/docs.jsonl (50)".
    pub source: String,
}

#[derive(Debug, Clone)]
enum Kind {
    Fixed(Arc<[Prompt]>),
    Template(String),
}

impl Prompts {
    pub(crate) fn empty() -> Prompts {
        Prompts { kind: Kind::Fixed(Arc::from(Vec::new())), system: None, source: String::new() }
    }

    /// Builds prompts from literal texts (used by tests and by the CLI overrides).
    pub fn from_texts(texts: &[&str]) -> Prompts {
        let items: Vec<Prompt> = texts.iter().map(|t| Prompt::from_text(None, t)).collect();
        Prompts { source: format!("list of {}", items.len()), kind: Kind::Fixed(items.into()), system: None }
    }

    /// The prompt for request number `i` (0-based within its stage). Fixed prompts cycle.
    pub fn prompt(&self, i: u64) -> std::borrow::Cow<'_, Prompt> {
        match &self.kind {
            Kind::Fixed(items) => std::borrow::Cow::Borrowed(&items[(i % items.len() as u64) as usize]),
            Kind::Template(t) => std::borrow::Cow::Owned(Prompt::from_text(self.system.as_deref(), &t.replace("{i}", &i.to_string()))),
        }
    }

    /// Number of distinct prompts, or None for a template.
    pub fn len(&self) -> Option<usize> {
        match &self.kind {
            Kind::Fixed(items) => Some(items.len()),
            Kind::Template(_) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

pub(super) fn resolve(raw: Spanned<PromptsFile>, p: &mut Problems<'_>, base_dir: &Path) -> Prompts {
    let span = raw.span();
    let raw = raw.into_inner();
    let given = [raw.list.is_some(), raw.template.is_some(), raw.file.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        p.at(Some(span), "[prompts] needs exactly one of `list`, `template` or `file`");
        return Prompts::empty();
    }
    let system = raw.system.clone();
    if let Some(list) = raw.list {
        if list.get_ref().is_empty() {
            p.at(Some(list.span()), "prompts.list is empty; give at least one prompt");
        }
        let items: Vec<Prompt> = list.get_ref().iter().map(|t| Prompt::from_text(system.as_deref(), t)).collect();
        return Prompts { source: format!("list of {}", items.len()), kind: Kind::Fixed(items.into()), system };
    }
    if let Some(t) = raw.template {
        if t.get_ref().trim().is_empty() {
            p.at(Some(t.span()), "prompts.template is empty");
        }
        return Prompts { source: "template".to_string(), kind: Kind::Template(t.into_inner()), system };
    }
    let file = raw.file.expect("exactly one source is set");
    let rel = file.get_ref();
    let path = base_dir.join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            p.at(Some(file.span()), format!("prompts.file {:?}: cannot read {}: {e}", rel, path.display()));
            return Prompts::empty();
        }
    };
    let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !jsonl {
            items.push(Prompt::from_text(system.as_deref(), line));
            continue;
        }
        match parse_jsonl_line(line, system.as_deref()) {
            Ok(prompt) => items.push(prompt),
            Err(msg) => p.at(Some(file.span()), format!("prompts.file {}:{}: {msg}", path.display(), n + 1)),
        }
    }
    if items.is_empty() {
        p.at(Some(file.span()), format!("prompts.file {:?} holds no prompts", rel));
    }
    Prompts { source: format!("file {} ({} prompts)", rel, items.len()), kind: Kind::Fixed(items.into()), system }
}

/// A JSONL line is `{"messages": [{"role": …, "content": …}, …]}` or `{"prompt": "text"}`.
fn parse_jsonl_line(line: &str, system: Option<&str>) -> Result<Prompt, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(text) = v.get("prompt").and_then(Value::as_str) {
        return Ok(Prompt::from_text(system, text));
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
    Ok(Prompt::from_messages(&Value::Array(messages.clone())))
}
