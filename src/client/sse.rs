//! Incremental Server-Sent Events parser for OpenAI-style streaming chat completions.
//!
//! Bytes arrive from the response body in arbitrary pieces (a read may end in the middle
//! of a line, of a `"\r\n"` pair or of a UTF-8 sequence); [`SseParser::feed`] accepts each
//! piece as it comes and appends the `data` of every event it completes.
//!
//! The WHATWG rules that OpenAI and vLLM servers rely on are followed:
//!
//! - lines end with `"\r\n"`, `"\n"` or `"\r"`; a `"\r"` ending one read followed by a
//!   `"\n"` starting the next is a single line ending;
//! - a leading UTF-8 byte order mark at stream start is skipped (only there);
//! - `data:` lines contribute their value, with one leading space removed, and several
//!   data lines of one event are joined with `"\n"`;
//! - lines starting with `:` are comments (keep-alives) and ignored; `event:`, `id:`,
//!   `retry:` and unknown fields are ignored; a line without a colon is a field name with
//!   an empty value (so a bare `data` line adds an empty data line);
//! - a blank line ends the event; an event without any data line is not dispatched.
//!
//! The parser only reports data: the `data: [DONE]` sentinel of OpenAI streams is returned
//! as the event `"[DONE]"` and interpreting it is left to the caller.
//!
//! **End of stream** ([`SseParser::finish`]) deliberately differs from browsers, which
//! discard an unterminated final event: an unterminated last line is processed as if it
//! were terminated, and the pending event is dispatched if (and only if) it has at least
//! one data line. Servers that close the connection right after their last `data:` line
//! therefore do not lose it, while a trailing comment or `event:` line alone yields nothing.
//!
//! Memory is bounded: a line, or the data of one event, larger than the `max_event_bytes`
//! given to [`SseParser::new`] fails with [`SseError::TooLarge`]. Data that is not valid
//! UTF-8 fails with [`SseError::Utf8`] (invalid bytes in ignored lines are harmless).
//! After an error the stream is unusable: further `feed` calls return the same error.
//!
//! The parser keeps one byte buffer for the unfinished line and one for the pending
//! event's data, reused across events. An event whose one data line and blank line lie
//! in the same read is handed on straight from the bytes read, not copied: the common
//! case of a stream. Events go to an [`EventSink`] as they complete: the stream reader
//! takes each at once, so no event is buffered either.

use thiserror::Error;

/// The UTF-8 encoding of U+FEFF.
const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// Why a Server-Sent Events stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// A line, or the data of one event, is larger than the configured limit.
    #[error("server-sent event line or data exceeds the size limit")]
    TooLarge,
    /// The data of an event is not valid UTF-8.
    #[error("server-sent event data is not valid UTF-8")]
    Utf8,
}

/// Where completed events go.
pub trait EventSink {
    fn event(&mut self, data: &str);
}

impl EventSink for Vec<String> {
    fn event(&mut self, data: &str) {
        self.push(data.to_owned());
    }
}

/// Whether the byte order mark at stream start is still being looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// This many leading bytes of the stream matched the BOM so far.
    Bom(usize),
    /// The BOM was skipped or is known to be absent.
    Done,
}

/// The event being assembled: its data lines joined with `'\n'`.
#[derive(Debug, Default)]
struct PendingEvent {
    data: Vec<u8>,
    /// Distinguishes "no data line" (not dispatched) from "empty data" (dispatched as "").
    has_data: bool,
}

impl PendingEvent {
    /// Interprets one complete line (without its line ending).
    fn line(&mut self, line: &[u8], max: usize, out: &mut impl EventSink) -> Result<(), SseError> {
        if line.is_empty() {
            return self.dispatch(out);
        }
        let Some(value) = data_value(line) else {
            return Ok(());
        };
        let separator = usize::from(self.has_data);
        if self.data.len() + separator + value.len() > max {
            return Err(SseError::TooLarge);
        }
        if self.has_data {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        self.has_data = true;
        Ok(())
    }

    /// Takes the first data line of the event, held borrowed until now (within the size
    /// limit: it was a line no longer than it).
    fn keep(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.has_data = true;
    }

    /// Ends the event: appends its data to `out` if it has any data line, then resets.
    fn dispatch(&mut self, out: &mut impl EventSink) -> Result<(), SseError> {
        if !self.has_data {
            return Ok(());
        }
        self.has_data = false;
        let result = dispatch(&self.data, out);
        self.data.clear();
        result
    }
}

/// The value of a `data` line (one leading space removed), or None for any other line:
/// a comment, another field, a blank line.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let (&first, _) = line.split_first()?;
    if first == b':' {
        return None;
    }
    let (name, value) = match memchr::memchr(b':', line) {
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[][..]),
    };
    (name == b"data").then_some(value)
}

