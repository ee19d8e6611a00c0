//! The mock's prefix cache, as vLLM's automatic prefix caching works: a prompt's token
//! ids in blocks of 16, each block keyed by a hash of the whole prefix up to and
//! including it (a hash chain, so only a truly shared prefix hits), in an LRU of
//! `prefix_cache_blocks` blocks.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Tokens per block, vLLM's default.
pub(super) const BLOCK_TOKENS: usize = 16;

/// Blocks of recent prompts, least recently used first out; `None` when off.
pub(super) struct PrefixCache(Option<Mutex<LruCache<u64, ()>>>);

impl PrefixCache {
    /// A cache of `blocks` blocks; 0 is no cache.
    pub fn new(blocks: u32) -> PrefixCache {
        PrefixCache(NonZeroUsize::new(blocks as usize).map(|n| Mutex::new(LruCache::new(n))))
    }

    /// Forgets every block.
    pub fn clear(&self) {
        if let Some(lru) = &self.0 {
            lru.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Tokens of `ids` already cached (16 × the leading blocks found), then its blocks
    /// go in. They go in as the request is scheduled, as in vLLM, so a request sent
    /// while an earlier one with the same prefix is still in prefill hits too.
    pub fn admit(&self, ids: &[u32]) -> u64 {
        let Some(lru) = &self.0 else { return 0 };
        let chain = chain(ids);
        // A prompt found whole still has its last token computed (its logits give the
        // first output token), so hits stop at the block before it, as in vLLM.
        let most = ids.len().saturating_sub(1) / BLOCK_TOKENS;
        let mut lru = lru.lock().unwrap_or_else(|e| e.into_inner());
        let hits = chain[..most].iter().take_while(|h| lru.get(*h).is_some()).count();
        // Tail first, head last: eviction then takes a prompt's tail before its head,
        // whose loss would make the rest of the chain useless.
        for h in chain.iter().rev() {
            lru.put(*h, ());
        }
        (hits * BLOCK_TOKENS) as u64
    }
}

/// The key of every full block: a hash of the one before and its own ids.
fn chain(ids: &[u32]) -> Vec<u64> {
    let mut prev = 0u64;
    ids.chunks_exact(BLOCK_TOKENS)
        .map(|block| {
            // SipHash with fixed keys: the same prefix, the same key, in every run.
            let mut h = std::hash::DefaultHasher::new();
            prev.hash(&mut h);
            block.hash(&mut h);
            prev = h.finish();
            prev
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn a_shared_prefix_hits_by_whole_blocks() {
        let cache = PrefixCache::new(1000);
        let system = ids(0..2000);
        let with = |tail: std::ops::Range<u32>| [system.clone(), ids(tail)].concat();
        assert_eq!(cache.admit(&with(5000..5010)), 0, "cold");
        // Another question after the same 2,000 tokens: its 125 blocks hit.
        assert_eq!(cache.admit(&with(6000..6010)), 2000);
        // The same prompt again: all but the block holding its last token.
        assert_eq!(cache.admit(&system), 1984);
        // 33 tokens: two full blocks, both before the last token.
        assert_eq!(cache.admit(&ids(0..33)), 32);
        assert_eq!(cache.admit(&ids(0..15)), 0, "no full block");
    }

    #[test]
    fn only_a_true_prefix_hits() {
        let cache = PrefixCache::new(1000);
        cache.admit(&ids(0..320));
        // The same blocks after a different first block are other keys.
        let shifted = [ids(900..916), ids(16..320)].concat();
        assert_eq!(cache.admit(&shifted), 0);
        assert_eq!(cache.admit(&ids(10_000..10_320)), 0, "unrelated");
        // A prefix that diverges in block 3 hits blocks 0..3 only.
        let diverging = [ids(0..50), ids(7000..7100)].concat();
        assert_eq!(cache.admit(&diverging), 48);
    }

    #[test]
    fn the_lru_evicts_the_least_recent_and_tails_first() {
        let cache = PrefixCache::new(4);
        let (a, b) = (ids(0..65), ids(1000..1065));
        cache.admit(&a);
        assert_eq!(cache.admit(&a), 64);
        cache.admit(&b);
        assert_eq!(cache.admit(&a), 0, "b's 4 blocks pushed a's out");
        // A prompt longer than the cache keeps its head: 6 blocks in 4 slots.
        let long = ids(2000..2097);
        cache.admit(&long);
        assert_eq!(cache.admit(&long), 64);
        assert_eq!(PrefixCache::new(0).admit(&a), 0, "no cache");
        assert!(PrefixCache::new(0).0.is_none());
    }
}
