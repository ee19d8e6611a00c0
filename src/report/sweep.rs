//! Reading a sweep: where throughput stops growing (the knee) and where the SLO breaks,
//! as fields and as one sentence.

use super::result::{Knee, SloVerdict, StageResult, SweepPoint, SweepResult};
use super::table::fmt_rate;
use crate::engine::sweep::{AutoPlan, knee_index, refine_knee};
use crate::model::Slo;
use crate::scenario::{AutoSweep, Sweep, SweepKind};

/// What judging a sweep needs of it: a scenario's `[sweep]`, or (for a merge, which
/// has only result files) what its result records.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    pub kind: SweepKind,
    pub auto: Option<AutoSweep>,
    /// Its points are the stages from this index on.
    pub first_stage: usize,
    pub knee_gain: f64,
    pub slo_quantile: f64,
    /// Points listed (a list sweep's; an automatic one's so far).
    pub listed: usize,
    /// The task its points run: judged by tasks, not requests.
    pub task: Option<String>,
}

impl From<&Sweep> for SweepPlan {
    fn from(s: &Sweep) -> SweepPlan {
        SweepPlan {
            kind: s.kind,
            auto: s.auto,
            first_stage: s.first_stage,
            knee_gain: s.knee_gain,
            slo_quantile: s.slo_quantile,
            listed: s.points.len(),
            task: s.task.clone(),
        }
    }
}

impl SweepResult {
    /// Judges the sweep's stages (those that ran; a stopped sweep is judged on what it
    /// has). Points are judged in increasing load, whatever order they ran in; the knee
    /// of an automatic sweep is read from its ladder (start, 2×, 4×, …) only, since
    /// over the bisection's short steps a little noise reads as growth.
    /// `ended_early`: "stopped" or "aborted" when the run ended before the sweep did.
    pub fn build(sweep: impl Into<SweepPlan>, stages: &[StageResult], slo: Option<&Slo>, ended_early: Option<&str>) -> SweepResult {
        let sweep: SweepPlan = sweep.into();
        let in_sweep: Vec<&StageResult> = stages.iter().filter(|s| s.index >= sweep.first_stage).collect();
        let points = sweep.points(&in_sweep);
        let knee = sweep.knee(&points);
        let mut said = sweep.course(&points, &in_sweep, ended_early);
        said.push(sweep.growth(&points, knee.as_ref(), ended_early));
        let slo = slo.filter(|_| !points.is_empty()).map(|o| {
            let (verdict, sentence) = sweep.slo(o, &points);
            said.push(sentence);
            verdict
        });
        SweepResult {
            kind: match sweep.kind {
                SweepKind::Concurrency => "concurrency",
                SweepKind::Rate => "rate",
            }
            .into(),
            auto: sweep.auto.is_some(),
            points,
            knee_gain: sweep.knee_gain,
            knee,
            slo,
            summary: said.join("; "),
            task: sweep.task,
        }
    }
}

impl SweepPlan {
    /// A stage's load: its workers, or the arrivals per second offered.
    fn load(&self, s: &StageResult) -> f64 {
        match self.kind {
            SweepKind::Concurrency => f64::from(s.concurrency),
            SweepKind::Rate => s.open_loop.as_ref().map_or(0.0, |o| o.target_rate),
        }
    }

    fn unit(&self, load: f64) -> String {
        unit(self.kind, self.task.is_some(), load)
    }

