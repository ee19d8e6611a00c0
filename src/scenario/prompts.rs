//! `[prompts]` (and a stage's `prompts = {…}`) as written → the workload's prompt
//! source, every problem reported at its place (a bad line of a prompt file by its
//! number, a dataset entry by its index); every file read is recorded with its sha256.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::error::Problems;
use super::file::PromptsFile;
use super::synthetic::{TokenizerSource, lengths, tokenizer};
use super::trace::{TraceCtx, trace};
use crate::model::Api;
use crate::workload::dataset::{Selection, sharegpt};
use crate::workload::provenance::{DatasetUse, FileRecord, WorkloadInfo};
use crate::workload::synth::WordPool;
use crate::workload::synthetic::{SharedPrefix, Synthetic};
use crate::workload::{Prompts, Tokenizer};

/// Most prefix groups, and prefix tokens in all (built when the scenario loads).
const MAX_GROUPS: u32 = 10_000;
const MAX_PREFIX_TOKENS: u64 = 16 << 20;
/// Most prompts drawn from a dataset (each is held in memory).
const MAX_SAMPLE: u64 = 10_000_000;

/// What every prompt source of a scenario shares: the endpoint, the folder paths are
/// relative to, the counting tokenizer (and the words it builds prompts from), and
/// the record of what was read.
pub(super) struct Sources<'a> {
    pub api: Api,
    pub base_dir: &'a Path,
    pub tokenizer: Tokenizer,
    pool: Option<Arc<WordPool>>,
    pub info: WorkloadInfo,
    /// A `[conversation]` runs: datasets keep their later human turns.
    pub turns: bool,
}

