//! Prompt sources: an inline list, a template with `{i}`, a file's lines (plain text,
//! or JSONL with a `messages` array or a `prompt` string, and optionally `output_tokens`,
//! per line), a dataset's entries, or synthetic prompts of drawn lengths — each made for
//! the endpoint spoken: a `messages` array for chat, a text for completions. Listed
//! prompts are serialized once, at load time, so the request path only copies bytes.

use std::borrow::Cow;
use std::sync::Arc;

pub use super::prompt::Prompt;
use super::prompt::parse_jsonl_line;
use super::synthetic::Synthetic;
use super::tokens::Tokenizer;
use super::trace::Replay;
use crate::model::Api;

/// Where prompts come from; request `i` of a stage uses `prompt(i)`.
#[derive(Debug, Clone)]
pub struct Prompts {
    kind: Kind,
    /// The endpoint they are made for.
    api: Api,
    system: Option<String>,
    /// Counts what is sent (and builds synthetic prompts).
    tokenizer: Tokenizer,
    /// Human summary for results: "list of 3", "template", "file data/docs.jsonl (50)".
    pub source: String,
    /// A dataset's later human turns, by prompt (its first), for conversations.
    followups: Option<Arc<[Arc<[Followup]>]>>,
    /// A file's name and the line of each of its prompts, to name a line's problem.
    lines: Option<(Arc<str>, Arc<[u32]>)>,
}

/// A later human turn of a dataset's conversation: its text and tokens, and the
/// length of the reply the dataset gives it.
#[derive(Debug, Clone)]
pub struct Followup {
    pub text: Box<str>,
    pub tokens: u32,
    pub output: u32,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Never empty: every constructor refuses an empty list.
    Fixed(Arc<[Prompt]>),
    Template(String),
    Synthetic(Arc<Synthetic>),
    /// A trace's lines, each request its line.
    Trace(Arc<Replay>),
}

impl Prompts {
    /// Stands in for prompts a broken scenario could not give: never sent, since such a
    /// scenario does not validate, but safe to ask for any request.
    pub fn placeholder() -> Prompts {
        Prompts::template(Api::Chat, String::new(), None)
    }

    /// Chat prompts from literal texts; None for an empty list.
    pub fn from_texts(texts: &[&str]) -> Option<Prompts> {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        Prompts::list(Api::Chat, &texts, None)
    }

    /// A prompt per text, after `system` when given; None for an empty list.
    pub fn list(api: Api, texts: &[String], system: Option<String>) -> Option<Prompts> {
        let items: Vec<Prompt> = texts.iter().map(|t| Prompt::from_text(api, system.as_deref(), t)).collect();
        Prompts::fixed(api, items, format!("list of {}", texts.len()), system)
    }

    /// `template` with `{i}` replaced by the request number.
    pub fn template(api: Api, template: String, system: Option<String>) -> Prompts {
        Prompts {
            source: "template".to_string(),
            kind: Kind::Template(template),
            api,
            system,
            tokenizer: Tokenizer::o200k(),
            followups: None,
            lines: None,
        }
    }

    /// Synthetic prompts of drawn lengths, counted by their own tokenizer.
    pub fn synthetic(api: Api, synthetic: Synthetic, source: String) -> Prompts {
        let tokenizer = synthetic.tokenizer().clone();
        Prompts { kind: Kind::Synthetic(Arc::new(synthetic)), api, system: None, tokenizer, source, followups: None, lines: None }
    }

    /// A trace's lines, replayed: request `i` is line `i`.
    pub fn trace(api: Api, replay: Replay, tokenizer: Tokenizer, source: String) -> Prompts {
        Prompts { kind: Kind::Trace(Arc::new(replay)), api, system: None, tokenizer, source, followups: None, lines: None }
    }

    /// The trace these prompts replay, if they do.
    pub fn replay(&self) -> Option<&Arc<Replay>> {
        match &self.kind {
            Kind::Trace(r) => Some(r),
            _ => None,
        }
    }

    /// The same prompts, with each one's later human turns (a dataset's conversations).
    pub fn with_followups(mut self, followups: Vec<Arc<[Followup]>>) -> Prompts {
        self.followups = Some(followups.into());
        self
    }

