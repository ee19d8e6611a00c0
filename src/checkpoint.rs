//! Nothing measured is lost: while a run goes on, its result file is rewritten
//! (atomically) about every 2 s and at every stage end, the stage in progress included
//! and the whole marked `complete: false`, so SIGKILL or the OOM killer leave the
//! figures up to the last checkpoint. The final write replaces it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};

use crate::metrics::{Snapshot, StageStats};
use crate::report::{RunMeta, RunResult};
use crate::scenario::Scenario;

/// How often the result file is rewritten while the run goes on.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// What a checkpoint needs of the run besides its snapshots.
pub struct Checkpoints {
    pub path: PathBuf,
    pub scenario: Arc<Scenario>,
    pub started_at: SystemTime,
    pub mock_url: Option<String>,
    pub launch: crate::report::LaunchMeta,
}

impl Checkpoints {
    /// Writes checkpoints from `snapshots` until `stop` fires (or the snapshots end); a
    /// write under way is finished first, so the caller's final write comes after.
    pub async fn run(self, mut snapshots: watch::Receiver<Arc<Snapshot>>, mut stop: oneshot::Receiver<()>) {
        // The first after 2 s, not at once: the run's first requests go out meanwhile,
        // and a checkpoint (~3–10 ms of CPU in a debug build) would delay them.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CHECKPOINT_EVERY, CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stages_ended = 0;
        let me = Arc::new(self);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // Between ticks, only a stage's end is worth a write.
                    if snapshots.borrow_and_update().finished.len() == stages_ended {
                        continue;
                    }
                }
            }
            let snap = snapshots.borrow_and_update().clone();
            stages_ended = snap.finished.len();
            if snap.finished.is_empty() && snap.current.is_none() {
                continue;
            }
            let me = me.clone();
            // Built and serialized off the runtime: a long run's result takes a while.
            let _ = tokio::task::spawn_blocking(move || me.write(&snap)).await;
        }
    }

    fn write(&self, snap: &Snapshot) {
        let mut stages: Vec<StageStats> = snap.finished.iter().map(|s| (**s).clone()).collect();
        stages.extend(snap.current.clone());
        let meta = RunMeta {
            started_at: self.started_at,
            finished_at: SystemTime::now(),
            interrupted: false,
            aborted: None,
            mock_url: self.mock_url.clone(),
            swept: Vec::new(),
            generator: snap.generator.clone(),
            launch: self.launch.clone(),
            // The final result carries them; a checkpoint is written without.
            server_metrics: None,
            prefix_resets: Default::default(),
        };
        let mut result = RunResult::build(&self.scenario, &stages, meta);
        result.complete = false;
        // A checkpoint that cannot be written is no reason to stop measuring: the final
        // write reports its own error.
        let _ = result.write_atomic(&self.path);
    }
}
