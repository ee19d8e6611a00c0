//! Requests that carry several texts (and the spec of the images they carry:
//! `images`). An embeddings batch is `batch_size` of the
//! stage's prompts sent as one `input` list; a rerank request is a prompt as its query
//! and `documents` drawn from a corpus of synthetic documents, built once per stage to
//! the lengths asked (a retriever returns passages of one collection, so documents
//! recur across queries, as they do in a RAG service). Each request draws its batch
//! size, document count and documents from a generator of its own, seeded by (seed,
//! stage, request number): the same seed sends the same requests in any order.

use std::borrow::Cow;
use std::sync::Arc;

use rand::rngs::StdRng;

use super::dist::Dist;
use super::prompt::Prompt;
use super::prompts::Prompts;
use super::synth::WordPool;
use crate::model::Api;

/// Most inputs in one embeddings request (OpenAI's limit) and documents in one rerank.
pub const MAX_TEXTS: u32 = 2048;
/// Documents per rerank query when a scenario sets none.
pub const DEFAULT_DOCUMENTS: u32 = 16;
/// A synthetic document's length when a scenario sets none, in tokens.
pub const DEFAULT_DOCUMENT_TOKENS: u32 = 128;
/// Documents in a stage's corpus, and the most bytes they may take.
const CORPUS: usize = 1024;
const CORPUS_BYTES: usize = 64 << 20;

/// How many texts a stage's requests carry, as its scenario sets them.
#[derive(Debug, Clone, Default)]
pub struct TextsSpec {
    /// Embeddings: inputs per request. None sends each prompt alone, as a string.
    pub batch: Option<Dist>,
    /// Rerank: documents per query (default [`DEFAULT_DOCUMENTS`]), and their lengths
    /// (default [`DEFAULT_DOCUMENT_TOKENS`]).
    pub documents: Option<Dist>,
    pub document_tokens: Option<Dist>,
    /// Seeds the draws (the scenario's prompt seed).
    pub seed: u64,
    /// Makes a rerank's documents (the counting tokenizer's words).
    pub pool: Option<Arc<WordPool>>,
    /// Images each request carries (chat, the Responses API, Messages).
    pub images: Option<super::images::ImagesSpec>,
}

/// The same counts and seed (the word pool is the tokenizer's, the same for a run).
impl PartialEq for TextsSpec {
    fn eq(&self, o: &TextsSpec) -> bool {
        (&self.batch, &self.documents, &self.document_tokens, self.seed, &self.images)
            == (&o.batch, &o.documents, &o.document_tokens, o.seed, &o.images)
    }
}

/// A stage's way of making request *i*'s prompt from its prompts.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// One prompt per request, as it is.
    One,
    /// `batch` prompts as a list; request *i*'s are prompts *i*·`stride` onwards.
    Batch { batch: Dist, stride: u64, seed: u64 },
    /// A prompt as the query, with documents of the corpus.
    Rerank { documents: Dist, corpus: Arc<Corpus>, seed: u64 },
}

/// A stage's synthetic documents: each serialized once, with its count.
#[derive(Debug)]
pub(super) struct Corpus {
    docs: Vec<(String, u64)>,
}

impl Corpus {
    /// Up to [`CORPUS`] documents of lengths drawn from `lengths`, within
    /// [`CORPUS_BYTES`].
    fn build(pool: &WordPool, lengths: &Dist, seed: u64, stage: u64) -> Corpus {
        let mut rng = rng(seed ^ 0x646f_6373, stage, u64::MAX);
        let mut docs = Vec::with_capacity(CORPUS);
        let mut bytes = 0;
        while docs.len() < CORPUS && (bytes < CORPUS_BYTES || docs.is_empty()) {
            let (text, n) = pool.document(lengths.sample(&mut rng), Some(docs.len() as u64), &mut rng);
            let json = serde_json::to_string(&text).expect("a string serializes");
            bytes += json.len();
            docs.push((json, n));
        }
        Corpus { docs }
    }
}

/// Request `i`'s generator for these draws (apart from its lengths').
fn rng(seed: u64, stage: u64, i: u64) -> StdRng {
    super::dist::rng_named(seed, stage, i, b"texts\0\0\0")
}

