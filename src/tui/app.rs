//! Dashboard state: a pure structure updated from Snapshots and keys. No I/O, no
//! clock of its own (time comes from the snapshots), so tests drive it exactly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::metrics::{Latency, Snapshot, StageStats};
use crate::model::Slo;
use crate::report::{StageResult, SweepResult, ended_early};
use crate::scenario::{Scenario, Sweep};

/// Throughput points kept for the chart: one per snapshot, ~100 ms apart.
const HISTORY: usize = 600;
/// Throughput is a rate over this trailing window of the running stage...
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// ...unless the window holds fewer completions than this: then the stage's average,
/// so slow LLM rates (a request every few seconds) read steadily.
const RATE_MIN_EVENTS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Log,
    Linear,
}

/// What a key asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// Stop starting requests; give those in flight a grace period.
    Stop,
    /// Cancel requests in flight now.
    StopNow,
    /// Leave the dashboard.
    Exit,
}

/// What the header shows of each planned stage.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub name: String,
    pub concurrency: u32,
}

pub struct App {
    pub scenario: String,
    /// Base URL without secrets, and model.
    pub target: String,
    pub plans: Vec<StagePlan>,
    pub snapshot: Arc<Snapshot>,
    /// Table rows of finished stages, computed once each.
    pub rows: Vec<StageResult>,
    /// Requests/s over time, across stages.
    pub throughput: VecDeque<f64>,
    /// (stage wall time, finished requests of the stage) over the last RATE_WINDOW.
    window: VecDeque<(Duration, u64)>,
    window_stage: Option<usize>,
    pub rate_now: f64,
    /// Histogram on show: None follows the running (or last) stage.
    pub view: Option<usize>,
    pub scale: Scale,
    pub help: bool,
    /// A stop was asked (key or signal): leave as soon as the run ends.
    pub stopping: bool,
    pub color: bool,
    /// A `[sweep]` and the SLO it is judged by: its answer is shown once the run ends.
    pub sweep: Option<(Sweep, Option<Slo>)>,
}

impl App {
    pub fn new(scenario: &Scenario, target: &str, color: bool) -> App {
        App {
            scenario: scenario.name.clone(),
            target: format!("{target} · model {}", scenario.target.model),
            plans: scenario.stages.iter().map(|s| StagePlan { name: s.name.clone(), concurrency: s.load.concurrency() }).collect(),
            snapshot: Arc::new(Snapshot { total_stages: scenario.stages.len(), ..Snapshot::default() }),
            rows: Vec::new(),
            throughput: VecDeque::with_capacity(HISTORY),
            window: VecDeque::new(),
            window_stage: None,
            rate_now: 0.0,
            view: None,
            scale: Scale::Log,
            help: false,
            stopping: false,
            color,
            sweep: scenario.sweep.clone().map(|s| (s, scenario.slo)),
        }
    }

    /// "sweep: " and its answer in words, once every stage has reported; while it runs,
    /// "sweep so far: " and what its finished points show.
    pub fn sweep_summary(&self) -> Option<String> {
        let (sweep, slo) = self.sweep.as_ref()?;
        if !self.done() {
            let started = self.rows.iter().any(|r| r.index >= sweep.first_stage);
            let so_far = || SweepResult::build(sweep, &self.rows, slo.as_ref(), None).so_far();
            return started.then(|| format!("sweep so far: {}", so_far()));
        }
        let early = ended_early(self.snapshot.aborted.is_some(), self.stopping);
        Some(format!("sweep: {}", SweepResult::build(sweep, &self.rows, slo.as_ref(), early).summary))
    }

    pub fn done(&self) -> bool {
        self.snapshot.done
    }

    /// Leave without waiting for a key: the run ended after a stop.
    pub fn should_exit(&self) -> bool {
        self.done() && self.stopping
    }

    pub fn on_snapshot(&mut self, snap: Arc<Snapshot>) {
        for s in snap.finished.iter().skip(self.rows.len()) {
            self.rows.push(StageResult::summary(s));
        }
        self.rate_now = match (&snap.current, snap.finished.last()) {
            (Some(c), _) => self.stage_rate(c),
            // Between stages and after the run: the last stage's figure.
            (None, Some(last)) => last.requests_per_s(),
            (None, None) => 0.0,
        };
        if self.throughput.len() == HISTORY {
            self.throughput.pop_front();
        }
        self.throughput.push_back(self.rate_now);
        self.snapshot = snap;
    }

