//! Thresholds, and the one metric vocabulary they (and the docs, and later the gates of
//! `compare`) name a stage's figures by: `p99_ms = "< 500"` holds when the stage's p99
//! latency is below 500 ms. What each name reads from a result is `report::judge`'s.

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// A metric a threshold can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub better: Better,
    /// What it is, for the docs and for the error that lists them.
    pub doc: &'static str,
}

const fn m(name: &'static str, better: Better, doc: &'static str) -> Metric {
    Metric { name, better, doc }
}

use Better::{Higher, Lower};

/// The vocabulary, in the order the docs list it.
pub const METRICS: &[Metric] = &[
    m("mean_ms", Lower, "mean end-to-end latency of successful requests, ms"),
    m("p50_ms", Lower, "median end-to-end latency, ms"),
    m("p90_ms", Lower, "90th percentile end-to-end latency, ms"),
    m("p95_ms", Lower, "95th percentile end-to-end latency, ms"),
    m("p99_ms", Lower, "99th percentile end-to-end latency, ms"),
    m("max_ms", Lower, "slowest successful request, ms"),
    m("ttft_p50_ms", Lower, "median time to first token (streams), ms"),
    m("ttft_p90_ms", Lower, "90th percentile time to first token, ms"),
    m("ttft_p95_ms", Lower, "95th percentile time to first token, ms"),
    m("ttft_p99_ms", Lower, "99th percentile time to first token, ms"),
    m("itl_p50_ms", Lower, "median inter-token latency (streams), ms"),
    m("itl_p90_ms", Lower, "90th percentile inter-token latency, ms"),
    m("itl_p95_ms", Lower, "95th percentile inter-token latency, ms"),
    m("itl_p99_ms", Lower, "99th percentile inter-token latency, ms"),
    m("error_rate", Lower, "share of the stage's requests that failed, 0 to 1"),
    m("ok_rps", Higher, "successful requests per second"),
    m("goodput_rps", Higher, "requests per second that met every [slo] objective"),
    m("output_tps", Higher, "output tokens per second of successful requests"),
    m("items_per_s", Higher, "embeddings' inputs or rerank's documents per second of successful requests"),
    m("task_p50_ms", Lower, "a task stage's median task latency (start, or when due, to its last step's end), ms"),
    m("task_p90_ms", Lower, "90th percentile task latency, ms"),
    m("task_p99_ms", Lower, "99th percentile task latency, ms"),
    m("task_error_rate", Lower, "share of a task stage's ended tasks that failed, 0 to 1"),
    m("tasks_per_s", Higher, "answered tasks per second"),
    m("cost_per_task", Lower, "mean cost of a task, in the scenario's currency"),
];

/// The metric of this name.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The vocabulary's names, for an error message.
pub fn metric_names() -> String {
    METRICS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// `metric op value`, e.g. p99_ms < 500.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub metric: &'static Metric,
    pub op: Op,
    pub value: f64,
}

/// The forms a threshold takes, for the error of one that does not parse.
pub const FORMS: &str = "\"< N\", \"<= N\", \"> N\" or \">= N\" (e.g. p99_ms = \"< 500\", error_rate = \"< 0.01\")";

impl Threshold {
    /// `name = "expr"` as written in `[thresholds]`.
    pub fn parse(name: &str, expr: &str) -> Result<Threshold, String> {
        let metric = metric(name).ok_or_else(|| format!("unknown metric `{name}`, expected one of {}", metric_names()))?;
        let e = expr.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(s, op)| e.strip_prefix(s).map(|r| (*op, r)))
            .ok_or_else(|| format!("{name} = \"{expr}\": expected {FORMS}"))?;
        let value: f64 = rest.trim().parse().map_err(|_| format!("{name} = \"{expr}\": expected {FORMS}"))?;
        if !value.is_finite() {
            return Err(format!("{name} = \"{expr}\": the bound must be a finite number"));
        }
        Ok(Threshold { metric, op, value })
    }

    pub fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Lt => measured < self.value,
            Op::Le => measured <= self.value,
            Op::Gt => measured > self.value,
            Op::Ge => measured >= self.value,
        }
    }

    /// As written: "p99_ms < 500".
    pub fn text(&self) -> String {
        format!("{} {} {}", self.metric.name, self.op.symbol(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_hold() {
        let t = Threshold::parse("p99_ms", " < 500 ").unwrap();
        assert_eq!((t.metric.name, t.op, t.value, t.text()), ("p99_ms", Op::Lt, 500.0, "p99_ms < 500".to_string()));
        assert!(t.holds(499.9) && !t.holds(500.0));
        let t = Threshold::parse("ok_rps", ">=20").unwrap();
        assert!(t.holds(20.0) && !t.holds(19.99));
        assert!(Threshold::parse("error_rate", "<= 0.01").unwrap().holds(0.01));
        assert!(Threshold::parse("goodput_rps", "> 5").unwrap().holds(5.5));
    }

    #[test]
    fn bad_thresholds_say_what_is_accepted() {
        let e = Threshold::parse("p99", "< 5").unwrap_err();
        assert!(e.starts_with("unknown metric `p99`, expected one of mean_ms, p50_ms"), "{e}");
        let e = Threshold::parse("p99_ms", "500").unwrap_err();
        assert!(e.contains("expected \"< N\""), "{e}");
        assert!(Threshold::parse("p99_ms", "< fast").is_err());
        assert!(Threshold::parse("p99_ms", "< inf").is_err());
        assert!(Threshold::parse("p99_ms", "= 5").is_err());
    }
}
