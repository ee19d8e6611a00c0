//! `llmload report`: one or more results (and, optionally, their per-request exports)
//! drawn as one self-contained HTML page. The charts across stages come from `across`,
//! a stage's own from `stage` (and its sessions by turn from `turns`), the server's own
//! metrics from `server`; `chart` draws them and `page` lays out the page and its
//! tables. A chart with nothing to draw is left out with a line saying why.

mod across;
mod chart;
mod items;
mod page;
mod repeats;
mod server;
mod stage;
mod tasks;
mod turns;

use std::fmt::Write;
use std::path::Path;

use crate::compare::{Gate, compare};
use crate::report::RunResult;
use crate::report::escape;

/// One result as the report draws it.
pub struct Run {
    /// How the report names it: the file's stem, unless two share one.
    pub name: String,
    pub result: RunResult,
    /// Successful streamed requests from `--requests`, when given.
    pub requests: Option<Vec<RequestPoint>>,
}

#[derive(Debug, Clone)]
pub struct RequestPoint {
    pub stage: String,
    pub input_tokens: u64,
    pub ttft_ms: f64,
    /// The pixels of the images it carried, when it carried any.
    pub pixels: Option<u64>,
}

/// A figure: one or more charts and the sentence saying what they show.
#[derive(Debug)]
pub struct Figure {
    pub caption: String,
    pub charts: Vec<chart::Chart>,
}

/// The page, and the lines it printed of what it left out or noticed.
pub struct Report {
    pub html: String,
    pub notes: Vec<String>,
}

/// Reads a `--requests-out` file: the successful streamed requests' input lengths and
/// TTFTs. One line naming the file and line when it is not such a file.
pub fn load_requests(path: &Path) -> Result<Vec<RequestPoint>, String> {
    let shown = path.display();
    use std::io::BufRead;
    // Line by line: an export of millions of requests is read without holding its text.
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{shown}:{}: cannot read: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{shown}:{}: not a JSON line ({e})", n + 1))?;
        if v.get("e2e_ms").is_none() || v.get("outcome").is_none() {
            return Err(format!("{shown}:{}: not a line of `run --requests-out` (no e2e_ms or outcome)", n + 1));
        }
        let ok = v.get("outcome").and_then(|o| o.as_str()) == Some("ok") && v.get("phase").and_then(|p| p.as_str()) == Some("window");
        if let (true, Some(input), Some(ttft)) =
            (ok, v.get("input_tokens").and_then(|x| x.as_u64()), v.get("ttft_ms").and_then(|x| x.as_f64()))
        {
            let stage = v.get("stage").and_then(|s| s.as_str()).unwrap_or("").to_string();
            let pixels = v.get("image_pixels").and_then(|x| x.as_u64());
            out.push(RequestPoint { stage, input_tokens: input, ttft_ms: ttft, pixels });
        }
    }
    Ok(out)
}

/// How the report names the `i`th file: its stem, or its path when another file has
/// the same stem.
pub fn run_name(files: &[std::path::PathBuf], i: usize) -> String {
    let stem = |p: &Path| p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().to_string());
    let mine = stem(&files[i]);
    if files.iter().enumerate().any(|(j, f)| j != i && stem(f) == mine) { files[i].display().to_string() } else { mine }
}

/// Some run's export holds requests that carried images.
fn carries_images(runs: &[Run]) -> bool {
    runs.iter().flat_map(|r| r.requests.iter().flatten()).any(|p| p.pixels.is_some())
}

