//! Timestamped traces: one request per JSONL line at its `timestamp` (ms from the
//! trace's start). Mooncake's format gives lengths and `hash_ids` (one id per block of
//! `block_tokens`, the last block partial), so the text is made here and a server's
//! prefix cache sees the reuse production saw; a plain JSONL trace gives the prompt
//! itself. AIPerf's extensions are read where present: `text_input` (a literal prompt),
//! `session_id` (the lines of one session go one after another) and `delay` (a later
//! line of a session is sent this long after the one before it ended).
//!
//! Lines must be in time order: a trace is a record of time, so a timestamp before the
//! line above it is refused (with its line number), not sorted.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

use super::blocks::BlockTexts;
use super::dist::MAX_TOKENS;
use super::prompt::{Prompt, parse_jsonl_line};
use super::tokens::Tokenizer;
use crate::model::Api;

/// Longest block of a Mooncake trace.
pub const MAX_BLOCK_TOKENS: u32 = 1 << 16;

/// How a trace's lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `timestamp`, `input_length`, `output_length`, `hash_ids` (and AIPerf's fields).
    Mooncake,
    /// `timestamp` and `prompt` or `messages`, optionally `output_tokens`.
    Jsonl,
}

/// One line's prompt, as the trace gives it.
#[derive(Debug, Clone)]
pub enum Input {
    /// `tokens` long, block `k` the text of `ids[k]` (the last one cut to fit).
    Blocks { tokens: u32, ids: Box<[u64]> },
    /// `tokens` long, shared with no other line (a Mooncake line without `hash_ids`).
    Unique { tokens: u32 },
    /// A literal prompt, counted once when the trace was read.
    Prompt(Prompt),
}

/// A line of the trace, as it will be sent.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its line number in the file (1-based), for messages.
    pub line_no: u32,
    /// Due this long after the replay's start (before `speed`), where timed.
    pub at_us: Option<u64>,
    /// A later line of a session: sent this long after the one before it ended.
    pub delay_us: u64,
    /// The next line of its session, which waits for this one to end.
    pub next: Option<u32>,
    /// Whether an earlier line of its session sends it (it is not on the clock alone).
    pub follows: bool,
    pub input: Input,
    pub output: Option<u32>,
}

/// The part of a trace a stage replays.
#[derive(Debug, Clone, Default)]
pub struct Cut {
    /// Lines due before this are skipped (with the rest of their session); the replay's
    /// clock starts here.
    pub start_us: u64,
    /// Lines due this long after `start` or later are left out.
    pub duration_us: Option<u64>,
    /// At most this many lines, in file order.
    pub requests: Option<u64>,
}

/// A trace read and cut: the lines to replay, in file order (time order).
#[derive(Debug, Clone)]
pub struct Trace {
    pub lines: Vec<Line>,
    /// Lines in the file (before the cut).
    pub in_file: usize,
    /// Sessions among the lines kept (a line without `session_id` is one of its own).
    pub sessions: usize,
    /// From the first line's due time to the last's, µs (before `speed`).
    pub span_us: u64,
}

impl Trace {
    /// The lines that the clock sends (the rest follow an earlier line of their session).
    pub fn heads(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.lines.iter().enumerate().filter(|(_, l)| !l.follows).map(|(i, l)| (i as u32, l.at_us.unwrap_or(0)))
    }
}

/// A trace as a stage replays it: its lines, the text of their blocks, its clock's
/// speed (2 = twice as fast).
#[derive(Debug)]
pub struct Replay {
    pub trace: Trace,
    pub texts: BlockTexts,
    pub speed: f64,
}