impl Shape {
    /// The shape of `api`'s requests under `spec`; a rerank builds its corpus now.
    pub(super) fn new(api: Api, spec: &TextsSpec, stage: u64) -> Shape {
        match (api, spec.pool.as_deref()) {
            (Api::Embeddings, _) => match &spec.batch {
                Some(batch) => Shape::Batch { batch: batch.clone(), stride: u64::from(most(batch)), seed: spec.seed },
                None => Shape::One,
            },
            (Api::Rerank, Some(pool)) => {
                let lengths = spec.document_tokens.clone().unwrap_or(Dist::Fixed(DEFAULT_DOCUMENT_TOKENS));
                Shape::Rerank {
                    documents: spec.documents.clone().unwrap_or(Dist::Fixed(DEFAULT_DOCUMENTS)),
                    corpus: Arc::new(Corpus::build(pool, &lengths, spec.seed, stage)),
                    seed: spec.seed,
                }
            }
            _ => Shape::One,
        }
    }

    /// Request `i`'s prompt (`i` the whole run's number) in stage `stage`.
    pub(super) fn prompt<'a>(&self, prompts: &'a Prompts, stage: u64, i: u64) -> Cow<'a, Prompt> {
        match self {
            Shape::One => prompts.prompt_in(stage, i),
            Shape::Batch { batch, stride, seed } => {
                let n = draw(batch, &mut rng(*seed, stage, i));
                let parts: Vec<_> = (0..u64::from(n)).map(|j| prompts.prompt_in(stage, i * stride + j)).collect();
                let tokens = parts.iter().map(|p| p.known_tokens()).sum::<Option<u64>>();
                Cow::Owned(Prompt::joined(list(parts.iter().map(|p| p.json.get())), tokens, n))
            }
            Shape::Rerank { .. } => Cow::Owned(self.around(&prompts.prompt_in(stage, i), stage, i)),
        }
    }

    /// `query` with what request `i` carries around it: a rerank's documents (drawn by
    /// `i`); any other shape's prompt is the query as it is.
    pub(super) fn around(&self, query: &Prompt, stage: u64, i: u64) -> Prompt {
        let Shape::Rerank { documents, corpus, seed } = self else { return query.clone() };
        let mut rng = rng(*seed, stage, i);
        let n = draw(documents, &mut rng);
        let picked = pick(&mut rng, corpus.docs.len(), n as usize);
        let docs = list(picked.iter().map(|&d| corpus.docs[d].0.as_str()));
        let json = format!("{{\"query\":{},\"documents\":{docs}}}", query.json.get());
        let tokens = query.known_tokens().map(|q| q + picked.iter().map(|&d| corpus.docs[d].1).sum::<u64>());
        Prompt::joined(json, tokens, n)
    }
}

/// The most texts `d` draws (its bound, at most [`MAX_TEXTS`]).
fn most(d: &Dist) -> u32 {
    match d {
        Dist::Fixed(n) => *n,
        Dist::Normal { max, .. } | Dist::Uniform { max, .. } | Dist::LogNormal { max, .. } => *max,
    }
    .clamp(1, MAX_TEXTS)
}

/// One request's count, within 1..=[`MAX_TEXTS`].
fn draw(d: &Dist, rng: &mut StdRng) -> u32 {
    d.sample(rng).clamp(1, MAX_TEXTS)
}

/// `n` distinct documents of `len` (some again when `n` exceeds them).
fn pick(rng: &mut StdRng, len: usize, n: usize) -> Vec<usize> {
    let distinct = rand::seq::index::sample(rng, len, n.min(len));
    distinct.iter().chain((0..n.saturating_sub(len)).map(|k| k % len)).collect()
}

