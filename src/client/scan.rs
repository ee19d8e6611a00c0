//! The common stream chunk read without serde: one pass over the event's bytes that
//! takes the few fields a chat or completions chunk is timed and counted by (a choice's
//! `index`, its delta's `content`, `reasoning`, `reasoning_content`, or its `text`, and
//! its `finish_reason`), borrowing each text where it holds no escape, and skips every
//! other value after checking it is well formed. Anything less common — `usage`,
//! `timings`, `error`, tool calls, several choices, a key twice, or any doubt — is
//! `None`, and serde reads the event as before: the scan only ever agrees with it
//! (`tests`: a property test over arbitrary chunks).

use std::borrow::Cow;

use crate::model::FinishReason;

/// What the scan takes of a chunk: its one choice, if it has one.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Scanned<'a> {
    pub choice: Option<Choice<'a>>,
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Choice<'a> {
    pub index: u32,
    /// None: no delta, or `null`.
    pub delta: Option<Delta<'a>>,
    pub text: Option<Cow<'a, str>>,
    /// Why the choice ended, on the chunk that ends it.
    pub finish: Option<FinishReason>,
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Delta<'a> {
    pub content: Option<Cow<'a, str>>,
    pub reasoning_content: Option<Cow<'a, str>>,
    pub reasoning: Option<Cow<'a, str>>,
}

/// Reads `data` as a chunk of the common shape, whole (no shape); None: leave it to serde.
#[cfg(test)]
pub(super) fn chunk(data: &str) -> Option<Scanned<'_>> {
    chunk_spanned(data).map(|(c, _)| c)
}

/// A chunk read whole, and where its one text lies when it has exactly one.
fn chunk_spanned(data: &str) -> Option<(Scanned<'_>, Option<(usize, usize)>)> {
    let mut s = Scan { b: data.as_bytes(), src: data, i: 0, texts: 0, span: (0, 0) };
    let mut out = Scanned::default();
    let mut seen_choices = false;
    s.object(|s, key| match key {
        b"choices" => {
            once(&mut seen_choices)?;
            out.choice = s.choices()?;
            Some(())
        }
        // Read by serde: rare (the last chunk, a failure), and exact there.
        b"usage" | b"timings" | b"error" => None,
        _ => s.skip(),
    })?;
    s.ws();
    (s.i == s.b.len()).then_some((out, Some(s.span).filter(|_| s.texts == 1)))
}

/// A stream's chunks mostly differ in their text alone: the same id, model and fields
/// around it, byte for byte. The last chunk read whole with exactly one text is kept
/// as a shape; the next chunk whose bytes before and after its text are the same is
/// read by reading that text alone. Sound: the same bytes around a well-formed string
/// that ends where the shape's did make a document serde reads as it read the shape,
/// but for that string.
#[derive(Debug, Default)]
pub(super) struct Shape {
    bytes: Vec<u8>,
    /// Where the text's bytes lay (between its quotes).
    from: usize,
    to: usize,
    /// Which text it was, of which choice, and how the choice ended; None: no shape yet.
    slot: Option<Slot>,
    index: u32,
    finish: Option<FinishReason>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Content,
    ReasoningContent,
    Reasoning,
    Text,
}

impl Shape {
    /// The chunk read by its shape, when it has this one.
    fn fit<'a>(&self, data: &'a str) -> Option<Scanned<'a>> {
        let slot = self.slot?;
        let (before, after) = (&self.bytes[..self.from], &self.bytes[self.to..]);
        let b = data.as_bytes();
        if b.len() < before.len() + after.len() || !b.starts_with(before) || !b.ends_with(after) {
            return None;
        }
        // From the text's opening quote (the last byte before it): it must end at the
        // shape's closing quote, no sooner.
        let mut s = Scan { b, src: data, i: self.from - 1, texts: 0, span: (0, 0) };
        let text = Some(s.string()?);
        (s.i == b.len() - after.len() + 1).then_some(())?;
        let mut choice = Choice { index: self.index, finish: self.finish, ..Choice::default() };
        match slot {
            Slot::Content => choice.delta = Some(Delta { content: text, ..Delta::default() }),
            Slot::ReasoningContent => choice.delta = Some(Delta { reasoning_content: text, ..Delta::default() }),
            Slot::Reasoning => choice.delta = Some(Delta { reasoning: text, ..Delta::default() }),
            Slot::Text => choice.text = text,
        }
        Some(Scanned { choice: Some(choice) })
    }

    /// Keeps a chunk read whole as the shape, if its one text is known.
    fn learn(&mut self, data: &str, scanned: &Scanned<'_>, span: Option<(usize, usize)>) {
        let (Some((from, to)), Some(choice)) = (span, &scanned.choice) else {
            return;
        };
        let d = choice.delta.as_ref();
        self.slot = match (
            d.and_then(|d| d.content.as_ref()),
            d.and_then(|d| d.reasoning_content.as_ref()),
            d.and_then(|d| d.reasoning.as_ref()),
            &choice.text,
        ) {
            (Some(_), ..) => Some(Slot::Content),
            (_, Some(_), ..) => Some(Slot::ReasoningContent),
            (_, _, Some(_), _) => Some(Slot::Reasoning),
            (.., Some(_)) => Some(Slot::Text),
            _ => None,
        };
        self.bytes.clear();
        self.bytes.extend_from_slice(data.as_bytes());
        (self.from, self.to, self.index, self.finish) = (from, to, choice.index, choice.finish);
    }

    /// Where the shape's text lies, if it has one (for tests that make chunks from it).
    #[cfg(test)]
    pub(super) fn hole(&self) -> Option<(usize, usize)> {
        self.slot.map(|_| (self.from, self.to))
    }
}

