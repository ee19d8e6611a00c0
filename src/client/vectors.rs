//! A whole reply of embeddings or rerank, checked against what was sent. Embeddings
//! (OpenAI's shape: `data[].embedding`, a float list or float32s in base64): one vector
//! per input, each index once, every vector of one length, every number finite — read
//! without keeping a number. Rerank (Cohere's and Jina's `results[]` with
//! `relevance_score`, or TEI's bare list with `score`): each index a document sent and
//! once, every score finite, at most `top_n`. What fails is said in one line, and a
//! reply of another API's shape is named as what came.

use std::fmt;

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use crate::model::{Api, Expect, Usage};

/// One embedding as read: its length, and whether every number was finite.
struct Vector {
    dims: usize,
    finite: bool,
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Vector, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of numbers or a base64 string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
                let mut v = Vector { dims: 0, finite: true };
                while let Some(x) = seq.next_element::<f64>()? {
                    v.dims += 1;
                    v.finite &= x.is_finite();
                }
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vector, E> {
                let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| E::custom("an embedding is not base64"))?;
                if bytes.len() % 4 != 0 {
                    return Err(E::custom(format!("a base64 embedding of {} bytes is not float32s", bytes.len())));
                }
                let finite = bytes.chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
                Ok(Vector { dims: bytes.len() / 4, finite })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Embedding {
    index: Option<u64>,
    embedding: Vector,
}

#[derive(Deserialize)]
struct Embeddings {
    data: Vec<Embedding>,
    #[serde(default, deserialize_with = "super::reply::lenient")]
    usage: Option<TokensUsed>,
}

/// Embeddings' and rerank's usage: `prompt_tokens`, or only `total_tokens` (some rerank
/// servers), all of it input.
#[derive(Deserialize)]
struct TokensUsed {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Ranked {
    index: u64,
    relevance_score: Option<f64>,
    score: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Rerank {
    Results {
        results: Vec<Ranked>,
        #[serde(default, deserialize_with = "super::reply::lenient")]
        usage: Option<TokensUsed>,
    },
    /// TEI's.
    Bare(Vec<Ranked>),
}

/// What a checked reply said: the server's count of what it read.
#[derive(Debug, PartialEq)]
pub(super) struct Checked {
    pub usage: Option<Usage>,
    /// Embeddings: each vector's length.
    pub dims: Option<usize>,
}

fn usage(u: Option<TokensUsed>) -> Option<Usage> {
    let u = u?;
    let prompt_tokens = u.prompt_tokens.or(u.total_tokens)?;
    Some(Usage { prompt_tokens: Some(prompt_tokens), completion_tokens: Some(0), ..Usage::default() })
}

/// `body` checked as `api`'s reply to a request that sent `expect`. Err: why not, in
/// one line.
pub(super) fn check(api: Api, body: &[u8], expect: Expect) -> Result<Checked, String> {
    match api {
        Api::Rerank => rerank(body, expect),
        _ => embeddings(body, expect),
    }
}

fn embeddings(body: &[u8], expect: Expect) -> Result<Checked, String> {
    let e: Embeddings = serde_json::from_slice(body).map_err(|err| not("an embeddings list (`data`)", "data", body, &err))?;
    let sent = expect.items.map_or(1, u64::from);
    if e.data.len() as u64 != sent {
        return Err(format!("{} embeddings for {sent} inputs", e.data.len()));
    }
    let mut seen = vec![false; e.data.len()];
    let dims = e.data.first().map(|v| v.embedding.dims);
    for (k, v) in e.data.iter().enumerate() {
        let i = v.index.unwrap_or(k as u64);
        match seen.get_mut(i as usize) {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(format!("embedding index {i} twice")),
            None => return Err(format!("embedding index {i} for {sent} inputs")),
        }
        if v.embedding.dims == 0 || Some(v.embedding.dims) != dims {
            return Err(format!("embeddings of {} and {} numbers in one reply", dims.unwrap_or(0), v.embedding.dims));
        }
        if !v.embedding.finite {
            return Err(format!("embedding {i} holds a number that is not finite"));
        }
    }
    Ok(Checked { usage: usage(e.usage), dims })
}

fn rerank(body: &[u8], expect: Expect) -> Result<Checked, String> {
    let r: Rerank = serde_json::from_slice(body).map_err(|err| not("rerank results (`results`)", "results", body, &err))?;
    let (results, used) = match r {
        Rerank::Results { results, usage } => (results, usage),
        Rerank::Bare(results) => (results, None),
    };
    let docs = expect.items.map_or(u64::MAX, u64::from);
    if let Some(n) = expect.top_n.filter(|&n| results.len() > n as usize) {
        return Err(format!("{} results for top_n = {n}", results.len()));
    }
    if results.len() as u64 > docs {
        return Err(format!("{} results for {docs} documents", results.len()));
    }
    let mut seen = std::collections::HashSet::with_capacity(results.len());
    for r in &results {
        if r.index >= docs {
            return Err(format!("result index {} for {docs} documents", r.index));
        }
        if !seen.insert(r.index) {
            return Err(format!("result index {} twice", r.index));
        }
        if !r.relevance_score.or(r.score).is_some_and(f64::is_finite) {
            return Err(format!("result {} has no finite relevance_score", r.index));
        }
    }
    Ok(Checked { usage: usage(used), dims: None })
}

/// Why `body` is not `expected` (whose list is under `key`): another API's reply named
/// as what came, else where its JSON went wrong (never a value: a server may echo
/// anything, the key included).
fn not(expected: &str, key: &str, body: &[u8], err: &serde_json::Error) -> String {
    let at = format!("at line {} column {}", err.line(), err.column());
    let came = match serde_json::from_slice::<Value>(body) {
        Err(_) => format!("invalid JSON {at}"),
        Ok(v) if v.get(key).is_some() || v.is_array() => format!("one of the wrong shape {at}"),
        Ok(v) => what_came(&v),
    };
    format!("expected {expected}, came {came}")
}

/// Which reply `v` looks like, by its keys (never a value).
pub(super) fn what_came(v: &Value) -> String {
    let has = |k: &str| v.get(k).is_some();
    if has("choices") {
        return "a chat or text completion".into();
    }
    if has("data") && v["object"] == "list" {
        return "an embeddings list".into();
    }
    if has("results") {
        return "rerank results".into();
    }
    if has("output") && v["object"] == "response" {
        return "a Responses API response".into();
    }
    if v["type"] == "message" && has("content") {
        return "an Anthropic message".into();
    }
    if has("error") {
        return "an error".into();
    }
    match v {
        Value::Object(o) => format!("JSON with keys {}", o.keys().take(6).map(String::as_str).collect::<Vec<_>>().join(", ")),
        _ => "JSON of another kind".into(),
    }
}

#[cfg(test)]
mod tests;
