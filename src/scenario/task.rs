//! `[[task]]` as written → the validated [`TaskDef`]s a stage's `task = "name"` runs:
//! each step's prompt template, fan-out, join, error policy and request fields
//! checked in place, and what refers to what (an earlier step's answers, their
//! ranking field) checked to exist before any request.

use std::sync::Arc;

use toml::Spanned;

use super::error::Problems;
use super::file::{StepFile, TaskFile, ToolFile};
use super::request::Spoken;
use crate::model::{Api, RequestParams};
use crate::workload::dist::Dist;
use crate::workload::task::{Agent, FanOut, Join, OnError, Piece, SimTool, StepDef, TaskDef, Template};

pub use crate::workload::task::MAX_FAN_OUT;

/// What a step takes from the scenario where it does not say.
pub(super) struct StepDefaults<'a> {
    pub request: &'a RequestParams,
    /// The scenario's `[request]` text counts (a rerank step's documents).
    pub texts: &'a crate::workload::texts::TextsSpec,
    pub spoken: Spoken,
    pub model: &'a str,
    pub base_dir: &'a std::path::Path,
}

/// The tasks, each checked; every problem reported at its place.
pub(super) fn tasks(
    raw: Vec<Spanned<TaskFile>>,
    d: &StepDefaults<'_>,
    sources: &mut super::prompts::Sources<'_>,
    p: &mut Problems<'_>,
) -> Vec<Arc<TaskDef>> {
    let mut out: Vec<Arc<TaskDef>> = Vec::new();
    for t in raw {
        let span = t.span();
        let t = t.into_inner();
        let name = t.name.get_ref().clone();
        if name.trim().is_empty() {
            p.at(Some(t.name.span()), "task: name must not be empty");
        }
        if out.iter().any(|o| o.name == name) {
            p.at(Some(t.name.span()), format!("task {name:?}: the name is used twice"));
        }
        if t.step.is_empty() {
            p.at(Some(span), format!("task {name:?}: give at least one [[task.step]]"));
        }
        let mut steps: Vec<StepDef> = Vec::new();
        let mut documents = false;
        for (k, s) in t.step.into_iter().enumerate() {
            let step = step(s, k, &name, &steps, d, p);
            documents |= step.document_tokens.is_some() || step.agent.is_some() || step.api == Api::Rerank;
            steps.push(step);
        }
        let words = match documents {
            true => sources.pool().map_err(|e| p.at(None, format!("task {name:?}: documents: {e}"))).ok(),
            false => None,
        };
        // A rerank step's documents are made of the same words.
        for s in steps.iter_mut().filter(|s| s.api == Api::Rerank) {
            s.texts.pool = words.clone();
        }
        out.push(Arc::new(TaskDef { name, steps, words }));
    }
    out
}

