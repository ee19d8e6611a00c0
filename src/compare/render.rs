//! A comparison as text: a row per stage and metric (aligned, Markdown or CSV), then the
//! stages found on one side only and every gate with its figures.

use super::Comparison;
use crate::report::{Format, fig, grid};

fn signed(x: f64) -> String {
    if x > 0.0 { format!("+{}", fig(x)) } else { fig(x) }
}

/// The whole comparison as text.
pub fn render(c: &Comparison, format: Format) -> String {
    let header = || ["stage", "metric", "base", "new", "change", "", "noise"].map(String::from).to_vec();
    let mut rows = vec![header()];
    for s in &c.stages {
        for r in &s.rows {
            let change = match r.relative {
                Some(rel) => format!("{} ({:+.1}%)", signed(r.new - r.base), rel * 100.0),
                None => signed(r.new - r.base),
            };
            let better = match r.better {
                Some(true) => "better",
                Some(false) => "worse",
                None => "same",
            };
            let noise = match (&s.not_comparable, r.beyond_noise) {
                (Some(_), _) => "not comparable",
                (None, true) => "beyond noise",
                (None, false) => "within noise",
            };
            rows.push(vec![s.name.clone(), r.metric.name.into(), fig(r.base), fig(r.new), change, better.into(), noise.into()]);
        }
    }
    let mut out = grid(&rows, format);
    if format == Format::Csv {
        return out;
    }
    for s in &c.stages {
        if let Some(why) = &s.not_comparable {
            out.push_str(&format!("\n{}: not comparable: {why}; its figures are shown, not judged\n", s.name));
        }
    }
    for (side, names) in [("base", &c.only_base), ("new", &c.only_new)] {
        if !names.is_empty() {
            out.push_str(&format!("\nonly in {side}: {} (not compared)\n", names.join(", ")));
        }
    }
    if !c.gates.is_empty() {
        out.push('\n');
        for g in &c.gates {
            let mark = if g.tripped { "FAIL" } else { "pass" };
            let figures = match (&g.why, g.base, g.new) {
                (Some(why), ..) => format!("not comparable: {why}"),
                (None, Some(b), Some(n)) => format!("base {}, new {}", fig(b), fig(n)),
                _ => "not measured on both sides".to_string(),
            };
            out.push_str(&format!("{mark}  {}: {} ({figures})\n", g.stage, g.gate));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs() {
        assert_eq!(
            (fig(123.456), fig(0.012345), fig(98765.4), fig(110.0), signed(2.5)),
            ("123.5".into(), "0.01235".into(), "98765".into(), "110".into(), "+2.5".into())
        );
    }
}