/// Hands one event's data to `out`, if it is UTF-8.
fn dispatch(data: &[u8], out: &mut impl EventSink) -> Result<(), SseError> {
    let data = std::str::from_utf8(data).map_err(|_| SseError::Utf8)?;
    out.event(data);
    Ok(())
}

/// Incremental Server-Sent Events parser; see the [module documentation](self).
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// The unfinished line: bytes after the last line ending seen.
    line: Vec<u8>,
    event: PendingEvent,
    /// The last byte seen was a `'\r'`, so a `'\n'` starting the next read belongs to it.
    after_cr: bool,
    start: Start,
    /// Set by the first error; the stream is then abandoned.
    failed: Option<SseError>,
}

impl SseParser {
    /// A parser for one stream whose lines and event data may not exceed `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self { max_event_bytes, line: Vec::new(), event: PendingEvent::default(), after_cr: false, start: Start::Bom(0), failed: None }
    }

    /// Parses the next piece of the stream, appending to `out` the data of every event
    /// these bytes complete, in order.
    ///
    /// On error, events completed earlier in `bytes` have already been appended; the
    /// parser is then unusable and every later `feed` returns the same error.
    pub fn feed(&mut self, bytes: &[u8], out: &mut impl EventSink) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.feed_inner(bytes, out);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            // Release what may be up to `max_event_bytes` of memory each.
            self.line = Vec::new();
            self.event = PendingEvent::default();
        }
        result
    }

    /// Ends the stream: processes an unterminated last line and dispatches the pending
    /// event if it has data (unlike browsers, see the [module documentation](self)).
    ///
    /// Returns the stored error if the stream had failed. Either way the parser is then
    /// reset and can parse a new stream.
    pub fn finish(&mut self, out: &mut impl EventSink) -> Result<(), SseError> {
        let result = match self.failed.take() {
            Some(err) => Err(err),
            None => self.finish_inner(out),
        };
        self.line.clear();
        self.event.data.clear();
        self.event.has_data = false;
        self.after_cr = false;
        self.start = Start::Bom(0);
        result
    }

    fn feed_inner(&mut self, bytes: &[u8], out: &mut impl EventSink) -> Result<(), SseError> {
        let mut rest = self.skip_bom(bytes);
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        let max = self.max_event_bytes;
        // The pending event's one data line, where it lies whole in these bytes: borrowed
        // from them, and dispatched from them at its blank line, with no copy. Kept (copied
        // to the event) only when the read ends first or another data line joins it.
        let mut held: Option<&[u8]> = None;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
            let part = &rest[..end];
            if self.line.is_empty() {
                // Common case: the whole line is in this read, no copy needed.
                check_line(part.len(), max)?;
                match (held, data_value(part)) {
                    (Some(data), _) if part.is_empty() => {
                        held = None;
                        dispatch(data, out)?;
                    }
                    (None, Some(value)) if !self.event.has_data => held = Some(value),
                    _ => {
                        if let Some(data) = held.take() {
                            self.event.keep(data);
                        }
                        self.event.line(part, max, out)?;
                    }
                }
            } else {
                check_line(self.line.len() + part.len(), max)?;
                self.line.extend_from_slice(part);
                self.event.line(&self.line, max, out)?;
                self.line.clear();
            }
            let cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if let Some(data) = held {
            self.event.keep(data);
        }
        check_line(self.line.len() + rest.len(), max)?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut impl EventSink) -> Result<(), SseError> {
        if let Start::Bom(matched) = self.start {
            // The stream ended inside what looked like a BOM: those bytes were content.
            self.line.extend_from_slice(&BOM[..matched]);
        }
        if !self.line.is_empty() {
            check_line(self.line.len(), self.max_event_bytes)?;
            self.event.line(&self.line, self.max_event_bytes, out)?;
        }
        self.event.dispatch(out)
    }

    /// Strips the part of a leading BOM contained in `bytes`, remembering a partial match.
    fn skip_bom<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        while let Start::Bom(matched) = self.start {
            let Some(&byte) = bytes.first() else { break };
            if byte == BOM[matched] {
                bytes = &bytes[1..];
                self.start = if matched + 1 == BOM.len() { Start::Done } else { Start::Bom(matched + 1) };
            } else {
                // Not a BOM after all: the bytes matched so far start the first line.
                self.line.extend_from_slice(&BOM[..matched]);
                self.start = Start::Done;
            }
        }
        bytes
    }
}

