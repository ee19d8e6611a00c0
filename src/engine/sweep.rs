//! Sweep arithmetic shared by the engine and the report: growth per doubling, the
//! knee, and the plan of an automatic sweep (double until throughput plateaus and the
//! SLO breaks, then bisect to the SLO's limit).

use crate::scenario::{AutoSweep, SweepKind};

/// Growth of throughput per doubling of the load between two points.
pub fn growth_per_doubling(x0: f64, t0: f64, x1: f64, t1: f64) -> f64 {
    if t0 <= 0.0 {
        return if t1 > 0.0 { f64::INFINITY } else { 0.0 };
    }
    (t1 / t0).powf(1.0 / (x1 / x0).log2()) - 1.0
}

/// Index of the knee among (load, throughput) points in increasing load: the first
/// point after which every step grows less than `gain` per doubling. None when the
/// last step still grows (no plateau seen).
pub fn knee_index(points: &[(f64, f64)], gain: f64) -> Option<usize> {
    let steps: Vec<bool> = points.windows(2).map(|w| growth_per_doubling(w[0].0, w[0].1, w[1].0, w[1].1) < gain).collect();
    let flat_from = steps.iter().rposition(|flat| !flat).map_or(0, |i| i + 1);
    (flat_from < points.len().saturating_sub(1)).then_some(flat_from)
}

/// Narrows a ladder's knee with the points run between it and the rung below
/// (`below`): the smallest of them, in increasing load, that no later point beats by
/// `gain` (so within `gain` of the plateau). Short steps are not judged per doubling,
/// where a little noise reads as growth. Returns the index into `points` (sorted by load).
pub fn refine_knee(points: &[(f64, f64)], below: f64, knee: usize, gain: f64) -> usize {
    (0..knee)
        .filter(|&c| points[c].0 > below)
        .find(|&c| points[c + 1..].iter().all(|&(_, t)| t < (1.0 + gain) * points[c].1))
        .unwrap_or(knee)
}

/// What one sweep point measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub load: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// With an SLO: the share of finished requests meeting it.
    pub slo_met: Option<f64>,
    /// Stopped at saturation: its backlog grew without bound, so it is over the limit.
    pub saturated: bool,
}

/// Chooses an automatic sweep's points one at a time from what the earlier ones
/// measured. Its ladder (start, 2×, 4×, …) climbs until throughput grows less than
/// `knee_gain` over one doubling and, with an SLO, until a point breaks it; then it
/// bisects between the largest point meeting the SLO and the smallest breaking it.
#[derive(Debug, Clone)]
pub struct AutoPlan {
    kind: SweepKind,
    auto: AutoSweep,
    knee_gain: f64,
    /// With an SLO: the share of a point's requests that must meet it.
    slo_quantile: Option<f64>,
    ran: Vec<Measured>,
    climbing: bool,
}

impl AutoPlan {
    pub fn new(kind: SweepKind, auto: AutoSweep, knee_gain: f64, slo_quantile: Option<f64>) -> AutoPlan {
        AutoPlan { kind, auto, knee_gain, slo_quantile, ran: Vec::new(), climbing: true }
    }

    pub fn record(&mut self, m: Measured) {
        self.ran.push(m);
    }

    /// The ladder's points: those run while climbing, which come first.
    pub fn ladder_len(points: &[f64]) -> usize {
        points.windows(2).position(|w| (w[1] - 2.0 * w[0]).abs() > 1e-9 * w[1]).map_or(points.len(), |i| i + 1)
    }

