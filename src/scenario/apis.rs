//! What goes with which API: the `[request]` fields of embeddings (`batch_size`,
//! `encoding_format`, `dimensions`) and of rerank (`documents`, `document_tokens`,
//! `top_n`) only with theirs, no generation field (`max_tokens`, `temperature`, …) and
//! no stream for either; each problem said at its place. And how many texts a stage's
//! requests carry, the scenario's with a stage's own on top.

use toml::Spanned;

use super::error::Problems;
use super::file::{PromptsFile, RequestFile, StageFile};
use super::prompts::Sources;
use super::request::Spoken;
use crate::model::Api;
use crate::workload::Prompts;
use crate::workload::dist::Dist;
use crate::workload::texts::{MAX_TEXTS, TextsSpec};

/// A table's text counts: each given one replaces the scenario's.
#[derive(Debug, Clone, Default)]
pub(super) struct Texts {
    pub batch: Option<Dist>,
    pub documents: Option<Dist>,
    pub document_tokens: Option<Dist>,
    pub images: Option<crate::workload::images::ImagesSpec>,
}

impl Texts {
    /// `spec` with these on top.
    pub fn over(&self, spec: &TextsSpec) -> TextsSpec {
        TextsSpec {
            batch: self.batch.clone().or_else(|| spec.batch.clone()),
            documents: self.documents.clone().or_else(|| spec.documents.clone()),
            document_tokens: self.document_tokens.clone().or_else(|| spec.document_tokens.clone()),
            // Drawn with the scenario's seed.
            images: self
                .images
                .clone()
                .map(|i| crate::workload::images::ImagesSpec { seed: spec.seed, ..i })
                .or_else(|| spec.images.clone()),
            ..spec.clone()
        }
    }
}

/// The fields of `f` (named `what`) that do not go with `api`, refused in place; the
/// text counts it sets.
pub(super) fn fields(f: &RequestFile, what: &str, api: Api, base_dir: &std::path::Path, p: &mut Problems<'_>) -> Texts {
    let span = |s: &Option<Spanned<_>>| s.as_ref().map(|s: &Spanned<_>| s.span());
    let mut refuse = |at: Option<std::ops::Range<usize>>, field: &str, why: String| {
        if at.is_some() {
            p.at(at, format!("{what}.{field}: {why}"));
        }
    };
    let embeddings = [
        ("batch_size", span(&f.batch_size)),
        ("encoding_format", f.encoding_format.as_ref().map(Spanned::span)),
        ("dimensions", f.dimensions.as_ref().map(Spanned::span)),
    ];
    let rerank =
        [("documents", span(&f.documents)), ("document_tokens", span(&f.document_tokens)), ("top_n", f.top_n.as_ref().map(Spanned::span))];
    for (only, list) in [(Api::Embeddings, embeddings), (Api::Rerank, rerank)] {
        for (field, at) in list.into_iter().filter(|_| api != only) {
            refuse(at, field, format!("is for target.api = {:?}, not {:?}", only.name(), api.name()));
        }
    }
    if !api.generates() {
        let generation = [
            ("max_tokens", f.max_tokens.as_ref().map(Spanned::span)),
            ("max_completion_tokens", f.max_completion_tokens.as_ref().map(Spanned::span)),
            ("temperature", f.temperature.as_ref().map(Spanned::span)),
            ("top_p", f.top_p.as_ref().map(Spanned::span)),
            ("stop", f.stop.as_ref().map(Spanned::span)),
            ("min_tokens", f.min_tokens.as_ref().map(Spanned::span)),
        ];
        for (field, at) in generation {
            refuse(at, field, format!("target.api = {:?} generates no text: remove it", api.name()));
        }
        for (field, set) in [("seed", f.seed.is_some()), ("ignore_eos", f.ignore_eos.is_some())] {
            if set {
                p.at(None, format!("{what}.{field}: target.api = {:?} generates no text: remove it", api.name()));
            }
        }
    }
    if let Some(e) = f.encoding_format.as_ref().filter(|e| !matches!(e.get_ref().as_str(), "float" | "base64")) {
        p.at(Some(e.span()), format!("{what}.encoding_format must be \"float\" or \"base64\", got {:?}", e.get_ref()));
    }
    let mut count = |v: &Option<Spanned<toml::Value>>, field: &str, most: u32, unit: &str| {
        let v = v.as_ref()?;
        match super::synthetic::dist(v.get_ref()) {
            Ok(d) if d.bound() > most => p.at(Some(v.span()), format!("{what}.{field}: at most {most} {unit}, got up to {}", d.bound())),
            Ok(d) => return Some(d),
            Err(e) => p.at(Some(v.span()), format!("{what}.{field}: {e}")),
        }
        None
    };
    Texts {
        batch: count(&f.batch_size, "batch_size", MAX_TEXTS, "inputs per request"),
        documents: count(&f.documents, "documents", MAX_TEXTS, "documents per query"),
        document_tokens: count(&f.document_tokens, "document_tokens", crate::workload::dist::MAX_TOKENS, "tokens"),
        images: f.images.as_ref().and_then(|v| super::images::images(v, what, api, base_dir, p)),
    }
}