/// Stage names in the order they first appear, over every run.
fn stage_names(runs: &[Run]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in runs.iter().flat_map(|r| &r.result.stages) {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    names
}

/// A figure's charts and caption; a chart that cannot be drawn is left out with a line.
fn figure(out: &mut String, notes: &mut Vec<String>, id: &str, f: &Figure) {
    let drawn: Vec<(String, &chart::Chart)> =
        f.charts.iter().filter_map(|c| chart::svg(c).map_err(|why| omitted(out, notes, why)).ok().map(|s| (s, c))).collect();
    if drawn.is_empty() {
        return;
    }
    let _ = writeln!(out, "<figure id=\"{id}\">");
    for (svg, c) in drawn {
        out.push_str(&svg);
        out.push_str(&chart::legend_html(c));
        out.push('\n');
    }
    let _ = writeln!(out, "<figcaption>{}</figcaption>\n</figure>", escape(&f.caption));
}

fn omitted(out: &mut String, notes: &mut Vec<String>, why: String) {
    let _ = writeln!(out, "<p class=\"note\">Not drawn: {}.</p>", escape(&why));
    notes.push(format!("not drawn: {why}"));
}

/// The report of `runs`: the first is the baseline the others are compared with.
pub fn build(runs: &[Run], gates: &[Gate], min_effect: f64) -> Result<Report, String> {
    let first = runs.first().ok_or("report: no result given")?;
    let mut notes = Vec::new();
    let mut body = String::new();
    let scenario_name = |r: &Run| r.result.scenario.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string();
    let title =
        if runs.len() == 1 { format!("llmload: {}", scenario_name(first)) } else { format!("llmload: {} runs compared", runs.len()) };
    let _ = writeln!(body, "<h1>{}</h1>", escape(&title));
    body.push_str(&page::runs_table(runs));
    for r in &runs[1..] {
        let changed = r.result.scenario_sha256.is_some() && r.result.scenario_sha256 != first.result.scenario_sha256;
        let (theirs, ours) = (scenario_name(r), scenario_name(first));
        let what = if theirs != ours {
            format!("ran “{theirs}”, {} ran “{ours}”", first.name)
        } else if changed {
            format!("ran another version of {}'s scenario file (its sha256 differs)", first.name)
        } else {
            continue;
        };
        {
            let line = format!("{} {what}: stages are matched by name", r.name);
            let _ = writeln!(body, "<p class=\"note warn\">{}.</p>", escape(&line));
            notes.push(line);
        }
    }
    for r in runs {
        if let Some(w) = r.result.generator.as_ref().and_then(|g| g.warning.as_ref()) {
            let _ = writeln!(body, "<p class=\"note warn\">{}: {}</p>", escape(&r.name), escape(w));
        }
        if let Some(s) = r.result.generator.as_ref().and_then(|g| g.shared.as_ref()) {
            let _ = writeln!(body, "<p class=\"note\">{}: {}</p>", escape(&r.name), escape(s));
        }
        if let Some(s) = &r.result.sweep {
            let _ = writeln!(
                body,
                "<p><b>Sweep{}:</b> {}</p>",
                if runs.len() > 1 { format!(" ({})", escape(&r.name)) } else { String::new() },
                escape(&s.summary)
            );
        }
    }
    let names = stage_names(runs);
    body.push_str("<h2>Stages</h2>\n");
    body.push_str(&page::stages_table(runs, &names));
    if let Some(t) = page::thresholds_table(runs) {
        body.push_str("<h2>Thresholds</h2>\n");
        body.push_str(&t);
    }
    if runs.len() > 1 {
        body.push_str("<h2>Compared with the first run</h2>\n");
        for r in &runs[1..] {
            let c = compare(std::slice::from_ref(&first.result), &r.result, gates, min_effect);
            body.push_str(&page::comparison(first, r, &c));
        }
    }
    body.push_str("<h2>Across stages</h2>\n");
    let across = across_figures(runs);
    for (id, f) in across {
        match f {
            Ok(f) => figure(&mut body, &mut notes, id, &f),
            Err(why) => omitted(&mut body, &mut notes, why),
        }
    }
    for (i, r) in runs.iter().enumerate() {
        match server::timeline(r) {
            Some(Ok(f)) => {
                let _ = writeln!(
                    body,
                    "<h2>The run and the server, second by second{}</h2>",
                    if runs.len() > 1 { format!(" ({})", escape(&r.name)) } else { String::new() }
                );
                figure(&mut body, &mut notes, &format!("server-run-{i}"), &f);
            }
            Some(Err(why)) => omitted(&mut body, &mut notes, why),
            None => {}
        }
    }
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(body, "<h2>Stage “{}”</h2>", escape(name));
        let (dists, why) = stage::distributions(runs, name);
        if let Some(f) = dists {
            figure(&mut body, &mut notes, &format!("stage-{i}-distributions"), &f);
        }
        for w in why {
            omitted(&mut body, &mut notes, w);
        }
        match tasks::waterfall(runs, name) {
            Some(Ok(f)) => figure(&mut body, &mut notes, &format!("stage-{i}-tasks"), &f),
            Some(Err(why)) => omitted(&mut body, &mut notes, why),
            None => {}
        }
        match turns::by_turn(runs, name) {
            Some(Ok(f)) => figure(&mut body, &mut notes, &format!("stage-{i}-turns"), &f),
            Some(Err(why)) => omitted(&mut body, &mut notes, why),
            None => {}
        }
        match stage::seconds(runs, name) {
            Ok(f) => figure(&mut body, &mut notes, &format!("stage-{i}-seconds"), &f),
            Err(why) => omitted(&mut body, &mut notes, why),
        }
    }
    let version = &first.result.tool.version;
    let _ = writeln!(
        body,
        "<p class=\"note\">Drawn by llmload {} from {}.</p>",
        escape(version),
        escape(&runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "))
    );
    Ok(Report { html: page::document(&title, &body), notes })
}

/// The figures across stages, each by its id, or why it is not drawn.
fn across_figures(runs: &[Run]) -> Vec<(&'static str, Result<Figure, String>)> {
    let streamed = runs.iter().flat_map(|r| &r.result.stages).any(|s| s.ttft_ms.is_some());
    let mut across = vec![("latency-load", across::percentiles(runs, false)), ("throughput-load", across::throughput(runs))];
    if streamed {
        across.push(("ttft-load", across::percentiles(runs, true)));
    }
    across.push(("tradeoff", across::tradeoff(runs)));
    if streamed {
        across.push(("ttft-input", across::ttft_by_input(runs)));
        across.extend(carries_images(runs).then(|| ("ttft-pixels", across::ttft_by_pixels(runs))));
    }
    if let Some(f) = server::across(runs) {
        across.push(("server-load", f));
    }
    if let Some(f) = items::by_size(runs) {
        across.push(("items-size", f));
    }
    if let Some(f) = tasks::against_load(runs) {
        across.push(("task-load", f));
    }
    if let Some(f) = repeats::spread(runs) {
        across.push(("repeats", Ok(f)));
    }
    across
}

#[cfg(test)]
mod tests;
