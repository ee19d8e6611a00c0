//! Synthetic prompts: request *i* of a stage draws its (input, output) lengths, and
//! its text is built to exactly that many tokens, led by a run of words no other
//! request shares (so prompts do not collide in a prefix cache unless asked to). With a
//! shared prefix, the requests of a group start with the same system prompt — the
//! group's in that stage: another stage's groups have their own, so no stage finds the
//! cache warmed by the one before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::dist::{LengthSpec, rng_for};
use super::synth::WordPool;
use super::tokens::Tokenizer;
use crate::model::Api;

/// Requests of a group start with the same `tokens`-token prefix; request *i* is in
/// group *i* mod `groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedPrefix {
    pub tokens: u32,
    pub groups: u32,
}

/// How synthetic prompts are drawn and built.
#[derive(Debug)]
pub struct Synthetic {
    lengths: LengthSpec,
    seed: u64,
    pool: Arc<WordPool>,
    prefix: Option<SharedPrefix>,
    /// Each (stage, group)'s prefix text and its count, built on first use.
    prefixes: Mutex<HashMap<(u64, u32), Arc<PrefixText>>>,
}

/// A prefix's text and its token count.
type PrefixText = (String, u64);

/// Stages apart in the ids of the leading runs: a stage's requests never share one with
/// another stage's.
const STAGE_STRIDE: u64 = 1 << 36;

impl Synthetic {
    pub fn new(lengths: LengthSpec, prefix: Option<SharedPrefix>, seed: u64, pool: Arc<WordPool>) -> Synthetic {
        Synthetic { lengths, seed, pool, prefix, prefixes: Mutex::default() }
    }

    /// The prefix of group `g` in stage `stage`.
    fn prefix_of(&self, p: SharedPrefix, stage: u64, g: u32) -> Arc<PrefixText> {
        let built = || Arc::new(self.pool.text(p.tokens, None, &mut rng_for(self.seed, u64::MAX - stage, u64::from(g))));
        let mut map = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((stage, g)).or_insert_with(built).clone()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.pool.tokenizer()
    }

    /// Whether each request asks for an output length of its own.
    pub fn has_output(&self) -> bool {
        self.lengths.has_output()
    }

    /// Request `i` of stage `stage`: its prompt (the prefix as a system message, for
    /// chat), its exact count and its output length.
    pub fn build(&self, api: Api, stage: u64, i: u64) -> Built {
        let mut rng = rng_for(self.seed, stage, i);
        let (input, output) = self.lengths.sample(&mut rng);
        let (text, count) = self.pool.text(input, Some(stage.wrapping_mul(STAGE_STRIDE).wrapping_add(i)), &mut rng);
        let prefix = self.prefix.map(|p| self.prefix_of(p, stage, (i % u64::from(p.groups)) as u32));
        let prefix = prefix.as_deref();
        let value = match (api, prefix) {
            // Both texts are words after spaces: joined, nothing merges.
            (api, Some((p, _))) if api.takes_text() => Value::String(format!("{p}{text}")),
            (api, None) if api.takes_text() => Value::String(text),
            (api, prefix) => {
                super::prompt::conversation(api, prefix.map(|(p, _)| p.as_str()), vec![json!({"role": "user", "content": text})])
            }
        };
        Built { prompt: value, tokens: count + prefix.map_or(0, |(_, n)| *n), output }
    }
}

/// A synthetic request's prompt as sent (messages or text), its count, its output length.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub prompt: Value,
    pub tokens: u64,
    pub output: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(spec: &str, prefix: Option<SharedPrefix>) -> Synthetic {
        let pool = Arc::new(WordPool::new(&Tokenizer::o200k()).unwrap());
        Synthetic::new(LengthSpec::parse_shorthand(spec).unwrap(), prefix, 3, pool)
    }

    #[test]
    fn prompts_have_their_drawn_length_and_differ() {
        let s = synthetic("N(300,100)/(50,10)", None);
        let tok = Tokenizer::o200k();
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            let b = s.build(Api::Chat, 1, i);
            assert_eq!(b.tokens, tok.prompt_tokens(&b.prompt), "request {i}");
            assert!(b.output.is_some_and(|o| o >= 1));
            assert!(seen.insert(b.prompt.to_string()), "request {i} repeats a prompt");
        }
        // The same seed, stage and number: the same prompt; another stage: another.
        assert_eq!(s.build(Api::Chat, 1, 5), s.build(Api::Chat, 1, 5));
        assert_ne!(s.build(Api::Chat, 1, 5), s.build(Api::Chat, 2, 5));
    }

    #[test]
    fn groups_share_their_prefix_and_nothing_else() {
        let s = synthetic("D(100,10)", Some(SharedPrefix { tokens: 200, groups: 2 }));
        let tok = Tokenizer::o200k();
        let system = |i| s.build(Api::Chat, 0, i).prompt[0]["content"].clone();
        assert_eq!(system(0), system(2));
        assert_ne!(system(0), system(1));
        assert_eq!(tok.count(system(0).as_str().unwrap()), 200);
        assert_eq!(s.build(Api::Chat, 0, 0).tokens, 300);
        assert_ne!(s.build(Api::Chat, 1, 0).prompt[0], s.build(Api::Chat, 0, 0).prompt[0], "each stage its own prefixes");
        let text = s.build(Api::Completions, 0, 3);
        assert_eq!((text.tokens, tok.count(text.prompt.as_str().unwrap())), (300, 300));
    }
}