    /// The next load to run, or None when the sweep has its answer (or its limits).
    pub fn next_point(&mut self) -> Option<f64> {
        let Some(last) = self.ran.last() else {
            return Some(self.auto.start);
        };
        if self.ran.len() >= self.auto.max_points as usize {
            return None;
        }
        let meets = |m: &Measured| !m.saturated && m.slo_met.zip(self.slo_quantile).is_none_or(|(met, q)| met >= q);
        if self.climbing {
            // A point that could not keep up is past the knee whatever it served.
            let flat = last.saturated
                || self.ran.len() >= 2 && {
                    let prev = self.ran[self.ran.len() - 2];
                    growth_per_doubling(prev.load, prev.throughput, last.load, last.throughput) < self.knee_gain
                };
            // Judged on the top rung: one noisy point lower down does not end the climb.
            let broken = !meets(last);
            // Once the SLO is broken, points are kept for the bisection.
            let reserve = if broken && self.slo_quantile.is_some() { (self.auto.max_points as usize / 3).min(4) } else { 0 };
            let up = last.load * 2.0;
            let done = flat && (broken || self.slo_quantile.is_none());
            if !done && up <= self.auto.max && self.ran.len() + reserve < self.auto.max_points as usize {
                return Some(up);
            }
            self.climbing = false;
        }
        self.slo_quantile?;
        // The bracket: the last point of the unbroken run meeting the SLO from the
        // smallest, and the smallest point above it.
        let mut sorted = self.ran.clone();
        sorted.sort_by(|a, b| a.load.total_cmp(&b.load));
        let lo = sorted.iter().take_while(|m| meets(m)).last()?.load;
        let hi = sorted.iter().find(|m| m.load > lo)?.load;
        let mid = match self.kind {
            SweepKind::Concurrency => {
                if hi - lo <= (lo * self.auto.precision).max(1.0) {
                    return None;
                }
                ((lo + hi) / 2.0).floor()
            }
            SweepKind::Rate => {
                if hi - lo <= lo * self.auto.precision {
                    return None;
                }
                round_significant((lo + hi) / 2.0, 3)
            }
        };
        (mid > lo && mid < hi).then_some(mid)
    }
}

