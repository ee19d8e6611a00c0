//! Text of an exact token length in the counting tokenizer. Decoding and re-encoding is
//! not the identity (merges across boundaries, SentencePiece's leading spaces,
//! normalisation), so text is built from words verified one by one — each a single
//! token, twice in a row two tokens — joined by the spaces every pre-tokenizer splits at,
//! then counted whole and padded or trimmed a word at a time to the exact count.

use rand::Rng;
use rand::rngs::StdRng;

use super::tokens::Tokenizer;

/// Candidate words: common English, lowercase, so most vocabularies hold each (with its
/// leading space) as one token. Those that are not one token in a tokenizer are dropped.
pub const WORDS: &str = "the of and to in is was for on that with as by at from his her an were are which this be or has had not \
but their its one been also first new after who they have two more other time into over all years most only may used some when \
there city can school where world would three such about between while during then part later state these known many well being \
under since both people family area film four team through national work year history group season series government around life \
before five each until american long south north same early based several day found however game music local house high last \
small war final few second line name major late member best church because main region death age third days great including \
place power major water field near land left made much course general light play party center road among head young public \
house field story paper garden river market window table letter number summer winter forest village teacher doctor student \
island mountain bridge station kitchen picture morning evening yellow green orange silver golden simple happy quiet strong \
bright dark open close short green blue black white red brown gray pink purple clear fresh sweet cold warm soft hard fast slow";

/// Fewest usable words for prompts worth the name (and distinct leading runs).
const MIN_WORDS: usize = 32;
/// Words of the leading run that makes each prompt distinct.
pub const ID_WORDS: usize = 6;

/// Words that are one token each in a tokenizer, and join without merging.
#[derive(Debug)]
pub struct WordPool {
    tokenizer: Tokenizer,
    words: Vec<&'static str>,
}

impl WordPool {
    /// The usable words of [`WORDS`] in `tokenizer`; an error when too few are.
    pub fn new(tokenizer: &Tokenizer) -> Result<WordPool, String> {
        let mut seen = std::collections::HashSet::new();
        let words: Vec<&'static str> = WORDS
            .split(' ')
            .filter(|w| !w.is_empty() && seen.insert(*w))
            .filter(|w| {
                let spaced = format!(" {w}");
                tokenizer.count(&spaced) == 1 && tokenizer.count(&format!("{spaced}{spaced}")) == 2
            })
            .collect();
        if words.len() < MIN_WORDS {
            return Err(format!(
                "tokenizer {}: only {} common English words are one token each (need {MIN_WORDS}) to build prompts of exact length",
                tokenizer.name(),
                words.len()
            ));
        }
        Ok(WordPool { tokenizer: tokenizer.clone(), words })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The words of `id` in base len(words), [`ID_WORDS`] of them: a leading run no
    /// other id shares.
    fn id_run(&self, id: u64, out: &mut String) {
        let base = self.words.len() as u64;
        let mut rest = id;
        for _ in 0..ID_WORDS {
            push_word(out, self.words[(rest % base) as usize]);
            rest /= base;
        }
    }

    /// Appends `n` words drawn from `rng`, each one token, each after a space.
    pub fn random_words(&self, rng: &mut StdRng, n: usize, out: &mut String) {
        for _ in 0..n {
            push_word(out, self.words[rng.random_range(0..self.words.len())]);
        }
    }

    /// A text of exactly `tokens` tokens (when the tokenizer allows it): with `id`, it
    /// starts with that id's run of words, then words drawn from `rng`. Returns the text
    /// and its count (which is `tokens` but for a tokenizer that defeats every fix-up).
    pub fn text(&self, tokens: u32, id: Option<u64>, rng: &mut StdRng) -> (String, u64) {
        self.fitted(tokens, id, rng, false)
    }

    /// [`text`](Self::text) without its leading space (a document sent as a string of
    /// its own), counted as it is sent: its first word alone may be two tokens.
    pub fn document(&self, tokens: u32, id: Option<u64>, rng: &mut StdRng) -> (String, u64) {
        self.fitted(tokens, id, rng, true)
    }

    /// The words fitted to `tokens`, counted with or without (`trim`) the leading space.
    fn fitted(&self, tokens: u32, id: Option<u64>, rng: &mut StdRng, trim: bool) -> (String, u64) {
        let count = |t: &str| self.tokenizer.count(if trim { t.trim_start() } else { t });
        let want = u64::from(tokens);
        let mut text = String::with_capacity(tokens as usize * 7);
        if id.is_some() && tokens as usize >= ID_WORDS {
            self.id_run(id.unwrap_or_default(), &mut text);
        }
        let have = text.split(' ').filter(|w| !w.is_empty()).count();
        self.random_words(rng, (tokens as usize).saturating_sub(have), &mut text);
        let mut n = count(&text);
        // Each word is one token, so the count misses only by what the joins and the
        // text's start do (a SentencePiece prefix space, a normaliser): a few words.
        for _ in 0..8 {
            if n == want {
                break;
            }
            if n < want {
                self.random_words(rng, (want - n) as usize, &mut text);
            } else {
                for _ in 0..(n - want) {
                    match text.rfind(' ') {
                        Some(0) | None => text.clear(),
                        Some(i) => text.truncate(i),
                    }
                }
            }
            n = count(&text);
        }
        if trim {
            text = text.trim_start().to_string();
        }
        (text, n)
    }
}

fn push_word(out: &mut String, w: &str) {
    out.push(' ');
    out.push_str(w);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::dist::rng_for;

    #[test]
    fn texts_are_exact_in_o200k_and_cl100k_over_many_lengths() {
        for tok in [Tokenizer::o200k(), Tokenizer::built_in("cl100k_base").unwrap()] {
            let pool = WordPool::new(&tok).unwrap();
            assert!(pool.words.len() > 150, "{}: {}", tok.name(), pool.words.len());
            for (i, n) in [1u32, 2, 5, 6, 7, 16, 100, 127, 128, 1000, 4097].into_iter().enumerate() {
                for seed in 0..3 {
                    let (text, count) = pool.text(n, Some(i as u64 * 7 + seed), &mut rng_for(seed, 0, i as u64));
                    assert_eq!((count, tok.count(&text)), (u64::from(n), u64::from(n)), "{} n={n} seed={seed}", tok.name());
                }
            }
        }
    }

    #[test]
    fn ids_lead_distinctly_and_seeds_repeat() {
        let pool = WordPool::new(&Tokenizer::o200k()).unwrap();
        let a = pool.text(50, Some(1), &mut rng_for(0, 0, 1)).0;
        let b = pool.text(50, Some(2), &mut rng_for(0, 0, 1)).0;
        assert_ne!(a.split(' ').take(ID_WORDS + 1).collect::<Vec<_>>(), b.split(' ').take(ID_WORDS + 1).collect::<Vec<_>>());
        assert_eq!(a, pool.text(50, Some(1), &mut rng_for(0, 0, 1)).0, "same seed, same text");
    }
}
