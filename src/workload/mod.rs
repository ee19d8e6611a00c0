//! The request generator: where prompts come from (`prompts`), how each request's body
//! is built (`body`) and how its tokens are counted (`tokens`). The engine asks a
//! stage's [`StageRequests`] for request *i* and gets it ready to send; it never builds
//! JSON itself.

pub mod blocks;
mod body;
pub use body::MESSAGES_DEFAULT_MAX_TOKENS;
mod bpe;
pub mod conversation;
pub mod dataset;
pub mod dist;
pub mod image_server;
pub mod images;
pub mod picture;
pub mod pieces;
pub mod prompt;
pub mod prompts;
pub mod provenance;
pub mod remote;
pub mod synth;
pub mod synthetic;
pub mod task;
pub mod texts;
pub mod tokens;
pub mod trace;

use std::sync::Arc;

use crate::model::{Api, Expect, Numbers, RequestParams, RequestSpec};
use body::BodyParts;
use conversation::TurnInput;
pub use prompt::Prompt;
pub use prompts::Prompts;
use texts::{Shape, TextsSpec};
pub use tokens::Tokenizer;

/// What every request of a run is made of: its prompts (made for the endpoint spoken;
/// a stage may have its own), and how the target is asked (a stream or not, with a
/// usage chunk or not).
#[derive(Debug, Clone)]
pub struct Workload {
    prompts: Prompts,
    /// Stage *k*'s own prompts, where it has some.
    per_stage: Vec<Option<Prompts>>,
    stream: bool,
    stream_usage: bool,
}

/// Most prompts built ahead of a stage: beyond them, prompts are built as requests
/// need them.
const AHEAD_MAX: u64 = 100_000;
/// Most bytes of prompts built ahead of a stage.
const AHEAD_BYTES: u64 = 512 << 20;
/// Prompts built at once before the bounds are checked again.
const AHEAD_CHUNK: u64 = 4096;

impl Workload {
    pub fn new(prompts: Prompts, stream: bool, stream_usage: bool) -> Workload {
        Workload { prompts, per_stage: Vec::new(), stream, stream_usage }
    }

    /// Stage *k* sends `per_stage[k]`'s prompts where given.
    pub fn with_stage_prompts(mut self, per_stage: Vec<Option<Prompts>>) -> Workload {
        self.per_stage = per_stage;
        self
    }

    /// The prompts stage `index` sends.
    pub fn prompts(&self, index: usize) -> &Prompts {
        self.per_stage.get(index).and_then(Option::as_ref).unwrap_or(&self.prompts)
    }

    /// The requests of stage `index`, which sends `model` with `params`.
    /// Stage `index`'s requests; `numbers` maps a shard's request numbers to the whole
    /// run's (prompts follow the whole run's numbers, so shards send its requests).
    /// `texts`: how many texts its requests carry (embeddings, rerank).
    pub fn stage(&self, index: usize, model: &str, params: &RequestParams, texts: &TextsSpec, numbers: Numbers) -> StageRequests {
        let prompts = self.prompts(index).clone();
        let parts = BodyParts::new(model, params, prompts.api(), self.stream, self.stream_usage, prompts.has_output_lengths());
        let shape = Shape::new(prompts.api(), texts, index as u64);
        // None to carry (count 0), or an API that takes none (a stage of another API
        // inheriting the scenario's): no pool.
        let carries = matches!(prompts.api(), Api::Chat | Api::Responses | Api::Messages);
        let images = texts
            .images
            .clone()
            .filter(|s| carries && s.count != dist::Dist::Fixed(0))
            .map(|spec| images::StageImages::new(spec, prompts.api(), index as u64));
        let api = prompts.api();
        StageRequests {
            prompts,
            api,
            parts,
            shape,
            top_n: params.top_n,
            stage: index as u64,
            ahead: Arc::from(Vec::new()),
            numbers,
            images,
        }
    }

    /// The requests of a step of stage `index`'s tasks, which speaks `api` to `model`
    /// with `params` (its prompts are rendered from its template, in `api`'s shape).
    pub fn step(&self, index: usize, api: Api, model: &str, params: &RequestParams, texts: &TextsSpec, numbers: Numbers) -> StageRequests {
        let prompts = self.prompts(index).clone();
        let parts = BodyParts::new(model, params, api, self.stream && api.generates(), self.stream_usage, false);
        let shape = Shape::new(api, texts, index as u64);
        let (top_n, stage, ahead) = (params.top_n, index as u64, Arc::from(Vec::new()));
        StageRequests { prompts, api, parts, shape, top_n, stage, ahead, numbers, images: None }
    }
}

