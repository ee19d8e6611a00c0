//! `[request]` (and a stage's `request = {…}`) as written → the parameters every body
//! carries, each checked in place; `extra_body` converted to JSON, with a warning for
//! every field it takes over from llmload.

use serde_json::{Map, Value};
use toml::Spanned;

use super::error::Problems;
use super::file::{RequestFile, StopFile};
use crate::model::{Api, RequestParams};

/// The `[request]` fields: an `extra_body` that sets one takes it over, and is warned
/// about.
const REQUEST_FIELDS: [&str; 12] = [
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "ignore_eos",
    "min_tokens",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
];

/// How the target is spoken to, which decides what llmload itself puts in a body.
#[derive(Clone, Copy)]
pub(super) struct Spoken {
    pub api: Api,
    pub stream: bool,
}

/// The parameters `f` sets; problems and warnings reported in place, named `what`.
/// Files it names (`tools = "tools.json"`) are found from `base_dir`.
pub(super) fn request(f: &RequestFile, what: &str, spoken: Spoken, base_dir: &std::path::Path, p: &mut Problems<'_>) -> RequestParams {
    if let (Some(_), Some(m)) = (&f.max_tokens, &f.max_completion_tokens) {
        p.at(
            Some(m.span()),
            format!("{what}: give max_tokens or max_completion_tokens, not both (the same limit by its old and new name)"),
        );
    }
    let mut in_range = |v: &Option<Spanned<f64>>, name: &str, ok: fn(f64) -> bool, range: &str| {
        v.as_ref().map(|v| {
            let x = *v.get_ref();
            if !ok(x) {
                p.at(Some(v.span()), format!("{what}.{name} must be {range}, got {x}"));
            }
            x
        })
    };
    let temperature = in_range(&f.temperature, "temperature", |x| (0.0..=2.0).contains(&x), "between 0 and 2");
    let top_p = in_range(&f.top_p, "top_p", |x| x > 0.0 && x <= 1.0, "above 0 and at most 1");
    let stop = f.stop.as_ref().map(|s| {
        let list = match s.get_ref() {
            StopFile::One(one) => vec![one.clone()],
            StopFile::Many(many) => many.clone(),
        };
        if list.is_empty() || list.iter().any(String::is_empty) {
            p.at(Some(s.span()), format!("{what}.stop must hold non-empty strings"));
        }
        list
    });
    let mut params = RequestParams {
        max_tokens: f.max_tokens.as_ref().map(|n| n.get_ref().get()),
        max_completion_tokens: f.max_completion_tokens.as_ref().map(|n| n.get_ref().get()),
        temperature,
        top_p,
        seed: f.seed,
        stop,
        ignore_eos: f.ignore_eos,
        min_tokens: f.min_tokens.as_ref().map(|n| *n.get_ref()),
        encoding_format: f.encoding_format.as_ref().map(|e| e.get_ref().clone()),
        dimensions: f.dimensions.as_ref().map(|n| n.get_ref().get()),
        top_n: f.top_n.as_ref().map(|n| n.get_ref().get()),
        extra_body: f.extra_body.as_ref().map(|t| extra_body(t, what, spoken, p)),
        ..RequestParams::default()
    };
    super::tools::tools(f, what, spoken.api, base_dir, &mut params, p);
    if let Some(min) = &f.min_tokens {
        lengths(&params, Some(min.span()), what, p);
    }
    params
}

/// `min_tokens` within the output limit: checked in each table, and again on a stage's
/// merged parameters (a stage's `min_tokens` over the scenario's `max_tokens`).
pub(super) fn lengths(params: &RequestParams, at: Option<std::ops::Range<usize>>, what: &str, p: &mut Problems<'_>) -> bool {
    match (params.min_tokens, params.max_output_tokens()) {
        (Some(min), Some(max)) if min > max => {
            p.at(at, format!("{what}.min_tokens ({min}) must not exceed the most output tokens asked ({max})"));
            false
        }
        _ => true,
    }
}

/// `extra_body` as JSON. Every field it takes over from llmload is warned about; a
/// `stream` other than `target.stream` is refused (the reply is read by the latter).
fn extra_body(t: &Spanned<toml::Table>, what: &str, spoken: Spoken, p: &mut Problems<'_>) -> Map<String, Value> {
    let at = Some(t.span());
    let mut out = Map::new();
    for (key, value) in t.get_ref() {
        match super::tools::json(value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(why) => p.at(at.clone(), format!("{what}.extra_body.{key}: {why}")),
        }
        let k = key.as_str();
        if k == "stream" && value.as_bool() != Some(spoken.stream) {
            p.at(at.clone(), format!("{what}.extra_body.stream: set target.stream instead (llmload reads each reply by it)"));
        } else if k == spoken.api.prompt_field() {
            p.warn(at.clone(), format!("{what}.extra_body sets `{k}`: it is sent instead of every prompt"));
        } else if matches!(k, "model" | "stream") || (k == "stream_options" && spoken.stream) {
            p.warn(at.clone(), format!("{what}.extra_body sets `{k}`, which llmload sets itself: extra_body's value is sent"));
        } else if REQUEST_FIELDS.contains(&k) {
            p.warn(
                at.clone(),
                format!("{what}.extra_body sets `{k}`, a [request] field: extra_body's value is sent, over [request] and any stage's"),
            );
        }
    }
    out
}