    /// Each prompt's later human turns, for a dataset's conversations.
    pub fn followups(&self) -> Option<&[Arc<[Followup]>]> {
        self.followups.as_deref().filter(|f| !f.is_empty())
    }

    /// The same prompts, counted by `tokenizer`.
    pub fn with_tokenizer(mut self, tokenizer: Tokenizer) -> Prompts {
        self.tokenizer = tokenizer;
        self
    }

    /// The tokenizer that counts what is sent.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The endpoint these prompts are made for.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The prompts of a file's text: a prompt per non-blank line, plain text or (with
    /// `jsonl`) a JSON object per line. Also every bad line, by 1-based number, with why;
    /// None when no line held a prompt. `name` is how the file is named in the summary.
    pub fn from_file_text(
        api: Api,
        text: &str,
        jsonl: bool,
        system: Option<String>,
        name: &str,
    ) -> (Option<Prompts>, Vec<(usize, String)>) {
        let mut items = Vec::new();
        let mut lines = Vec::new();
        let mut bad = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if !jsonl {
                items.push(Prompt::from_text(api, system.as_deref(), line));
                continue;
            }
            match parse_jsonl_line(api, line, system.as_deref()) {
                Ok(prompt) => {
                    items.push(prompt);
                    lines.push(n as u32 + 1);
                }
                Err(msg) => bad.push((n + 1, msg)),
            }
        }
        let source = format!("file {} ({} prompts)", name, items.len());
        let prompts = Prompts::fixed(api, items, source, system);
        (prompts.map(|p| Prompts { lines: jsonl.then(|| (name.into(), lines.into())), ..p }), bad)
    }

    pub(super) fn fixed(api: Api, items: Vec<Prompt>, source: String, system: Option<String>) -> Option<Prompts> {
        (!items.is_empty()).then(|| Prompts {
            kind: Kind::Fixed(items.into()),
            api,
            system,
            tokenizer: Tokenizer::o200k(),
            source,
            followups: None,
            lines: None,
        })
    }

    /// The longest list `field` of the prompts (a JSONL file's lines), when every one
    /// has it; else where the first without it is, or what the prompts are instead.
    pub fn longest_list(&self, field: &str) -> Result<usize, String> {
        let (Kind::Fixed(items), Some((name, lines))) = (&self.kind, &self.lines) else {
            return Err(format!("the stage's prompts ({}) carry no lists: give it a JSONL file whose lines do", self.source));
        };
        let mut longest = 0;
        for (p, line) in items.iter().zip(lines.iter()) {
            match p.lists.as_ref().and_then(|l| l.get(field)) {
                Some(list) => longest = longest.max(list.len()),
                None => return Err(format!("{name}:{line}: the line has no list {field:?}")),
            }
        }
        Ok(longest)
    }

    /// The prompt for request number `i` of the first stage.
    pub fn prompt(&self, i: u64) -> Cow<'_, Prompt> {
        self.prompt_in(0, i)
    }

    /// The prompt for request number `i` (0-based) of stage `stage`. Fixed prompts
    /// cycle; synthetic ones differ by stage too.
    pub fn prompt_in(&self, stage: u64, i: u64) -> Cow<'_, Prompt> {
        match &self.kind {
            Kind::Fixed(items) => Cow::Borrowed(&items[(i % items.len() as u64) as usize]),
            Kind::Template(t) => Cow::Owned(Prompt::from_text(self.api, self.system.as_deref(), &t.replace("{i}", &i.to_string()))),
            Kind::Synthetic(s) => {
                let b = s.build(self.api, stage, i);
                Cow::Owned(Prompt::from_value(&b.prompt).counted(b.tokens, b.output))
            }
            Kind::Trace(r) => r.prompt(self.api, stage, i),
        }
    }

    /// Loads the tokenizer and counts every listed prompt now: a run whose requests
    /// need the counts calls this on a thread of its own at start, so its first request
    /// need not wait for it and later ones find their counts known.
    pub fn count_listed(&self) {
        self.tokenizer().warm_up();
        if let Kind::Fixed(items) = &self.kind {
            for p in items.iter() {
                p.tokens(self.tokenizer());
            }
        }
    }

    /// Whether prompts carry output lengths of their own (sent as their limit).
    pub fn has_output_lengths(&self) -> bool {
        match &self.kind {
            Kind::Fixed(items) => items.iter().any(|p| p.output.is_some()),
            Kind::Template(_) => false,
            Kind::Synthetic(s) => s.has_output(),
            Kind::Trace(r) => r.has_output_lengths(),
        }
    }

    /// Whether building a prompt costs enough to keep it off the async workers.
    pub fn built_per_request(&self) -> bool {
        matches!(self.kind, Kind::Synthetic(_) | Kind::Trace(_))
    }

    /// Whether prompts are built before the stage starts: not a trace's, whose lines
    /// are built when due, so memory does not grow with the trace.
    pub fn built_ahead(&self) -> bool {
        matches!(self.kind, Kind::Synthetic(_))
    }

    /// Some prompt carries body fields of its own (a JSONL line's `tools`).
    pub fn own_fields(&self) -> bool {
        matches!(&self.kind, Kind::Fixed(items) if items.iter().any(|p| p.extra.is_some()))
    }

    /// Number of distinct prompts, or None for a template or synthetic prompts.
    pub fn len(&self) -> Option<usize> {
        match &self.kind {
            Kind::Fixed(items) => Some(items.len()),
            Kind::Template(_) | Kind::Synthetic(_) | Kind::Trace(_) => None,
        }
    }

    /// Never true: there is always a prompt to send.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_source_gives_nothing_to_divide_by() {
        assert!(Prompts::from_texts(&[]).is_none());
        assert!(Prompts::list(Api::Chat, &[], Some("sys".into())).is_none());
        let (none, bad) = Prompts::from_file_text(Api::Chat, "\n  \n", true, None, "empty.jsonl");
        assert!(none.is_none() && bad.is_empty());
        // The placeholder answers any request number.
        let any = Prompts::placeholder().prompt(u64::MAX).json.get().to_string();
        assert!(any.contains(r#""role":"user""#), "{any}");
    }

    #[test]
    fn file_lines_are_prompts_and_bad_lines_are_named() {
        let text = "{\"prompt\": \"a\"}\n\nnot json\n{\"messages\": []}\n{\"messages\": [{\"content\": \"x\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}\n";
        let (prompts, bad) = Prompts::from_file_text(Api::Chat, text, true, Some("be brief".into()), "d.jsonl");
        let prompts = prompts.unwrap();
        assert_eq!((prompts.len(), prompts.source.as_str()), (Some(2), "file d.jsonl (2 prompts)"));
        let lines: Vec<usize> = bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [3, 4, 5], "{bad:?}");
        assert!(bad[0].1.starts_with("not JSON"), "{bad:?}");
        assert_eq!(bad[1].1, "`messages` is empty");
        assert_eq!(bad[2].1, "messages[0] has no `role` string");
        // The system message goes before a text prompt, not into given messages.
        assert!(prompts.prompt(0).json.get().contains("be brief"));
        assert!(!prompts.prompt(1).json.get().contains("be brief"));
        let (plain, bad) = Prompts::from_file_text(Api::Chat, "one\ntwo\n", false, None, "p.txt");
        assert_eq!((plain.unwrap().len(), bad.len()), (Some(2), 0));
        // The completions endpoint takes text: a `messages` line is named, `prompt` lines are text.
        let (prompts, bad) = Prompts::from_file_text(Api::Completions, text, true, None, "d.jsonl");
        assert_eq!(prompts.unwrap().prompt(0).json.get(), r#""a""#);
        assert!(bad.iter().any(|(n, why)| *n == 6 && why.starts_with("a `messages` prompt needs a chat API")), "{bad:?}");
        // A line may ask for its output length; a bad one is named.
        let text = "{\"prompt\": \"a\", \"output_tokens\": 300}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\", \"output_tokens\": 0}\n";
        let (prompts, bad) = Prompts::from_file_text(Api::Chat, text, true, None, "o.jsonl");
        let prompts = prompts.unwrap();
        assert_eq!((prompts.prompt(0).output, prompts.prompt(1).output), (Some(300), None));
        assert!(prompts.has_output_lengths());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].0 == 3 && bad[0].1.starts_with("output_tokens must be a whole number from 1 to"), "{bad:?}");
    }
}
