//! The text of a trace's blocks: block `id` of a stage is `block_tokens` words drawn
//! from a generator seeded by (seed, stage, id) alone, so equal ids give equal text on
//! every run, and a prompt is its blocks' texts back to back (the last cut to the
//! line's length). Every word is one token after a space, so lengths are exact without
//! counting. Texts are kept in a cache bounded by bytes: a trace may name millions of
//! blocks, and memory must not grow with it.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::dist::rng_for;
use super::synth::WordPool;

/// Keeps block texts apart from every other use of the seed.
const BLOCK_SALT: u64 = 0xB10C_7E47;
/// Keeps the text of lines without hash ids apart from every block's.
const UNIQUE_SALT: u64 = 0x0071_E7E4;
/// Bytes of block text kept at most.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct BlockTexts {
    pool: Arc<WordPool>,
    seed: u64,
    block_tokens: u32,
    cache: Mutex<LruCache<(u64, u64), Arc<str>>>,
}

impl BlockTexts {
    pub fn new(pool: Arc<WordPool>, seed: u64, block_tokens: u32) -> BlockTexts {
        // About 6.5 bytes a word; never fewer than a long prompt's blocks.
        let entries = (CACHE_BYTES / (block_tokens as usize * 7).max(1)).max(256);
        let cap = std::num::NonZeroUsize::new(entries).unwrap_or(std::num::NonZeroUsize::MIN);
        BlockTexts { pool, seed, block_tokens, cache: Mutex::new(LruCache::new(cap)) }
    }

    pub fn block_tokens(&self) -> u32 {
        self.block_tokens
    }

    /// The text of block `id` in stage `stage`: `block_tokens` words.
    fn block(&self, stage: u64, id: u64) -> Arc<str> {
        let key = (stage, id);
        if let Some(text) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return text.clone();
        }
        let mut text = String::with_capacity(self.block_tokens as usize * 7);
        let mut rng = rng_for(self.seed ^ BLOCK_SALT, stage, id);
        self.pool.random_words(&mut rng, self.block_tokens as usize, &mut text);
        let text: Arc<str> = text.into();
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(key, text.clone());
        text
    }

    /// The prompt of `tokens` tokens made of blocks `ids`, the last one partial.
    pub fn text(&self, stage: u64, ids: &[u64], tokens: u32) -> String {
        let mut out = String::with_capacity(tokens as usize * 7);
        let mut left = tokens as usize;
        for &id in ids {
            let block = self.block(stage, id);
            let words = left.min(self.block_tokens as usize);
            out.push_str(first_words(&block, words));
            left -= words;
        }
        out
    }

    /// A text of `tokens` tokens that no other line shares: line `line` of the trace.
    pub fn unique(&self, stage: u64, line: u64, tokens: u32) -> String {
        let mut out = String::with_capacity(tokens as usize * 7);
        let mut rng = rng_for(self.seed ^ UNIQUE_SALT, stage, line);
        self.pool.random_words(&mut rng, tokens as usize, &mut out);
        out
    }
}

/// The first `n` words of a text of words each after a space.
fn first_words(text: &str, n: usize) -> &str {
    match text.match_indices(' ').nth(n) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Tokenizer;

    fn texts(block: u32) -> BlockTexts {
        BlockTexts::new(Arc::new(WordPool::new(&Tokenizer::o200k()).unwrap()), 7, block)
    }

    #[test]
    fn equal_ids_give_equal_text_and_lengths_are_exact_with_the_last_block_partial() {
        let (t, tok) = (texts(16), Tokenizer::o200k());
        let a = t.text(0, &[1, 2, 3], 40);
        let b = t.text(0, &[1, 2, 9], 40);
        let c = t.text(0, &[1, 2], 32);
        assert_eq!((tok.count(&a), tok.count(&b), tok.count(&c)), (40, 40, 32));
        assert!(a.starts_with(&c) && b.starts_with(&c), "shared blocks, shared prefix");
        assert_ne!(a, b);
        // The partial block is the start of the whole one; a fresh cache gives the same.
        let whole = t.text(0, &[1, 2, 3], 48);
        assert!(whole.starts_with(&a));
        assert_eq!(texts(16).text(0, &[1, 2, 3], 40), a, "a pure function of seed and ids");
        assert_ne!(t.text(1, &[1, 2, 3], 40), a, "each stage its own");
        let u = t.unique(0, 5, 33);
        assert_eq!((tok.count(&u), u == t.unique(0, 5, 33), u == t.unique(0, 6, 33)), (33, true, false));
    }

    #[test]
    fn the_cache_is_bounded() {
        let t = texts(1 << 14);
        for id in 0..300 {
            t.text(0, &[id], 1 << 14);
        }
        let cache = t.cache.lock().unwrap();
        assert_eq!(cache.cap().get(), 585);
        assert!(cache.len() <= 585);
        drop(cache);
        let t = texts(1 << 16);
        assert_eq!(t.cache.lock().unwrap().cap().get(), 256, "never fewer than a long prompt needs");
    }
}