fn step(s: Spanned<StepFile>, k: usize, task: &str, before: &[StepDef], d: &StepDefaults<'_>, p: &mut Problems<'_>) -> StepDef {
    let span = s.span();
    let s = s.into_inner();
    let name = s.name.clone().unwrap_or_else(|| format!("step {}", k + 1));
    let what = format!("task {task:?} step {name:?}");
    if before.iter().any(|b| b.name == name) {
        p.at(Some(span.clone()), format!("{what}: the name is used twice in the task"));
    }
    let template = Template::parse(s.prompt.get_ref()).unwrap_or_else(|e| {
        p.at(Some(s.prompt.span()), format!("{what}: prompt: {e}"));
        Template(Vec::new())
    });
    let fan_out = fan_out(&s, &what, p);
    // A list's length is known only per task: fewer items than `first` or `quorum`
    // asks for then take them all, or fail the task.
    let least = fan_out.least();
    let bound = |v: &Option<Spanned<u32>>, field: &str, p: &mut Problems<'_>| {
        v.as_ref().map(|v| {
            let n = *v.get_ref();
            match least {
                Some(least) if n == 0 || n > least => {
                    p.at(Some(v.span()), format!("{what}: {field} must be from 1 to the fan-out's least ({least}), got {n}"))
                }
                None if n == 0 || n > MAX_FAN_OUT => {
                    p.at(Some(v.span()), format!("{what}: {field} must be from 1 to {MAX_FAN_OUT}, got {n}"))
                }
                _ => {}
            }
            n
        })
    };
    let first = bound(&s.first, "first", p);
    let quorum = bound(&s.quorum, "quorum", p);
    let on_error = match s.on_error.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
        None | Some(("fail_task", _)) => OnError::FailTask,
        Some(("skip", _)) => OnError::Skip,
        Some((other, at)) => {
            p.at(Some(at), format!("{what}: on_error must be \"fail_task\" or \"skip\", got {other:?}"));
            OnError::FailTask
        }
    };
    if let (Some(q), OnError::FailTask) = (&s.quorum, on_error) {
        p.at(Some(q.span()), format!("{what}: quorum is for on_error = \"skip\" (with \"fail_task\" every member must answer)"));
    }
    let concurrency = match &s.concurrency {
        Some(c) if *c.get_ref() == 0 => {
            p.at(Some(c.span()), format!("{what}: concurrency must be at least 1"));
            1
        }
        Some(c) => *c.get_ref(),
        None => MAX_FAN_OUT,
    };
    let document_tokens = s
        .document_tokens
        .as_ref()
        .and_then(|v| super::synthetic::dist(v.get_ref()).map_err(|e| p.at(Some(v.span()), format!("{what}: document_tokens: {e}"))).ok());
    match (template.uses(|x| *x == Piece::Item), &fan_out) {
        (true, FanOut::Field { .. }) | (false, FanOut::Fixed(_) | FanOut::Drawn(_)) => {}
        (true, _) => p.at(Some(s.prompt.span()), format!("{what}: the prompt has {{item}}: give fan_out = {{ field = \"…\" }}")),
        (false, FanOut::Field { name: f, .. }) => {
            p.at(Some(s.prompt.span()), format!("{what}: fan_out is over the list {f:?}: put its {{item}} in the prompt"))
        }
    }
    match (template.uses(|x| *x == Piece::Document), &document_tokens) {
        (true, None) => p.at(Some(s.prompt.span()), format!("{what}: the prompt has {{document}}: give document_tokens")),
        (false, Some(_)) => p.at(Some(span.clone()), format!("{what}: document_tokens is given but the prompt has no {{document}}")),
        _ => {}
    }
    let from = fan_in(&s, &template, (&what, &name), before, p);
    let api = s.api.as_ref().map_or(d.spoken.api, |a| *a.get_ref());
    let spoken = Spoken { api, ..d.spoken };
    let mut request = match &s.request {
        None => d.request.clone(),
        Some(f) => d.request.overlay(&super::request::request(f.get_ref(), &format!("{what}: request"), spoken, d.base_dir, p)),
    };
    let texts = step_texts(&s, &what, api, d, p);
    if let Some(a) = s.api.as_ref().filter(|_| !s.tool.is_empty() && api != Api::Chat) {
        p.at(Some(a.span()), format!("{what}: an agent loop's tool calls are spoken on api = \"chat\" only, not {:?}", api.name()));
    }
    let agent = agent(&s, &what, &mut request, p);
    if agent.is_none() || api == Api::Chat {
        super::tools::merged(&request, api, &format!("{what}: request"), Some(span.clone()), p);
    }
    if agent.is_some() && fan_out != FanOut::Fixed(1) {
        p.at(Some(span.clone()), format!("{what}: an agent loop (with tools) is one conversation: give it no fan_out"));
    }
    StepDef {
        name,
        model: s.model.map_or_else(|| d.model.to_string(), |m| m.into_inner()),
        api,
        texts,
        template,
        fan_out,
        concurrency,
        join: first.map_or(Join::All, Join::First),
        on_error,
        quorum: quorum.unwrap_or(1),
        document_tokens,
        top_by: s.top_by.map(|f| f.into_inner()),
        answers_from: from,
        request,
        agent,
    }
}

