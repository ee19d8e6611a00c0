//! `[prompts]` as written → the workload's prompt source, every problem reported at its
//! place (a bad line of a prompt file by its number).

use std::path::Path;

use toml::Spanned;

use super::error::Problems;
use super::file::PromptsFile;
use crate::model::Api;
use crate::workload::Prompts;

pub(super) fn resolve(raw: Spanned<PromptsFile>, api: Api, p: &mut Problems<'_>, base_dir: &Path) -> Prompts {
    let span = raw.span();
    let raw = raw.into_inner();
    let given = [raw.list.is_some(), raw.template.is_some(), raw.file.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        p.at(Some(span), "[prompts] needs exactly one of `list`, `template` or `file`");
        return Prompts::placeholder();
    }
    let system = raw.system.clone();
    if system.is_some() && api == Api::Completions {
        p.warn(Some(span.clone()), "prompts.system with target.api = \"completions\" is sent before each prompt, a blank line apart");
    }
    if let Some(list) = raw.list {
        return Prompts::list(api, list.get_ref(), system).unwrap_or_else(|| {
            p.at(Some(list.span()), "prompts.list is empty; give at least one prompt");
            Prompts::placeholder()
        });
    }
    if let Some(t) = raw.template {
        if t.get_ref().trim().is_empty() {
            p.at(Some(t.span()), "prompts.template is empty");
        }
        return Prompts::template(api, t.into_inner(), system);
    }
    let file = raw.file.expect("exactly one source is set");
    let rel = file.get_ref();
    let path = base_dir.join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            p.at(Some(file.span()), format!("prompts.file {:?}: cannot read {}: {e}", rel, path.display()));
            return Prompts::placeholder();
        }
    };
    let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let (prompts, bad) = Prompts::from_file_text(api, &text, jsonl, system, rel);
    for (line, msg) in bad {
        p.at(Some(file.span()), format!("prompts.file {}:{line}: {msg}", path.display()));
    }
    prompts.unwrap_or_else(|| {
        p.at(Some(file.span()), format!("prompts.file {:?} holds no prompts", rel));
        Prompts::placeholder()
    })
}