impl Replay {
    /// Line `i`'s prompt, for stage `stage` (each stage's blocks are its own, so one
    /// stage's replay never finds the cache warmed by another's).
    pub fn prompt(&self, api: Api, stage: u64, i: u64) -> Cow<'_, Prompt> {
        let line = &self.trace.lines[(i % self.trace.lines.len() as u64) as usize];
        let (text, tokens) = match &line.input {
            Input::Prompt(p) => return Cow::Borrowed(p),
            Input::Blocks { tokens, ids } => (self.texts.text(stage, ids, *tokens), *tokens),
            Input::Unique { tokens } => (self.texts.unique(stage, u64::from(line.line_no), *tokens), *tokens),
        };
        Cow::Owned(Prompt::from_text(api, None, &text).counted(u64::from(tokens), line.output))
    }

    pub fn has_output_lengths(&self) -> bool {
        self.trace.lines.iter().any(|l| l.output.is_some())
    }
}

/// A line as read, before the cut.
struct Raw {
    line_no: u32,
    at_us: Option<u64>,
    delay_us: u64,
    session: Option<u32>,
    input: Input,
    output: Option<u32>,
}

/// Reads a trace: every bad line by its number, with why. `tok` counts the literal
/// prompts of a plain JSONL trace (and `text_input` lines without `input_length`).
pub fn read(api: Api, text: &str, format: Format, block_tokens: u32, tok: &Tokenizer, cut: &Cut) -> Result<Trace, Vec<(usize, String)>> {
    let mut raws = Vec::new();
    let mut bad = Vec::new();
    let mut sessions: HashMap<String, u32> = HashMap::new();
    let mut seen_session = Vec::<bool>::new();
    let mut last_at: Option<(u64, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let raw = parse_line(api, line, format, block_tokens, tok, line_no).and_then(|(mut raw, key)| {
            if let Some((at, before)) = last_at
                && raw.at_us.is_some_and(|t| t < at)
            {
                return Err(format!(
                    "timestamp {} ms is before line {before}'s {} ms: a trace must be in time order (sort it by timestamp)",
                    ms(raw.at_us.unwrap_or(0)),
                    ms(at)
                ));
            }
            raw.session = key.map(|k| {
                let next = sessions.len() as u32;
                *sessions.entry(k).or_insert(next)
            });
            let follows = raw.session.is_some_and(|s| seen_session.get(s as usize).copied().unwrap_or(false));
            if !follows && raw.at_us.is_none() {
                return Err(match raw.session {
                    Some(_) => "the first line of a session needs a `timestamp` (`delay` is for its later lines)".into(),
                    None => "missing `timestamp` (ms from the trace's start)".into(),
                });
            }
            if let Some(s) = raw.session {
                if seen_session.len() <= s as usize {
                    seen_session.resize(s as usize + 1, false);
                }
                seen_session[s as usize] = true;
            }
            Ok(raw)
        });
        match raw {
            Ok(raw) => {
                if let Some(at) = raw.at_us {
                    last_at = Some((at, line_no));
                }
                raws.push(raw);
            }
            Err(msg) => bad.push((line_no, msg)),
        }
    }
    if raws.is_empty() && bad.is_empty() {
        bad.push((1, "the trace has no lines".into()));
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    let in_file = raws.len();
    Ok(cut_and_link(raws, cut, in_file))
}

/// The lines `cut` keeps, a session whole or not at all (by its first line's time),
/// linked to the next line of their session.
fn cut_and_link(raws: Vec<Raw>, cut: &Cut, in_file: usize) -> Trace {
    let mut dropped_sessions = std::collections::HashSet::new();
    let mut last_of: HashMap<u32, u32> = HashMap::new();
    let mut lines: Vec<Line> = Vec::new();
    let limit = cut.requests.unwrap_or(u64::MAX);
    let mut sessions = 0;
    for raw in raws {
        if lines.len() as u64 >= limit {
            break;
        }
        let follows = raw.session.is_some_and(|s| last_of.contains_key(&s) || dropped_sessions.contains(&s));
        if !follows {
            let at = raw.at_us.unwrap_or(0);
            let out = at < cut.start_us || cut.duration_us.is_some_and(|d| at - cut.start_us >= d);
            if out {
                if let Some(s) = raw.session {
                    dropped_sessions.insert(s);
                }
                continue;
            }
            sessions += 1;
        } else if raw.session.is_some_and(|s| dropped_sessions.contains(&s)) {
            continue;
        }
        let index = lines.len() as u32;
        if let Some(s) = raw.session
            && let Some(prev) = last_of.insert(s, index)
        {
            lines[prev as usize].next = Some(index);
        }
        lines.push(Line {
            line_no: raw.line_no,
            at_us: raw.at_us.map(|t| t.saturating_sub(cut.start_us)),
            delay_us: raw.delay_us,
            next: None,
            follows,
            input: raw.input,
            output: raw.output,
        });
    }
    let times = lines.iter().filter_map(|l| l.at_us);
    let span_us = times.clone().max().unwrap_or(0) - times.min().unwrap_or(0);
    Trace { lines, in_file, sessions, span_us }
}

fn ms(us: u64) -> String {
    if us.is_multiple_of(1000) { (us / 1000).to_string() } else { format!("{:.3}", us as f64 / 1000.0) }
}

/// A whole number of milliseconds (or a fraction of one) ≥ 0, as µs.
fn millis(v: &Value, field: &str) -> Result<u64, String> {
    match v.as_f64() {
        Some(t) if (0.0..1e15).contains(&t) => Ok((t * 1000.0).round() as u64),
        _ => Err(format!("{field} must be a number of milliseconds ≥ 0, got {v}")),
    }
}

fn tokens(v: &Value, field: &str) -> Result<u32, String> {
    match v.as_u64() {
        Some(n) if (1..=u64::from(MAX_TOKENS)).contains(&n) => Ok(n as u32),
        _ => Err(format!("{field} must be a whole number of tokens from 1 to {MAX_TOKENS}, got {v}")),
    }
}

/// A line, and its `session_id` (a string or a number) as written.
fn parse_line(api: Api, line: &str, format: Format, block: u32, tok: &Tokenizer, line_no: usize) -> Result<(Raw, Option<String>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err(format!("expected a JSON object, got {}", short(&v)));
    }
    let session = match v.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(format!("session_id must be a string or a number, got {}", short(other))),
    };
    let at_us = v.get("timestamp").filter(|t| !t.is_null()).map(|t| millis(t, "timestamp")).transpose()?;
    let delay_us = v.get("delay").filter(|t| !t.is_null()).map(|t| millis(t, "delay")).transpose()?;
    if at_us.is_some() && delay_us.is_some() {
        return Err("give `timestamp` or `delay`, not both".into());
    }
    if delay_us.is_some() && session.is_none() {
        return Err("`delay` is for the later lines of a session: it needs a `session_id`".into());
    }
    let (input, output) = match format {
        Format::Jsonl => {
            let prompt = parse_jsonl_line(api, line, None)?;
            let output = prompt.output;
            let tokens = prompt.tokens(tok);
            (Input::Prompt(prompt.counted(tokens, output)), output)
        }
        Format::Mooncake => mooncake_input(api, &v, block, tok)?,
    };
    let line_no = u32::try_from(line_no).map_err(|_| "the trace has too many lines".to_string())?;
    Ok((Raw { line_no, at_us, delay_us: delay_us.unwrap_or(0), session: None, input, output }, session))
}

