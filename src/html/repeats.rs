//! A `--repeat` run's spread: for its main figures, every repetition's value per stage
//! as a point, and their mean with the 95 % interval across repetitions as a bar.

use super::chart::{Chart, Draw, PANEL_HEIGHT, Series};
use super::{Figure, Run};

/// The figures drawn, with their axis label.
const FIGURES: [(&str, &str); 3] = [("p50_ms", "p50 (ms)"), ("p99_ms", "p99 (ms)"), ("ok_rps", "successful requests/s")];

/// The spread of the first run that repeated; None when none did.
pub fn spread(runs: &[Run]) -> Option<Figure> {
    let (run, r) = runs.iter().find_map(|run| run.result.repeats.as_ref().filter(|r| r.runs.len() > 1).map(|r| (run, r)))?;
    let mut charts = Vec::new();
    for (metric, label) in FIGURES {
        let mut c = Chart {
            title: format!("{label} in each repetition"),
            x_label: "stage (in run order: 1, 2, …)".into(),
            y_label: label.into(),
            y_zero: true,
            x_whole: true,
            height: PANEL_HEIGHT,
            ..Chart::default()
        };
        for rep in &r.runs {
            let points: Vec<(f64, f64)> = r
                .stages
                .iter()
                .enumerate()
                .filter_map(|(i, s)| rep.stages.get(&s.name).and_then(|f| f.get(metric)).map(|y| (i as f64 + 1.0, *y)))
                .collect();
            if !points.is_empty() {
                let k = rep.repetition as usize;
                c.series.push(Series { marker: k, ..Series::new(format!("repetition {k}"), k, Draw::Points, points) });
            }
        }
        let mean: Vec<(f64, f64)> =
            r.stages.iter().enumerate().filter_map(|(i, s)| s.figures.get(metric).map(|x| (i as f64 + 1.0, x.mean))).collect();
        let bars = r
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.figures.get(metric).and_then(|x| Some((i as f64 + 1.0, x.lo?, x.hi?))))
            .collect();
        if !mean.is_empty() {
            c.series.push(Series { bars, ..Series::new("mean", 0, Draw::LineMarked, mean) });
            charts.push(c);
        }
    }
    let names: Vec<String> = r.stages.iter().enumerate().map(|(i, s)| format!("{} {}", i + 1, s.name)).collect();
    let caption = format!(
        "{}: the scenario run {} times (--repeat). Each point is one repetition's figure for a stage ({}); the line is their mean, \
         its bar the 95 % interval of the mean across repetitions (Student's t) — the run-to-run noise no interval within one run \
         can see. {}.",
        run.name,
        r.runs.len(),
        names.join(", "),
        r.said
    );
    Some(Figure { caption, charts })
}
