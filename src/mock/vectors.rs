//! The mock's embeddings and rerank: what a request asks for, checked (400s name the
//! field), and the answer in each API's shape — OpenAI's `{"object":"list","data":
//! [{"object":"embedding","index","embedding"}],"model","usage"}` (a float list, or the
//! float32s little-endian in base64), and the Cohere/Jina `{"results":[{"index",
//! "relevance_score"}],"usage"}` sorted by score and cut to `top_n`. Vectors and scores
//! are deterministic: the same text gives the same unit vector, the same query and
//! document the same score. Shapes as tests/fixtures/apis holds them (vLLM's, TEI's and
//! llama-server's).

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::Api;

/// A 400's parameter at fault and message.
pub(super) type Invalid = (Option<&'static str>, String);

/// Most texts in one request (OpenAI's embeddings limit).
const MAX_TEXTS: usize = 2048;

/// What an embeddings or rerank request asks for, beyond its texts.
#[derive(Debug, Clone)]
pub(super) enum Task {
    /// One vector per input (each input's text hashed), `dims` long.
    Embed { inputs: Vec<u64>, base64: bool, dims: Option<u32> },
    /// A score per document, the best `top_n`.
    Rerank { scores: Vec<f64>, top_n: Option<usize> },
}

#[derive(Deserialize)]
struct Body {
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<u32>,
    query: Option<Value>,
    documents: Option<Value>,
    top_n: Option<usize>,
    stream: Option<bool>,
}

/// The texts `v` holds: a string, or a non-empty list of strings.
fn texts(v: Option<Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s]),
        Value::Array(list) if !list.is_empty() && list.len() <= MAX_TEXTS => {
            list.into_iter().map(|t| if let Value::String(s) = t { Some(s) } else { None }).collect()
        }
        _ => None,
    }
}

/// An embeddings or rerank request: the texts to read (a rerank's query once per
/// document, as a cross-encoder reads each pair), and its task.
pub(super) fn parse(api: Api, body: &[u8]) -> Result<(Value, Task), Invalid> {
    let b: Body = serde_json::from_slice(body).map_err(|e| (None, format!("We could not parse the JSON body of your request: {e}")))?;
    if b.stream == Some(true) {
        return Err((Some("stream"), format!("stream is not supported by /v1/{}", api.path())));
    }
    match api {
        Api::Rerank => {
            let Some(Value::String(query)) = b.query else {
                return Err((Some("query"), "query must be a string".into()));
            };
            let docs = texts(b.documents).ok_or((Some("documents"), format!("documents must be 1 to {MAX_TEXTS} strings")))?;
            let scores = docs.iter().map(|d| unit(hash(&[&query, d]))).collect();
            let pairs = docs.iter().flat_map(|d| [Value::String(query.clone()), Value::String(d.clone())]).collect();
            Ok((Value::Array(pairs), Task::Rerank { scores, top_n: b.top_n.filter(|&n| n > 0) }))
        }
        _ => {
            let inputs = texts(b.input).ok_or((Some("input"), format!("input must be a string or 1 to {MAX_TEXTS} strings")))?;
            let base64 = match b.encoding_format.as_deref() {
                None | Some("float") => false,
                Some("base64") => true,
                Some(other) => return Err((Some("encoding_format"), format!("encoding_format must be float or base64, got {other:?}"))),
            };
            if let Some(d) = b.dimensions.filter(|&d| d == 0 || d > super::config::MAX_EMBEDDING_DIMS) {
                return Err((Some("dimensions"), format!("dimensions must be from 1 to {}, got {d}", super::config::MAX_EMBEDDING_DIMS)));
            }
            let hashes = inputs.iter().map(|t| hash(&[t])).collect();
            Ok((Value::Array(inputs.into_iter().map(Value::String).collect()), Task::Embed { inputs: hashes, base64, dims: b.dimensions }))
        }
    }
}

/// FNV-1a over the texts, a 0xff apart.
pub(super) fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The next of a splitmix64 sequence.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) from `seed`.
pub(super) fn unit(seed: u64) -> f64 {
    let mut s = seed;
    (next(&mut s) >> 11) as f64 / (1u64 << 53) as f64
}

/// The unit vector of a text's hash, `dims` long.
fn vector(seed: u64, dims: u32) -> Vec<f32> {
    let mut s = seed;
    let mut v: Vec<f32> = (0..dims).map(|_| ((next(&mut s) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The answer's body: `model` answers, `tokens` were read (its usage).
pub(super) fn body(task: &Task, id: &str, model: &str, tokens: u64) -> Value {
    let usage = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    match task {
        Task::Embed { inputs, base64, dims } => {
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, &h)| {
                    let v = vector(h, dims.unwrap_or(super::config::DEFAULT_EMBEDDING_DIMS));
                    let embedding = match base64 {
                        true => Value::String(base64::engine::general_purpose::STANDARD.encode(le_bytes(&v))),
                        false => json!(v),
                    };
                    json!({"object": "embedding", "index": index, "embedding": embedding})
                })
                .collect();
            json!({"id": id, "object": "list", "created": 0, "model": model, "data": data, "usage": usage})
        }
        Task::Rerank { scores, top_n } => {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            order.truncate(top_n.unwrap_or(scores.len()));
            let results: Vec<Value> = order.iter().map(|&i| json!({"index": i, "relevance_score": scores[i]})).collect();
            json!({"id": id, "model": model, "usage": usage, "results": results})
        }
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_unit_vectors_of_their_text_in_either_encoding() {
        let (texts, task) = parse(Api::Embeddings, br#"{"model":"m","input":["a","b","a"],"dimensions":8}"#).unwrap();
        assert_eq!(texts, json!(["a", "b", "a"]));
        let v = body(&task, "e", "m", 3);
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        let vec = |i: usize| data[i]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
        assert_eq!(vec(0).len(), 8);
        assert_eq!(vec(0), vec(2), "the same text, the same vector");
        assert_ne!(vec(0), vec(1));
        assert!((vec(1).iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
        let (_, b64) = parse(Api::Embeddings, br#"{"model":"m","input":"a","encoding_format":"base64","dimensions":16}"#).unwrap();
        let v = body(&b64, "e", "m", 1);
        let bytes = base64::engine::general_purpose::STANDARD.decode(v["data"][0]["embedding"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 16 * 4);
        assert_eq!(v["usage"], json!({"prompt_tokens": 1, "total_tokens": 1}));
        for bad in [r#"{"input":[]}"#, r#"{"input":[1]}"#, r#"{"input":"a","encoding_format":"bytes"}"#, r#"{"input":"a","stream":true}"#] {
            assert!(parse(Api::Embeddings, bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn rerank_scores_each_pair_and_keeps_the_best_top_n() {
        let (pairs, task) = parse(Api::Rerank, br#"{"model":"m","query":"q","documents":["x","y","z"],"top_n":2}"#).unwrap();
        assert_eq!(pairs, json!(["q", "x", "q", "y", "q", "z"]));
        let v = body(&task, "r", "m", 9);
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        let (a, b) = (results[0]["relevance_score"].as_f64().unwrap(), results[1]["relevance_score"].as_f64().unwrap());
        assert!(a >= b && (0.0..1.0).contains(&b), "{results:?}");
        assert!(results.iter().all(|r| r["index"].as_u64().unwrap() < 3));
        assert!(parse(Api::Rerank, br#"{"model":"m","documents":["x"]}"#).is_err());
        assert!(parse(Api::Rerank, br#"{"model":"m","query":"q","documents":"x"}"#).is_ok(), "one document as a string");
    }
}