    /// Requests/s of the running stage over the trailing window.
    fn stage_rate(&mut self, c: &StageStats) -> f64 {
        if self.window_stage != Some(c.info.index) {
            self.window.clear();
            self.window_stage = Some(c.info.index);
        }
        let done = c.ok + c.failed;
        self.window.push_back((c.wall, done));
        while self.window.len() > 2 && c.wall.saturating_sub(self.window[1].0) >= RATE_WINDOW {
            self.window.pop_front();
        }
        let (t0, n0) = *self.window.front().expect("just pushed");
        let dt = c.wall.saturating_sub(t0).as_secs_f64();
        if done - n0 >= RATE_MIN_EVENTS && dt > 0.0 { (done - n0) as f64 / dt } else { c.requests_per_s() }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
            if self.help && key.code == KeyCode::Esc {
                self.help = false;
                return Action::None;
            }
            return self.quit();
        }
        match key.code {
            KeyCode::Char('?') => self.help = !self.help,
            KeyCode::Char('l') => self.scale = if self.scale == Scale::Log { Scale::Linear } else { Scale::Log },
            KeyCode::Right | KeyCode::Tab => self.step_view(1),
            KeyCode::Left | KeyCode::BackTab => self.step_view(-1),
            _ if self.help => self.help = false,
            // The final dashboard stays until a key that means nothing else.
            _ if self.done() => return Action::Exit,
            _ => {}
        }
        Action::None
    }

    /// First quit: stop the run; second: stop now; once the run is over: leave.
    fn quit(&mut self) -> Action {
        if self.done() {
            Action::Exit
        } else if self.stopping {
            Action::StopNow
        } else {
            self.stopping = true;
            Action::Stop
        }
    }

    /// A stop came from elsewhere (a signal).
    pub fn stopped_externally(&mut self) {
        self.stopping = true;
    }

    /// Cycles through finished stages and the live one.
    fn step_view(&mut self, by: isize) {
        let finished = self.snapshot.finished.len();
        let live = usize::from(self.snapshot.current.is_some());
        let slots = finished + live;
        if slots == 0 {
            return;
        }
        // Slot `finished` is the live stage (or, when done, the same as the last one).
        let cur = self.view.unwrap_or(if live == 1 { finished } else { slots - 1 }) as isize;
        let next = (cur + by).rem_euclid(slots as isize) as usize;
        self.view = if next >= finished || (live == 0 && next == slots - 1) { None } else { Some(next) };
    }

    /// The stage whose histogram is on show, and whether it is still running.
    pub fn shown_stage(&self) -> Option<(&StageStats, bool)> {
        let snap = &self.snapshot;
        match self.view {
            Some(i) if i < snap.finished.len() => Some((&snap.finished[i], false)),
            _ => snap.current.as_ref().map(|c| (c, true)).or_else(|| snap.finished.last().map(|s| (&**s, false))),
        }
    }

    /// The running stage, if any.
    pub fn current(&self) -> Option<&StageStats> {
        self.snapshot.current.as_ref()
    }

    /// Index of the best throughput among finished stages.
    /// Successes per second, so a stage that fails fast never looks best.
    pub fn best_row(&self) -> Option<usize> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.requests.ok > 0)
            .max_by(|a, b| a.1.throughput.ok_per_s.total_cmp(&b.1.throughput.ok_per_s))
            .map(|(i, _)| i)
    }
}

/// One histogram bar: [lo, hi) in µs and how many values fell in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lo_us: u64,
    pub hi_us: u64,
    pub count: u64,
}

/// `n` buckets spanning min..=max, spaced evenly or geometrically (log), so that both
/// the body and the tail of a latency distribution stay visible.
pub fn buckets(lat: &Latency, n: usize, scale: Scale) -> Vec<Bucket> {
    let hist = lat.histogram();
    let Some((min, max)) = lat.range_us() else { return Vec::new() };
    let (min, max) = (min.max(1), max.max(1));
    // Never finer than the histogram can tell apart (3 significant digits): a narrow
    // spread gets fewer, honest bars rather than empty rows and one full one.
    let resolution = hist.equivalent_range(max).max(1);
    let n = n.min(((max - min) / resolution + 1) as usize);
    if n <= 1 {
        return vec![Bucket { lo_us: min, hi_us: max + 1, count: hist.len() }];
    }
    let (lo, hi) = (min as f64, (max + 1) as f64);
    let edge = |k: usize| -> u64 {
        let t = k as f64 / n as f64;
        match scale {
            Scale::Linear => (lo + (hi - lo) * t).round() as u64,
            Scale::Log => (lo * (hi / lo).powf(t)).round() as u64,
        }
    };
    let mut out: Vec<Bucket> = (0..n).map(|k| Bucket { lo_us: edge(k), hi_us: edge(k + 1), count: 0 }).collect();
    out.last_mut().expect("n > 1").hi_us = max + 1;
    // Log edges can round together at the low end; merge empty-width buckets.
    out.dedup_by(|b, a| {
        if a.hi_us <= a.lo_us {
            a.hi_us = b.hi_us;
            true
        } else {
            false
        }
    });
    for v in hist.iter_recorded() {
        // The middle of the HDR bucket, kept inside the exact range seen.
        let value = hist.median_equivalent(v.value_iterated_to()).clamp(min, max);
        let i = out.partition_point(|b| b.hi_us <= value).min(out.len() - 1);
        out[i].count += v.count_at_value();
    }
    out
}
