//! The counting tokenizer: o200k_base (default) or cl100k_base, tiktoken's encodings
//! built in (`bpe.rs`), or a Hugging Face `tokenizer.json` loaded offline with the `tokenizers`
//! crate (Llama, Qwen, Mistral, Gemma …). One tokenizer builds synthetic prompts,
//! counts what is sent and counts the replies; content tokens only, never a chat
//! template's or special tokens (servers add those).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::bpe::Bpe;

/// A tokenizer, cheap to clone (shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
    /// "o200k_base", "cl100k_base", or the file's name as given.
    name: Arc<str>,
}

enum Inner {
    /// Built on first use (~4 MiB, a few ms): a run that counts nothing never pays.
    Tiktoken(fn() -> &'static Bpe),
    Hf(Box<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({})", self.name)
    }
}

impl Default for Tokenizer {
    fn default() -> Self {
        Tokenizer::o200k()
    }
}

/// The built-in encodings, by the names tiktoken gives them.
pub const BUILT_IN: [&str; 2] = ["o200k_base", "cl100k_base"];

impl Tokenizer {
    /// o200k_base (GPT-4o / 4.1 family): the default.
    pub fn o200k() -> Tokenizer {
        Tokenizer::built_in("o200k_base").expect("o200k_base is built in")
    }

    /// A built-in encoding by name; None for a name not in [`BUILT_IN`].
    pub fn built_in(name: &str) -> Option<Tokenizer> {
        let bpe: fn() -> &'static Bpe = match name {
            "o200k_base" => super::bpe::o200k,
            "cl100k_base" => super::bpe::cl100k,
            _ => return None,
        };
        Some(Tokenizer { inner: Arc::new(Inner::Tiktoken(bpe)), name: name.into() })
    }

    /// A Hugging Face `tokenizer.json`, read from disk (nothing is downloaded). `name` is
    /// how it is named in results.
    pub fn from_file(path: &Path, name: &str) -> Result<Tokenizer, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Tokenizer::from_bytes(&bytes, name).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A Hugging Face tokenizer from the bytes of its `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Tokenizer, String> {
        let hf = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| format!("not a Hugging Face tokenizer.json ({})", first_line(&e.to_string())))?;
        Ok(Tokenizer { inner: Arc::new(Inner::Hf(Box::new(hf))), name: name.into() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token ids of `text`: content only, no special tokens added.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        match &*self.inner {
            Inner::Tiktoken(bpe) => {
                let mut ids = Vec::new();
                bpe().encode_into(text, &mut ids);
                ids
            }
            // An encoding error (none is known for valid UTF-8) counts as nothing.
            Inner::Hf(hf) => hf.encode_fast(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default(),
        }
    }

    /// Tokens in `text`.
    pub fn count(&self, text: &str) -> u64 {
        self.encode(text).len() as u64
    }

    /// The text of `ids`; None when they do not decode to valid UTF-8 by themselves.
    pub fn decode(&self, ids: &[u32]) -> Option<String> {
        match &*self.inner {
            Inner::Tiktoken(bpe) => String::from_utf8(bpe().decode(ids)?).ok(),
            Inner::Hf(hf) => hf.decode(ids, false).ok(),
        }
    }

    /// Tokens of a chat message's text content: a string, or the text parts of an array.
    pub fn message_tokens(&self, m: &Value) -> u64 {
        match m.get("content") {
            Some(Value::String(s)) => self.count(s),
            Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(|t| self.count(t)).sum(),
            _ => 0,
        }
    }

    /// Tokens of a prompt as sent: the messages' contents (chat) or the text
    /// (completions).
    pub fn prompt_tokens(&self, prompt: &Value) -> u64 {
        match prompt {
            Value::Array(messages) => messages.iter().map(|m| self.message_tokens(m)).sum(),
            Value::String(text) => self.count(text),
            _ => 0,
        }
    }

    /// Loads the encoding now, so the first request does not pay for it (~0.1 s).
    pub fn warm_up(&self) {
        let _ = self.count("warm up");
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_strings() {
        let t = Tokenizer::o200k();
        assert_eq!(t.count(""), 0);
        assert_eq!(t.count("hello world"), 2);
        assert!(t.count("Write Python code that computes 7!") >= 6);
        let m = serde_json::json!({"role": "user", "content": "hello world"});
        assert_eq!(t.message_tokens(&m), 2);
        let parts = serde_json::json!({"role": "user", "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}]});
        assert_eq!(t.message_tokens(&parts), 2);
        assert_eq!(t.decode(&t.encode("hello world")).as_deref(), Some("hello world"));
        let cl = Tokenizer::built_in("cl100k_base").unwrap();
        assert_eq!(cl.count("hello world"), 2);
        assert!(Tokenizer::built_in("p50k").is_none());
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_named() {
        let e = Tokenizer::from_bytes(b"{\"hello\": 1}", "x.json").unwrap_err();
        assert!(e.starts_with("not a Hugging Face tokenizer.json"), "{e}");
        assert!(!e.contains('\n'));
        let e = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json"), "t").unwrap_err();
        assert!(e.contains("cannot read /nonexistent/tokenizer.json"), "{e}");
    }
}
