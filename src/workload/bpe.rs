//! The built-in tokenizers (o200k_base, cl100k_base): tiktoken's byte-pair encoding over
//! compact tables. tiktoken-rs (and bpe-openai) hold o200k in ~46 MiB (~67 MiB) of
//! hash maps of owned byte strings, more than the rest of a streaming run together; here
//! the vocabulary is read in place from the binary (`data/vocab`, 1.6 MB) with a 2 MiB
//! open-addressing index beside it, built in milliseconds. The splitting patterns and the
//! merge loops are tiktoken's (MIT); the tests hold every token and a corpus of encodings
//! to tiktoken-rs's.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use fancy_regex::Regex;

const O200K_VOCAB: &[u8] = include_bytes!("../../data/vocab/o200k_base.bin");
const CL100K_VOCAB: &[u8] = include_bytes!("../../data/vocab/cl100k_base.bin");

const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+"
);
const CL100K_PATTERN: &str =
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// Ranks take the low 18 bits of a slot (+1, so 0 is empty; both vocabularies are under
/// 2^18), hash bits the rest, so most misses are told without touching the vocabulary.
const RANK_BITS: u32 = 18;
const RANK_MASK: u32 = (1 << RANK_BITS) - 1;

/// One encoding: its vocabulary in place, an index by bytes, its splitting pattern.
pub struct Bpe {
    vocab: &'static [u8],
    /// Offset of each rank's length byte in `vocab`.
    starts: Vec<u32>,
    slots: Vec<u32>,
    regex: Regex,
}

/// o200k_base, built on first use and kept.
pub fn o200k() -> &'static Bpe {
    static B: OnceLock<Bpe> = OnceLock::new();
    B.get_or_init(|| Bpe::new(O200K_VOCAB, O200K_PATTERN))
}

/// cl100k_base, built on first use and kept.
pub fn cl100k() -> &'static Bpe {
    static B: OnceLock<Bpe> = OnceLock::new();
    B.get_or_init(|| Bpe::new(CL100K_VOCAB, CL100K_PATTERN))
}

fn hash(bytes: &[u8]) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(bytes)
}

impl Bpe {
    fn new(vocab: &'static [u8], pattern: &str) -> Bpe {
        let mut starts = Vec::with_capacity(vocab.len() / 7);
        let mut at = 0;
        while at < vocab.len() {
            starts.push(at as u32);
            at += 1 + vocab[at] as usize;
        }
        assert!(starts.len() < RANK_MASK as usize, "vocabulary too large for the index");
        let mut slots = vec![0u32; (starts.len() * 2).next_power_of_two()];
        let mask = slots.len() - 1;
        let mut bpe = Bpe { vocab, starts, slots: Vec::new(), regex: Regex::new(pattern).expect("tiktoken's pattern compiles") };
        for rank in 0..bpe.starts.len() as u32 {
            let h = hash(bpe.token(rank));
            let mut i = h as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = tag(h) | (rank + 1);
        }
        bpe.slots = slots;
        bpe
    }

    fn token(&self, rank: u32) -> &'static [u8] {
        let s = self.starts[rank as usize] as usize;
        &self.vocab[s + 1..s + 1 + self.vocab[s] as usize]
    }

    /// The rank of exactly these bytes, if they are a token.
    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        let h = hash(bytes);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            let rank = (slot & RANK_MASK) - 1;
            if slot & !RANK_MASK == tag(h) && self.token(rank) == bytes {
                return Some(rank);
            }
            i = (i + 1) & mask;
        }
    }

    /// Appends the ids of `text` (ordinary text: special tokens are not recognised).
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut done = 0;
        for piece in self.regex.find_iter(text) {
            // Where the pattern fails to run (fancy-regex's backtrack limit; tiktoken
            // panics), the rest is merged as one piece: counted, if not split as tiktoken.
            let Ok(piece) = piece else { return self.merge_into(&text.as_bytes()[done..], out) };
            done = piece.end();
            let bytes = piece.as_str().as_bytes();
            match self.rank(bytes) {
                Some(r) => out.push(r),
                None => self.merge_into(bytes, out),
            }
        }
    }

    /// The bytes of `ids`; None for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            if id as usize >= self.starts.len() {
                return None;
            }
            out.extend_from_slice(self.token(id));
        }
        Some(out)
    }

    fn pair_rank(&self, piece: &[u8], from: usize, to: usize) -> u32 {
        self.rank(&piece[from..to]).unwrap_or(u32::MAX)
    }

    /// tiktoken's `byte_pair_encode`: merges the lowest-ranked adjacent pair until none
    /// is a token. Every single byte is a token in both vocabularies.
    fn merge_into(&self, piece: &[u8], out: &mut Vec<u32>) {
        match piece.len() {
            0 => {}
            1 => out.extend(self.rank(piece)),
            n if n < 100 => {
                let parts = self.merge_small(piece);
                out.extend(parts.windows(2).filter_map(|w| self.rank(&piece[w[0].0..w[1].0])));
            }
            _ => self.merge_large(piece, out),
        }
    }

    /// (start, rank of the pair starting there) per part: O(n·m), cache-friendly for the
    /// short pieces that are nearly all of them.
    fn merge_small(&self, piece: &[u8]) -> Vec<(usize, u32)> {
        let mut parts: Vec<(usize, u32)> = (0..piece.len() - 1).map(|i| (i, self.pair_rank(piece, i, i + 2))).collect();
        parts.push((piece.len() - 1, u32::MAX));
        parts.push((piece.len(), u32::MAX));
        let rank_at = |parts: &[(usize, u32)], i: usize| {
            if i + 3 < parts.len() { self.pair_rank(piece, parts[i].0, parts[i + 3].0) } else { u32::MAX }
        };
        loop {
            let (min, i) =
                parts[..parts.len() - 1].iter().enumerate().fold((u32::MAX, 0), |m, (i, p)| if p.1 < m.0 { (p.1, i) } else { m });
            if min == u32::MAX {
                return parts;
            }
            if i > 0 {
                parts[i - 1].1 = rank_at(&parts, i - 1);
            }
            parts[i].1 = rank_at(&parts, i);
            parts.remove(i + 1);
        }
    }

    /// tiktoken's heap version for long pieces (a base64 blob, a run of spaces), where the
    /// quadratic loop would take seconds.
    fn merge_large(&self, piece: &[u8], out: &mut Vec<u32>) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // Per part start: end, end of the next part, previous start, the rank of merging
        // with the next part (u32::MAX: none), and whether it is still a part.
        let n = piece.len();
        let mut end: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut next_rank: Vec<u32> = (0..n).map(|i| if i + 1 < n { self.pair_rank(piece, i, i + 2) } else { u32::MAX }).collect();
        let mut heap: BinaryHeap<_> =
            next_rank.iter().enumerate().filter(|(_, r)| **r != u32::MAX).map(|(i, &r)| Reverse((r, i))).collect();
        while let Some(Reverse((rank, start))) = heap.pop() {
            if rank != next_rank[start] {
                continue; // merged away or re-ranked since it was pushed
            }
            let right = end[start];
            end[start] = end[right];
            next_rank[right] = u32::MAX; // the right part is gone
            next_rank[start] = if end[start] < n { self.pair_rank(piece, start, end[end[start]]) } else { u32::MAX };
            if next_rank[start] != u32::MAX {
                heap.push(Reverse((next_rank[start], start)));
            }
            if end[start] < n {
                prev[end[start]] = start;
            }
            let p = prev[start];
            if p != usize::MAX {
                next_rank[p] = self.pair_rank(piece, p, end[start]);
                if next_rank[p] != u32::MAX {
                    heap.push(Reverse((next_rank[p], p)));
                }
            }
        }
        let mut i = 0;
        while i < n {
            out.extend(self.rank(&piece[i..end[i]]));
            i = end[i];
        }
    }
}