    /// What its throughput counts: "req/s", or a task sweep's "tasks/s".
    fn per_s(&self) -> &'static str {
        if self.task.is_some() { "tasks/s" } else { "req/s" }
    }

    /// The points that ran to their end, in increasing load, each marked a listed
    /// point, a rung of an automatic sweep's ladder or a bisection's.
    fn points(&self, in_sweep: &[&StageResult]) -> Vec<SweepPoint> {
        let ran: Vec<&StageResult> = in_sweep.iter().copied().filter(|s| !s.interrupted && !s.aborted).collect();
        let ladder = match self.auto {
            Some(_) => AutoPlan::ladder_len(&ran.iter().map(|s| self.load(s)).collect::<Vec<_>>()),
            None => ran.len(),
        };
        let mut points: Vec<SweepPoint> = ran
            .iter()
            .enumerate()
            .map(|(k, s)| SweepPoint {
                stage: s.name.clone(),
                load: self.load(s),
                phase: match (self.auto, k < ladder) {
                    (None, _) => "list",
                    (Some(_), true) => "ladder",
                    (Some(_), false) => "bisection",
                }
                .into(),
                throughput: self.throughput(s),
                p99_ms: match (&self.task, &s.tasks) {
                    (Some(_), t) => t.as_ref().and_then(|t| t.latency_ms).map(|l| l.p99),
                    (None, _) => s.latency_ms.map(|l| l.p99),
                },
                slo_met: self.slo_met(s),
                saturated: s.saturated.is_some(),
            })
            .collect();
        points.sort_by(|a, b| a.load.total_cmp(&b.load));
        points
    }

    /// Where throughput stops growing: found on the ladder, narrowed by an automatic
    /// sweep's bisection points between the rungs.
    fn knee(&self, points: &[SweepPoint]) -> Option<Knee> {
        let ladder: Vec<&SweepPoint> = points.iter().filter(|p| p.phase != "bisection").collect();
        let series: Vec<(f64, f64)> = ladder.iter().map(|p| (p.load, p.throughput)).collect();
        // A rung that could not keep up is over the limit, whatever it served: the knee
        // is at the rung before it at the latest.
        let over = ladder.iter().position(|p| p.saturated).filter(|&j| j > 0).map(|j| j - 1);
        let i = match (knee_index(&series, self.knee_gain), over) {
            (Some(i), Some(j)) => i.min(j),
            (i, j) => i.or(j)?,
        };
        let from = match i.checked_sub(1) {
            Some(below) if self.auto.is_some() => {
                let all: Vec<(f64, f64)> = points.iter().map(|p| (p.load, p.throughput)).collect();
                let at = points.iter().position(|p| p.load == ladder[i].load).expect("a ladder point is a point");
                &points[refine_knee(&all, ladder[below].load, at, self.knee_gain)]
            }
            _ => ladder[i],
        };
        Some(Knee {
            stage: from.stage.clone(),
            load: from.load,
            throughput: points.iter().filter(|p| p.load >= from.load).map(|p| p.throughput).fold(0.0, f64::max),
        })
    }

    /// How the sweep went: an automatic one's points, and a sweep cut short.
    fn course(&self, points: &[SweepPoint], in_sweep: &[&StageResult], ended_early: Option<&str>) -> Vec<String> {
        let mut said = Vec::new();
        if self.auto.is_some() {
            let bisected = points.iter().filter(|p| p.phase == "bisection").count();
            said.push(match bisected {
                0 => format!("auto sweep, {} points", points.len()),
                n => format!("auto sweep, {} points ({n} bisecting the SLO's limit)", points.len()),
            });
        }
        if let Some(cut) = in_sweep.iter().find(|s| s.interrupted || s.aborted) {
            let how = if cut.aborted { "aborted" } else { "stopped" };
            said.push(format!("the sweep was {how} at {}, judged on the {} points before it", cut.name, points.len()));
        } else if self.auto.is_none() && points.len() < self.listed {
            said.push(format!("{} of {} points ran to their end (the run was stopped or aborted)", points.len(), self.listed));
        } else if let Some(how) = ended_early.filter(|_| self.auto.is_some()) {
            said.push(format!("the sweep was {how} after {} points", points.len()));
        }
        let over: Vec<String> = in_sweep
            .iter()
            .filter_map(|s| s.saturated.as_ref().map(|x| format!("{} (after {:.0} s)", self.unit(self.load(s)), x.after_s)))
            .collect();
        if !over.is_empty() {
            said.push(format!("could not keep up, stopped early: {}", over.join(", ")));
        }
        said
    }

    /// Where throughput plateaus, or that it still grows and what would find the knee.
    fn growth(&self, points: &[SweepPoint], knee: Option<&Knee>, ended_early: Option<&str>) -> String {
        let none_ok = !points.is_empty() && points.iter().all(|p| p.throughput <= 0.0);
        match (knee, points.iter().rfind(|p| p.phase != "bisection")) {
            _ if none_ok && self.task.is_some() => "no task was answered at any point".to_string(),
            _ if none_ok => "no request succeeded at any point".to_string(),
            (Some(k), _) => format!("throughput plateaus at {} {} from {}", fmt_rate(k.throughput), self.per_s(), self.unit(k.load)),
            (None, Some(last)) => {
                let further = match self.auto {
                    _ if ended_early.is_some() => "the sweep ended before the knee",
                    Some(a) if last.load * 2.0 > a.max => "raise the sweep's `max` to find the knee",
                    Some(_) => "raise the sweep's `max_points` to find the knee",
                    None => "sweep further to find the knee",
                };
                let (at, rate) = (self.unit(last.load), fmt_rate(last.throughput));
                format!("throughput still grows at the last point ({at}, {rate} {}): {further}", self.per_s())
            }
            (None, None) => "no sweep point finished".to_string(),
        }
    }

    /// A point's successful requests per second, or a task sweep's answered tasks.
    fn throughput(&self, s: &StageResult) -> f64 {
        match (&self.task, &s.tasks) {
            (Some(_), t) => t.as_ref().map_or(0.0, |t| t.per_s),
            (None, _) => s.throughput.ok_per_s,
        }
    }

    /// With `[slo]`: the share of a point's finished requests meeting every objective,
    /// or of a task sweep's ended tasks within `task_ms`.
    fn slo_met(&self, s: &StageResult) -> Option<f64> {
        let share = |met: u64, n: u64| if n == 0 { 0.0 } else { met as f64 / n as f64 };
        match (&self.task, &s.tasks) {
            (Some(_), Some(t)) => t.goodput.as_ref().map(|g| share(g.tasks, t.ok + t.failed)),
            (Some(_), None) => None,
            (None, _) => s.goodput.as_ref().map(|g| share(g.requests, s.requests.ok + s.requests.failed)),
        }
    }

    /// The largest point meeting the SLO and the first breaking it, and as a sentence.
    fn slo(&self, o: &Slo, points: &[SweepPoint]) -> (SloVerdict, String) {
        let meets = |p: &SweepPoint| p.slo_met.is_some_and(|m| m >= self.slo_quantile);
        let broken = points.iter().position(|p| !meets(p));
        let last_ok = broken.map_or(Some(points.len() - 1), |b| b.checked_sub(1));
        let v = SloVerdict {
            quantile: self.slo_quantile,
            objectives: objectives(o, self.task.is_some()),
            largest_meeting: last_ok.map(|i| points[i].stage.clone()),
            largest_meeting_load: last_ok.map(|i| points[i].load),
            first_breaking: broken.map(|i| points[i].stage.clone()),
            first_breaking_load: broken.map(|i| points[i].load),
        };
        let of = if self.task.is_some() { "tasks" } else { "requests" };
        let what = format!("the SLO ({}% of {of} within {})", v.quantile * 100.0, v.objectives);
        let sentence = match (last_ok, broken) {
            (Some(a), Some(b)) => format!("{what} holds up to {} and breaks at {}", self.unit(points[a].load), self.unit(points[b].load)),
            (Some(_), None) => format!("{what} holds at every point"),
            (None, _) => format!("{what} breaks already at {}", self.unit(points[0].load)),
        };
        (v, sentence)
    }
}