/// The requests of one stage, by request number.
#[derive(Debug)]
pub struct StageRequests {
    prompts: Prompts,
    /// The API its bodies are shaped for.
    api: Api,
    parts: BodyParts,
    /// One prompt a request, or several texts (an embeddings batch, a rerank's).
    shape: Shape,
    /// Rerank: the most results asked for, checked in each reply.
    top_n: Option<u32>,
    stage: u64,
    /// Prompts built before the stage started: requests 0..len.
    ahead: Arc<[Prompt]>,
    numbers: Numbers,
    /// The images its requests carry.
    images: Option<images::StageImages>,
}

impl StageRequests {
    /// Builds the prompts of requests 0..`n` now, on every core, when building them
    /// costs enough that the request path must not pay it: in chunks, until `n` or the
    /// bounds (counted in real bytes: lengths may be skewed).
    /// `exact`: the stage sends these `n` requests and no more (its images need no
    /// more than they carry).
    pub fn prepare(&mut self, n: u64, exact: bool) {
        if let Some(images) = &self.images {
            images.prepare((exact && n > 0).then(|| self.numbers.global(n - 1) + 1));
        }
        if !self.prompts.built_ahead() || n == 0 {
            return;
        }
        let n = n.min(AHEAD_MAX);
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
        let (prompts, shape, stage, numbers) = (&self.prompts, &self.shape, self.stage, self.numbers);
        let mut built: Vec<Prompt> = Vec::with_capacity(n.min(AHEAD_CHUNK) as usize);
        let mut bytes = 0u64;
        while (built.len() as u64) < n && bytes < AHEAD_BYTES {
            let lo = built.len() as u64;
            let hi = (lo + AHEAD_CHUNK).min(n);
            std::thread::scope(|scope| {
                let parts: Vec<_> = (0..threads)
                    .map(|t| {
                        let (a, b) = (lo + (hi - lo) * t / threads, lo + (hi - lo) * (t + 1) / threads);
                        scope
                            .spawn(move || (a..b).map(|i| shape.prompt(prompts, stage, numbers.global(i)).into_owned()).collect::<Vec<_>>())
                    })
                    .collect();
                for part in parts {
                    let part = part.join().expect("building a prompt does not panic");
                    bytes += part.iter().map(|p| p.json.get().len() as u64).sum::<u64>();
                    built.extend(part);
                }
            });
        }
        self.ahead = built.into();
    }

    /// The stage's number (from 0), which its draws are seeded with.
    pub fn stage_number(&self) -> u64 {
        self.stage
    }

    /// The trace this stage replays, if it does.
    pub fn replay(&self) -> Option<&Arc<trace::Replay>> {
        self.prompts.replay()
    }

    /// Whether request `i`'s prompt is ready (built ahead, or cheap to make). One with
    /// images never is: copying megabytes of them is no work for the async workers.
    pub fn ready(&self, i: u64) -> bool {
        self.images.is_none() && (!self.prompts.built_per_request() || (i as usize) < self.ahead.len())
    }

    /// How this stage's request numbers map to the whole run's.
    pub fn numbers(&self) -> Numbers {
        self.numbers
    }

