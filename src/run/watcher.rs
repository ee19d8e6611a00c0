//! The run's watcher: each second it judges the part of the running stage the engine
//! lets it end early — an automatic warmup (have its series settled?), a window with
//! `until` (are its figures known?) or `stop_on_saturation` (is its backlog running
//! away?) — and ends that part through the engine's hook. What it found is kept for the
//! stages' results (`annotate`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::until;
use crate::engine::{WatchHook, Watched};
use crate::metrics::Snapshot;
use crate::report::{RunResult, Saturated};
use crate::scenario::{Scenario, Stage};

/// What the watcher found, by stage index.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// `until` met: seconds into the window, requests started.
    pub converged: BTreeMap<usize, (f64, u64)>,
    /// `warmup = "auto"`: in words, how the warmup ended.
    pub warmups: BTreeMap<usize, String>,
    pub saturated: BTreeMap<usize, Saturated>,
}

pub(super) type Findings = Arc<Mutex<Found>>;

/// How often the live figures are judged.
const EVERY: Duration = Duration::from_secs(1);

/// Stage `index` as run: its own, or an automatic sweep's point's template.
pub(super) fn stage(scenario: &Scenario, index: usize) -> Option<&Stage> {
    scenario.stages.get(index).or(scenario.sweep.as_ref().map(|s| &s.template))
}

/// Judges the running stage each second while the run lasts (its task is aborted at
/// the end); a part found done is ended and what was found recorded.
pub(super) async fn watch(scenario: Arc<Scenario>, hook: Arc<WatchHook>, snapshots: watch::Receiver<Arc<Snapshot>>, found: Findings) {
    let mut tick = tokio::time::interval(EVERY);
    // The backlog sampled each second of the window watched for saturation.
    let mut backlog = super::judges::Backlog::default();
    loop {
        tick.tick().await;
        let Some((index, watched, token)) = hook.current().filter(|(_, _, k)| !k.is_cancelled()) else { continue };
        let Some(stage) = stage(&scenario, index) else { continue };
        let snapshot = snapshots.borrow().clone();
        let Some(stats) = snapshot.current.as_ref().filter(|s| s.info.index == index) else { continue };
        let found = |f: &dyn Fn(&mut Found)| f(&mut found.lock().unwrap_or_else(|e| e.into_inner()));
        if watched == Watched::Warmup {
            if let Some(said) = super::judges::settled(stats) {
                found(&|f| _ = f.warmups.insert(index, said.clone()));
                token.cancel();
            }
            continue;
        }
        if stats.window_offset.is_none() {
            continue;
        }
        if stage.stop_on_saturation
            && let Some(verdict) = backlog.judge(index, stats)
        {
            hook.saturated(index);
            found(&|f| _ = f.saturated.insert(index, verdict.clone()));
            token.cancel();
            continue;
        }
        if let Some(spec) = stage.until.clone()
            && let Some(when) = until::judged(stats.clone(), spec).await
        {
            found(&|f| _ = f.converged.insert(index, when));
            token.cancel();
        }
    }
}

/// Each watched stage's verdicts, from its final figures and what the watcher found;
/// true when a stage was found saturated (the sweep is then judged again).
pub(super) fn annotate(result: &mut RunResult, scenario: &Scenario, found: &Findings) -> bool {
    let found = found.lock().unwrap_or_else(|e| e.into_inner());
    for s in &mut result.stages {
        let Some(stage) = stage(scenario, s.index) else { continue };
        if let Some(spec) = &stage.until {
            s.until = Some(crate::report::ci::until_result(s, spec, found.converged.get(&s.index).copied()));
        }
        if stage.warmup_auto {
            s.warmup_detected_s = s.window_offset_s.map(|x| (x * 100.0).round() / 100.0);
            let cap = crate::engine::AUTO_WARMUP_MAX.as_secs();
            s.warmup_said = Some(found.warmups.get(&s.index).cloned().unwrap_or_else(|| match s.interrupted {
                true => "stopped before the warmup settled".into(),
                false => format!("did not settle in {cap} s: measured from there"),
            }));
        }
        s.saturated = found.saturated.get(&s.index).cloned();
    }
    !found.saturated.is_empty()
}
