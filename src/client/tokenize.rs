//! The server's tokenize endpoint, found and spoken: the shapes of llama.cpp's
//! llama-server, vLLM and SGLang, TGI and llama-cpp-python (each read in its project's
//! source; captured forms with their sources in `tests/fixtures/tokenize/`). Calls go
//! through a thread of their own with its own runtime, so the workload's code (which
//! counts synchronously, before the clock) can call it from anywhere, and the target's
//! key and headers go with them as with every request.
//!
//! Special tokens: llama.cpp adds none unless asked, vLLM/SGLang are asked not to; TGI
//! and llama-cpp-python add the model's BOS (EOS) with no way to say no — what they add
//! to an empty text is found once and cut from every answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{ClientConfig, Transport, transport_to};
use crate::workload::remote::Remote;

/// A tokenize endpoint's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /tokenize {"content", "add_special": false}` → `{"tokens": [id]}`.
    LlamaCpp,
    /// `POST /tokenize {"model", "prompt", "add_special_tokens": false}` →
    /// `{"count", "max_model_len", "tokens": [id]}` (SGLang answers alike).
    Vllm,
    /// `POST /tokenize {"inputs"}` → `[{"id", "text", "start", "stop"}]`.
    Tgi,
    /// `POST /extras/tokenize {"input", "model"}` → `{"tokens": [id]}`.
    LlamaCppPython,
}

/// In the order tried: each answers the others' bodies with an error (a field missing).
const KINDS: [Kind; 4] = [Kind::LlamaCpp, Kind::Vllm, Kind::Tgi, Kind::LlamaCppPython];

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::LlamaCppPython => "/extras/tokenize",
            _ => "/tokenize",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::LlamaCpp => "llama.cpp",
            Kind::Vllm => "vLLM/SGLang",
            Kind::Tgi => "TGI",
            Kind::LlamaCppPython => "llama-cpp-python",
        }
    }

    fn body(self, model: &str, text: &str) -> Value {
        match self {
            Kind::LlamaCpp => json!({"content": text, "add_special": false, "parse_special": false}),
            Kind::Vllm => json!({"model": model, "prompt": text, "add_special_tokens": false}),
            Kind::Tgi => json!({"inputs": text}),
            Kind::LlamaCppPython => json!({"input": text, "model": model}),
        }
    }

    /// The ids in a 2xx reply of this shape.
    fn ids(self, reply: &[u8]) -> Option<Vec<u32>> {
        let v: Value = serde_json::from_slice(reply).ok()?;
        let list = match self {
            Kind::Tgi => v.as_array()?.iter().map(|t| t.get("id")).collect::<Option<Vec<_>>>()?,
            _ => v.get("tokens")?.as_array()?.iter().collect(),
        };
        list.into_iter().map(|id| id.as_u64().and_then(|n| u32::try_from(n).ok())).collect()
    }
}

/// Most bytes of a tokenize reply read.
const MOST_REPLY_BYTES: usize = 64 << 20;

/// One call, for the tokenize thread.
struct Job {
    path: &'static str,
    body: Bytes,
    reply: mpsc::Sender<Result<(u16, Vec<u8>), String>>,
}

/// The thread that makes the calls, one at a time, on its own runtime.
fn caller(cfg: ClientConfig) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new().name("tokenize".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        let mut transports: HashMap<&'static str, Transport> = HashMap::new();
        while let Ok(job) = rx.recv() {
            let answer = match transports.get(job.path) {
                Some(t) => Ok(t),
                None => transport_to(&cfg, &root_path(&cfg, job.path), 1)
                    .map(|t| &*transports.entry(job.path).or_insert(t))
                    .map_err(|e| e.to_string()),
            }
            .and_then(|t| rt.block_on(post(t, job.body)));
            let _ = job.reply.send(answer);
        }
    });
    // Without the thread every call fails, and says so.
    drop(spawned);
    tx
}

/// `path` on the server's root: the base URL's path without its `/v1`.
fn root_path(cfg: &ClientConfig, path: &str) -> String {
    let base = cfg.base_url.path().trim_end_matches('/');
    format!("{}{path}", base.strip_suffix("/v1").unwrap_or(base))
}

async fn post(t: &Transport, body: Bytes) -> Result<(u16, Vec<u8>), String> {
    let mut resp = t.post(body).await.map_err(|e| e.describe())?;
    Ok((resp.status(), resp.read_all(MOST_REPLY_BYTES).await?))
}