impl SweepResult {
    /// While the sweep runs: what its finished points show so far, without the advice
    /// the final answer gives ("3 points; throughput still grows; the SLO holds").
    pub fn so_far(&self) -> String {
        let kind = if self.kind == "concurrency" { SweepKind::Concurrency } else { SweepKind::Rate };
        let unit = |load: f64| unit(kind, self.task.is_some(), load);
        let per_s = if self.task.is_some() { "tasks/s" } else { "req/s" };
        let n = self.points.len();
        let mut said = vec![format!("{n} point{}", if n == 1 { "" } else { "s" })];
        match &self.knee {
            _ if n > 0 && self.points.iter().all(|p| p.throughput <= 0.0) => said.push("nothing succeeded yet".into()),
            Some(k) => said.push(format!("throughput plateaus at {} {per_s} from {}", fmt_rate(k.throughput), unit(k.load))),
            None if n >= 2 => said.push("throughput still grows".into()),
            None => {}
        }
        if let Some(v) = &self.slo {
            said.push(match (v.largest_meeting_load, v.first_breaking_load) {
                (Some(a), Some(b)) => format!("the SLO holds up to {} and breaks at {}", unit(a), unit(b)),
                (Some(_), None) => "the SLO holds".into(),
                (None, _) => "the SLO breaks at every point".into(),
            });
        }
        said.join("; ")
    }
}

/// How a run that ended before its sweep did is said: "aborted" (`abort_on_error_rate`)
/// or "stopped" (Ctrl-C); None when it ran to its end.
pub fn ended_early(aborted: bool, stopped: bool) -> Option<&'static str> {
    match (aborted, stopped) {
        (true, _) => Some("aborted"),
        (false, true) => Some("stopped"),
        (false, false) => None,
    }
}

/// "e2e ≤ 2000 ms, TTFT ≤ 500 ms"
/// A sweep's load in words: "8-way", "4 req/s offered" (a task sweep's "tasks/s").
fn unit(kind: SweepKind, tasks: bool, load: f64) -> String {
    match (kind, tasks) {
        (SweepKind::Concurrency, _) => format!("{load}-way"),
        (SweepKind::Rate, false) => format!("{load} req/s offered"),
        (SweepKind::Rate, true) => format!("{load} tasks/s offered"),
    }
}

/// The SLO's objectives a sweep is judged by: the requests', or a task sweep's `task_ms`.
fn objectives(o: &Slo, tasks: bool) -> String {
    let ms = |d: std::time::Duration| format!("{} ms", fmt_rate(d.as_secs_f64() * 1000.0));
    let of: &[_] = if tasks { &[("task latency", o.task)] } else { &[("TTFT", o.ttft), ("ITL", o.itl), ("e2e", o.e2e)] };
    of.iter().copied().filter_map(|(n, d)| d.map(|d| format!("{n} ≤ {}", ms(d)))).collect::<Vec<_>>().join(", ")
}
