//! `[prompts]` (and a stage's `prompts = {…}`) as written → the workload's prompt
//! source, every problem reported at its place (a bad line of a prompt file by its
//! number, a dataset entry by its index); every file read is recorded with its sha256.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::error::Problems;
use super::file::{PromptsFile, SharedPrefixFile, TraceFile};
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

/// Whether the server's tokenizer is wanted (`tokenizer = "server"` or `"auto"`, the
/// default), and the one found, when the scenario is read again with it.
#[derive(Debug, Clone, Default)]
pub struct Counting {
    /// Some(true): `"server"`, required; Some(false): `"auto"`, used when found.
    pub wanted: Option<bool>,
    pub server: Option<Tokenizer>,
}

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
    pub fn new(api: Api, base_dir: &'a Path, top: &Spanned<PromptsFile>, p: &mut Problems<'_>, counting: &mut Counting) -> Sources<'a> {
        let mut info = WorkloadInfo { seed: top.get_ref().seed.unwrap_or(0), ..WorkloadInfo::default() };
        let asked = match top.get_ref().tokenizer.as_ref() {
            None => Ok(TokenizerSource::Auto),
            Some(v) => tokenizer(v.get_ref()).map_err(|msg| p.at(Some(v.span()), msg)),
        };
        let tokenizer = match asked {
            // The server's, once found (the scenario is read again with it); until
            // then, or where none is asked of a server (the mock), o200k.
            Ok(TokenizerSource::Server | TokenizerSource::Auto) => {
                let required = matches!(asked, Ok(TokenizerSource::Server));
                match counting.server.clone() {
                    Some(t) => t,
                    None => {
                        counting.wanted = Some(required);
                        Tokenizer::o200k()
                    }
                }
            }
            Ok(TokenizerSource::BuiltIn(t)) => t,
            Ok(TokenizerSource::File(rel)) => {
                let v = top.get_ref().tokenizer.as_ref().expect("a file was named");
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
            Err(()) => Tokenizer::o200k(),
        };
        info.tokenizer = tokenizer.name().to_string();
        Sources { api, base_dir, tokenizer, pool: None, info, turns: false }
    }

    /// The words synthetic prompts are built from, found once.
    pub(super) fn pool(&mut self) -> Result<Arc<WordPool>, String> {
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
        let mut raw = raw.into_inner();
        let Some(source) = Source::take(&mut raw) else {
            p.at(Some(span), format!("{what} needs exactly one of `list`, `template`, `file`, `synthetic`, `sharegpt` or `trace`"));
            return Prompts::placeholder();
        };
        self.check_fields(&raw, &source, what, p);
        let seed = raw.seed.unwrap_or(self.info.seed);
        if let Some(own) = raw.seed.filter(|_| what != "prompts") {
            self.info.stage_seeds.insert(what.to_string(), own);
        }
        let system = raw.system.take().map(Spanned::into_inner);
        let prompts = match source {
            Source::List(list) => Prompts::list(self.api, list.get_ref(), system).or_else(|| {
                p.at(Some(list.span()), format!("{what}.list is empty; give at least one prompt"));
                None
            }),
            Source::Template(t) => {
                if t.get_ref().trim().is_empty() {
                    p.at(Some(t.span()), format!("{what}.template is empty"));
                }
                Some(Prompts::template(self.api, t.into_inner(), system))
            }
            Source::File(file) => self.file(&file, system, what, p),
            Source::Synthetic(v) => self.synthetic(&v, raw.shared_prefix.take(), seed, what, p),
            Source::ShareGpt(file) => self.sharegpt(&file, &raw, seed, what, p),
            Source::Trace(t) => self.trace(*t, seed, what, p),
        };
        prompts.map_or_else(Prompts::placeholder, |x| x.with_tokenizer(self.tokenizer.clone()))
    }

    /// The fields that go with one kind of source only, and a stage's tokenizer.
    fn check_fields(&self, raw: &PromptsFile, source: &Source, what: &str, p: &mut Problems<'_>) {
        if what != "prompts"
            && let Some(t) = &raw.tokenizer
        {
            p.at(Some(t.span()), format!("{what}: the tokenizer is the scenario's; set it once, in [prompts]"));
        }
        let synthetic = matches!(source, Source::Synthetic(_));
        if let Some(sp) = raw.shared_prefix.as_ref().filter(|_| !synthetic) {
            p.at(Some(sp.span()), format!("{what}.shared_prefix goes with `synthetic` only"));
        }
        for (field, v) in [
            ("sample", raw.sample.as_ref().map(|s| s.span())),
            ("min_input", raw.min_input.as_ref().map(|s| s.span())),
            ("max_input", raw.max_input.as_ref().map(|s| s.span())),
            ("min_output", raw.min_output.as_ref().map(|s| s.span())),
            ("max_output", raw.max_output.as_ref().map(|s| s.span())),
        ] {
            if v.is_some() && !matches!(source, Source::ShareGpt(_)) {
                p.at(v, format!("{what}.{field} goes with `sharegpt` only"));
            }
        }
        if let Some(s) = &raw.system {
            if matches!(source, Source::Synthetic(_) | Source::ShareGpt(_) | Source::Trace(_)) {
                let why = "a system prompt of a set length is `shared_prefix = { tokens = N, groups = 1 }`";
                p.at(Some(s.span()), format!("{what}.system does not go with synthetic, dataset or trace prompts ({why})"));
            } else if self.api == Api::Completions {
                p.warn(
                    Some(s.span()),
                    format!("{what}.system with target.api = \"completions\" is sent before each prompt, a blank line apart"),
                );
            }
        }
    }

    /// `file = "prompts.txt"` (a prompt a line) or `"….jsonl"` (a prompt or messages a line).
    fn file(&mut self, file: &Spanned<String>, system: Option<String>, what: &str, p: &mut Problems<'_>) -> Option<Prompts> {
        let rel = file.get_ref();
        let text = self.read(file, what, "file", p)?;
        let path = self.base_dir.join(rel);
        let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        let (prompts, bad) = Prompts::from_file_text(self.api, &text, jsonl, system, rel);
        for (line, msg) in bad {
            p.at(Some(file.span()), format!("{what}.file {}:{line}: {msg}", path.display()));
        }
        prompts.or_else(|| {
            p.at(Some(file.span()), format!("{what}.file {:?} holds no prompts", rel));
            None
        })
    }

    /// `synthetic = "N(480,240)/(300,150)"` (or a table, or buckets), with its shared prefix.
    fn synthetic(
        &mut self,
        v: &Spanned<toml::Value>,
        shared_prefix: Option<Spanned<SharedPrefixFile>>,
        seed: u64,
        what: &str,
        p: &mut Problems<'_>,
    ) -> Option<Prompts> {
        let prefix = shared_prefix
            .and_then(|sp| shared(sp.get_ref()).map_err(|msg| p.at(Some(sp.span()), format!("{what}.shared_prefix: {msg}"))).ok());
        let spec = lengths(v.get_ref()).map_err(|msg| p.at(Some(v.span()), msg.replacen("prompts.", &format!("{what}."), 1))).ok()?;
        let pool = self.pool().map_err(|msg| p.at(Some(v.span()), msg)).ok()?;
        let source = describe(v.get_ref(), prefix);
        Some(Prompts::synthetic(self.api, Synthetic::new(spec, prefix, seed, pool), source))
    }

    /// `sharegpt = "data.json"`: first human turns (and, for sessions, the later ones),
    /// sampled and filtered by length.
    fn sharegpt(&mut self, file: &Spanned<String>, raw: &PromptsFile, seed: u64, what: &str, p: &mut Problems<'_>) -> Option<Prompts> {
        if let Some(n) = raw.sample.as_ref().filter(|n| !(1..=MAX_SAMPLE).contains(n.get_ref())) {
            p.at(Some(n.span()), format!("{what}.sample must be from 1 to {MAX_SAMPLE}, got {}", n.get_ref()));
            return None;
        }
        let value = |f: &Option<Spanned<u32>>| f.as_ref().map(|s| *s.get_ref());
        let sel = Selection {
            sample: raw.sample.as_ref().map(|s| *s.get_ref()),
            seed,
            min_input: value(&raw.min_input),
            max_input: value(&raw.max_input),
            min_output: value(&raw.min_output),
            max_output: value(&raw.max_output),
            turns: self.turns,
            images_dir: self.base_dir.join(file.get_ref()).parent().map(std::path::Path::to_path_buf),
        };
        let rel = file.get_ref();
        let text = self.read(file, what, "sharegpt", p)?;
        match sharegpt(self.api, &text, &self.tokenizer, &sel) {
            Ok(((items, later), info)) => {
                self.info.datasets.push(DatasetUse { path: rel.clone(), used_by: what.to_string(), info: info.clone() });
                let source = format!("sharegpt {rel} ({} prompts)", info.prompts);
                let d = Prompts::dataset(self.api, items, self.tokenizer.clone(), source)?;
                Some(if self.turns { d.with_followups(later) } else { d })
            }
            Err(problems) => {
                for msg in problems {
                    p.at(Some(file.span()), format!("{what}.sharegpt {}: {msg}", self.base_dir.join(rel).display()));
                }
                None
            }
        }
    }

    /// `trace = { file = "…", format = "mooncake" }`: a timestamped trace's lines.
    fn trace(&mut self, t: Spanned<TraceFile>, seed: u64, what: &str, p: &mut Problems<'_>) -> Option<Prompts> {
        let text = self.read(&t.get_ref().file, what, "trace", p)?;
        let pool = self.pool();
        let ctx = TraceCtx { api: self.api, base_dir: self.base_dir, tokenizer: &self.tokenizer, pool, text };
        let (prompts, used) = trace(ctx, t, what, seed, p)?;
        self.info.traces.push(used);
        Some(prompts)
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

/// The one prompt source a `[prompts]` names.
enum Source {
    List(Spanned<Vec<String>>),
    Template(Spanned<String>),
    File(Spanned<String>),
    Synthetic(Spanned<toml::Value>),
    ShareGpt(Spanned<String>),
    /// Boxed: a trace's table is many times the size of the others.
    Trace(Box<Spanned<TraceFile>>),
}

impl Source {
    /// The source `raw` names, taken out of it; None unless it names exactly one.
    fn take(raw: &mut PromptsFile) -> Option<Source> {
        let named = [
            raw.list.is_some(),
            raw.template.is_some(),
            raw.file.is_some(),
            raw.synthetic.is_some(),
            raw.sharegpt.is_some(),
            raw.trace.is_some(),
        ];
        if named.iter().filter(|b| **b).count() != 1 {
            return None;
        }
        let taken = raw.list.take().map(Source::List).or_else(|| raw.template.take().map(Source::Template));
        let taken = taken.or_else(|| raw.file.take().map(Source::File)).or_else(|| raw.synthetic.take().map(Source::Synthetic));
        taken.or_else(|| raw.sharegpt.take().map(Source::ShareGpt)).or_else(|| raw.trace.take().map(|t| Source::Trace(Box::new(t))))
    }
}

/// A shared prefix as asked, checked against what is built up front.
fn shared(s: &SharedPrefixFile) -> Result<SharedPrefix, String> {
    if s.groups == 0 || s.groups > MAX_GROUPS {
        return Err(format!("groups must be from 1 to {MAX_GROUPS}, got {}", s.groups));
    }
    let max = crate::workload::dist::MAX_TOKENS;
    if s.tokens == 0 || s.tokens > max {
        return Err(format!("tokens must be from 1 to {max}, got {}", s.tokens));
    }
    if u64::from(s.tokens) * u64::from(s.groups) > MAX_PREFIX_TOKENS {
        return Err(format!("tokens × groups must be at most {MAX_PREFIX_TOKENS} (the prefixes are built up front)"));
    }
    Ok(SharedPrefix { tokens: s.tokens, groups: s.groups })
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