/// A tokenize endpoint found on the server.
pub struct Endpoint {
    kind: Kind,
    model: String,
    /// Where it is, for messages ("http://host:port/tokenize", no credentials).
    at: String,
    /// What the server adds to every text (BOS before, EOS after), cut from its answers.
    before: Vec<u32>,
    after: Vec<u32>,
    calls: Mutex<mpsc::Sender<Job>>,
}

impl Endpoint {
    /// Finds the server's tokenize endpoint for `model`: each shape tried in turn on
    /// a short text. Err: one line naming what was tried and how each answered.
    pub fn find(cfg: ClientConfig, model: &str) -> Result<Endpoint, String> {
        let shown = super::get::shown(&cfg.base_url);
        let shown = shown.trim_end_matches('/');
        let origin = shown.strip_suffix("/v1").unwrap_or(shown).to_string();
        let calls = caller(cfg);
        let mut tried = Vec::new();
        for kind in KINDS {
            let mut e = Endpoint {
                kind,
                model: model.to_string(),
                at: format!("{origin}{}", kind.path()),
                before: vec![],
                after: vec![],
                calls: Mutex::new(calls.clone()),
            };
            match e.call("hello world") {
                Ok(ids) if !ids.is_empty() => {
                    e.fixed_ends(&ids);
                    return Ok(e);
                }
                Ok(_) => tried.push(format!("{} as {}: no tokens", kind.path(), kind.name())),
                Err(why) => {
                    let hung = why.contains("timed out");
                    tried.push(format!("{} as {}: {why}", kind.path(), kind.name()));
                    // A server that does not answer at all will not answer the next shape.
                    if hung {
                        break;
                    }
                }
            }
        }
        Err(format!("no tokenize endpoint answered at {origin} for model {model:?} (tried POST {})", tried.join("; ")))
    }

    /// What the server adds to an empty text, split into what comes before a text and
    /// after it (by `hello`'s ids, which carry both).
    fn fixed_ends(&mut self, hello: &[u32]) {
        let Ok(empty) = self.call("") else { return };
        let before = empty.iter().zip(hello).take_while(|(a, b)| a == b).count();
        let after = &empty[before..];
        if hello.len() >= empty.len() && hello.ends_with(after) {
            self.before = empty[..before].to_vec();
            self.after = after.to_vec();
        }
    }

    /// The ids the server gives `text`, as it sends them.
    fn call(&self, text: &str) -> Result<Vec<u32>, String> {
        let (tx, rx) = mpsc::channel();
        let body = Bytes::from(self.kind.body(&self.model, text).to_string());
        let job = Job { path: self.kind.path(), body, reply: tx };
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).send(job).map_err(|_| "the tokenize thread is gone".to_string())?;
        let (status, reply) = rx.recv().map_err(|_| "the tokenize thread is gone".to_string())??;
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        self.kind.ids(&reply).ok_or_else(|| "not its reply's shape".to_string())
    }
}

impl Remote for Endpoint {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut ids = self.call(text)?;
        if ids.starts_with(&self.before) && ids[self.before.len()..].ends_with(&self.after) {
            ids.truncate(ids.len() - self.after.len());
            ids.drain(..self.before.len());
        }
        Ok(ids)
    }

    fn describe(&self) -> String {
        format!("server: {} POST {}", self.kind.name(), self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each captured reply (tests/fixtures/tokenize, with its source) reads as its kind's.
    #[test]
    fn captured_replies_read_as_their_shapes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenize");
        for (file, kind) in [
            ("llamacpp.json", Kind::LlamaCpp),
            ("vllm.json", Kind::Vllm),
            ("sglang.json", Kind::Vllm),
            ("tgi.json", Kind::Tgi),
            ("llama-cpp-python.json", Kind::LlamaCppPython),
        ] {
            let f: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
            assert_eq!(f["path"], kind.path(), "{file}");
            let reply = serde_json::to_vec(&f["reply"]).unwrap();
            let ids = kind.ids(&reply).unwrap_or_else(|| panic!("{file}: {}", f["reply"]));
            assert!(!ids.is_empty(), "{file}");
            // The request we send names the same fields the fixture's does.
            let ours = kind.body("m", "hello world");
            let theirs = f["request"].as_object().unwrap();
            for key in ours.as_object().unwrap().keys() {
                assert!(theirs.contains_key(key), "{file}: the server's request has no {key:?}");
            }
            for other in KINDS.iter().filter(|k| k.path() == kind.path() && **k != kind) {
                assert!(
                    other.ids(&reply).is_none() || matches!((kind, *other), (Kind::LlamaCpp | Kind::Vllm, Kind::LlamaCpp | Kind::Vllm)),
                    "{file} read as {other:?}"
                );
            }
        }
    }
}
