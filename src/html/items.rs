//! Embeddings and rerank in the report: median latency against how many texts a
//! request carried (an embeddings batch's inputs, a rerank's documents), a line per
//! stage (and run) — what a bigger batch costs the server, load by load.

use super::chart::{Chart, Draw, Series};
use super::{Figure, Run};

/// The chart, when some stage carried texts; None else (the run generated text).
pub fn by_size(runs: &[Run]) -> Option<Result<Figure, String>> {
    let kind = runs.iter().flat_map(|r| &r.result.stages).find_map(|s| s.items.as_ref())?.kind.clone();
    let mut c = Chart {
        title: format!("Latency by {kind} per request"),
        x_label: format!("{kind} per request"),
        y_label: "median latency (ms)".into(),
        y_zero: true,
        x_zero: true,
        ..Chart::default()
    };
    let mut k = 0;
    for run in runs {
        for s in &run.result.stages {
            let Some(items) = &s.items else { continue };
            // A group's middle: its sizes seen, halfway.
            let p: Vec<(f64, f64)> =
                items.by_size.iter().filter_map(|g| Some((f64::from(g.min + g.max) / 2.0, g.latency_ms.as_ref()?.p50))).collect();
            let label = if runs.len() == 1 { format!("stage {}", s.name) } else { format!("{}, {}", run.name, s.name) };
            c.series.push(Series { marker: k, ..Series::new(label, k, Draw::LineMarked, p) });
            k += 1;
        }
    }
    if c.series.iter().all(|s| s.points.len() < 2) && c.series.len() < 2 {
        return Some(Err(format!("Latency by {kind} per request: every request carried the same count")));
    }
    let caption = format!(
        "The median end-to-end latency of successful requests by the {kind} each carried (counts past 15 in groups, placed at \
         the middle of the counts seen), a line per stage. Its slope is what one more costs; stages at higher load sit higher."
    );
    Some(Ok(Figure { caption, charts: vec![c] }))
}
