//! Texts tokenized piece by piece: split before every space that starts a word (a
//! boundary every GPT-style pre-tokenizer splits at too, so the ids are the same as the
//! whole text's), each distinct piece encoded once and remembered. A trace's
//! 120,000-token prompt is then a scan and a lookup per word, not a tokenizer's pass
//! (the mock's `encode_into`), and counting a stream's reply is a lookup per word
//! (the client's [`PieceCounter`]). Either checks that pieces agree with the whole text
//! before it trusts them.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::workload::tokens::Tokenizer;

/// Texts from this long on are tokenized piece by piece.
pub const PIECEWISE_FROM: usize = 4096;
/// Pieces remembered per thread; past it the memory starts afresh.
const MOST_PIECES: usize = 1 << 16;

/// What a thread remembers of one tokenizer: its name, whether piecewise ids were found
/// to be the whole text's (checked on its first long text; a tokenizer file whose
/// normaliser prepends to every piece is then tokenized whole), and each piece's ids.
#[derive(Default)]
struct Remembered {
    name: String,
    agrees: Option<bool>,
    pieces: HashMap<Box<str>, Box<[u32]>>,
}

thread_local! {
    /// Per thread, so the mock's workers never wait on each other.
    static PIECES: RefCell<Remembered> = RefCell::new(Remembered::default());
}

/// `text`'s token ids, appended to `out`.
pub fn encode_into(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    if text.len() < PIECEWISE_FROM || !tok.piecewise() {
        out.extend(tok.encode(text));
        return;
    }
    PIECES.with_borrow_mut(|r| {
        if r.name != tok.name() {
            *r = Remembered { name: tok.name().to_string(), ..Remembered::default() };
        }
        let at = out.len();
        if r.agrees == Some(false) {
            out.extend(tok.encode(text));
            return;
        }
        let pieces = &mut r.pieces;
        for piece in split(text) {
            if let Some(ids) = pieces.get(piece) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = tok.encode(piece);
            out.extend_from_slice(&ids);
            if pieces.len() >= MOST_PIECES {
                pieces.clear();
            }
            pieces.insert(piece.into(), ids.into());
        }
        if r.agrees.is_none() {
            let whole = tok.encode(text);
            let agrees = out[at..] == whole[..];
            if !agrees {
                out.truncate(at);
                out.extend(whole);
            }
            r.agrees = Some(agrees);
        }
    });
}

/// Counts texts piece by piece, remembering each distinct piece's count: words repeat,
/// so a reply costs a scan and a lookup per word. One per thread that counts (the
/// aggregator's); it trusts pieces only once its first texts of several words, counted
/// whole too, agreed (else it counts whole).
pub struct PieceCounter {
    tok: Tokenizer,
    /// Texts of several pieces still to check against their whole count; None once one
    /// disagreed.
    to_check: Option<u32>,
    pieces: HashMap<Box<str>, u32>,
}

/// Texts of several pieces a [`PieceCounter`] counts whole too before it trusts pieces.
const CHECKED_TEXTS: u32 = 32;

impl PieceCounter {
    pub fn new(tok: Tokenizer) -> PieceCounter {
        PieceCounter { tok, to_check: Some(CHECKED_TEXTS), pieces: HashMap::new() }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// Tokens in `text`, as the tokenizer counts it whole.
    pub fn count(&mut self, text: &str) -> u64 {
        let Some(left) = self.to_check.filter(|_| self.tok.piecewise()) else { return self.tok.count(text) };
        let mut n = 0u64;
        let mut several = false;
        for (k, piece) in split(text).enumerate() {
            several = k > 0;
            n += u64::from(match self.pieces.get(piece) {
                Some(&c) => c,
                None => {
                    let c = self.tok.count(piece) as u32;
                    if self.pieces.len() >= MOST_PIECES {
                        self.pieces.clear();
                    }
                    self.pieces.insert(piece.into(), c);
                    c
                }
            });
        }
        if several && left > 0 {
            let whole = self.tok.count(text);
            self.to_check = (whole == n).then_some(left - 1);
            return whole;
        }
        n
    }
}

/// `text` cut before each space that is followed by a character other than whitespace.
fn split(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 1;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        while i < bytes.len() {
            let cut = bytes[i] == b' ' && bytes.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace());
            i += 1;
            if cut && i - 1 > start {
                let piece = &text[start..i - 1];
                start = i - 1;
                return Some(piece);
            }
        }
        let piece = &text[start..];
        start = bytes.len();
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_before_words_and_give_the_whole_texts_ids() {
        assert_eq!(split(" a  b\n c d").collect::<Vec<_>>(), [" a ", " b\n", " c", " d"]);
        assert_eq!(split("x").collect::<Vec<_>>(), ["x"]);
        let text = "Hello,  world! It's 12345 o'clock\n\n  — naïve café ünïcode 😀 done. ".repeat(200);
        assert!(text.len() >= PIECEWISE_FROM);
        for tok in [Tokenizer::o200k(), Tokenizer::built_in("cl100k_base").unwrap()] {
            let mut ids = Vec::new();
            encode_into(&tok, &text, &mut ids);
            assert_eq!(ids, tok.encode(&text), "{}", tok.name());
            // Again, from what the thread remembers (and found to agree).
            ids.clear();
            encode_into(&tok, &text, &mut ids);
            assert_eq!(ids, tok.encode(&text), "{} (remembered)", tok.name());
        }
    }

    #[test]
    fn pieces_count_as_the_whole_text_and_a_disagreement_ends_them() {
        let tok = Tokenizer::o200k();
        let mut c = PieceCounter::new(tok.clone());
        let texts = ["Hello, world! It's 12345 o'clock", "  — naïve café ünïcode 😀 done. ", "x", "", "a  b\n c d"];
        for round in 0..20 {
            for t in texts {
                assert_eq!(c.count(t), tok.count(t), "{t:?} in round {round}");
            }
        }
        assert!(c.to_check == Some(0) && !c.pieces.is_empty(), "checked, then trusted");
        // A tokenizer whose pieces do not add up (here: made to look so) is counted whole.
        let mut c = PieceCounter::new(tok.clone());
        c.pieces.insert(" world!".into(), 7);
        assert_eq!(c.count("Hello, world!"), tok.count("Hello, world!"));
        assert_eq!(c.to_check, None);
        assert_eq!(c.count("Hello, world!"), tok.count("Hello, world!"));
    }
}