fn tag(h: u64) -> u32 {
    ((h >> 40) as u32) & !RANK_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let mut texts: Vec<String> = ["README.md", "docs/scenario.md", "docs/metrics.md", "src/workload/bpe.rs"]
            .iter()
            .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
            .collect();
        texts.extend(
            [
                "",
                " ",
                "  \n\n  x",
                "I'm, you're, THEY'LL, we'VE",
                "1234567 89",
                "naïve café 東京 🙂🙂 مرحبا Здравствуй",
                "\t\r\n\r\n end  ",
                "a/b\r\n/c",
                "ﬁ ǅ ᾈ",
                "   leading",
                "trailing   ",
            ]
            .map(str::to_string),
        );
        // Long pieces take the heap merge: a base64 blob, a run of spaces, a long word.
        texts.push("QmFzZTY0IGJsb2IgdGhhdCBuZXZlciBlbmRz".repeat(40));
        texts.push(" ".repeat(3000) + "x");
        texts.push("abcdefghij".repeat(60));
        texts.push("zxqv".repeat(200));
        // And random soups of letters, digits, marks, spaces and punctuation, short and
        // long, so both merge loops meet pieces the docs do not have.
        let alphabet: Vec<char> = "aAbZ09 \n\t'.,/é東🙂\u{301}xyzqkKsSlL-_".chars().collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..1500 {
            let len = if i % 10 == 0 { 400 } else { 1 + i % 40 };
            let text = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            texts.push(text);
        }
        texts
    }

    #[test]
    fn every_token_is_tiktokens() {
        for (ours, theirs) in [(o200k(), tiktoken_rs::o200k_base().unwrap()), (cl100k(), tiktoken_rs::cl100k_base().unwrap())] {
            for rank in 0..ours.starts.len() as u32 {
                assert_eq!(ours.token(rank), theirs.decode_bytes(&[rank]).unwrap(), "token {rank}");
                assert_eq!(ours.rank(ours.token(rank)), Some(rank));
            }
            assert_eq!(ours.rank(b"\xff\xfe not a token \xfd"), None);
        }
    }

    #[test]
    fn encodings_are_tiktokens() {
        let texts = corpus();
        for (ours, theirs) in [(o200k(), tiktoken_rs::o200k_base().unwrap()), (cl100k(), tiktoken_rs::cl100k_base().unwrap())] {
            for text in &texts {
                let mut ids = Vec::new();
                ours.encode_into(text, &mut ids);
                assert_eq!(ids, theirs.encode_ordinary(text), "{text:?}");
                assert_eq!(ours.decode(&ids).unwrap(), text.as_bytes());
            }
        }
        assert_eq!(o200k().decode(&[u32::MAX]), None);
    }

    #[test]
    fn both_merge_loops_agree() {
        let bpe = o200k();
        let mut seed = 7u64;
        for len in 2..300 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b"abcdeilnorstAEZ'"[(seed >> 33) as usize % 16]
                })
                .collect();
            let small = bpe.merge_small(&piece);
            let small: Vec<u32> = small.windows(2).map(|w| bpe.rank(&piece[w[0].0..w[1].0]).unwrap()).collect();
            let mut large = Vec::new();
            bpe.merge_large(&piece, &mut large);
            assert_eq!(small, large, "{}", String::from_utf8_lossy(&piece));
        }
    }
}