    /// Request `i`'s prompt (`i` this shard's number).
    fn prompt(&self, i: u64) -> std::borrow::Cow<'_, Prompt> {
        match self.ahead.get(i as usize) {
            Some(p) => std::borrow::Cow::Borrowed(p),
            None => self.shape.prompt(&self.prompts, self.stage, self.numbers.global(i)),
        }
    }

    /// Request number `i` (within its stage), ready to send. A prompt that is not
    /// [`ready`](Self::ready) is built here: call it off the async workers then.
    pub fn request(&self, i: u64) -> RequestSpec {
        let p = self.prompt(i);
        let output = p.output.filter(|_| self.parts.sends_own_length());
        // Known without counting for built prompts, and for a listed one once counted
        // where a figure needed it: counting here would load the tokenizer (~50 MiB and
        // a fifth of a second) for runs that take the server's usage.
        let input_tokens = p.known_tokens();
        // A single embeddings input is one.
        let items = p.items.or_else(|| self.prompts.api().items().map(|_| 1));
        let expect = Expect { items, top_n: self.top_n };
        let extra = p.extra.as_deref();
        let (body, media) = match &self.images {
            Some(images) => match images.attach(p.json.get(), self.numbers.global(i)) {
                (Some(json), media) => (self.parts.body_of(&json, output, extra), Some(media)),
                (None, media) => (self.parts.body_of(p.json.get(), output, extra), Some(media)),
            },
            None => (self.parts.body_of(p.json.get(), output, extra), None),
        };
        // A dataset's own images, with those the stage adds.
        let media = match (p.media, media) {
            (Some(own), added) => Some(own.and(added.unwrap_or_default())),
            (None, added) => added,
        };
        RequestSpec { body, input_tokens, output_tokens: output, turn: None, session: None, expect, media, task: None }
    }

    /// Turn `k` of session `session`, sent as request `i`: a dataset's conversation
    /// gives the session its human turns in order (None once they run out); other
    /// sources give each turn request `i`'s prompt (a first turn with its system
    /// message, later ones the user's message alone).
    pub fn turn(&self, session: u64, k: u32, i: u64) -> Option<TurnInput> {
        let own_output = |output: Option<u32>| output.filter(|_| self.parts.sends_own_length());
        let (p, k) = match self.prompts.followups() {
            Some(all) => {
                let c = self.numbers.session(session) % all.len() as u64;
                if k > 0 {
                    let f = all[c as usize].get(k as usize - 1)?;
                    let message = serde_json::json!({"role": "user", "content": &*f.text});
                    return Some(TurnInput { messages: vec![(message, u64::from(f.tokens))], output: own_output(Some(f.output)) });
                }
                // A conversation's number is the whole run's: built ahead only unsharded.
                let p = if self.numbers.shard.is_whole() { self.prompt(c) } else { self.prompts.prompt_in(self.stage, c) };
                (p, 0)
            }
            None => (self.prompt(i), k),
        };
        let tok = self.prompts.tokenizer();
        let total = p.tokens(tok);
        let mut messages: Vec<serde_json::Value> = match serde_json::from_str(p.json.get()) {
            Ok(serde_json::Value::Array(m)) => m,
            // A completions prompt: validation refuses it with a conversation.
            Ok(other) => vec![serde_json::json!({"role": "user", "content": other})],
            Err(_) => Vec::new(),
        };
        // The user's message is counted apart from what comes before it (a system
        // prompt, sent on the first turn only): it is the short one.
        let own = match messages.len() {
            1 => total,
            _ => messages.last().map_or(0, |m| tok.message_tokens(m)),
        };
        if k > 0 && messages.len() > 1 {
            messages.drain(..messages.len() - 1);
        }
        let first_turn = k == 0;
        let n = messages.len();
        let messages = messages
            .into_iter()
            .enumerate()
            .map(|(j, m)| {
                let t = match (j + 1 == n, first_turn, n) {
                    (true, ..) => own,
                    // A system prompt before the user's message: the rest of the count.
                    (false, true, 2) => total.saturating_sub(own),
                    // Several (a JSONL line's few-shot messages): each its own count, so
                    // dropping one from the history drops its tokens.
                    _ => tok.message_tokens(&m),
                };
                (m, t)
            })
            .collect();
        Some(TurnInput { messages, output: own_output(p.output) })
    }

    /// Whether session `session` has a turn `k` (a dataset's conversation may end
    /// before the turns drawn).
    pub fn has_turn(&self, session: u64, k: u32) -> bool {
        match self.prompts.followups() {
            Some(all) => k == 0 || all[(self.numbers.session(session) % all.len() as u64) as usize].len() >= k as usize,
            None => true,
        }
    }

    /// A conversation's request: `messages` (history and the new turn), `input_tokens`
    /// long, asking for `output`, as turn `turn` of the whole run's session `session`.
    pub fn conversation_request(
        &self,
        messages: Vec<serde_json::Value>,
        input_tokens: u64,
        output: Option<u32>,
        (session, turn): (u64, u32),
    ) -> RequestSpec {
        RequestSpec { turn: Some(turn), session: Some(session), ..self.messages_request(messages, input_tokens, output) }
    }

    /// A task step's request: `messages` (its rendered prompt, an agent's history
    /// after it), `input_tokens` long, in the shape of the API it speaks — messages,
    /// one text, or a rerank's query with documents of the step's corpus, drawn by
    /// `draw` (the whole run's task and member).
    pub fn step_request(&self, messages: Vec<serde_json::Value>, input_tokens: u64, draw: u64) -> RequestSpec {
        let prompt = Prompt::from_value(&prompt::conversation(self.api, None, messages)).counted(input_tokens, None);
        let prompt = self.shape.around(&prompt, self.stage, draw);
        let items = prompt.items.or_else(|| self.api.items().map(|_| 1));
        let expect = Expect { items, top_n: self.top_n };
        let (body, input_tokens) = (self.parts.body(&prompt.json, None), prompt.known_tokens());
        RequestSpec { body, input_tokens, output_tokens: None, turn: None, session: None, expect, media: None, task: None }
    }

    /// A request of `messages`, `input_tokens` long, asking for `output` (a turn).
    pub fn messages_request(&self, messages: Vec<serde_json::Value>, input_tokens: u64, output: Option<u32>) -> RequestSpec {
        let prompt = Prompt::from_value(&serde_json::Value::Array(messages));
        RequestSpec {
            body: self.parts.body(&prompt.json, output),
            input_tokens: Some(input_tokens),
            output_tokens: output,
            turn: None,
            session: None,
            expect: Expect::default(),
            media: None,
            task: None,
        }
    }

    /// Request `i`'s prompt as a task's input: its last message's text (a completion's
    /// prompt whole), that text's length in tokens, and its line's lists.
    pub fn task_input(&self, i: u64) -> (String, u64, Option<Arc<prompt::Lists>>) {
        let (text, tokens) = self.input_text(i);
        (text, tokens, self.prompt(i).lists.clone())
    }

    /// [`task_input`](Self::task_input)'s text and its length.
    fn input_text(&self, i: u64) -> (String, u64) {
        let p = self.prompt(i);
        let text = match serde_json::from_str::<serde_json::Value>(p.json.get()) {
            Ok(serde_json::Value::Array(m)) => m.last().and_then(|m| m.get("content")).map(content_text).unwrap_or_default(),
            // Anthropic's `{"system", "messages"}`.
            Ok(serde_json::Value::Object(o)) => {
                o.get("messages").and_then(|m| m.as_array()?.last()?.get("content")).map(content_text).unwrap_or_default()
            }
            Ok(v) => content_text(&v),
            Err(_) => String::new(),
        };
        let tokens = self.prompts.tokenizer().count(&text);
        (text, tokens)
    }

    /// The tokens of `text` by the counting tokenizer.
    pub fn count(&self, text: &str) -> u64 {
        self.prompts.tokenizer().count(text)
    }

    /// Request `i`'s prompt count where known without counting, else its JSON to be
    /// counted elsewhere (off the request path).
    pub fn input_tokens_or_prompt(&self, i: u64) -> Result<u64, Box<str>> {
        let p = self.prompt(i);
        p.known_tokens().ok_or_else(|| p.json.get().into())
    }

    /// Tokens of request `i`'s prompt text by the counting tokenizer, counted on first
    /// use where not known (most runs take the server's usage).
    pub fn input_tokens(&self, i: u64) -> u64 {
        self.prompt(i).tokens(self.prompts.tokenizer())
    }
}

