//! Results: the versioned JSON contract (`result`), built from the aggregator's figures
//! and the scenario as it ran (`build`), a sweep's verdict (`sweep`), the run's verdict
//! by thresholds and stages without success (`judge`) and as JUnit XML (`junit`), the comparison
//! table (`table`) and the text a run prints when it ends (`text`).

mod build;
pub mod ci;
mod definitions;
mod dists;
mod grid;
pub mod images;
mod items;
mod judge;
mod junit;
mod markup;
pub mod repeats;
mod result;
mod sessions;
mod sweep;
mod table;
pub mod tasks;
mod text;

use std::path::Path;

pub use build::{LaunchMeta, RunMeta};
pub use definitions::definitions;
pub use dists::{Dist, Histograms};
pub use grid::{Format, fig, grid};
pub use items::{ItemsResult, SizeResult, ToolCallsResult, items, tool_calls, unit_of};
pub use judge::{measure, sweep_points};
pub use junit::junit;
pub use markup::escape;
pub use result::*;
pub use sessions::{SessionHistograms, Sessions, Turn, TurnHistograms};
pub use sweep::{SweepPlan, ended_early};
pub use table::{Columns, failure_notes, fmt_cost, fmt_ms, fmt_rate, fmt_secs, header, render_table, requests, row};
pub use text::run_text;

impl RunResult {
    /// Writes the JSON to `path` atomically (temp file, then rename): a crash never
    /// leaves half a result.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }
}

/// Writes `bytes` to `path` through a temp file beside it and a rename: a reader never
/// sees half a file, and a failure leaves none.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or("result.json".into(), |n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