/// JSON texts as a JSON list.
fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (k, item) in items.enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Tokenizer;
    use serde_json::Value;

    fn texts(n: usize) -> Prompts {
        let list: Vec<String> = (0..n).map(|i| format!("text number {i}")).collect();
        Prompts::list(Api::Embeddings, &list, None).unwrap()
    }

    #[test]
    fn a_batch_is_its_size_of_prompts_and_a_single_input_stays_a_string() {
        let prompts = texts(100);
        let one = Shape::new(Api::Embeddings, &TextsSpec::default(), 0);
        assert_eq!(one.prompt(&prompts, 0, 3).json.get(), "\"text number 3\"");
        let spec = TextsSpec { batch: Some(Dist::Fixed(4)), ..TextsSpec::default() };
        let four = Shape::new(Api::Embeddings, &spec, 0);
        let p = four.prompt(&prompts, 0, 2);
        let v: Value = serde_json::from_str(p.json.get()).unwrap();
        assert_eq!(v, serde_json::json!(["text number 8", "text number 9", "text number 10", "text number 11"]));
        assert_eq!(p.items, Some(4));
        assert_eq!(p.tokens(&Tokenizer::o200k()), 4 * Tokenizer::o200k().count("text number 10"));
        // Drawn sizes stay within the bounds and are the same for the same request.
        let spec = TextsSpec { batch: Some(Dist::Uniform { min: 2, max: 9 }), seed: 5, ..TextsSpec::default() };
        let drawn = Shape::new(Api::Embeddings, &spec, 1);
        let sizes: Vec<u32> = (0..50).map(|i| drawn.prompt(&prompts, 1, i).items.unwrap()).collect();
        assert!(sizes.iter().all(|n| (2..=9).contains(n)) && sizes.iter().any(|&n| n != sizes[0]), "{sizes:?}");
        assert_eq!(drawn.prompt(&prompts, 1, 7).json.get(), drawn.prompt(&prompts, 1, 7).json.get());
    }

    #[test]
    fn every_document_of_a_corpus_is_its_length_as_sent() {
        // Sent as strings of their own, without the leading space a prompt's words
        // have: a first word that is two tokens alone must not make one 21 of 20.
        let tok = Tokenizer::o200k();
        let pool = WordPool::new(&tok).unwrap();
        let corpus = Corpus::build(&pool, &Dist::Fixed(20), 0, 0);
        assert_eq!(corpus.docs.len(), CORPUS);
        for (json, n) in &corpus.docs {
            let text: String = serde_json::from_str(json).unwrap();
            assert_eq!((tok.count(&text), *n), (20, 20), "{text:?}");
        }
    }

    #[test]
    fn a_rerank_is_a_query_and_distinct_documents_of_the_lengths_asked() {
        let tok = Tokenizer::o200k();
        let pool = Some(Arc::new(WordPool::new(&tok).unwrap()));
        let spec = TextsSpec {
            documents: Some(Dist::Fixed(5)),
            document_tokens: Some(Dist::Fixed(40)),
            pool: pool.clone(),
            ..TextsSpec::default()
        };
        let shape = Shape::new(Api::Rerank, &spec, 0);
        let prompts = texts(10);
        let p = shape.prompt(&prompts, 0, 1);
        let v: Value = serde_json::from_str(p.json.get()).unwrap();
        assert_eq!(v["query"], "text number 1");
        let docs = v["documents"].as_array().unwrap();
        assert_eq!((docs.len(), p.items), (5, Some(5)));
        assert!(docs.iter().all(|d| tok.count(d.as_str().unwrap()) == 40), "{docs:?}");
        let distinct: std::collections::HashSet<_> = docs.iter().map(|d| d.as_str().unwrap()).collect();
        assert_eq!(distinct.len(), 5);
        // Counted as sent: the query and every document.
        assert_eq!(p.tokens(&tok), tok.count("text number 1") + 5 * 40);
        // Defaults: 16 documents of 128 tokens.
        let d = Shape::new(Api::Rerank, &TextsSpec { pool, ..TextsSpec::default() }, 0).prompt(&prompts, 0, 0);
        let v: Value = serde_json::from_str(d.json.get()).unwrap();
        assert_eq!(v["documents"].as_array().unwrap().len(), DEFAULT_DOCUMENTS as usize);
        assert_eq!(pick(&mut rng(1, 0, 0), 3, 5).len(), 5);
    }
}
