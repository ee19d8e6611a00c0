//! Stages that run `until` their figures are known: the watcher's judge of whether
//! every goal's interval is narrow enough yet, on the live figures.

use crate::metrics::StageStats;
use crate::model::UntilSpec;
use crate::report::{StageResult, ci};

/// Whether the live figures meet every goal: then, seconds into the window and
/// requests started.
pub(super) async fn judged(stats: StageStats, spec: UntilSpec) -> Option<(f64, u64)> {
    // Encoding the figures takes a few ms: off the runtime's workers.
    tokio::task::spawn_blocking(move || {
        let r = StageResult::from_stats(&stats);
        ci::converged(&spec, &ci::reached(&r, &spec, true)).then_some((r.wall_time_s, stats.started))
    })
    .await
    .ok()
    .flatten()
}