/// A Mooncake line's prompt: `text_input` as given, else `input_length` tokens made
/// from `hash_ids`, which must fit the length in blocks of `block`.
fn mooncake_input(api: Api, v: &Value, block: u32, tok: &Tokenizer) -> Result<(Input, Option<u32>), String> {
    let output = v.get("output_length").filter(|o| !o.is_null()).map(|o| tokens(o, "output_length")).transpose()?;
    let length = v.get("input_length").filter(|o| !o.is_null()).map(|o| tokens(o, "input_length")).transpose()?;
    if let Some(text) = v.get("text_input") {
        let Some(text) = text.as_str().filter(|t| !t.is_empty()) else {
            return Err(format!("text_input must be a non-empty string, got {}", short(text)));
        };
        let prompt = Prompt::from_text(api, None, text);
        let n = length.map_or_else(|| tok.count(text), u64::from);
        return Ok((Input::Prompt(prompt.counted(n, output)), output));
    }
    let Some(length) = length else {
        return Err("missing `input_length` (tokens; or AIPerf's `text_input`)".into());
    };
    let Some(ids) = v.get("hash_ids").filter(|h| !h.is_null()) else {
        return Ok((Input::Unique { tokens: length }, output));
    };
    let Some(list) = ids.as_array() else {
        return Err(format!("hash_ids must be a list of block ids, got {}", short(ids)));
    };
    let ids: Vec<u64> = list
        .iter()
        .map(|id| id.as_u64().ok_or_else(|| format!("hash_ids must be whole numbers ≥ 0, got {}", short(id))))
        .collect::<Result<_, _>>()?;
    let need = length.div_ceil(block) as usize;
    if ids.len() != need {
        return Err(format!(
            "{} hash_ids do not fit input_length {length} in blocks of {block} tokens: it needs {need} (the last one partial)",
            ids.len()
        ));
    }
    Ok((Input::Blocks { tokens: length, ids: ids.into() }, output))
}

