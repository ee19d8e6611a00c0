//! Dashboard state: a pure structure updated from Snapshots and keys. No I/O, no
//! clock of its own (time comes from the snapshots), so tests drive it exactly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hdrhistogram::Histogram;
use ratatui::style::{Color, Style};

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

/// Which distribution the histogram panel draws (`h` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistView {
    Latency,
    Ttft,
    Itl,
    Input,
    Output,
    /// A task stage's task latency.
    Task,
}

impl HistView {
    const ALL: [HistView; 6] = [HistView::Latency, HistView::Ttft, HistView::Itl, HistView::Input, HistView::Output, HistView::Task];

    /// The view `by` steps on, wrapping around; the task view only where `tasks` run.
    pub fn step(self, by: isize, tasks: bool) -> HistView {
        let views = &Self::ALL[..Self::ALL.len() - usize::from(!tasks)];
        let i = views.iter().position(|v| *v == self).unwrap_or(0) as isize;
        views[(i + by).rem_euclid(views.len() as isize) as usize]
    }

    /// What the panel title calls it.
    pub fn title(self) -> &'static str {
        match self {
            HistView::Latency => "e2e latency",
            HistView::Ttft => "TTFT",
            HistView::Itl => "ITL",
            HistView::Input => "input tokens",
            HistView::Output => "output tokens",
            HistView::Task => "task latency",
        }
    }
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
    /// Figures of the running stage over the last RATE_WINDOW.
    window: VecDeque<Mark>,
    window_stage: Option<usize>,
    pub rate_now: f64,
    /// Output and input tokens/s on the same rule as `rate_now`; None while the stage
    /// has counted no such tokens.
    pub out_tokens_now: Option<f64>,
    pub in_tokens_now: Option<f64>,
    /// Histogram on show: None follows the running (or last) stage.
    pub view: Option<usize>,
    /// Which distribution it draws.
    pub hist: HistView,
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
            out_tokens_now: None,
            in_tokens_now: None,
            view: None,
            hist: HistView::Latency,
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
        let tokens = |n: u64, r: f64| (n > 0).then_some(r);
        (self.rate_now, self.out_tokens_now, self.in_tokens_now) = match (&snap.current, snap.finished.last()) {
            (Some(c), _) => self.stage_rate(c),
            // Between stages and after the run: the last stage's figures.
            (None, Some(l)) => {
                (l.requests_per_s(), tokens(l.output_tokens, l.output_tokens_per_s()), tokens(l.input_tokens, l.input_tokens_per_s()))
            }
            (None, None) => (0.0, None, None),
        };
        if self.throughput.len() == HISTORY {
            self.throughput.pop_front();
        }
        self.throughput.push_back(self.rate_now);
        self.snapshot = snap;
    }

    /// Requests/s, output and input tokens/s of the running stage over the trailing
    /// window.
    fn stage_rate(&mut self, c: &StageStats) -> (f64, Option<f64>, Option<f64>) {
        if self.window_stage != Some(c.info.index) {
            self.window.clear();
            self.window_stage = Some(c.info.index);
        }
        let now = Mark { wall: c.wall, done: c.ok + c.failed, out: c.output_tokens, input: c.input_tokens };
        self.window.push_back(now);
        while self.window.len() > 2 && c.wall.saturating_sub(self.window[1].wall) >= RATE_WINDOW {
            self.window.pop_front();
        }
        let first = *self.window.front().expect("just pushed");
        let dt = c.wall.saturating_sub(first.wall).as_secs_f64();
        let windowed = now.done - first.done >= RATE_MIN_EVENTS && dt > 0.0;
        let per_s = |n: u64, n0: u64, whole: f64| if windowed { n.saturating_sub(n0) as f64 / dt } else { whole };
        (
            per_s(now.done, first.done, c.requests_per_s()),
            (now.out > 0).then(|| per_s(now.out, first.out, c.output_tokens_per_s())),
            (now.input > 0).then(|| per_s(now.input, first.input, c.input_tokens_per_s())),
        )
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
            KeyCode::Char('h') => self.hist = self.hist.step(1, self.runs_tasks()),
            KeyCode::Char('H') => self.hist = self.hist.step(-1, self.runs_tasks()),
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

    /// Colour `c`, unless colours are off (NO_COLOR).
    pub fn fg(&self, c: Color) -> Style {
        if self.color { Style::default().fg(c) } else { Style::default() }
    }

    /// The running stage, if any.
    /// Whether a stage of the run runs tasks (the histogram then has a task view).
    pub fn runs_tasks(&self) -> bool {
        self.snapshot.finished.iter().map(|s| &**s).chain(self.snapshot.current.as_ref()).any(|s| s.info.task.is_some())
    }

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

/// What the throughput window keeps of each snapshot of the running stage.
#[derive(Debug, Clone, Copy)]
struct Mark {
    wall: Duration,
    /// Finished requests (ok + failed), output and input tokens.
    done: u64,
    out: u64,
    input: u64,
}

/// One histogram bar: [lo, hi) in the histogram's unit (µs, or tokens) and how many
/// values fell in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

/// `n` buckets of a latency histogram, in µs (see `buckets_of`).
pub fn buckets(lat: &Latency, n: usize, scale: Scale) -> Vec<Bucket> {
    buckets_of(lat.histogram(), lat.range_us(), n, scale)
}

/// `n` buckets spanning min..=max (the exact range seen), spaced evenly or
/// geometrically (log), so that both the body and the tail of a distribution stay
/// visible. Empty when the histogram is.
pub fn buckets_of(hist: &Histogram<u64>, range: Option<(u64, u64)>, n: usize, scale: Scale) -> Vec<Bucket> {
    let Some((min, max)) = range.filter(|_| !hist.is_empty()) else { return Vec::new() };
    let (min, max) = (min.max(1), max.max(1));
    // Never finer than the histogram can tell apart (3 significant digits): a narrow
    // spread gets fewer, honest bars rather than empty rows and one full one.
    let resolution = hist.equivalent_range(max).max(1);
    let n = n.min(((max - min) / resolution + 1) as usize);
    if n <= 1 {
        return vec![Bucket { lo: min, hi: max + 1, count: hist.len() }];
    }
    let (lo, hi) = (min as f64, (max + 1) as f64);
    let edge = |k: usize| -> u64 {
        let t = k as f64 / n as f64;
        match scale {
            Scale::Linear => (lo + (hi - lo) * t).round() as u64,
            Scale::Log => (lo * (hi / lo).powf(t)).round() as u64,
        }
    };
    let mut out: Vec<Bucket> = (0..n).map(|k| Bucket { lo: edge(k), hi: edge(k + 1), count: 0 }).collect();
    out.last_mut().expect("n > 1").hi = max + 1;
    // Log edges can round together at the low end; merge empty-width buckets.
    out.dedup_by(|b, a| {
        if a.hi <= a.lo {
            a.hi = b.hi;
            true
        } else {
            false
        }
    });
    for v in hist.iter_recorded() {
        // The middle of the HDR bucket, kept inside the exact range seen.
        let value = hist.median_equivalent(v.value_iterated_to()).clamp(min, max);
        let i = out.partition_point(|b| b.hi <= value).min(out.len() - 1);
        out[i].count += v.count_at_value();
    }
    out
}