/// A chunk of a stream whose last chunks shaped `shape`: by its shape where it has it,
/// else read whole (and kept as the shape).
pub(super) fn chunk_in<'a>(data: &'a str, shape: &mut Shape) -> Option<Scanned<'a>> {
    if let Some(fitted) = shape.fit(data) {
        return Some(fitted);
    }
    let (scanned, span) = chunk_spanned(data)?;
    shape.learn(data, &scanned, span);
    Some(scanned)
}

/// None the second time: a key twice is serde's to judge (it refuses a field twice).
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// Where the plain run of a string that starts at `i` ends: the first quote, backslash or
/// control byte at or after it, or the end. Eight bytes a step (the bit tricks of
/// "Bit Twiddling Hacks", "determine if a word has a byte less than n"): strings end at
/// one branch, not one a byte. The lowest byte flagged is exact (a borrow only ever
/// flags bytes above a true one).
#[inline]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let hits = below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| c >= 0x20 && c != b'"' && c != b'\\') {
        i += 1;
    }
    i
}

/// The character a one-letter escape stands for.
#[inline]
fn unescape(e: u8) -> Option<char> {
    Some(match e {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

struct Scan<'a> {
    b: &'a [u8],
    src: &'a str,
    i: usize,
    /// The texts read that were strings, and where the last one's bytes lie (between
    /// its quotes): a chunk with one is a shape to learn.
    texts: u32,
    span: (usize, usize),
}

impl<'a> Scan<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// An object's members, each key handed to `field` with the value next to read.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            field(self, key)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// A key as its bytes: one with an escape (or a control byte) is left to serde.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let end = plain_run(self.b, start);
        (*self.b.get(end)? == b'"').then_some(())?;
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    /// After an item: a comma (true: another follows) or `close` (false).
    #[inline]
    fn more(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => self.i += 1,
            c if c == close => {
                self.i += 1;
                return Some(false);
            }
            _ => return None,
        }
        Some(true)
    }

    /// `null`, or an array of at most one choice (several: serde's).
    fn choices(&mut self) -> Option<Option<Choice<'a>>> {
        if self.null() {
            return None;
        }
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(None);
        }
        let c = self.choice()?;
        self.eat(b']')?;
        Some(Some(c))
    }

    fn choice(&mut self) -> Option<Choice<'a>> {
        let mut c = Choice::default();
        let mut seen = [false; 4];
        self.object(|s, key| {
            match key {
                b"index" => {
                    once(&mut seen[0])?;
                    c.index = s.index()?;
                }
                b"delta" => {
                    once(&mut seen[1])?;
                    if !s.null() {
                        c.delta = Some(s.delta()?);
                    }
                }
                b"text" => {
                    once(&mut seen[2])?;
                    c.text = s.text()?;
                }
                // A reason that is not a string (serde's to refuse) is left to serde.
                b"finish_reason" => {
                    once(&mut seen[3])?;
                    if !s.null() {
                        c.finish = Some(FinishReason::from_name(&s.string()?));
                    }
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(c)
    }

    fn delta(&mut self) -> Option<Delta<'a>> {
        let mut d = Delta::default();
        let mut seen = [false; 3];
        self.object(|s, key| {
            let (slot, k) = match key {
                b"content" => (&mut d.content, 0),
                b"reasoning_content" => (&mut d.reasoning_content, 1),
                b"reasoning" => (&mut d.reasoning, 2),
                // Tool calls are assembled from serde's reading.
                b"tool_calls" => return None,
                _ => return s.skip(),
            };
            once(&mut seen[k])?;
            *slot = s.text()?;
            Some(())
        })?;
        Some(d)
    }

    /// A string or `null`; a string's place is kept (`span`) for the shape.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        self.ws();
        let from = self.i + 1;
        let text = self.string()?;
        self.texts += 1;
        self.span = (from, self.i - 1);
        Some(Some(text))
    }

    /// A whole number that fits a u32.
    fn index(&mut self) -> Option<u32> {
        self.ws();
        let start = self.i;
        self.number()?;
        self.src[start..self.i].parse().ok()
    }

    #[inline]
    fn null(&mut self) -> bool {
        self.ws();
        let yes = self.b[self.i..].starts_with(b"null");
        if yes {
            self.i += 4;
        }
        yes
    }

    /// A string's text: borrowed where it holds no escape, decoded where it does.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        self.i = plain_run(self.b, start);
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                return Some(Cow::Borrowed(&self.src[start..self.i - 1]));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.src[start..self.i]);
        loop {
            // At a backslash.
            self.i += 1;
            let c = match *self.b.get(self.i)? {
                b'u' => self.unicode()?,
                e => {
                    self.i += 1;
                    unescape(e)?
                }
            };
            out.push(c);
            let from = self.i;
            self.i = plain_run(self.b, from);
            out.push_str(&self.src[from..self.i]);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {}
                _ => return None,
            }
        }
    }

    /// Skips a string, checking it as serde does when it ignores one: control bytes and
    /// escapes (a `\u` needs four hex digits; which code point they name is not judged).
    fn skip_string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            self.i = plain_run(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match *self.b.get(self.i)? {
                        b'u' => {
                            self.b.get(self.i + 1..self.i + 5)?.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            self.i += 5;
                        }
                        e => {
                            unescape(e)?;
                            self.i += 1;
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    /// A `\u` escape at `i` (its `u`), a surrogate pair read whole (a lone surrogate is
    /// serde's to judge); `i` after it.
    fn unicode(&mut self) -> Option<char> {
        let hex = |s: &mut Self| -> Option<u32> {
            let h = s.b.get(s.i + 1..s.i + 5)?;
            let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
            // `from_str_radix` takes a sign: only digits are hex here.
            h.iter().all(u8::is_ascii_hexdigit).then(|| s.i += 5).map(|_| v)
        };
        let hi = hex(self)?;
        match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 1;
                let lo = hex(self).filter(|lo| (0xDC00..=0xDFFF).contains(lo))?;
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(hi),
        }
    }

    /// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            (s.i > from).then_some(())
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => digits(self)?,
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            digits(self)?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            digits(self)?;
        }
        Some(())
    }

    /// Any value, checked and passed over (nesting bounded, as serde's is).
    fn skip(&mut self) -> Option<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.object(|s, _| s.skip_at(depth + 1)),
            b'[' => {
                self.i += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_at(depth + 1)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b't' | b'f' | b'n' => {
                let rest = &self.b[self.i..];
                let n = [&b"true"[..], b"false", b"null"].iter().find(|w| rest.starts_with(w))?.len();
                self.i += n;
                Some(())
            }
            _ => self.number(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_chunk_is_read_borrowed_and_the_rare_left_to_serde() {
        let c = chunk(r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"logprobs":null,"finish_reason":null}]}"#).unwrap();
        let choice = c.choice.unwrap();
        assert_eq!(choice.index, 0);
        assert!(matches!(choice.delta.unwrap().content, Some(Cow::Borrowed("Hi"))));
        let c = chunk(r#"{"choices":[{"delta":{"content":"a\n\"b\" \u00e9 \ud83d\ude00"}}]}"#).unwrap();
        assert_eq!(c.choice.unwrap().delta.unwrap().content.as_deref(), Some("a\n\"b\" é 😀"));
        assert_eq!(chunk(r#"{"choices":[{"index":0,"text":"t"}]}"#).unwrap().choice.unwrap().text.as_deref(), Some("t"));
        assert_eq!(chunk(r#"{"choices":[]}"#), Some(Scanned { choice: None }));
        for rare in [
            r#"{"choices":[{"delta":{},"finish_reason":7}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{}},{"delta":{}}]}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[]} x"#,
            r#"{"a":01}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\x"}"#,
            r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert_eq!(chunk(rare), None, "{rare}");
        }
        // A lone surrogate in a value skipped is not judged, by serde either (it ignores
        // an unknown field's string checking only its escapes' form).
        assert_eq!(chunk(r#"{"a":"\ud800","choices":[]}"#), Some(Scanned { choice: None }));
    }
}
