//! Tasks (`[[task]]`): a small program of requests that a stage runs instead of single
//! prompts — steps one after another, a step's fan-out of N requests (at most
//! `concurrency` at once within the task), its answers carried into a later step's
//! prompt (fan-in). This file holds a task as validated and each step's prompt as
//! sent: its template's placeholders filled from the task's input, the member's
//! number, a seeded document and the earlier step's answers.

use std::sync::Arc;

use rand::rngs::StdRng;

use super::dist::{Dist, rng_named};
use super::synth::WordPool;

/// A task as the scenario defines it.
#[derive(Debug, Clone)]
pub struct TaskDef {
    pub name: String,
    pub steps: Vec<StepDef>,
    /// Makes the steps' `{document}`s, where one has `document_tokens`.
    pub words: Option<Arc<WordPool>>,
}

/// Most requests one step of one task sends.
pub const MAX_FAN_OUT: u32 = 10_000;

/// How many requests a step sends.
#[derive(Debug, Clone, PartialEq)]
pub enum FanOut {
    Fixed(u32),
    /// Drawn per task from the task's own seeded generator.
    Drawn(Dist),
    /// One per item of the task's input's list of this name (a JSONL line's retrieved
    /// `documents`), at most [`MAX_FAN_OUT`]: the longest list of the stage's prompts
    /// once they are known (so its connections are sized to it).
    Field {
        name: String,
        most: u32,
    },
}

impl FanOut {
    /// The most it can send.
    pub fn most(&self) -> u32 {
        match self {
            FanOut::Fixed(n) | FanOut::Drawn(Dist::Fixed(n)) => *n,
            FanOut::Drawn(Dist::Normal { max, .. } | Dist::Uniform { max, .. } | Dist::LogNormal { max, .. }) => *max,
            FanOut::Field { most, .. } => *most,
        }
    }

    /// The fewest it can send, where known before the task's input is (a list's
    /// length is not).
    pub fn least(&self) -> Option<u32> {
        match self {
            FanOut::Fixed(n) => Some(*n),
            FanOut::Drawn(d) => Some(match d {
                Dist::Fixed(n) => *n,
                Dist::Normal { min, .. } | Dist::Uniform { min, .. } | Dist::LogNormal { min, .. } => *min,
            }),
            FanOut::Field { .. } => None,
        }
    }
}

/// When a fan-out's step is done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Join {
    /// When every member has ended.
    All,
    /// As soon as this many have answered: the others are cancelled (those in flight)
    /// or never sent.
    First(u32),
}

/// What a failed member does to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The task fails at this step: its members still in flight are cancelled.
    FailTask,
    /// The member is left out; the step needs `quorum` answers to go on.
    Skip,
}

/// Tasks are equal by their definition (the word pool is the tokenizer's).
impl PartialEq for TaskDef {
    fn eq(&self, other: &TaskDef) -> bool {
        self.name == other.name && self.steps == other.steps
    }
}

/// One step of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    pub name: String,
    /// The model it asks (the stage's where not set).
    pub model: String,
    /// The API it speaks (the target's where not set).
    pub api: crate::model::Api,
    /// What a rerank step's requests carry beside their query: its documents.
    pub texts: super::texts::TextsSpec,
    pub template: Template,
    pub fan_out: FanOut,
    /// Most of its requests in flight at once within one task.
    pub concurrency: u32,
    pub join: Join,
    pub on_error: OnError,
    /// Fewest answers it needs to go on (with `on_error = "skip"`).
    pub quorum: u32,
    /// Tokens of each request's `{document}`.
    pub document_tokens: Option<Dist>,
    /// The earlier answers are ranked by this JSON field, highest first, before a
    /// `{answers…}` takes its slice.
    pub top_by: Option<String>,
    /// The earlier step whose answers `{answers…}` takes (by default the one before).
    pub answers_from: Option<usize>,
    /// What its requests ask for (the scenario's `[request]` with the step's own; an
    /// agent's tools among them).
    pub request: crate::model::RequestParams,
    /// An agent loop: the step calls its model again while it asks for tools.
    pub agent: Option<Agent>,
}

/// A step that loops: each reply's tool calls are run by simulated tools, their results
/// sent back as `tool` messages with the history, until the model answers or
/// `max_steps` model calls were made.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub tools: Vec<SimTool>,
    pub max_steps: u32,
}

/// A tool the engine runs in place of a real one: it takes its time and answers with
/// text of its length.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTool {
    pub name: String,
    /// Milliseconds a call takes.
    pub latency_ms: Dist,
    pub result_tokens: Dist,
}

