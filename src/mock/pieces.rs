//! Long prompts tokenized piece by piece: split before every space that starts a word
//! (a boundary every GPT-style pre-tokenizer splits at too, so the ids are the same as
//! the whole text's), each distinct piece encoded once and remembered. A trace's
//! 120,000-token prompt is then a scan and a lookup per word, not a tokenizer's pass.

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
    if text.len() < PIECEWISE_FROM {
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
}
