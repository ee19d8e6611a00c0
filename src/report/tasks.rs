//! A task stage's tasks in the result: how they ended, their latency from start (or
//! from when due) to the last step's end, each step's share of that time and its wait
//! on its slowest member, requests, tokens and cost per task, failures by step and
//! cause, and goodput against `[slo] task_ms`. The distributions travel too, with the
//! sums behind every mean, so shards merge exactly.

use serde::{Deserialize, Serialize};

use super::Dist;
use crate::metrics::tasks::{StepStats, TaskStats, TaskTotals};
use crate::metrics::{LatencySummary, StageStats};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tasks {
    /// The `[[task]]` the stage ran.
    pub name: String,
    /// Ended = ok + failed; `cut`: the stage's end (its count, deadline or a stop)
    /// came before the task's.
    pub ok: u64,
    pub failed: u64,
    pub cut: u64,
    /// Answered tasks per second of the stage's wall time.
    pub per_s: f64,
    /// Of answered tasks: from start (an open loop's: when due) to the last step's end.
    pub latency_ms: Option<LatencySummary>,
    /// Of answered tasks: from start to the last step's first token (streams).
    pub first_token_ms: Option<LatencySummary>,
    pub steps: Vec<Step>,
    /// Means over the tasks that ended (answered or failed).
    pub requests_per_task: Option<f64>,
    pub input_tokens_per_task: Option<f64>,
    pub output_tokens_per_task: Option<f64>,
    /// Mean and most per task, where every step's model has a price.
    pub cost_per_task: Option<TaskCost>,
    /// Failed tasks by the step they failed at and why.
    pub failures: Vec<TaskFailure>,
    /// With `[slo] task_ms`: answered tasks within it, and per second.
    pub goodput: Option<TaskGoodput>,
    /// The sums behind the means (a merge adds them).
    pub totals: TaskTotals,
    #[serde(default)]
    pub histograms: TaskHistograms,
    /// A median and a p99 task, each one answered task measured whole: the kept one
    /// (of a uniform sample of up to 1,024) nearest that quantile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemplars: Vec<TaskExemplar>,
}

/// One answered task laid out: the time before its first step (an open loop's wait
/// from when it was due, its input's building) and each step's, end to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskExemplar {
    /// The quantile it stands for (0.5, 0.99).
    pub quantile: f64,
    pub latency_ms: f64,
    pub before_ms: f64,
    pub steps_ms: Vec<f64>,
}

impl TaskExemplar {
    /// A task of `latency_us` whose steps took `steps_us`, standing for `quantile`.
    pub fn new(quantile: f64, latency_us: u64, steps_us: &[u64]) -> TaskExemplar {
        let ms = |us: u64| us as f64 / 1000.0;
        let before = latency_us.saturating_sub(steps_us.iter().sum());
        TaskExemplar { quantile, latency_ms: ms(latency_us), before_ms: ms(before), steps_ms: steps_us.iter().map(|&u| ms(u)).collect() }
    }
}

/// A quantile, and its figure in a latency summary.
pub type Quantile = (f64, fn(&LatencySummary) -> f64);

/// The quantiles a stage's exemplar tasks stand for.
pub const EXEMPLARS: [Quantile; 2] = [(0.5, |l| l.p50), (0.99, |l| l.p99)];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// Requests it sent per task that ran it.
    pub requests_per_task: Option<f64>,
    pub failed_requests: u64,
    /// Its wall time per task.
    pub duration_ms: Option<LatencySummary>,
    /// Its share of the tasks' time: its mean duration over the sum of every step's.
    pub share: Option<f64>,
    /// A fan-out's wait on its slowest member alone: from the end of the member before
    /// it to the step's end.
    pub slowest_wait_ms: Option<LatencySummary>,
    /// Its successful requests' own e2e latency and TTFT (streams), apart from the
    /// other steps' (the stage's figures mix them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<LatencySummary>,
    /// An agent's: tool calls per task, and the time spent waiting on them per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls_per_task: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_ms_per_task: Option<f64>,
}