/// The step whose answers the prompt reads (if any), checked to carry what it takes:
/// text, and the field the answers are ranked by.
fn fan_in(s: &StepFile, template: &Template, (what, name): (&str, &str), before: &[StepDef], p: &mut Problems<'_>) -> Option<usize> {
    let answers = template.uses(|x| matches!(x, Piece::Answers { .. }));
    let from = answers_from(s, what, name, before, p);
    if answers && from.is_none() && s.answers_from.is_none() {
        p.at(Some(s.prompt.span()), format!("{what}: the prompt takes {{answers}}, but no step runs before it"));
    }
    if let Some(b) = from.and_then(|f| before.get(f)).filter(|b| answers && !b.api.generates()) {
        p.at(
            Some(s.prompt.span()),
            format!(
                "{what}: the prompt takes {{answers}} of step {:?}, which speaks {:?}: its replies carry no text",
                b.name,
                b.api.name()
            ),
        );
    }
    if let Some(field) = &s.top_by {
        let carried = from.and_then(|f| before.get(f)).is_some_and(|b| answers_carry(&b.request, field.get_ref()));
        if !carried {
            let whose =
                from.and_then(|f| before.get(f)).map_or_else(|| "an earlier step's".to_string(), |b| format!("step {:?}'s", b.name));
            p.at(
                Some(field.span()),
                format!(
                    "{what}: top_by = {:?}: {whose} answers do not carry it (give that step a response_format json_schema with the property)",
                    field.get_ref()
                ),
            );
        }
    }
    from
}

/// What a step's requests carry beside their prompt: a rerank's documents (the
/// scenario's counts, with the step's own on top). An embeddings step sends its
/// prompt as its one input: its fan-out's members are what a batch would hold.
fn step_texts(s: &StepFile, what: &str, api: Api, d: &StepDefaults<'_>, p: &mut Problems<'_>) -> crate::workload::texts::TextsSpec {
    let mut texts = match &s.request {
        Some(f) => super::apis::fields(f.get_ref(), &format!("{what}: request"), api, d.base_dir, p).over(d.texts),
        None => d.texts.clone(),
    };
    if let Some(b) = s.request.as_ref().and_then(|f| f.get_ref().batch_size.as_ref()) {
        p.at(Some(b.span()), format!("{what}: request.batch_size: a step's request embeds its prompt; give the step a fan_out instead"));
    }
    if texts.images.is_some() {
        let at = s.request.as_ref().and_then(|f| f.get_ref().images.as_ref()).map(Spanned::span);
        p.at(at, format!("{what}: a step's requests carry no images (give them to a stage of prompts)"));
    }
    texts.batch = None;
    texts.images = None;
    texts
}

/// Most model calls an agent step may make per task.
const MAX_STEPS: u32 = 1000;

/// A step's agent loop, its tools put in its request (`tool_choice` "auto" unless set).
fn agent(s: &StepFile, what: &str, request: &mut RequestParams, p: &mut Problems<'_>) -> Option<Agent> {
    if s.tool.is_empty() {
        if let Some(m) = &s.max_steps {
            p.at(Some(m.span()), format!("{what}: max_steps is for an agent loop: give the step [[task.step.tool]]s"));
        }
        return None;
    }
    let max_steps = match &s.max_steps {
        Some(m) if !(1..=MAX_STEPS).contains(m.get_ref()) => {
            p.at(Some(m.span()), format!("{what}: max_steps must be from 1 to {MAX_STEPS}, got {}", m.get_ref()));
            1
        }
        Some(m) => *m.get_ref(),
        None => 8,
    };
    if request.tools.is_some() {
        p.at(Some(s.tool[0].span()), format!("{what}: the step's tools are its [[task.step.tool]]s: give no request.tools too"));
    }
    let mut tools = Vec::with_capacity(s.tool.len());
    let mut listed = Vec::with_capacity(s.tool.len());
    for t in &s.tool {
        let (sim, json) = sim_tool(t.get_ref(), what, p);
        if tools.iter().any(|o: &SimTool| o.name == sim.name) {
            p.at(Some(t.span()), format!("{what}: tool {:?} is given twice", sim.name));
        }
        tools.push(sim);
        listed.push(json);
    }
    request.tools = Some(serde_json::Value::Array(listed));
    request.tool_choice.get_or_insert_with(|| serde_json::json!("auto"));
    Some(Agent { tools, max_steps })
}