/// A value cut short for a message: a line may be megabytes.
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mooncake(text: &str, cut: &Cut) -> Result<Trace, Vec<(usize, String)>> {
        read(Api::Chat, text, Format::Mooncake, 512, &Tokenizer::o200k(), cut)
    }

    #[test]
    fn mooncake_lines_are_read_in_time_order_with_their_blocks() {
        let text = r#"{"timestamp": 0, "input_length": 1200, "output_length": 52, "hash_ids": [0, 1, 2]}
{"timestamp": 105, "input_length": 1800, "output_length": 26, "hash_ids": [0, 3, 4, 5]}

{"timestamp": 105, "input_length": 30, "output_length": 5}
"#;
        let t = mooncake(text, &Cut::default()).unwrap();
        assert_eq!((t.lines.len(), t.in_file, t.sessions, t.span_us), (3, 3, 3, 105_000));
        assert!(matches!(&t.lines[1].input, Input::Blocks { tokens: 1800, ids } if ids[..] == [0, 3, 4, 5]));
        assert!(matches!(t.lines[2].input, Input::Unique { tokens: 30 }));
        assert_eq!((t.lines[2].line_no, t.lines[2].at_us, t.lines[2].output), (4, Some(105_000), Some(5)));
        assert_eq!(t.heads().collect::<Vec<_>>(), [(0, 0), (1, 105_000), (2, 105_000)]);
    }

    #[test]
    fn every_bad_line_is_named_by_its_number() {
        let text = r#"not json
{"timestamp": 10, "input_length": 100, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 20, "input_length": -3, "output_length": 5}
{"timestamp": 30, "input_length": 10, "output_length": 5}
{"timestamp": 5, "input_length": 10, "output_length": 5}
{"input_length": 10, "output_length": 5}
{"timestamp": 40, "input_length": 1025, "output_length": 5, "hash_ids": [1, 2]}
{"timestamp": 50, "input_length": 10, "output_length": 0}
{"timestamp": 60, "input_length": 10, "hash_ids": [-1]}
[1, 2]
{"timestamp": 70, "input_length": 10, "delay": 5, "session_id": "a"}
{"timestamp": -1, "input_length": 10}
{"timestamp": 80, "output_length": 5}
"#;
        let bad = mooncake(text, &Cut::default()).unwrap_err();
        let lines: Vec<usize> = bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13], "{bad:#?}");
        let why = |n: usize| bad.iter().find(|(l, _)| *l == n).unwrap().1.clone();
        assert!(why(1).starts_with("not JSON"), "{}", why(1));
        assert_eq!(why(2), "2 hash_ids do not fit input_length 100 in blocks of 512 tokens: it needs 1 (the last one partial)");
        assert!(why(3).starts_with("input_length must be a whole number of tokens from 1 to"), "{}", why(3));
        assert!(why(13).starts_with("missing `input_length`"), "{}", why(13));
        assert!(why(5).starts_with("timestamp 5 ms is before line 4's 30 ms"), "{}", why(5));
        assert_eq!(why(6), "missing `timestamp` (ms from the trace's start)");
        assert!(why(7).contains("it needs 3"), "{}", why(7));
        assert!(why(8).starts_with("output_length must be"), "{}", why(8));
        assert!(why(9).starts_with("hash_ids must be whole numbers"), "{}", why(9));
        assert!(why(10).starts_with("expected a JSON object"), "{}", why(10));
        assert_eq!(why(11), "give `timestamp` or `delay`, not both");
        assert!(why(12).starts_with("timestamp must be a number of milliseconds"), "{}", why(12));
        assert_eq!(mooncake("\n\n", &Cut::default()).unwrap_err(), [(1, "the trace has no lines".to_string())]);
    }

    #[test]
    fn sessions_chain_their_lines_and_the_cut_keeps_them_whole() {
        let text = r#"{"timestamp": 0, "session_id": "a", "input_length": 10, "output_length": 5}
{"timestamp": 1000, "session_id": 7, "input_length": 10, "output_length": 5}
{"session_id": "a", "delay": 250, "input_length": 20, "output_length": 5}
{"timestamp": 2000, "input_length": 10, "output_length": 5}
{"session_id": 7, "delay": 0.5, "text_input": "hello there", "output_length": 5}
{"session_id": "b", "delay": 5, "input_length": 10}
"#;
        let bad = mooncake(text, &Cut::default()).unwrap_err();
        assert_eq!(bad, [(6, "the first line of a session needs a `timestamp` (`delay` is for its later lines)".to_string())]);
        let text = text.lines().take(5).collect::<Vec<_>>().join("\n");
        let t = mooncake(&text, &Cut::default()).unwrap();
        assert_eq!(t.sessions, 3);
        assert_eq!((t.lines[0].next, t.lines[1].next, t.lines[2].next), (Some(2), Some(4), None));
        assert!(t.lines[2].follows && t.lines[4].follows && !t.lines[3].follows);
        assert_eq!((t.lines[2].delay_us, t.lines[4].delay_us), (250_000, 500));
        assert!(matches!(&t.lines[4].input, Input::Prompt(p) if p.tokens(&Tokenizer::o200k()) == 2));
        // From 0.5 s on: session "a" began before, so it goes whole; 7 and the lone line stay.
        let t = mooncake(&text, &Cut { start_us: 500_000, ..Cut::default() }).unwrap();
        let kept: Vec<u32> = t.lines.iter().map(|l| l.line_no).collect();
        assert_eq!(kept, [2, 4, 5]);
        assert_eq!((t.lines[0].at_us, t.lines[0].next, t.span_us), (Some(500_000), Some(2), 1_000_000));
        // A duration and a count cut it too.
        let t = mooncake(&text, &Cut { duration_us: Some(1_500_000), ..Cut::default() }).unwrap();
        assert_eq!(t.lines.iter().map(|l| l.line_no).collect::<Vec<_>>(), [1, 2, 3, 5]);
        let t = mooncake(&text, &Cut { requests: Some(2), ..Cut::default() }).unwrap();
        assert_eq!(t.lines.len(), 2);
    }

    #[test]
    fn a_plain_trace_gives_its_prompts_counted_once() {
        let text = r#"{"timestamp": 0, "prompt": "hello world", "output_tokens": 7}
{"timestamp": 12.5, "messages": [{"role": "user", "content": "hi"}]}
"#;
        let t = read(Api::Chat, text, Format::Jsonl, 512, &Tokenizer::o200k(), &Cut::default()).unwrap();
        assert_eq!((t.lines[0].output, t.lines[1].output, t.lines[1].at_us), (Some(7), None, Some(12_500)));
        assert!(matches!(&t.lines[0].input, Input::Prompt(p) if p.tokens(&Tokenizer::o200k()) == 2));
        let bad = read(Api::Chat, "{\"timestamp\": 0, \"input_length\": 5}\n", Format::Jsonl, 512, &Tokenizer::o200k(), &Cut::default());
        assert!(bad.unwrap_err()[0].1.contains("`messages` array (or a `prompt` string)"));
    }
}