impl<'a> Sources<'a> {
    /// The sources of a scenario whose top-level `[prompts]` is `top` (its tokenizer
    /// and seed are the scenario's).
    pub fn new(api: Api, base_dir: &'a Path, top: &Spanned<PromptsFile>, p: &mut Problems<'_>) -> Sources<'a> {
        let mut info = WorkloadInfo { seed: top.get_ref().seed.unwrap_or(0), ..WorkloadInfo::default() };
        let tokenizer = match top.get_ref().tokenizer.as_ref() {
            None => Tokenizer::o200k(),
            Some(v) => match tokenizer(v.get_ref()) {
                Ok(TokenizerSource::BuiltIn(t)) => t,
                Ok(TokenizerSource::File(rel)) => {
                    let path = base_dir.join(&rel);
                    match std::fs::read(&path) {
                        Ok(bytes) => match Tokenizer::from_bytes(&bytes, &rel) {
                            Ok(t) => {
                                info.read(FileRecord::of(&rel, &bytes));
                                t
                            }
                            Err(e) => {
                                p.at(Some(v.span()), format!("prompts.tokenizer {}: {e}", path.display()));
                                Tokenizer::o200k()
                            }
                        },
                        Err(e) => {
                            p.at(Some(v.span()), format!("prompts.tokenizer: cannot read {}: {e}", path.display()));
                            Tokenizer::o200k()
                        }
                    }
                }
                Err(msg) => {
                    p.at(Some(v.span()), msg);
                    Tokenizer::o200k()
                }
            },
        };
        info.tokenizer = tokenizer.name().to_string();
        Sources { api, base_dir, tokenizer, pool: None, info, turns: false }
    }

    /// The words synthetic prompts are built from, found once.
    fn pool(&mut self) -> Result<Arc<WordPool>, String> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let pool = Arc::new(WordPool::new(&self.tokenizer)?);
        self.pool = Some(pool.clone());
        Ok(pool)
    }

    /// The prompts of `raw`; `what` names it in messages ("prompts", "stage \"x\" prompts").
    pub fn resolve(&mut self, raw: Spanned<PromptsFile>, what: &str, p: &mut Problems<'_>) -> Prompts {
        let span = raw.span();
        let raw = raw.into_inner();
        let sources = [
            raw.list.is_some(),
            raw.template.is_some(),
            raw.file.is_some(),
            raw.synthetic.is_some(),
            raw.sharegpt.is_some(),
            raw.trace.is_some(),
        ];
        if sources.iter().filter(|b| **b).count() != 1 {
            p.at(Some(span), format!("{what} needs exactly one of `list`, `template`, `file`, `synthetic`, `sharegpt` or `trace`"));
            return Prompts::placeholder();
        }
        if what != "prompts"
            && let Some(t) = &raw.tokenizer
        {
            p.at(Some(t.span()), format!("{what}: the tokenizer is the scenario's; set it once, in [prompts]"));
        }
        let misplaced = |p: &mut Problems<'_>, set: bool, at: Option<std::ops::Range<usize>>, field: &str, needs: &str| {
            if set {
                p.at(at, format!("{what}.{field} goes with `{needs}` only"));
            }
        };
        misplaced(
            p,
            raw.shared_prefix.is_some() && raw.synthetic.is_none(),
            raw.shared_prefix.as_ref().map(|s| s.span()),
            "shared_prefix",
            "synthetic",
        );
        for (field, v) in [
            ("sample", raw.sample.as_ref().map(|s| s.span())),
            ("min_input", raw.min_input.as_ref().map(|s| s.span())),
            ("max_input", raw.max_input.as_ref().map(|s| s.span())),
            ("min_output", raw.min_output.as_ref().map(|s| s.span())),
            ("max_output", raw.max_output.as_ref().map(|s| s.span())),
        ] {
            misplaced(p, v.is_some() && raw.sharegpt.is_none(), v, field, "sharegpt");
        }
        let system = raw.system.as_ref().map(|s| s.get_ref().clone());
        if let Some(s) = &raw.system {
            if raw.synthetic.is_some() || raw.sharegpt.is_some() || raw.trace.is_some() {
                let why = "a system prompt of a set length is `shared_prefix = { tokens = N, groups = 1 }`";
                p.at(Some(s.span()), format!("{what}.system does not go with synthetic, dataset or trace prompts ({why})"));
            } else if self.api == Api::Completions {
                p.warn(
                    Some(s.span()),
                    format!("{what}.system with target.api = \"completions\" is sent before each prompt, a blank line apart"),
                );
            }
        }
        let seed = raw.seed.unwrap_or(self.info.seed);
        if let Some(own) = raw.seed.filter(|_| what != "prompts") {
            self.info.stage_seeds.insert(what.to_string(), own);
        }
        let api = self.api;
        let prompts = if let Some(list) = raw.list {
            Prompts::list(api, list.get_ref(), system).unwrap_or_else(|| {
                p.at(Some(list.span()), format!("{what}.list is empty; give at least one prompt"));
                Prompts::placeholder()
            })
        } else if let Some(t) = raw.template {
            if t.get_ref().trim().is_empty() {
                p.at(Some(t.span()), format!("{what}.template is empty"));
            }
            Prompts::template(api, t.into_inner(), system)
        } else if let Some(v) = raw.synthetic {
            let prefix = raw.shared_prefix.and_then(|sp| {
                let s = sp.get_ref();
                let bad = if s.groups == 0 || s.groups > MAX_GROUPS {
                    Some(format!("groups must be from 1 to {MAX_GROUPS}, got {}", s.groups))
                } else if s.tokens == 0 || s.tokens > crate::workload::dist::MAX_TOKENS {
                    Some(format!("tokens must be from 1 to {}, got {}", crate::workload::dist::MAX_TOKENS, s.tokens))
                } else if u64::from(s.tokens) * u64::from(s.groups) > MAX_PREFIX_TOKENS {
                    Some(format!("tokens × groups must be at most {MAX_PREFIX_TOKENS} (the prefixes are built up front)"))
                } else {
                    None
                };
                match bad {
                    Some(msg) => {
                        p.at(Some(sp.span()), format!("{what}.shared_prefix: {msg}"));
                        None
                    }
                    None => Some(SharedPrefix { tokens: s.tokens, groups: s.groups }),
                }
            });
            let spec = match lengths(v.get_ref()) {
                Ok(spec) => spec,
                Err(msg) => {
                    p.at(Some(v.span()), msg.replacen("prompts.", &format!("{what}."), 1));
                    return Prompts::placeholder();
                }
            };
            let pool = match self.pool() {
                Ok(pool) => pool,
                Err(msg) => {
                    p.at(Some(v.span()), msg);
                    return Prompts::placeholder();
                }
            };
            let source = describe(v.get_ref(), prefix);
            Prompts::synthetic(api, Synthetic::new(spec, prefix, seed, pool), source)
        } else if let Some(t) = raw.trace {
            let Some(text) = self.read(&t.get_ref().file, what, "trace", p) else { return Prompts::placeholder() };
            let pool = self.pool();
            let ctx = TraceCtx { api, base_dir: self.base_dir, tokenizer: &self.tokenizer, pool, text };
            match trace(ctx, t, what, seed, p) {
                Some((prompts, used)) => {
                    self.info.traces.push(used);
                    prompts
                }
                None => return Prompts::placeholder(),
            }
        } else if let Some(file) = raw.sharegpt {
            if let Some(n) = raw.sample.as_ref().filter(|n| !(1..=MAX_SAMPLE).contains(n.get_ref())) {
                p.at(Some(n.span()), format!("{what}.sample must be from 1 to {MAX_SAMPLE}, got {}", n.get_ref()));
                return Prompts::placeholder();
            }
            let sel = Selection {
                sample: raw.sample.map(|s| s.into_inner()),
                seed,
                min_input: raw.min_input.map(|s| s.into_inner()),
                max_input: raw.max_input.map(|s| s.into_inner()),
                min_output: raw.min_output.map(|s| s.into_inner()),
                max_output: raw.max_output.map(|s| s.into_inner()),
                turns: self.turns,
            };
            let rel = file.get_ref();
            let Some(text) = self.read(&file, what, "sharegpt", p) else { return Prompts::placeholder() };
            match sharegpt(api, &text, &self.tokenizer, &sel) {
                Ok(((items, later), info)) => {
                    self.info.datasets.push(DatasetUse { path: rel.clone(), used_by: what.to_string(), info: info.clone() });
                    let source = format!("sharegpt {rel} ({} prompts)", info.prompts);
                    match Prompts::dataset(api, items, self.tokenizer.clone(), source) {
                        Some(d) if self.turns => d.with_followups(later),
                        Some(d) => d,
                        None => Prompts::placeholder(),
                    }
                }
                Err(problems) => {
                    for msg in problems {
                        p.at(Some(file.span()), format!("{what}.sharegpt {}: {msg}", self.base_dir.join(rel).display()));
                    }
                    Prompts::placeholder()
                }
            }
        } else {
            let file = raw.file.expect("exactly one source is set");
            let rel = file.get_ref();
            let Some(text) = self.read(&file, what, "file", p) else { return Prompts::placeholder() };
            let path = self.base_dir.join(rel);
            let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
            let (prompts, bad) = Prompts::from_file_text(api, &text, jsonl, system, rel);
            for (line, msg) in bad {
                p.at(Some(file.span()), format!("{what}.file {}:{line}: {msg}", path.display()));
            }
            prompts.unwrap_or_else(|| {
                p.at(Some(file.span()), format!("{what}.file {:?} holds no prompts", rel));
                Prompts::placeholder()
            })
        };
        prompts.with_tokenizer(self.tokenizer.clone())
    }

    /// A prompt file's text, recorded; None (and a problem) when it cannot be read.
    fn read(&mut self, file: &Spanned<String>, what: &str, field: &str, p: &mut Problems<'_>) -> Option<String> {
        let rel = file.get_ref();
        let path = self.base_dir.join(rel);
        let bytes = std::fs::read(&path)
            .map_err(|e| p.at(Some(file.span()), format!("{what}.{field} {:?}: cannot read {}: {e}", rel, path.display())))
            .ok()?;
        self.info.read(FileRecord::of(rel, &bytes));
        String::from_utf8(bytes)
            .map_err(|e| p.at(Some(file.span()), format!("{what}.{field} {}: not UTF-8 text ({e})", path.display())))
            .ok()
    }
}

/// How synthetic prompts are summed up in results: the shorthand as written, else
/// "synthetic", and the prefix.
fn describe(v: &toml::Value, prefix: Option<SharedPrefix>) -> String {
    let base = match v {
        toml::Value::String(s) => format!("synthetic {}", s.trim()),
        toml::Value::Array(b) => format!("synthetic, {} buckets", b.len()),
        other => format!("synthetic {other}"),
    };
    match prefix {
        Some(p) => format!("{base}, shared prefix {} tokens × {} groups", p.tokens, p.groups),
        None => base,
    }
}
