//! What a run prints when it ends: the comparison table, the run's cost, the sweep's
//! answer, why it was aborted, a line per failure kind with its first message, and a
//! line per stage on its sessions by turn or its server's prefix cache, each threshold
//! judged and each stage without a success, where token counts came from when not
//! from the model's own tokens, and a warning
//! when llmload itself was near saturation.

use super::grid::{Format, grid};
use super::result::{Cost, RunResult, StageResult};
use super::table::{Columns, failure_notes, fmt_cost, fmt_ms, header, render, row};
use crate::model::{Aborted, TokenSource};

/// The text after a run: for the terminal, CI logs and `--json -`'s stderr. With
/// `--format markdown` the table is Markdown; with CSV it is the table alone.
/// `ci`: each figure with its confidence interval (`--ci`).
pub fn run_text(result: &RunResult, aborted: Option<&Aborted>, format: Format, ci: bool) -> String {
    let cols = Columns { ci, ..Columns::of(&result.stages) };
    let mut text = match format {
        Format::Table => render(&result.stages, cols),
        _ => {
            let mut rows = vec![header(&result.stages)];
            rows.extend(result.stages.iter().map(|s| row(s, cols)));
            let table = grid(&rows, format);
            // CSV is the table alone: notes after it would not parse.
            if format == Format::Csv {
                return table;
            }
            table
        }
    };
    if ci {
        let level = result.stages.iter().find_map(|s| s.ci.as_ref()).map_or(crate::stats::LEVEL, |c| c.level);
        text.push_str(&format!(
            "\n±: half the {:.0} % confidence interval (its wider side; as a share where wider than 10 %; ∞ where too few samples bound it: the result's ci says why)\n",
            level * 100.0
        ));
    }
    if let Some(c) = &result.cost {
        text.push_str(&format!(
            "\ncost of the run: {} ({} per 1,000 requests)\n",
            fmt_cost(c),
            fmt_cost(&Cost { amount: c.per_1k_requests, ..c.clone() })
        ));
    }
    let prompts = result.scenario["prompts"].as_str().unwrap_or_default();
    let cache = cache_and_session_notes(&result.stages, prompts.contains("shared prefix") || prompts.starts_with("trace "));
    if !cache.is_empty() {
        text.push('\n');
        text.push_str(&cache);
    }
    let tasks = super::tasks::task_text(&result.stages);
    if !tasks.is_empty() {
        text.push('\n');
        text.push_str(&tasks);
    }
    let until = watched_notes(&result.stages);
    if !until.is_empty() {
        text.push('\n');
        text.push_str(&until);
    }
    let by_size = items_notes(&result.stages);
    if !by_size.is_empty() {
        text.push('\n');
        text.push_str(&by_size);
    }
    if let Some(s) = &result.sweep {
        text.push_str(&format!("\nsweep: {}\n", s.summary));
    }
    if let Some(r) = &result.repeats {
        text.push_str(&r.text(format));
    }
    let server = server_notes(result);
    if !server.is_empty() {
        text.push('\n');
        text.push_str(&server);
    }
    if let Some(a) = aborted {
        text.push_str(&format!("\n{a}; later stages were not run\n"));
    }
    let counts = count_notes(result);
    if !counts.is_empty() {
        text.push('\n');
        text.push_str(&counts);
    }
    let notes = failure_notes(&result.stages);
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes);
    }
    let verdict = result.verdict.as_ref().map(|v| v.text()).unwrap_or_default();
    if !verdict.is_empty() {
        text.push('\n');
        text.push_str(&verdict);
    }
    if let Some(w) = result.generator.as_ref().and_then(|g| g.warning.as_deref()) {
        text.push_str(&format!("\nwarning: {w}\n"));
    }
    if let Some(s) = result.generator.as_ref().and_then(|g| g.shared.as_deref()) {
        text.push_str(&format!("\nnote: {s}\n"));
    }
    text
}

/// A line per stage the watcher judged: what an `until` waited for and whether it
/// converged ("until p99_ms ±5 %: converged after 74 s, 21480 requests"), where an
/// automatic warmup settled, and a saturation's verdict.
fn watched_notes(stages: &[StageResult]) -> String {
    let mut out = String::new();
    for (s, u) in stages.iter().filter_map(|s| s.until.as_ref().map(|u| (s, u))) {
        let goals: Vec<String> = u.figures.iter().map(|(m, f)| format!("{m} ±{} %", f.within * 100.0)).collect();
        out.push_str(&format!("{}: until {}: {}\n", s.name, goals.join(", "), u.said));
    }
    for s in stages {
        if let (Some(at), Some(said)) = (s.warmup_detected_s, &s.warmup_said) {
            out.push_str(&format!("{}: warmup auto: {said}; the window opened at {at:.1} s\n", s.name));
        }
        if let Some(sat) = &s.saturated {
            out.push_str(&format!("{}: saturated: {}\n", s.name, sat.said));
        }
    }
    out
}

