//! What a run prints when it ends: the comparison table, the run's cost, the sweep's
//! answer, why it was aborted, and a line per failure kind with its first message.

use super::result::{Cost, RunResult};
use super::table::{failure_notes, fmt_cost, render_table};
use crate::model::Aborted;

/// The text after a run: for the terminal, CI logs and `--json -`'s stderr.
pub fn run_text(result: &RunResult, aborted: Option<&Aborted>) -> String {
    let mut text = render_table(&result.stages);
    if let Some(c) = &result.cost {
        text.push_str(&format!(
            "\ncost of the run: {} ({} per 1,000 requests)\n",
            fmt_cost(c),
            fmt_cost(&Cost { amount: c.per_1k_requests, ..c.clone() })
        ));
    }
    if let Some(s) = &result.sweep {
        text.push_str(&format!("\nsweep: {}\n", s.summary));
    }
    if let Some(a) = aborted {
        text.push_str(&format!("\n{a}; later stages were not run\n"));
    }
    let notes = failure_notes(&result.stages);
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes);
    }
    text
}
