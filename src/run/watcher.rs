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
        let found = || found.lock().unwrap_or_else(|e| e.into_inner());
        if watched == Watched::Warmup {
            if let Some(said) = super::judges::settled(stats) {
                found().warmups.insert(index, said);
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
            found().saturated.insert(index, verdict);
            token.cancel();
            continue;
        }
        if let Some(spec) = stage.until.clone()
            && let Some(when) = until::judged(stats.clone(), spec).await
        {
            found().converged.insert(index, when);
            token.cancel();
        }
    }
}

/// Longest a stage waits for the server to be done with a saturated stage's requests.
const RECOVER_MAX: Duration = Duration::from_secs(120);

/// Before each stage, `then` (if any); first, for a stage after one stopped at
/// saturation, a wait for the server to be done: it may go on working through the
/// requests dropped (a server does not always see a closed connection at once, and
/// llama-server serves a queued one until it does). Done when every endpoint that
/// reports its queue reads none running or waiting, at most `RECOVER_MAX`; said when
/// no endpoint reports one.
pub(super) fn recovery(
    hook: Arc<WatchHook>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    notes: super::Notes,
    then: Option<crate::engine::BeforeStage>,
) -> crate::engine::BeforeStage {
    let then = then.map(Arc::new);
    Box::new(move |index| {
        let (hook, snapshots, notes, then) = (hook.clone(), snapshots.clone(), notes.clone(), then.clone());
        Box::pin(async move {
            if index > 0 && hook.was_saturated(index - 1) {
                drained(&snapshots, &notes, index).await;
            }
            if let Some(f) = then {
                f(index).await;
            }
        })
    })
}

/// Waits until the server's queue reads empty (see `recovery`).
async fn drained(snapshots: &watch::Receiver<Arc<Snapshot>>, notes: &super::Notes, index: usize) {
    let t0 = tokio::time::Instant::now();
    loop {
        let queued: Vec<f64> = snapshots.borrow().server.iter().filter_map(|s| Some(s.running? + s.waiting.unwrap_or(0.0))).collect();
        let left = queued.iter().sum::<f64>();
        if queued.is_empty() {
            let why = "the stage before it was stopped at saturation and the server's queue is not read (no metrics with its requests running): the server may still be working through the dropped requests";
            return notes(&format!("note: stage {}: {why}", index + 1));
        }
        if left <= 0.0 {
            return;
        }
        if t0.elapsed() >= RECOVER_MAX {
            let why = format!("the server still had {left:.0} requests after {} s of the saturated stage's", RECOVER_MAX.as_secs());
            return notes(&format!("note: stage {}: {why}; it starts anyway", index + 1));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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