/// Embeddings and rerank: a stage's median latency by how many texts its requests
/// carried, where they carried different counts.
fn items_notes(stages: &[crate::report::StageResult]) -> String {
    let mut out = String::new();
    for s in stages {
        let Some(items) = s.items.as_ref().filter(|i| i.by_size.len() > 1) else { continue };
        let groups: Vec<String> =
            items.by_size.iter().filter_map(|g| Some(format!("{}: {}", g.label(), super::fmt_ms(g.latency_ms.as_ref()?.p50)))).collect();
        out.push_str(&format!("{}: p50 latency by {} per request: {}\n", s.name, items.kind, groups.join(" · ")));
    }
    out
}

/// What bound the server over each stage, as its own metrics say (a line per stage and
/// endpoint), and at a sweep's knee and SLO limit; or why no metrics were read.
fn server_notes(result: &RunResult) -> String {
    let mut out = String::new();
    if let Some(note) = result.server_metrics.as_ref().and_then(|m| m.note.as_deref()) {
        out.push_str(&format!("note: {note}\n"));
    }
    let bound = |stage: &str| result.stages.iter().find(|s| s.name == stage).and_then(|s| s.server.iter().find_map(|x| x.bound.clone()));
    for s in &result.stages {
        for x in s.server.iter().filter(|x| x.bound.is_some()) {
            out.push_str(&format!("{}: server ({}): {}\n", s.name, x.endpoint, x.bound.as_deref().unwrap_or_default()));
        }
    }
    if let Some(sweep) = &result.sweep {
        if let Some((k, why)) = sweep.knee.as_ref().and_then(|k| Some((k, bound(&k.stage)?))) {
            out.push_str(&format!("at the knee ({}): {why}\n", k.stage));
        }
        if let Some((at, why)) = sweep.slo.as_ref().and_then(|v| v.first_breaking.clone()).and_then(|st| Some((st.clone(), bound(&st)?))) {
            out.push_str(&format!("where the SLO first failed ({at}): {why}\n"));
        }
    }
    out
}

/// Where token counts came from, when not from the model's own tokens: a line for the
/// run when `tokenizer = "auto"` found no tokenize endpoint, and a line per stage whose
/// output or input counts are chunks or estimates.
fn count_notes(result: &RunResult) -> String {
    let workload = &result.scenario["workload"];
    let tokenizer = workload["tokenizer"].as_str().unwrap_or("o200k_base");
    let mut out = String::new();
    if let Some(why) = workload["tokenizer_note"].as_str() {
        out.push_str(&format!("note: {why}\n"));
    }
    for s in &result.stages {
        let t = &s.tokens;
        for (what, sources) in [("output", &t.source.output), ("input", &t.source.input)] {
            let of = sources.total();
            for (src, n) in sources.not_models() {
                let why = match src {
                    TokenSource::Chunks => format!(
                        "content chunks, one token each (no usage sent; {tokenizer} counted {} beside, not the model's tokenizer)",
                        t.client_completion
                    ),
                    _ => format!("estimates in {tokenizer}, not the model's tokenizer (no usage sent)"),
                };
                out.push_str(&format!("{}: {what} tokens of {n} of {} are {why}\n", s.name, super::table::requests(of)));
            }
        }
    }
    out
}

/// Turns shown in a stage's line after the table.
const TURNS_SHOWN: usize = 8;

/// A line per stage that ran sessions (how they ended, TTFT and the cached share by
/// turn) or whose server said what its prefix cache held. A server that always says
/// "0 cached" (OpenAI, the mock without a cache) tells nothing on prompts that share no
/// prefix: its lines are shown when some stage hit the cache or the prompts share one.
fn cache_and_session_notes(stages: &[StageResult], shared_prefixes: bool) -> String {
    let mut out = String::new();
    let hit = stages.iter().any(|s| s.tokens.cached.as_ref().is_some_and(|c| c.share > 0.0));
    for s in stages {
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.0}", x * 100.0));
        match &s.sessions {
            Some(x) => {
                let shown = &x.by_turn[..x.by_turn.len().min(TURNS_SHOWN)];
                let ttft: Vec<String> = shown.iter().map(|t| t.ttft_ms.or(t.e2e_ms).map_or("-".into(), |l| fmt_ms(l.p50))).collect();
                // One unit for the row when every figure has it.
                let ttft = match ttft.iter().all(|t| t.ends_with(" ms") || t == "-") {
                    true => format!("{} ms", ttft.iter().map(|t| t.trim_end_matches(" ms")).collect::<Vec<_>>().join(" · ")),
                    false => ttft.join(" · "),
                };
                let cached: Vec<String> = shown.iter().map(|t| pct(t.cached_share)).collect();
                let what = if shown.iter().any(|t| t.ttft_ms.is_some()) { "TTFT" } else { "e2e" };
                out.push_str(&format!(
                    "{}: {} sessions ({} finished, {} failed, {} cut at the stage's end); {what} p50 by turn {ttft}; cached % by turn {}\n",
                    s.name,
                    x.started,
                    x.finished,
                    x.failed,
                    x.cut,
                    cached.join(" · "),
                ));
            }
            None => {
                if let Some(c) = s.tokens.cached.as_ref().filter(|_| hit || shared_prefixes) {
                    out.push_str(&format!("{}: the server's prefix cache held {} % of prompt tokens\n", s.name, pct(Some(c.share))));
                }
            }
        }
    }
    out
}
