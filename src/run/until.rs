//! Stages that run `until` their figures are known: a watcher reads the live figures
//! each second and, once every goal's interval is narrow enough, ends the stage's
//! window through the engine's hook; after the run, each such stage's result says
//! whether it converged, when, and how far each interval got.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::UntilHook;
use crate::metrics::Snapshot;
use crate::model::UntilSpec;
use crate::report::{RunResult, StageResult, ci};
use crate::scenario::Scenario;

/// When each stage that converged did: seconds into its window, requests started.
pub(super) type Converged = Arc<Mutex<BTreeMap<usize, (f64, u64)>>>;

/// How often the live figures are judged.
const EVERY: Duration = Duration::from_secs(1);

/// The `until` of stage `index`: its own, or an automatic sweep's point's.
fn spec(scenario: &Scenario, index: usize) -> Option<&UntilSpec> {
    match scenario.stages.get(index) {
        Some(s) => s.until.as_ref(),
        None => scenario.sweep.as_ref().and_then(|s| s.template.until.as_ref()),
    }
}

/// Judges the running stage each second while the run lasts (its task is aborted at
/// the end); a stage whose goals are all met is ended and its moment recorded.
pub(super) async fn watch(scenario: Arc<Scenario>, hook: Arc<UntilHook>, snapshots: watch::Receiver<Arc<Snapshot>>, converged: Converged) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let Some((index, known)) = hook.current().filter(|(_, k)| !k.is_cancelled()) else { continue };
        let Some(spec) = spec(&scenario, index) else { continue };
        let snapshot = snapshots.borrow().clone();
        let Some(stats) = snapshot.current.as_ref().filter(|s| s.info.index == index && s.window_offset.is_some()) else { continue };
        // Encoding the figures takes a few ms: off the runtime's workers.
        let stats = stats.clone();
        let spec = spec.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let r = StageResult::from_stats(&stats);
            ci::converged(&spec, &ci::reached(&r, &spec, true)).then_some((r.wall_time_s, stats.started))
        })
        .await;
        if let Ok(Some(when)) = judged {
            converged.lock().unwrap_or_else(|e| e.into_inner()).insert(index, when);
            known.cancel();
        }
    }
}

/// Each `until` stage's verdict, from its final figures and when it converged.
pub(super) fn annotate(result: &mut RunResult, scenario: &Scenario, converged: &Converged) {
    let converged = converged.lock().unwrap_or_else(|e| e.into_inner());
    for s in &mut result.stages {
        if let Some(spec) = spec(scenario, s.index) {
            s.until = Some(ci::until_result(s, spec, converged.get(&s.index).copied()));
        }
    }
}