/// The scenario's `[request]` text counts (with its seed, and for rerank the words its
/// documents are made of), `target.stream` checked against the API.
/// `rerank`: a stage speaks it (its documents need words).
pub(super) fn scenario_texts(f: &RequestFile, spoken: Spoken, rerank: bool, sources: &mut Sources<'_>, p: &mut Problems<'_>) -> TextsSpec {
    if spoken.stream && !spoken.api.generates() {
        let api = spoken.api.name();
        p.field("target.stream", format!("target.api = {api:?} does not stream (its reply is one JSON body): set stream = false"));
    }
    let mut texts =
        fields(f, "request", spoken.api, sources.base_dir, p).over(&TextsSpec { seed: sources.info.seed, ..TextsSpec::default() });
    if spoken.api == Api::Rerank || rerank {
        match sources.pool() {
            Ok(pool) => texts.pool = Some(pool),
            Err(e) => p.field("prompts.tokenizer", e),
        }
    }
    texts
}

/// Each stage's own prompts (numbered from 1 in messages), made for the API it speaks:
/// a stage that speaks another API than the target's without prompts of its own gets
/// the scenario's (`top`) made for its API.
pub(super) fn stage_prompts(
    raw: &mut [Spanned<StageFile>],
    top: Option<Spanned<PromptsFile>>,
    sources: &mut Sources<'_>,
    p: &mut Problems<'_>,
) -> Vec<Option<Prompts>> {
    let target = sources.api;
    raw.iter_mut()
        .enumerate()
        .map(|(i, s)| {
            let api = s.get_ref().api.unwrap_or(target);
            let own = s.get_mut().prompts.take().or_else(|| {
                let mut top = top.clone().filter(|_| api != target)?;
                // The counting tokenizer is the run's, set once.
                top.get_mut().tokenizer = None;
                Some(top)
            })?;
            sources.api = api;
            let prompts = sources.resolve(own, &format!("stage {} prompts", i + 1), p);
            sources.api = target;
            Some(prompts)
        })
        .collect()
}

/// With `[conversation]`, every stage speaks chat (a session's history is messages).
pub(super) fn sessions_speak_chat(raw: &[Spanned<StageFile>], p: &mut Problems<'_>) {
    for (i, s) in raw.iter().enumerate() {
        if let Some(api) = s.get_ref().api.filter(|a| *a != Api::Chat) {
            p.at(
                Some(s.span()),
                format!("stage {}: api = {:?} does not go with [conversation], whose sessions speak chat", i + 1, api.name()),
            );
        }
    }
}

/// `[check]` reads an answer's text: every stage must speak an API that writes one.
pub(super) fn checks_read_text(stages: &[super::stage::Stage], p: &mut Problems<'_>) {
    if let Some(s) = stages.iter().find(|s| !s.api.generates()) {
        p.field("check", format!("stage {:?} speaks {:?}, whose replies hold no text to check", s.name, s.api.name()));
    }
}