/// A message's content as text: a string, or a parts list's text parts joined.
fn content_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(serde_json::Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cycle_through_fixed_prompts_and_number_templates() {
        let params = RequestParams { max_tokens: Some(8), ..RequestParams::default() };
        let fixed = Workload::new(Prompts::from_texts(&["a", "b"]).unwrap(), false, true).stage(
            0,
            "m",
            &params,
            &TextsSpec::default(),
            Numbers::default(),
        );
        let body = |r: &StageRequests, i| String::from_utf8(r.request(i).body.to_vec()).unwrap();
        assert_eq!(body(&fixed, 0), body(&fixed, 2));
        assert_ne!(body(&fixed, 0), body(&fixed, 1));
        let user_b = serde_json::to_string(&serde_json::json!([{"role": "user", "content": "b"}])).unwrap();
        assert_eq!(body(&fixed, 1), format!(r#"{{"model":"m","messages":{user_b},"stream":false,"max_tokens":8}}"#));
        let template = Workload::new(Prompts::template(crate::model::Api::Chat, "say {i}".into(), None), true, true).stage(
            0,
            "m",
            &params,
            &TextsSpec::default(),
            Numbers::default(),
        );
        assert!(body(&template, 7).contains("say 7"), "{}", body(&template, 7));
        assert!(body(&template, 7).contains(r#""stream":true,"stream_options":{"include_usage":true}"#));
        assert_eq!(template.input_tokens(7), Tokenizer::o200k().count("say 7"));
        assert_eq!((template.request(7).input_tokens, template.request(7).output_tokens), (None, None));
        assert_eq!(fixed.request(1).input_tokens, None, "a listed prompt is not counted to be sent");
        assert_eq!(fixed.input_tokens(1), 1);
        assert_eq!(fixed.request(1).input_tokens, Some(1), "a listed prompt's count is known once counted");
    }
}