impl Agent {
    /// A call's time and result (seeded by the task, the step's call and the call's
    /// index); None for a tool it does not have.
    pub fn run(&self, name: &str, words: Option<&WordPool>, seed: (u64, u64, u64)) -> Option<(std::time::Duration, String, u64)> {
        let tool = self.tools.iter().find(|t| t.name == name)?;
        let (stage, task, call) = seed;
        let mut rng = rng_named(stage, task, call, b"simtool\0");
        let ms = if tool.latency_ms == Dist::Fixed(0) { 0 } else { tool.latency_ms.sample(&mut rng) };
        let n = tool.result_tokens.sample(&mut rng);
        let mut text = String::new();
        if let Some(w) = words {
            w.random_words(&mut rng, n as usize, &mut text);
        }
        Some((std::time::Duration::from_millis(u64::from(ms)), text, u64::from(n)))
    }
}

/// A piece of a step's prompt template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// The task's input: the stage's prompt for the task's number.
    Prompt,
    /// The task's number in the stage.
    Task,
    /// The member's number within its step's fan-out.
    Member,
    /// `document_tokens` of seeded text, its own per task and member.
    Document,
    /// The member's item of the list its step fans out over.
    Item,
    /// The earlier step's answers `from..to` (after ranking), blank-line separated.
    Answers {
        from: usize,
        to: Option<usize>,
    },
}

/// A step's prompt: text with placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// Parses `{prompt}`, `{task}`, `{member}`, `{document}`, `{item}`, `{answers}`,
    /// `{answers[a..b]}` (either end may be left out) and `{answer}` (the first); `{{`
    /// and `}}` are literal braces. The error names the placeholder and its byte offset.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                lit.push(tail.as_bytes()[0] as char);
                (rest, at) = (&tail[2..], at + i + 2);
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!("a lone `}}` at byte {} (write `}}}}` for a brace)", at + i));
            }
            let Some(end) = tail.find('}') else {
                return Err(format!("`{{` at byte {} is never closed (write `{{{{` for a brace)", at + i));
            };
            let name = &tail[1..end];
            let piece = placeholder(name).ok_or_else(|| {
                format!(
                    "unknown placeholder `{{{name}}}` at byte {}: expected {{prompt}}, {{task}}, {{member}}, {{document}}, {{item}}, {{answer}}, {{answers}} or {{answers[a..b]}}",
                    at + i
                )
            })?;
            if !lit.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
            (rest, at) = (&tail[end + 1..], at + i + end + 1);
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Template(pieces))
    }

    pub fn uses(&self, f: impl Fn(&Piece) -> bool) -> bool {
        self.0.iter().any(f)
    }
}

fn placeholder(name: &str) -> Option<Piece> {
    Some(match name.trim() {
        "prompt" => Piece::Prompt,
        "task" => Piece::Task,
        "member" => Piece::Member,
        "document" => Piece::Document,
        "item" => Piece::Item,
        "answers" => Piece::Answers { from: 0, to: None },
        "answer" => Piece::Answers { from: 0, to: Some(1) },
        other => {
            let range = other.strip_prefix("answers[")?.strip_suffix(']')?;
            let (a, b) = range.split_once("..")?;
            let from = if a.is_empty() { 0 } else { a.trim().parse().ok()? };
            let to = if b.is_empty() { None } else { Some(b.trim().parse().ok()?) };
            if to.is_some_and(|t| t <= from) {
                return None;
            }
            Piece::Answers { from, to }
        }
    })
}

/// An answer an earlier step got, as the next step's prompt takes it.
#[derive(Debug, Clone)]
pub struct Carried {
    pub text: Arc<str>,
    /// Its length in tokens (the reply's count).
    pub tokens: u64,
}

/// What a step's prompt is filled from, for one member.
pub struct Fill<'a> {
    /// The task's input text and its length in tokens.
    pub prompt: (&'a str, u64),
    pub task: u64,
    pub member: u32,
    /// The earlier step's answers, ranked.
    pub answers: &'a [Carried],
    /// The member's item of the list its step fans out over, and its length.
    pub item: Option<&'a Carried>,
    /// The stage's seed and number: a document is drawn from them, the task and member.
    pub seed: (u64, u64),
}

impl StepDef {
    /// The step's prompt for one member, and its length in tokens: counted piece by
    /// piece (the text pieces once, where the step was made), so nothing is tokenized
    /// on the request path; joins may merge a token or two.
    pub fn render(&self, fill: &Fill<'_>, words: Option<&WordPool>, text_tokens: &[u64]) -> (String, u64) {
        let mut out = String::new();
        let mut tokens = 0u64;
        let mut texts = text_tokens.iter();
        for piece in &self.template.0 {
            match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    tokens += texts.next().copied().unwrap_or(0);
                }
                Piece::Prompt => {
                    out.push_str(fill.prompt.0);
                    tokens += fill.prompt.1;
                }
                Piece::Task => tokens += push_number(&mut out, fill.task),
                Piece::Member => tokens += push_number(&mut out, u64::from(fill.member)),
                Piece::Document => tokens += self.document(fill, words, &mut out),
                Piece::Item => {
                    if let Some(item) = fill.item {
                        out.push_str(&item.text);
                        tokens += item.tokens;
                    }
                }
                Piece::Answers { from, to } => {
                    let end = to.unwrap_or(usize::MAX).min(fill.answers.len());
                    for (k, a) in fill.answers.get(*from..end).unwrap_or_default().iter().enumerate() {
                        if k > 0 {
                            out.push_str("\n\n");
                        }
                        out.push_str(&a.text);
                        tokens += a.tokens + u64::from(k > 0);
                    }
                }
            }
        }
        (out, tokens)
    }

    fn document(&self, fill: &Fill<'_>, words: Option<&WordPool>, out: &mut String) -> u64 {
        let (Some(dist), Some(words)) = (&self.document_tokens, words) else { return 0 };
        let (seed, stage) = fill.seed;
        let mut rng: StdRng = rng_named(seed, stage, fill.task << 20 | u64::from(fill.member), b"document");
        let n = dist.sample(&mut rng);
        words.random_words(&mut rng, n as usize, out);
        u64::from(n)
    }
}

