//! Prompt sources: an inline list, a template with `{i}`, or a file's lines (plain text,
//! or JSONL with a `messages` array or a `prompt` string per line), each made for the
//! endpoint spoken: a `messages` array for chat, a text for completions. Prompts are
//! serialized once, at load time, so the request path only copies bytes.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::model::Api;

/// One prompt, already serialized: the `messages` array of a chat request, or the
/// `prompt` string of a completions request.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub json: Box<RawValue>,
    /// Client-side count of its text, computed on first use only (loading the tokenizer
    /// is not free, and most runs take the server's usage).
    tokens: std::sync::OnceLock<u64>,
}

impl Prompt {
    fn from_value(value: &Value) -> Prompt {
        let text = serde_json::to_string(value).expect("a JSON value always serializes");
        Prompt { json: RawValue::from_string(text).expect("serde_json output is valid JSON"), tokens: Default::default() }
    }

    /// Tokens of the prompt's text: the messages' contents, or the text (o200k, no
    /// chat-template overhead).
    pub fn tokens(&self) -> u64 {
        *self.tokens.get_or_init(|| match serde_json::from_str(self.json.get()) {
            Ok(Value::Array(messages)) => messages.iter().map(super::tokens::message_tokens).sum(),
            Ok(Value::String(text)) => super::tokens::count(&text),
            _ => 0,
        })
    }

    /// A text prompt: a user message after `system` (chat), or the text itself
    /// (completions, where a system text goes before it, a blank line apart).
    fn from_text(api: Api, system: Option<&str>, text: &str) -> Prompt {
        match api {
            Api::Completions => match system {
                Some(system) => Prompt::from_value(&Value::String(format!("{system}\n\n{text}"))),
                None => Prompt::from_value(&Value::String(text.to_string())),
            },
            Api::Chat => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": text}));
                Prompt::from_value(&Value::Array(messages))
            }
        }
    }
}

/// Where prompts come from; request `i` of a stage uses `prompt(i)`.
#[derive(Debug, Clone)]
pub struct Prompts {
    kind: Kind,
    /// The endpoint they are made for.
    api: Api,
    system: Option<String>,
    /// Human summary for results: "list of 3", "template", "file data/docs.jsonl (50)".
    pub source: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Never empty: every constructor refuses an empty list.
    Fixed(Arc<[Prompt]>),
    Template(String),
}

impl Prompts {
    /// Stands in for prompts a broken scenario could not give: never sent, since such a
    /// scenario does not validate, but safe to ask for any request.
    pub fn placeholder() -> Prompts {
        Prompts { kind: Kind::Template(String::new()), api: Api::Chat, system: None, source: String::new() }
    }

    /// Chat prompts from literal texts; None for an empty list.
    pub fn from_texts(texts: &[&str]) -> Option<Prompts> {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        Prompts::list(Api::Chat, &texts, None)
    }

    /// A prompt per text, after `system` when given; None for an empty list.
    pub fn list(api: Api, texts: &[String], system: Option<String>) -> Option<Prompts> {
        let items: Vec<Prompt> = texts.iter().map(|t| Prompt::from_text(api, system.as_deref(), t)).collect();
        Prompts::fixed(api, items, format!("list of {}", texts.len()), system)
    }

    /// `template` with `{i}` replaced by the request number.
    pub fn template(api: Api, template: String, system: Option<String>) -> Prompts {
        Prompts { source: "template".to_string(), kind: Kind::Template(template), api, system }
    }