fn check_line(len: usize, max: usize) -> Result<(), SseError> {
    if len > max { Err(SseError::TooLarge) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAX: usize = 1 << 16;

    /// Feeds `chunks` in order then finishes, returning the events or the first error.
    fn parse_chunks<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<String>, Result<(), SseError>) {
        let mut parser = SseParser::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            if let Err(err) = parser.feed(chunk, &mut out) {
                return (out, Err(err));
            }
        }
        let result = parser.finish(&mut out);
        (out, result)
    }

    fn parse(input: &[u8]) -> Vec<String> {
        let (out, result) = parse_chunks(MAX, [input]);
        result.expect("valid stream");
        out
    }

    /// Feeds one byte at a time.
    fn parse_bytewise(input: &[u8]) -> Vec<String> {
        let (out, result) = parse_chunks(MAX, input.chunks(1));
        result.expect("valid stream");
        out
    }

    /// Splits `input` at the given (unsorted, possibly duplicate or out of range) offsets.
    fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&input[start..cut]);
            start = cut;
        }
        chunks.push(&input[start..]);
        chunks
    }

    #[test]
    fn openai_like_stream() {
        let chunks: [&[u8]; 6] = [
            b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel",
            b"lo\"}}]}\n\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n",
            b"\n: keep-alive\n\n",
            b"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
            b"data: [DONE]\n\n",
        ];
        let expected = [
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            "[DONE]",
        ];
        let (out, result) = parse_chunks(MAX, chunks);
        assert_eq!(result, Ok(()));
        assert_eq!(out, expected);
        assert_eq!(parse(&chunks.concat()), expected);
        assert_eq!(parse_bytewise(&chunks.concat()), expected);
    }

    #[test]
    fn feed_returns_events_as_soon_as_complete() {
        let mut parser = SseParser::new(MAX);
        let mut out = Vec::new();
        parser.feed(b"data: a\n", &mut out).unwrap();
        assert!(out.is_empty());
        parser.feed(b"\ndata: b\n\ndata: c", &mut out).unwrap();
        assert_eq!(out, ["a", "b"]);
        parser.feed(b"\n\n", &mut out).unwrap();
        assert_eq!(out, ["a", "b", "c"]);
        parser.finish(&mut out).unwrap();
        assert_eq!(out, ["a", "b", "c"]);
    }

    #[test]
    fn one_leading_space_is_removed() {
        assert_eq!(parse(b"data:x\n\ndata: x\n\ndata:  x\n\ndata: \n\n"), ["x", "x", " x", ""]);
        assert_eq!(parse(b"data:x: y\n\n"), ["x: y"]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newline() {
        assert_eq!(parse(b"data: first\ndata: second\ndata:\ndata: fourth\n\n"), ["first\nsecond\n\nfourth"]);
        assert_eq!(parse(b"data: a\nevent: x\n: note\ndata: b\n\n"), ["a\nb"]);
    }

    #[test]
    fn line_without_colon_is_a_field_with_empty_value() {
        assert_eq!(parse(b"data\n\n"), [""]);
        assert_eq!(parse(b"data: a\ndata\n\n"), ["a\n"]);
        assert_eq!(parse(b"dataa\n\n"), Vec::<String>::new());
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(parse(b": keep-alive\n\n:\n\n:data: x\n\n"), Vec::<String>::new());
        assert_eq!(parse(b": ping\ndata: x\n: ping\n\n"), ["x"]);
    }

    #[test]
    fn other_fields_are_ignored() {
        let input = b"event: message\nid: 7\nretry: 1000\nfoo: bar\nDATA: upper\n data: indented\n\n";
        assert_eq!(parse(input), Vec::<String>::new());
        assert_eq!(parse(b"event: delta\nid: 1\ndata: x\nretry: 5\n\n"), ["x"]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(parse(b"\n\n\n"), Vec::<String>::new());
        assert_eq!(parse(b"event: ping\n\ndata: x\n\n"), ["x"]);
        // A blank line resets: data does not leak into the next event.
        assert_eq!(parse(b"data: a\n\n\n\nid: 2\n\ndata: b\n\n"), ["a", "b"]);
    }

    #[test]
    fn crlf_line_endings() {
        let input = b"data: a\r\ndata: b\r\n\r\n: c\r\n\r\ndata: d\r\n\r\n";
        assert_eq!(parse(input), ["a\nb", "d"]);
        assert_eq!(parse_bytewise(input), ["a\nb", "d"]);
    }

    #[test]
    fn cr_only_line_endings() {
        let input = b"data: a\rdata: b\r\r: c\r\rdata: d\r\r";
        assert_eq!(parse(input), ["a\nb", "d"]);
        assert_eq!(parse_bytewise(input), ["a\nb", "d"]);
    }

    #[test]
    fn mixed_line_endings() {
        assert_eq!(parse(b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\n\r"), ["a\nb\nc", "d"]);
    }

    #[test]
    fn cr_at_chunk_end_and_lf_at_next_chunk_start_is_one_line_ending() {
        let (out, result) = parse_chunks(MAX, [&b"data: a\r"[..], b"\ndata: b\r", b"", b"\n", b"\r", b"\n"]);
        assert_eq!(result, Ok(()));
        assert_eq!(out, ["a\nb"]);
        // A CR followed by something else in the next chunk ends the line on its own.
        let (out, result) = parse_chunks(MAX, [&b"data: a\r"[..], b"\r", b"data: b\n\n"]);
        assert_eq!(result, Ok(()));
        assert_eq!(out, ["a", "b"]);
    }

    #[test]
    fn split_inside_utf8_sequence() {
        let input = "data: héllo ✓ 😀\n\n".as_bytes();
        assert_eq!(parse_bytewise(input), ["héllo ✓ 😀"]);
        let emoji = input.iter().position(|&b| b == 0xF0).unwrap();
        let (out, result) = parse_chunks(MAX, [&input[..emoji + 2], &input[emoji + 2..]]);
        assert_eq!(result, Ok(()));
        assert_eq!(out, ["héllo ✓ 😀"]);
    }

    #[test]
    fn leading_bom_is_skipped() {
        assert_eq!(parse(b"\xEF\xBB\xBFdata: x\n\n"), ["x"]);
        let (out, result) = parse_chunks(MAX, [&b"\xEF"[..], b"", b"\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(result, Ok(()));
        assert_eq!(out, ["x"]);
        assert_eq!(parse(b"\xEF\xBB\xBF\n\ndata: x\n\n"), ["x"]);
    }

    #[test]
    fn bom_is_only_skipped_once_and_only_at_start() {
        // A second BOM makes the field name "\u{feff}data", which is unknown.
        assert_eq!(parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), Vec::<String>::new());
        assert_eq!(parse(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"), ["a"]);
        // A partial BOM is content.
        assert_eq!(parse(b"\xEF\xBBdata: x\n\n"), Vec::<String>::new());
        assert_eq!(parse_bytewise(b"\xEF\xBBdata: x\n\n"), Vec::<String>::new());
        assert_eq!(parse(b"\xEF\n\xEF\xBB\xBFdata: x\n\ndata: y\n\n"), ["y"]);
        // The BOM belongs to the stream, not to the data value.
        assert_eq!(parse("data: \u{feff}x\n\n".as_bytes()), ["\u{feff}x"]);
    }

    #[test]
    fn finish_dispatches_an_unterminated_event_with_data() {
        assert_eq!(parse(b"data: a\n\ndata: b\n"), ["a", "b"]);
        assert_eq!(parse(b"data: a\n\ndata: b"), ["a", "b"]);
        assert_eq!(parse(b"data: b\ndata: c\r"), ["b\nc"]);
        assert_eq!(parse(b"data: [DONE]"), ["[DONE]"]);
    }

    #[test]
    fn finish_without_data_dispatches_nothing() {
        assert_eq!(parse(b""), Vec::<String>::new());
        assert_eq!(parse(b"data: a\n\nevent: end\n"), ["a"]);
        assert_eq!(parse(b"data: a\n\n: bye"), ["a"]);
        assert_eq!(parse(b"data: a\n\nid: 3"), ["a"]);
        assert_eq!(parse(b"\xEF\xBB"), Vec::<String>::new());
    }

    #[test]
    fn finish_resets_the_parser_for_a_new_stream() {
        let mut parser = SseParser::new(MAX);
        let mut out = Vec::new();
        parser.feed(b"\xEF\xBB\xBFdata: a\n\ndata: b", &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        parser.feed(b"\xEF\xBB\xBFdata: c\r", &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        parser.feed(b"\ndata: d\n\n", &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        assert_eq!(out, ["a", "b", "c", "d"]);
    }

    #[test]
    fn limit_is_inclusive() {
        let (out, result) = parse_chunks(7, [&b"data: x\n\n"[..]]);
        assert_eq!((out, result), (vec!["x".to_owned()], Ok(())));
        let (out, result) = parse_chunks(6, [&b"data: x\n\n"[..]]);
        assert_eq!((out, result), (vec![], Err(SseError::TooLarge)));
    }

    #[test]
    fn pending_line_too_large() {
        let mut parser = SseParser::new(16);
        let mut out = Vec::new();
        parser.feed(b"data: 0123456789", &mut out).unwrap();
        assert_eq!(parser.feed(b"x", &mut out), Err(SseError::TooLarge));
        // The error sticks.
        assert_eq!(parser.feed(b"\n\ndata: y\n\n", &mut out), Err(SseError::TooLarge));
        assert_eq!(parser.finish(&mut out), Err(SseError::TooLarge));
        assert!(out.is_empty());
        // Until finish resets the parser.
        parser.feed(b"data: y\n\n", &mut out).unwrap();
        assert_eq!(out, ["y"]);
    }

    #[test]
    fn complete_line_too_large() {
        let (out, result) = parse_chunks(16, [&b"data: a\n\ndata: 0123456789abcdef\n\n"[..]]);
        assert_eq!((out, result), (vec!["a".to_owned()], Err(SseError::TooLarge)));
        // Comments and ignored fields count as lines too.
        let (_, result) = parse_chunks(16, [&b": 0123456789abcdef\n"[..]]);
        assert_eq!(result, Err(SseError::TooLarge));
        let (_, result) = parse_chunks(16, [&b": 0123456789abcdef"[..]]);
        assert_eq!(result, Err(SseError::TooLarge));
    }

    #[test]
    fn event_too_large() {
        // Every line fits but the joined data does not: "0123\n0123\n0123\n0123" is 19 bytes.
        let input = b"data: 0123\ndata: 0123\ndata: 0123\ndata: 0123\n\n";
        assert_eq!(parse_chunks(19, [&input[..]]), (vec!["0123\n0123\n0123\n0123".to_owned()], Ok(())));
        assert_eq!(parse_chunks(18, [&input[..]]), (vec![], Err(SseError::TooLarge)));
        assert_eq!(parse_chunks(18, input.chunks(1)), (vec![], Err(SseError::TooLarge)));
    }

    #[test]
    fn invalid_utf8_in_data() {
        assert_eq!(parse_chunks(MAX, [&b"data: a\n\ndata: \xFF\n\n"[..]]), (vec!["a".to_owned()], Err(SseError::Utf8)));
        // A truncated sequence.
        assert_eq!(parse_chunks(MAX, [&b"data: \xE2\x9C\n\n"[..]]), (vec![], Err(SseError::Utf8)));
        // Found at end of stream too.
        assert_eq!(parse_chunks(MAX, [&b"data: \xC3"[..]]), (vec![], Err(SseError::Utf8)));
    }

    #[test]
    fn invalid_utf8_outside_data_is_ignored() {
        assert_eq!(parse(b": \xFF\xFE\n\xFF: x\nevent: \xC3\ndata: ok\n\n"), ["ok"]);
    }

    #[test]
    fn empty_feeds_are_no_ops() {
        let (out, result) = parse_chunks(MAX, [&b""[..], b"", b"data: x\n", b"", b"\n", b""]);
        assert_eq!((out, result), (vec!["x".to_owned()], Ok(())));
    }

    #[test]
    fn errors_display() {
        assert!(SseError::TooLarge.to_string().contains("size limit"));
        assert!(SseError::Utf8.to_string().contains("UTF-8"));
    }

    /// One line of a generated stream.
    #[derive(Debug, Clone)]
    enum Line {
        /// `data:` and the value, with or without the optional space.
        Data {
            value: String,
            space: bool,
        },
        Comment(String),
        /// `event:`, `id:`, `retry:`, an unknown field, or a field without a colon.
        Other(String),
    }

    fn value() -> impl Strategy<Value = String> {
        // No CR or LF: they would end the line. Includes multi-byte characters and colons.
        "[^\r\n]{0,12}"
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            4 => (value(), any::<bool>()).prop_map(|(value, space)| Line::Data { space: space || value.starts_with(' '), value }),
            1 => value().prop_map(Line::Comment),
            1 => (prop::sample::select(vec!["event: ", "id:", "retry: ", "foo: ", "event", "ida", "Data: "]), value())
                .prop_map(|(field, value)| Line::Other(format!("{field}{value}"))),
        ]
    }

    fn ending() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["\n", "\r\n", "\r"])
    }

    /// Up to `max` lines, each with a random line ending.
    fn lines(min: usize, max: usize) -> impl Strategy<Value = Vec<(Line, &'static str)>> {
        prop::collection::vec((line(), ending()), min..max)
    }

    /// Appends one event to `bytes` and its data, if any, to `expected`. `blank` ends the
    /// event; without it the event is left unterminated, possibly without its last line ending.
    fn push_event(bytes: &mut Vec<u8>, expected: &mut Vec<String>, lines: &[(Line, &str)], blank: Option<&str>, drop_last_ending: bool) {
        let mut data: Option<String> = None;
        for (index, (line, ending)) in lines.iter().enumerate() {
            match line {
                Line::Data { value, space } => {
                    bytes.extend_from_slice(if *space { b"data: " } else { b"data:" });
                    bytes.extend_from_slice(value.as_bytes());
                    match &mut data {
                        Some(data) => {
                            data.push('\n');
                            data.push_str(value);
                        }
                        None => data = Some(value.clone()),
                    }
                }
                Line::Comment(text) => {
                    bytes.push(b':');
                    bytes.extend_from_slice(text.as_bytes());
                }
                Line::Other(text) => bytes.extend_from_slice(text.as_bytes()),
            }
            if !(drop_last_ending && index + 1 == lines.len()) {
                bytes.extend_from_slice(ending.as_bytes());
            }
        }
        if let Some(blank) = blank {
            // "\r" then "\n" would be a single line ending, not a blank line.
            let blank = if blank == "\n" && bytes.last() == Some(&b'\r') { "\r\n" } else { blank };
            bytes.extend_from_slice(blank.as_bytes());
        }
        expected.extend(data);
    }

    /// A stream of events (lines, then a blank line), and optionally a final event without
    /// its blank line, whose last line may lack its line ending; all with random endings.
    /// Returns the bytes and the expected events.
    fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
        (any::<bool>(), prop::collection::vec((lines(0, 4), ending()), 0..8), prop::option::of((lines(1, 4), any::<bool>()))).prop_map(
            |(bom, events, last)| {
                let mut bytes = Vec::new();
                let mut expected = Vec::new();
                if bom {
                    bytes.extend_from_slice(BOM);
                }
                for (lines, blank) in &events {
                    push_event(&mut bytes, &mut expected, lines, Some(blank), false);
                }
                if let Some((lines, drop_last_ending)) = &last {
                    push_event(&mut bytes, &mut expected, lines, None, *drop_last_ending);
                }
                (bytes, expected)
            },
        )
    }

    /// Random bytes, biased towards the bytes that matter to the parser.
    fn noise() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => prop::sample::select(b"\r\n: datDA\xEF\xBB\xBF\xC3\xA9\xFF".to_vec()),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..256)
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events((input, expected) in stream(), cuts in prop::collection::vec(any::<usize>(), 0..16)) {
            let (whole, result) = parse_chunks(MAX, [&input[..]]);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&whole, &expected);
            let (split, result) = parse_chunks(MAX, split_at_cuts(&input, &cuts));
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&split, &expected);
            let (bytewise, result) = parse_chunks(MAX, input.chunks(1));
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(&bytewise, &expected);
        }

        #[test]
        fn random_bytes_never_panic(input in noise(), cuts in prop::collection::vec(any::<usize>(), 0..16), max in 0usize..64) {
            // Whatever the input, the outcome (events and error) does not depend on the split.
            let whole = parse_chunks(max, [&input[..]]);
            let split = parse_chunks(max, split_at_cuts(&input, &cuts));
            prop_assert_eq!(&whole, &split);
            let bytewise = parse_chunks(max, input.chunks(1));
            prop_assert_eq!(&whole, &bytewise);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..1024) {
            let (_, result) = parse_chunks(max, input.chunks(7));
            prop_assert!(matches!(result, Ok(()) | Err(SseError::TooLarge | SseError::Utf8)));
        }
    }
}
