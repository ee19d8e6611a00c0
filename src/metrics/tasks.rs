//! A stage's tasks (`task = "name"`): how many ended answered, failed (at which step,
//! why) or cut by the stage's end; their latency and the last step's first token as
//! HDR distributions; each step's share of the task's time and its wait on its
//! slowest member; requests, tokens and cost per task. Every request of a task is also
//! a request in the stage's own figures: these are a layer above them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::latency::Latency;

/// How one task ended, as the engine tells it.
#[derive(Debug, Clone, Default)]
pub struct TaskDone {
    /// Every step went on to the next, the last answered.
    pub ok: bool,
    /// The stage ended (its count, deadline or a stop) before the task did.
    pub cut: bool,
    /// Where it failed: the step (from 0) and why (a failure kind, `quorum` or
    /// `cancelled`).
    pub failed_at: Option<(u32, &'static str)>,
    /// From its start (an open loop's: when it was due) to its last step's end.
    pub latency: Duration,
    /// From its start to the last step's first token (streams).
    pub first_token: Option<Duration>,
    pub steps: Vec<StepDone>,
    /// Requests it started, and their prompt and completion tokens.
    pub requests: u32,
    pub tokens: (u64, u64),
    /// In USD, where every step's model has a price.
    pub cost_usd: Option<f64>,
}

/// One step of one task: `members` counts its requests, an agent's several included.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepDone {
    pub wall: Duration,
    /// How long the step waited on its slowest member alone: from the end of the
    /// member before it to the step's end (zero for one member).
    pub slowest_wait: Duration,
    pub members: u32,
    pub failed: u32,
    /// Members of its fan-out that were sent (an agent's several requests are one).
    pub fanned: u32,
    /// An agent's: its tools' calls, and the time spent waiting on them.
    pub tool_calls: u32,
    pub tool_time: Duration,
}

/// One step's figures over the stage's tasks.
#[derive(Debug, Clone)]
pub struct StepStats {
    pub wall: Latency,
    pub slowest_wait: Latency,
    /// Members sent, and failed, over every task that ran the step.
    pub members: u64,
    pub failed: u64,
    /// An agent's tool calls, and the µs spent on them, over those tasks.
    pub tool_calls: u64,
    pub tool_us: u64,
    /// Its successful requests' e2e latency and TTFT (streams).
    pub e2e: Latency,
    pub ttft: Latency,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            wall: Latency::with_digits(2),
            slowest_wait: Latency::with_digits(2),
            members: 0,
            failed: 0,
            tool_calls: 0,
            tool_us: 0,
            e2e: Latency::with_digits(2),
            ttft: Latency::with_digits(2),
        }
    }
}

/// A stage's tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskStats {
    /// Started (for the live count in flight: started − ended − cut).
    pub started: u64,
    pub ok: u64,
    pub failed: u64,
    pub cut: u64,
    /// Latency of the tasks that answered.
    pub latency: Latency,
    pub first_token: Latency,
    /// By step, over the tasks that ran it (answered or not).
    pub steps: Vec<StepStats>,
    /// Failed tasks by step and cause.
    pub failures: BTreeMap<(u32, &'static str), u64>,
    pub totals: TaskTotals,
    /// Answered within `[slo] task_ms`.
    pub slo_met: u64,
    /// A uniform sample of answered tasks, kept whole for the report's waterfall.
    pub kept: Kept,
}

/// Most answered tasks a stage keeps whole.
const KEPT: usize = 1024;

/// A uniform sample (a reservoir) of at most [`KEPT`] answered tasks, each kept as its
/// latency then its steps' durations, µs, one flat list (a snapshot copies it at once).
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Numbers per task: its latency and one per step.
    stride: usize,
    flat: Vec<u64>,
    /// Answered tasks offered.
    seen: u64,
}

impl Kept {
    /// Offers answered task `t`: kept while there is room, then in place of a kept one
    /// with the chance the sample stays uniform (seeded by its count: the same tasks
    /// keep the same sample).
    fn offer(&mut self, t: &TaskDone) {
        let row = std::iter::once(t.latency).chain(t.steps.iter().map(|s| s.wall)).map(|d| d.as_micros() as u64);
        self.seen += 1;
        if self.flat.is_empty() {
            self.stride = 1 + t.steps.len();
        }
        // An answered task ran every step: the same count for all.
        if self.stride != 1 + t.steps.len() {
            return;
        }
        if self.flat.len() < KEPT * self.stride {
            self.flat.extend(row);
            return;
        }
        let j = (splitmix(self.seen) % self.seen) as usize;
        if j < KEPT {
            for (slot, v) in self.flat[j * self.stride..(j + 1) * self.stride].iter_mut().zip(row) {
                *slot = v;
            }
        }
    }

    /// The kept task whose latency is nearest `us`: its latency and its steps', µs.
    pub fn nearest(&self, us: u64) -> Option<(u64, &[u64])> {
        let row = self.flat.chunks_exact(self.stride.max(1)).min_by_key(|r| r[0].abs_diff(us))?;
        Some((row[0], &row[1..]))
    }
}

/// SplitMix64: a well-spread number from a count.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sums over every task that ended (cut ones aside) behind the means per task: a
/// merge adds them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of the `priced` tasks (every step's model with a price).
    pub cost_usd: f64,
    pub priced: u64,
    pub cost_max_usd: f64,
    /// By step: requests sent over every task that ran it.
    #[serde(default)]
    pub step_requests: Vec<u64>,
    /// By step: an agent's tool calls, and the µs spent waiting on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_tool_calls: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_tool_us: Vec<u64>,
}