/// `x` to `digits` significant digits, so bisected rates read as 13.8/s, not 13.75/s.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x <= 0.0 {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_where_growth_stops_for_good() {
        // A server sized for 20/s: 2, 4, 8, 16 then 20, 20, 20.
        let pts = [(1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 20.0), (32.0, 20.2), (64.0, 19.8)];
        assert_eq!(knee_index(&pts, 0.1), Some(4), "16→32 grows 1 %: the plateau starts at 16");
        // 8→16 grew 25 % per doubling: with a 30 % bar the plateau starts at 8.
        assert_eq!(knee_index(&pts, 0.3), Some(3));
    }

    #[test]
    fn no_knee_while_the_last_step_still_grows() {
        assert_eq!(knee_index(&[(1.0, 2.0), (2.0, 4.0), (4.0, 8.0)], 0.1), None);
        // A dip then growth again: not a plateau.
        assert_eq!(knee_index(&[(1.0, 10.0), (2.0, 10.0), (4.0, 20.0)], 0.1), None);
        assert_eq!(knee_index(&[(1.0, 5.0)], 0.1), None);
    }

    #[test]
    fn growth_is_per_doubling_for_uneven_steps() {
        // ×4 load, ×2 throughput: 41 % per doubling.
        assert!((growth_per_doubling(4.0, 10.0, 16.0, 20.0) - (2f64.sqrt() - 1.0)).abs() < 1e-9);
        assert_eq!(growth_per_doubling(1.0, 0.0, 2.0, 0.0), 0.0);
        assert!(growth_per_doubling(1.0, 0.0, 2.0, 1.0).is_infinite());
    }

    /// A closed-loop server model: `slots` served at once, `service` seconds each, the
    /// rest queue. Throughput min(n, slots)/service; e2e ≈ service × ⌈n/slots⌉.
    fn server(slots: f64, service: f64, e2e_limit: f64) -> impl Fn(f64) -> Measured {
        move |n: f64| {
            let e2e = service * (n / slots).ceil();
            Measured {
                load: n,
                throughput: n.min(slots) / service,
                slo_met: Some(if e2e <= e2e_limit { 1.0 } else { 0.0 }),
                saturated: false,
            }
        }
    }

    fn run_plan(mut plan: AutoPlan, measure: impl Fn(f64) -> Measured) -> Vec<f64> {
        let mut loads = Vec::new();
        while let Some(x) = plan.next_point() {
            assert!(loads.len() < 64, "the plan ends: {loads:?}");
            loads.push(x);
            plan.record(measure(x));
        }
        loads
    }

    fn auto(start: f64, max: f64, max_points: u32) -> AutoSweep {
        AutoSweep { start, max, max_points, precision: 0.05 }
    }

    #[test]
    fn climbs_to_the_plateau_then_bisects_to_the_slo_limit() {
        // 10 slots of 0.5 s: 20/s from 10 workers on; e2e 0.5 s up to 10, 1 s above.
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 1024.0, 16), 0.1, Some(0.99));
        let loads = run_plan(plan, server(10.0, 0.5, 0.8));
        // 8→16 grows 25 %, 16→32 is flat: the ladder stops at 32, then bisects 8..16.
        assert_eq!(loads, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 12.0, 10.0, 11.0]);
        assert_eq!(AutoPlan::ladder_len(&loads), 6);
    }

    #[test]
    fn without_an_slo_the_ladder_stops_at_the_plateau() {
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 1024.0, 16), 0.1, None);
        assert_eq!(run_plan(plan, server(10.0, 0.5, 0.8)), [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
    }

    #[test]
    fn the_ladder_climbs_past_the_plateau_until_the_slo_breaks_and_stops_at_max() {
        // Throughput flat from the start, the SLO never broken: climbs to max.
        let flat = |n: f64| Measured { load: n, throughput: 5.0, slo_met: Some(1.0), saturated: false };
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(2.0, 20.0, 16), 0.1, Some(0.99));
        assert_eq!(run_plan(plan, flat), [2.0, 4.0, 8.0, 16.0]);
        // Still growing at max: no knee, no bisection needed (the SLO holds).
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 8.0, 16), 0.1, None);
        assert_eq!(run_plan(plan, server(100.0, 0.5, 0.8)), [1.0, 2.0, 4.0, 8.0]);
    }

    #[test]
    fn max_points_bounds_the_sweep() {
        // Two of 7 points kept for the bisection once 16 breaks the SLO: the climb ends
        // there, before its plateau is seen.
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 1024.0, 7), 0.1, Some(0.99));
        assert_eq!(run_plan(plan, server(10.0, 0.5, 0.8)), [1.0, 2.0, 4.0, 8.0, 16.0, 12.0, 10.0]);
        // Without an SLO nothing is kept back.
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 1024.0, 4), 0.1, None);
        assert_eq!(run_plan(plan, server(10.0, 0.5, 0.8)), [1.0, 2.0, 4.0, 8.0]);
    }

    #[test]
    fn an_slo_broken_at_the_start_is_not_bisected_below_it() {
        let plan = AutoPlan::new(SweepKind::Concurrency, auto(1.0, 1024.0, 16), 0.1, Some(0.99));
        let loads = run_plan(plan, server(10.0, 0.5, 0.1));
        assert_eq!(loads, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
    }

    #[test]
    fn a_rate_sweep_bisects_to_its_precision_in_round_figures() {
        // Open loop against 20/s: served in full up to 20/s, the queue grows above it.
        let measure =
            |r: f64| Measured { load: r, throughput: r.min(20.0), slo_met: Some(if r <= 20.0 { 1.0 } else { 0.0 }), saturated: false };
        let plan = AutoPlan::new(SweepKind::Rate, auto(2.5, 1e6, 20), 0.1, Some(0.99));
        let loads = run_plan(plan, measure);
        // 20 → 40 is flat and 40 breaks the SLO: the ladder ends there.
        assert_eq!(&loads[..5], [2.5, 5.0, 10.0, 20.0, 40.0]);
        let lo = loads.iter().copied().filter(|&r| r <= 20.0).fold(0.0, f64::max);
        let hi = loads.iter().copied().filter(|&r| r > 20.0).fold(f64::INFINITY, f64::min);
        assert_eq!(lo, 20.0);
        assert!(hi - lo <= 20.0 * 0.05, "bisected to within 5 %: {loads:?}");
        for r in &loads[5..] {
            assert_eq!(*r, round_significant(*r, 3), "{loads:?}");
        }
    }

    #[test]
    fn the_bisection_narrows_the_knee() {
        // Ladder 8 (16/s) → 16 (18.3/s, the knee); between them 10 served 19.9/s and
        // 11, 12 less (their queues drained at the window's end).
        let pts = [(8.0, 16.0), (10.0, 19.9), (11.0, 16.3), (12.0, 16.7), (16.0, 18.3), (32.0, 17.6)];
        assert_eq!(refine_knee(&pts, 8.0, 4, 0.1), 1);
        // 10 still grows past 10 % by 12: the knee stays at 12.
        let pts = [(8.0, 16.0), (10.0, 17.0), (12.0, 19.5), (16.0, 19.6)];
        assert_eq!(refine_knee(&pts, 8.0, 3, 0.1), 2);
        // A later point beats 10 by over 10 %: the knee stays at the ladder's.
        let pts = [(8.0, 16.0), (10.0, 19.9), (16.0, 20.0), (32.0, 21.95)];
        assert_eq!(refine_knee(&pts, 8.0, 2, 0.1), 2);
        // Nothing between the rungs: the ladder's knee.
        assert_eq!(refine_knee(&[(8.0, 16.0), (16.0, 20.0)], 8.0, 1, 0.1), 1);
    }

    #[test]
    fn significant_digits() {
        assert_eq!(round_significant(13.75, 3), 13.8);
        assert_eq!(round_significant(1234.5, 3), 1230.0);
        assert_eq!(round_significant(0.012345, 3), 0.0123);
    }
}
