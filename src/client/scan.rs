//! The common stream chunk read without serde: one pass over the event's bytes that
//! takes the few fields a chat or completions chunk is timed and counted by (a choice's
//! `index`, its delta's `content`, `reasoning`, `reasoning_content`, or its `text`),
//! borrowing each text where it holds no escape, and skips every other value after
//! checking it is well formed. Anything less common — a `finish_reason`, `usage`,
//! `timings`, `error`, tool calls, several choices, a key twice, or any doubt — is
//! `None`, and serde reads the event as before: the scan only ever agrees with it
//! (`tests`: a property test over arbitrary chunks).

use std::borrow::Cow;

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
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Delta<'a> {
    pub content: Option<Cow<'a, str>>,
    pub reasoning_content: Option<Cow<'a, str>>,
    pub reasoning: Option<Cow<'a, str>>,
}

/// Reads `data` as a chunk of the common shape; None: leave it to serde.
pub(super) fn chunk(data: &str) -> Option<Scanned<'_>> {
    let mut s = Scan { b: data.as_bytes(), src: data, i: 0 };
    let mut out = Scanned::default();
    let mut seen_choices = false;
    s.object(|s, key| match key {
        "choices" if !seen_choices => {
            seen_choices = true;
            out.choice = s.choices()?;
            Some(())
        }
        // Read by serde: rare (the last chunk, a failure), and exact there.
        "choices" | "usage" | "timings" | "error" => None,
        _ => s.skip(),
    })?;
    s.ws();
    (s.i == s.b.len()).then_some(out)
}

struct Scan<'a> {
    b: &'a [u8],
    src: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `{ "key": value, … }`, each value read by `field` (which must consume it).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, &key)?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// After an item: a comma (true: another follows) or `close` (false).
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
            let k = ["index", "delta", "text", "finish_reason"].iter().position(|k| *k == key);
            if let Some(k) = k {
                // A key twice is serde's to refuse.
                if std::mem::replace(&mut seen[k], true) {
                    return None;
                }
            }
            match k {
                Some(0) => c.index = s.index()?,
                Some(1) if s.null() => {}
                Some(1) => c.delta = Some(s.delta()?),
                Some(2) => c.text = s.text()?,
                // A choice's end: serde reads the reason.
                Some(3) if s.null() => {}
                Some(_) => return None,
                None => s.skip()?,
            }
            Some(())
        })?;
        Some(c)
    }

    fn delta(&mut self) -> Option<Delta<'a>> {
        let mut d = Delta::default();
        let mut seen = [false; 3];
        self.object(|s, key| {
            let k = ["content", "reasoning_content", "reasoning"].iter().position(|k| *k == key);
            let slot = match k {
                Some(k) if std::mem::replace(&mut seen[k], true) => return None,
                Some(0) => &mut d.content,
                Some(1) => &mut d.reasoning_content,
                Some(_) => &mut d.reasoning,
                // Tool calls are assembled from serde's reading.
                None if key == "tool_calls" => return None,
                None => return s.skip(),
            };
            *slot = s.text()?;
            Some(())
        })?;
        Some(d)
    }

    /// A string or `null`.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() { Some(None) } else { self.string().map(Some) }
    }

    /// A whole number that fits a u32.
    fn index(&mut self) -> Option<u32> {
        self.ws();
        let start = self.i;
        self.number()?;
        self.src[start..self.i].parse().ok()
    }

    fn null(&mut self) -> bool {
        self.ws();
        let yes = self.b[self.i..].starts_with(b"null");
        if yes {
            self.i += 4;
        }
        yes
    }

    /// A JSON string: borrowed when it holds no escape, else decoded.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Borrowed(&self.src[start..self.i - 1]));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.src[start..self.i]);
        loop {
            let from = self.i;
            while let Some(&c) = self.b.get(self.i).filter(|c| !matches!(c, b'"' | b'\\')) {
                if c < 0x20 {
                    return None;
                }
                self.i += 1;
            }
            out.push_str(&self.src[from..self.i]);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                _ => {
                    self.i += 1;
                    let c = match *self.b.get(self.i)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let c = self.unicode()?;
                            out.push(c);
                            continue;
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    out.push(c);
                }
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair of them (a lone surrogate is
    /// serde's to judge).
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
            b'"' => self.string().map(drop),
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
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{}},{"delta":{}}]}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[]} x"#,
            r#"{"a":01}"#,
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert_eq!(chunk(rare), None, "{rare}");
        }
    }
}