    /// The endpoint these prompts are made for.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The prompts of a file's text: a prompt per non-blank line, plain text or (with
    /// `jsonl`) a JSON object per line. Also every bad line, by 1-based number, with why;
    /// None when no line held a prompt. `name` is how the file is named in the summary.
    pub fn from_file_text(
        api: Api,
        text: &str,
        jsonl: bool,
        system: Option<String>,
        name: &str,
    ) -> (Option<Prompts>, Vec<(usize, String)>) {
        let mut items = Vec::new();
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if !jsonl {
                items.push(Prompt::from_text(api, system.as_deref(), line));
                continue;
            }
            match parse_jsonl_line(api, line, system.as_deref()) {
                Ok(prompt) => items.push(prompt),
                Err(msg) => bad.push((n + 1, msg)),
            }
        }
        let source = format!("file {} ({} prompts)", name, items.len());
        (Prompts::fixed(api, items, source, system), bad)
    }

    fn fixed(api: Api, items: Vec<Prompt>, source: String, system: Option<String>) -> Option<Prompts> {
        (!items.is_empty()).then(|| Prompts { kind: Kind::Fixed(items.into()), api, system, source })
    }

    /// The prompt for request number `i` (0-based within its stage). Fixed prompts cycle.
    pub fn prompt(&self, i: u64) -> Cow<'_, Prompt> {
        match &self.kind {
            Kind::Fixed(items) => Cow::Borrowed(&items[(i % items.len() as u64) as usize]),
            Kind::Template(t) => Cow::Owned(Prompt::from_text(self.api, self.system.as_deref(), &t.replace("{i}", &i.to_string()))),
        }
    }

    /// Number of distinct prompts, or None for a template.
    pub fn len(&self) -> Option<usize> {
        match &self.kind {
            Kind::Fixed(items) => Some(items.len()),
            Kind::Template(_) => None,
        }
    }

    /// Never true: there is always a prompt to send.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// A JSONL line is `{"messages": [{"role": …, "content": …}, …]}` (chat only) or
/// `{"prompt": "text"}`.
fn parse_jsonl_line(api: Api, line: &str, system: Option<&str>) -> Result<Prompt, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(text) = v.get("prompt").and_then(Value::as_str) {
        return Ok(Prompt::from_text(api, system, text));
    }
    if api == Api::Completions {
        return Err(match v.get("messages") {
            Some(_) => "a `messages` prompt needs target.api = \"chat\"; the completions endpoint takes a `prompt` text".into(),
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
    Ok(Prompt::from_value(&Value::Array(messages.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_source_gives_nothing_to_divide_by() {
        assert!(Prompts::from_texts(&[]).is_none());
        assert!(Prompts::list(Api::Chat, &[], Some("sys".into())).is_none());
        let (none, bad) = Prompts::from_file_text(Api::Chat, "\n  \n", true, None, "empty.jsonl");
        assert!(none.is_none() && bad.is_empty());
        // The placeholder answers any request number.
        let any = Prompts::placeholder().prompt(u64::MAX).json.get().to_string();
        assert!(any.contains(r#""role":"user""#), "{any}");
    }

    #[test]
    fn file_lines_are_prompts_and_bad_lines_are_named() {
        let text = "{\"prompt\": \"a\"}\n\nnot json\n{\"messages\": []}\n{\"messages\": [{\"content\": \"x\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}\n";
        let (prompts, bad) = Prompts::from_file_text(Api::Chat, text, true, Some("be brief".into()), "d.jsonl");
        let prompts = prompts.unwrap();
        assert_eq!((prompts.len(), prompts.source.as_str()), (Some(2), "file d.jsonl (2 prompts)"));
        let lines: Vec<usize> = bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [3, 4, 5], "{bad:?}");
        assert!(bad[0].1.starts_with("not JSON"), "{bad:?}");
        assert_eq!(bad[1].1, "`messages` is empty");
        assert_eq!(bad[2].1, "messages[0] has no `role` string");
        // The system message goes before a text prompt, not into given messages.
        assert!(prompts.prompt(0).json.get().contains("be brief"));
        assert!(!prompts.prompt(1).json.get().contains("be brief"));
        let (plain, bad) = Prompts::from_file_text(Api::Chat, "one\ntwo\n", false, None, "p.txt");
        assert_eq!((plain.unwrap().len(), bad.len()), (Some(2), 0));
        // The completions endpoint takes text: a `messages` line is named, `prompt` lines are text.
        let (prompts, bad) = Prompts::from_file_text(Api::Completions, text, true, None, "d.jsonl");
        assert_eq!(prompts.unwrap().prompt(0).json.get(), r#""a""#);
        assert!(bad.iter().any(|(n, why)| *n == 6 && why.starts_with("a `messages` prompt needs target.api = \"chat\"")), "{bad:?}");
    }
}