/// One simulated tool, and its definition as the request carries it.
fn sim_tool(t: &ToolFile, what: &str, p: &mut Problems<'_>) -> (SimTool, serde_json::Value) {
    let name = t.name.get_ref().clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        p.at(Some(t.name.span()), format!("{what}: tool name {name:?} must be letters, digits, _ or -"));
    }
    let dist = |v: &Option<Spanned<toml::Value>>, field: &str, default: Dist, p: &mut Problems<'_>| match v {
        None => default,
        Some(v) if field == "latency_ms" && v.get_ref().as_integer() == Some(0) => Dist::Fixed(0),
        Some(v) => super::synthetic::dist(v.get_ref()).unwrap_or_else(|e| {
            p.at(Some(v.span()), format!("{what}: tool {name:?}: {field}: {}", e.replace(" tokens", "").replace(" token", "")));
            default
        }),
    };
    let latency_ms = dist(&t.latency_ms, "latency_ms", Dist::Fixed(0), p);
    let result_tokens = dist(&t.result_tokens, "result_tokens", Dist::Fixed(50), p);
    let parameters = match &t.parameters {
        Some(v) => super::tools::json(v.get_ref()).unwrap_or_else(|e| {
            p.at(Some(v.span()), format!("{what}: tool {name:?}: parameters: {e}"));
            serde_json::Value::Null
        }),
        None => serde_json::json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
    };
    if let (Some(v), Err(e)) = (&t.parameters, super::tools::schema_compiles(&parameters)) {
        p.at(Some(v.span()), format!("{what}: tool {name:?}: parameters is not a JSON Schema: {e}"));
    }
    let mut function = serde_json::json!({"name": name, "parameters": parameters});
    if let Some(d) = &t.description {
        function["description"] = d.clone().into();
    }
    (SimTool { name, latency_ms, result_tokens }, serde_json::json!({"type": "function", "function": function}))
}

fn fan_out(s: &StepFile, what: &str, p: &mut Problems<'_>) -> FanOut {
    let Some(v) = &s.fan_out else { return FanOut::Fixed(1) };
    let at = Some(v.span());
    if let Some(t) = v.get_ref().as_table().filter(|t| t.contains_key("field")) {
        return match (t.get("field").and_then(toml::Value::as_str), t.len()) {
            (Some(f), 1) if !f.is_empty() => FanOut::Field { name: f.to_string(), most: MAX_FAN_OUT },
            _ => {
                p.at(at, format!("{what}: fan_out = {{ field = \"name\" }} takes one non-empty name, the input line's list"));
                FanOut::Fixed(1)
            }
        };
    }
    match v.get_ref() {
        toml::Value::Integer(n) if (1..=i64::from(MAX_FAN_OUT)).contains(n) => FanOut::Fixed(*n as u32),
        toml::Value::Integer(n) => {
            p.at(at, format!("{what}: fan_out must be from 1 to {MAX_FAN_OUT}, got {n}"));
            FanOut::Fixed(1)
        }
        other => match super::synthetic::dist(other) {
            Ok(d) if FanOut::Drawn(d.clone()).most() <= MAX_FAN_OUT => FanOut::Drawn(d),
            Ok(d) => {
                let most = FanOut::Drawn(d).most();
                p.at(at, format!("{what}: fan_out's max must be at most {MAX_FAN_OUT} (give the distribution a `max`), got {most}"));
                FanOut::Fixed(1)
            }
            Err(e) => {
                p.at(at, format!("{what}: fan_out: {}", e.replace("tokens", "requests").replace("token", "request")));
                FanOut::Fixed(1)
            }
        },
    }
}

/// The step `{answers…}` reads: the one named, else the one before (None for the first).
fn answers_from(s: &StepFile, what: &str, name: &str, before: &[StepDef], p: &mut Problems<'_>) -> Option<usize> {
    let Some(from) = &s.answers_from else { return before.len().checked_sub(1) };
    let wanted = from.get_ref();
    match before.iter().position(|b| &b.name == wanted) {
        Some(i) => Some(i),
        None if wanted == name => {
            p.at(Some(from.span()), format!("{what}: answers_from names the step itself: a step takes the answers of one before it"));
            None
        }
        None => {
            p.at(
                Some(from.span()),
                format!("{what}: answers_from = {wanted:?}: no step of that name runs before it (a later one would be a cycle)"),
            );
            None
        }
    }
}

/// Whether replies to `request` are JSON objects with `field`: its response_format's
/// JSON Schema lists the property.
fn answers_carry(request: &RequestParams, field: &str) -> bool {
    let Some(format) = &request.response_format else { return false };
    let schema = format.get("json_schema").and_then(|j| j.get("schema"));
    schema.and_then(|s| s.get("properties")).and_then(|props| props.get(field)).is_some()
}