/// Writes `n`; counts it as a token per three digits, as BPE tokenizers split numbers.
fn push_number(out: &mut String, n: u64) -> u64 {
    let s = n.to_string();
    out.push_str(&s);
    s.len().div_ceil(3) as u64
}

/// Ranks answers by the number at `field` of each (parsed as JSON), highest first; an
/// answer without one goes last. Stable: equal ones keep their order.
pub fn rank(answers: &mut [Carried], field: &str) {
    let score = |a: &Carried| {
        serde_json::from_str::<serde_json::Value>(a.text.trim()).ok().and_then(|v| v.get(field).and_then(serde_json::Value::as_f64))
    };
    let mut keyed: Vec<(Option<f64>, Carried)> = answers.iter().map(|a| (score(a), a.clone())).collect();
    keyed.sort_by(|(x, _), (y, _)| match (x, y) {
        (Some(x), Some(y)) => y.total_cmp(x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    for (slot, (_, a)) in answers.iter_mut().zip(keyed) {
        *slot = a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_their_placeholders_and_refuse_others() {
        let t = Template::parse("Q: {prompt} doc {member}/{task}:\n{document}\n{answers[0..5]} {{x}}").unwrap();
        assert_eq!(t.0[0], Piece::Text("Q: ".into()));
        assert!(t.uses(|p| *p == Piece::Answers { from: 0, to: Some(5) }));
        assert_eq!(t.0.last(), Some(&Piece::Text(" {x}".into())));
        assert_eq!(Template::parse("{answers[2..]}").unwrap().0, vec![Piece::Answers { from: 2, to: None }]);
        assert!(Template::parse("a {nope} b").unwrap_err().starts_with("unknown placeholder `{nope}` at byte 2"));
        assert!(Template::parse("{answers[3..1]}").is_err());
        assert!(Template::parse("a { b").unwrap_err().contains("never closed"));
        assert!(Template::parse("a } b").unwrap_err().contains("lone"));
    }

    fn step(template: &str) -> StepDef {
        StepDef {
            name: "s".into(),
            model: "m".into(),
            api: crate::model::Api::Chat,
            texts: super::super::texts::TextsSpec::default(),
            template: Template::parse(template).unwrap(),
            fan_out: FanOut::Fixed(1),
            concurrency: 1,
            join: Join::All,
            on_error: OnError::FailTask,
            quorum: 1,
            document_tokens: None,
            top_by: None,
            answers_from: None,
            request: crate::model::RequestParams::default(),
            agent: None,
        }
    }

    #[test]
    fn a_prompt_is_filled_and_counted_piece_by_piece() {
        let answers: Vec<Carried> = ["one", "two", "three"].iter().map(|t| Carried { text: (*t).into(), tokens: 1 }).collect();
        let fill = Fill { prompt: ("why?", 2), task: 7, member: 3, answers: &answers, item: None, seed: (0, 0) };
        let s = step("Q {prompt} #{member} of {task}: {answers[1..]}");
        let (text, tokens) = s.render(&fill, None, &[1, 1, 1, 1]);
        assert_eq!(text, "Q why? #3 of 7: two\n\nthree");
        // Four texts, the prompt's 2, two numbers, two answers and a separator.
        assert_eq!(tokens, 4 + 2 + 2 + 2 + 1);
    }

    #[test]
    fn answers_rank_by_their_field_and_those_without_go_last() {
        let mut a: Vec<Carried> = [r#"{"relevance": 0.2}"#, "not json", r#"{"relevance": 0.9}"#, r#"{"other": 1}"#]
            .iter()
            .map(|t| Carried { text: (*t).into(), tokens: 5 })
            .collect();
        rank(&mut a, "relevance");
        let order: Vec<&str> = a.iter().map(|c| &*c.text).collect();
        assert_eq!(order, [r#"{"relevance": 0.9}"#, r#"{"relevance": 0.2}"#, "not json", r#"{"other": 1}"#]);
    }
}
