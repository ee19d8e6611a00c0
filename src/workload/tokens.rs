//! The counting tokenizer: o200k_base (default) or cl100k_base, tiktoken's encodings
//! built in (`bpe.rs`), or a Hugging Face `tokenizer.json` loaded offline with the `tokenizers`
//! crate (Llama, Qwen, Mistral, Gemma …), or the server's own through its tokenize
//! endpoint (`remote.rs`). One tokenizer builds synthetic prompts, counts what is sent
//! and counts the replies; content tokens only, never a chat template's or special
//! tokens (servers add those).

use std::path::Path;
use std::sync::Arc;

use crate::model::TokenSource;

use serde_json::Value;

use super::bpe::Bpe;

/// A tokenizer, cheap to clone (shared).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
    /// "o200k_base", "cl100k_base", the file's name as given, or the server's endpoint.
    name: Arc<str>,
    /// A built-in encoding that is the model's own (the embedded mock counts in it).
    own: bool,
}

enum Inner {
    /// Built on first use (~4 MiB, a few ms): a run that counts nothing never pays.
    Tiktoken(fn() -> &'static Bpe),
    Hf(Box<tokenizers::Tokenizer>),
    Server(super::remote::Server),
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
        Some(Tokenizer { inner: Arc::new(Inner::Tiktoken(bpe)), name: name.into(), own: false })
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
        Ok(Tokenizer { inner: Arc::new(Inner::Hf(Box::new(hf))), name: name.into(), own: false })
    }

    /// The server's own tokenizer, reached through `remote` (its tokenize endpoint).
    pub fn server(remote: Box<dyn super::remote::Remote>) -> Tokenizer {
        let name = remote.describe();
        Tokenizer { inner: Arc::new(Inner::Server(super::remote::Server::new(remote))), name: name.into(), own: false }
    }

    /// The same, said to be the model's own (a built-in encoding the embedded mock counts in).
    pub fn as_the_models(mut self) -> Tokenizer {
        self.own = true;
        self
    }

    /// Where its counts come from: the server's tokenizer, the model's here (a file, or
    /// the mock's encoding), or an estimate in another model's.
    pub fn source(&self) -> TokenSource {
        match &*self.inner {
            Inner::Server(_) => TokenSource::ServerTokenizer,
            Inner::Hf(_) => TokenSource::LocalTokenizer,
            Inner::Tiktoken(_) if self.own => TokenSource::LocalTokenizer,
            Inner::Tiktoken(_) => TokenSource::Estimate,
        }
    }

    /// The server's tokenizer, when it is one.
    pub fn remote(&self) -> Option<&super::remote::Server> {
        match &*self.inner {
            Inner::Server(s) => Some(s),
            _ => None,
        }
    }

    /// Whether it is the server's (its calls wait for a stage's window to close).
    pub fn is_server(&self) -> bool {
        matches!(&*self.inner, Inner::Server(_))
    }

    /// Whether a long text may be tokenized piece by piece (not through a server: a
    /// call per word would cost more than one per text).
    pub fn piecewise(&self) -> bool {
        !matches!(&*self.inner, Inner::Server(_))
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
            Inner::Server(s) => s.encode(text),
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
            // Ids travel one way: a server's are never decoded here.
            Inner::Server(_) => None,
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
            // Messages, or an embeddings batch's texts.
            Value::Array(items) => items.iter().map(|m| m.as_str().map_or_else(|| self.message_tokens(m), |t| self.count(t))).sum(),
            Value::String(text) => self.count(text),
            // Anthropic's system text apart from its messages; a rerank's query and
            // documents.
            Value::Object(o) => {
                ["system", "messages", "query", "documents"].iter().filter_map(|k| o.get(*k)).map(|v| self.prompt_tokens(v)).sum()
            }
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

    use std::sync::atomic::{AtomicU64, Ordering};

    /// Words as tokens: each word's length is its id.
    struct Words(Arc<AtomicU64>);
    impl super::super::remote::Remote for Words {
        fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            if text.contains("boom") {
                return Err("status 500".into());
            }
            Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
        }
        fn describe(&self) -> String {
            "words".into()
        }
    }

    #[test]
    fn each_text_is_asked_once_none_while_held_and_failures_are_estimates() {
        let seen = Arc::new(AtomicU64::new(0));
        let tok = Tokenizer::server(Box::new(Words(seen.clone())));
        assert_eq!(tok.count("a bb ccc"), 3);
        assert_eq!(tok.encode("a bb ccc"), [1, 2, 3]);
        assert_eq!(seen.load(Ordering::Relaxed), 1, "remembered");
        let s = tok.remote().unwrap();
        s.hold(true);
        assert_eq!(tok.count("hello world again"), Tokenizer::o200k().count("hello world again"));
        assert_eq!(tok.count("a bb ccc"), 3, "remembered texts still count while held");
        assert_eq!(seen.load(Ordering::Relaxed), 1, "nothing asked while held");
        s.hold(false);
        assert_eq!(tok.count("boom x"), Tokenizer::o200k().count("boom x"));
        let st = s.stats();
        assert_eq!((st.calls, st.estimated, st.failure.as_deref()), (2, 2, Some("status 500")));
        assert_eq!(tok.name(), "words");
        assert!(!tok.piecewise() && tok.decode(&[1]).is_none());
    }
}