impl TaskStats {
    /// Adds one task; `slo`: the task SLO it is held to.
    pub fn ended(&mut self, t: &TaskDone, slo: Option<Duration>) {
        if t.cut {
            self.cut += 1;
            return;
        }
        if self.steps.len() < t.steps.len() {
            self.steps.resize_with(t.steps.len(), StepStats::default);
        }
        for (s, d) in self.steps.iter_mut().zip(&t.steps) {
            s.wall.record(d.wall);
            if d.fanned > 1 {
                s.slowest_wait.record(d.slowest_wait);
            }
            s.members += u64::from(d.members);
            s.failed += u64::from(d.failed);
            s.tool_calls += u64::from(d.tool_calls);
            s.tool_us += d.tool_time.as_micros() as u64;
        }
        let sum = &mut self.totals;
        sum.requests += u64::from(t.requests);
        sum.input_tokens += t.tokens.0;
        sum.output_tokens += t.tokens.1;
        if let Some(c) = t.cost_usd {
            sum.cost_usd += c;
            sum.priced += 1;
            sum.cost_max_usd = sum.cost_max_usd.max(c);
        }
        match (t.ok, t.failed_at) {
            (true, _) => {
                self.ok += 1;
                self.latency.record(t.latency);
                if let Some(ft) = t.first_token {
                    self.first_token.record(ft);
                }
                self.slo_met += u64::from(slo.is_none_or(|s| t.latency <= s));
                self.kept.offer(t);
            }
            (false, at) => {
                self.failed += 1;
                *self.failures.entry(at.unwrap_or((0, "unknown"))).or_default() += 1;
            }
        }
    }

    /// One successful request of step `step`: its own figures, apart from the other steps'.
    pub fn request(&mut self, step: u32, e2e: Duration, ttft: Option<Duration>) {
        let k = step as usize;
        if self.steps.len() <= k {
            self.steps.resize_with(k + 1, StepStats::default);
        }
        self.steps[k].e2e.record(e2e);
        if let Some(t) = ttft {
            self.steps[k].ttft.record(t);
        }
    }

    /// Tasks started and not ended yet.
    pub fn in_flight(&self) -> u64 {
        self.started.saturating_sub(self.ok + self.failed + self.cut)
    }

    /// Tasks that ended, answered or failed.
    pub fn ended_count(&self) -> u64 {
        self.ok + self.failed
    }

    pub fn cost_per_task_usd(&self) -> Option<f64> {
        let t = &self.totals;
        (t.priced > 0).then(|| t.cost_usd / t.priced as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(ok: bool, ms: u64, steps: &[(u64, u64, u32)]) -> TaskDone {
        TaskDone {
            ok,
            failed_at: (!ok).then_some((1, "http_5xx")),
            latency: Duration::from_millis(ms),
            steps: steps
                .iter()
                .map(|&(wall, wait, members)| StepDone {
                    wall: Duration::from_millis(wall),
                    slowest_wait: Duration::from_millis(wait),
                    members,
                    fanned: members,
                    failed: 0,
                    ..StepDone::default()
                })
                .collect(),
            requests: steps.iter().map(|s| s.2).sum(),
            tokens: (100, 10),
            cost_usd: Some(0.5),
            ..TaskDone::default()
        }
    }

    #[test]
    fn tasks_add_up_by_outcome_and_step() {
        let mut s = TaskStats::default();
        s.ended(&task(true, 400, &[(200, 50, 10), (200, 0, 1)]), Some(Duration::from_millis(300)));
        s.ended(&task(true, 250, &[(150, 30, 10), (100, 0, 1)]), Some(Duration::from_millis(300)));
        s.ended(&task(false, 100, &[(100, 10, 10)]), None);
        s.ended(&TaskDone { cut: true, ..TaskDone::default() }, None);
        assert_eq!((s.ok, s.failed, s.cut, s.slo_met), (2, 1, 1, 1));
        assert_eq!(s.latency.count(), 2);
        assert_eq!((s.steps[0].wall.count(), s.steps[1].wall.count()), (3, 2));
        // One member: no wait on a slowest one is recorded.
        assert_eq!((s.steps[0].slowest_wait.count(), s.steps[1].slowest_wait.count()), (3, 0));
        assert_eq!((s.steps[0].members, s.totals.requests), (30, 32));
        assert_eq!(s.failures.get(&(1, "http_5xx")), Some(&1));
        assert_eq!(s.cost_per_task_usd(), Some(0.5));
        // Answered tasks kept whole: the one nearest 380 ms is the 400 ms one.
        assert_eq!(s.kept.nearest(380_000), Some((400_000, &[200_000, 200_000][..])));
    }

    #[test]
    fn a_full_sample_stays_uniform_and_bounded() {
        let mut s = TaskStats::default();
        for ms in 0..10 * KEPT as u64 {
            s.ended(&task(true, ms, &[(ms, 0, 1)]), None);
        }
        assert_eq!(s.kept.flat.len(), KEPT * 2);
        // About a tenth of the kept are from the first tenth of the tasks.
        let early = s.kept.flat.chunks(2).filter(|r| r[0] < KEPT as u64 * 1000).count();
        assert!((60..150).contains(&early), "{early} of {KEPT}");
    }
}