impl Step {
    /// An agent step's tool figures from the sums over the `ran` tasks that ran it.
    pub fn with_tools(mut self, calls: u64, us: u64, ran: u64) -> Step {
        if calls > 0 && ran > 0 {
            self.tool_calls_per_task = Some(calls as f64 / ran as f64);
            self.tool_ms_per_task = Some(us as f64 / 1000.0 / ran as f64);
        }
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskCost {
    pub currency: String,
    pub mean: f64,
    pub max: f64,
    pub mean_usd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskFailure {
    pub step: String,
    pub cause: String,
    pub tasks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskGoodput {
    pub tasks: u64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskHistograms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_us: Option<Dist>,
    /// By step: its duration and its slowest-member wait.
    #[serde(default)]
    pub steps: Vec<StepHistograms>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepHistograms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_wait_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<Dist>,
}

/// The stage's tasks; None when it ran none. Costs are in USD until priced.
pub fn tasks(s: &StageStats) -> Option<Tasks> {
    let (name, steps) = s.info.task.as_ref()?;
    let empty = TaskStats::default();
    let x = s.tasks.as_deref().unwrap_or(&empty);
    let ended = x.ended_count();
    let per_task = |n: u64| (ended > 0).then(|| n as f64 / ended as f64);
    let means: Vec<f64> =
        x.steps.iter().map(|st| st.wall.mean_ms().unwrap_or(0.0) * st.wall.count() as f64 / ended.max(1) as f64).collect();
    let total: f64 = means.iter().sum();
    let step_list = steps
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let st = x.steps.get(k);
            let ran = st.map_or(0, |st| st.wall.count());
            Step {
                name: name.clone(),
                requests_per_task: st.filter(|_| ran > 0).map(|st| st.members as f64 / ran as f64),
                failed_requests: st.map_or(0, |st| st.failed),
                duration_ms: st.and_then(|st| st.wall.summary()),
                share: means.get(k).filter(|_| total > 0.0).map(|m| m / total),
                slowest_wait_ms: st.and_then(|st| st.slowest_wait.summary()),
                latency_ms: st.and_then(|st| st.e2e.summary()),
                ttft_ms: st.and_then(|st| st.ttft.summary()),
                tool_calls_per_task: None,
                tool_ms_per_task: None,
            }
            .with_tools(st.map_or(0, |st| st.tool_calls), st.map_or(0, |st| st.tool_us), ran)
        })
        .collect();
    let wall = s.wall.as_secs_f64();
    let per_s = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    // Tool figures only where an agent called a tool.
    let agent = x.steps.iter().any(|st| st.tool_calls > 0);
    let by_step = |f: fn(&StepStats) -> u64, keep: bool| if keep { x.steps.iter().map(f).collect() } else { Vec::new() };
    Some(Tasks {
        name: name.clone(),
        ok: x.ok,
        failed: x.failed,
        cut: x.cut,
        per_s: per_s(x.ok),
        latency_ms: x.latency.summary(),
        first_token_ms: x.first_token.summary(),
        steps: step_list,
        requests_per_task: per_task(x.totals.requests),
        input_tokens_per_task: per_task(x.totals.input_tokens),
        output_tokens_per_task: per_task(x.totals.output_tokens),
        cost_per_task: x.cost_per_task_usd().map(|usd| TaskCost {
            currency: "USD".into(),
            mean: usd,
            max: x.totals.cost_max_usd,
            mean_usd: usd,
        }),
        failures: x
            .failures
            .iter()
            .map(|(&(k, cause), &n)| TaskFailure {
                step: steps.get(k as usize).cloned().unwrap_or_default(),
                cause: cause.to_string(),
                tasks: n,
            })
            .collect(),
        goodput: s.info.slo.and_then(|o| o.task).map(|_| TaskGoodput { tasks: x.slo_met, per_s: per_s(x.slo_met) }),
        totals: TaskTotals {
            step_requests: by_step(|st| st.members, true),
            step_tool_calls: by_step(|st| st.tool_calls, agent),
            step_tool_us: by_step(|st| st.tool_us, agent),
            ..x.totals.clone()
        },
        histograms: TaskHistograms {
            latency_us: Dist::of_latency(&x.latency),
            first_token_us: Dist::of_latency(&x.first_token),
            steps: x
                .steps
                .iter()
                .map(|st| StepHistograms {
                    duration_us: Dist::of_latency(&st.wall),
                    slowest_wait_us: Dist::of_latency(&st.slowest_wait),
                    e2e_us: Dist::of_latency(&st.e2e),
                    ttft_us: Dist::of_latency(&st.ttft),
                })
                .collect(),
        },
        exemplars: x
            .latency
            .summary()
            .map(|l| {
                let near = |(q, at): (f64, fn(&LatencySummary) -> f64)| {
                    x.kept.nearest((at(&l) * 1000.0) as u64).map(|(lat, steps)| TaskExemplar::new(q, lat, steps))
                };
                EXEMPLARS.into_iter().filter_map(near).collect()
            })
            .unwrap_or_default(),
    })
}

impl Tasks {
    /// The figure a task metric (`task_p99_ms`, `cost_per_task`, …) names.
    pub fn measure(&self, metric: &str) -> Option<f64> {
        let q = |f: fn(&LatencySummary) -> f64| self.latency_ms.as_ref().map(f);
        let ended = self.ok + self.failed;
        match metric {
            "task_p50_ms" => q(|l| l.p50),
            "task_p90_ms" => q(|l| l.p90),
            "task_p99_ms" => q(|l| l.p99),
            "task_error_rate" => (ended > 0).then(|| self.failed as f64 / ended as f64),
            "tasks_per_s" => Some(self.per_s),
            "cost_per_task" => self.cost_per_task.as_ref().map(|c| c.mean),
            _ => None,
        }
    }

    /// Costs in the scenario's currency.
    pub fn priced(mut self, pricing: &crate::cost::Pricing) -> Tasks {
        if let Some(c) = &mut self.cost_per_task {
            c.currency = pricing.currency.clone();
            c.mean = pricing.in_currency(c.mean_usd);
            c.max = pricing.in_currency(self.totals.cost_max_usd);
        }
        self
    }
}

/// The task stages as a table — tasks answered, their rate, latency, the last step's
/// first token, requests and cost per task — then a line per stage on where the time
/// went, step by step, and why tasks failed. Empty when no stage ran tasks.
pub fn task_text(stages: &[super::StageResult]) -> String {
    let ran: Vec<(&super::StageResult, &Tasks)> = stages.iter().filter_map(|s| s.tasks.as_ref().map(|t| (s, t))).collect();
    if ran.is_empty() {
        return String::new();
    }
    let ms = |l: &Option<LatencySummary>, q: fn(&LatencySummary) -> f64| l.as_ref().map_or("-".to_string(), |l| super::fmt_ms(q(l)));
    let mut rows = vec![
        ["task stage", "tasks", "failed", "tasks/s", "p50", "p90", "p99", "first token p50", "requests/task", "cost/task"]
            .map(String::from)
            .to_vec(),
    ];
    for (s, t) in &ran {
        let cost = t.cost_per_task.as_ref().map_or("-".to_string(), |c| {
            super::fmt_cost(&super::Cost { currency: c.currency.clone(), amount: c.mean, usd: c.mean_usd, per_1k_requests: 0.0 })
        });
        rows.push(vec![
            format!("{} ({})", s.name, t.name),
            t.ok.to_string(),
            t.failed.to_string(),
            super::fmt_rate(t.per_s),
            ms(&t.latency_ms, |l| l.p50),
            ms(&t.latency_ms, |l| l.p90),
            ms(&t.latency_ms, |l| l.p99),
            ms(&t.first_token_ms, |l| l.p50),
            t.requests_per_task.map_or("-".to_string(), super::fig),
            cost,
        ]);
    }
    let mut out = super::grid(&rows, super::Format::Table);
    for (s, t) in &ran {
        let steps: Vec<String> = t
            .steps
            .iter()
            .map(|st| {
                let share = st.share.map_or("-".to_string(), |x| format!("{:.0} %", x * 100.0));
                let wait =
                    st.slowest_wait_ms.as_ref().map_or(String::new(), |w| format!(", slowest member alone {}", super::fmt_ms(w.mean)));
                let n = st.requests_per_task.map_or("-".to_string(), super::fig);
                let tools = match (st.tool_calls_per_task, st.tool_ms_per_task) {
                    (Some(c), Some(t)) => format!(", {} tool calls taking {}", super::fig(c), super::fmt_ms(t)),
                    _ => String::new(),
                };
                let plural = if n == "1" { "" } else { "s" };
                format!("{} {share} (mean {}, {n} request{plural}{tools}{wait})", st.name, ms(&st.duration_ms, |l| l.mean))
            })
            .collect();
        out.push_str(&format!("{}: time by step: {}\n", s.name, steps.join("; ")));
        if !t.failures.is_empty() {
            let why: Vec<String> = t.failures.iter().map(|f| format!("{} at {} ({})", f.tasks, f.step, f.cause)).collect();
            out.push_str(&format!("{}: failed tasks: {}\n", s.name, why.join(", ")));
        }
    }
    out
}
