//! How a run can end before its last stage.

/// Why a run ended before its last stage: `abort_on_error_rate` was passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Aborted {
    pub stage: String,
    /// The error rate judged, over `requests` finished requests.
    pub error_rate: f64,
    pub requests: u64,
    /// Judged mid-stage (the stage was cut short), or at its end.
    pub mid_stage: bool,
    pub threshold: f64,
}

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run aborted: stage {:?} {} with an error rate of {:.1}% over {} finished requests, above abort_on_error_rate {:.1}%",
            self.stage,
            if self.mid_stage { "cut short" } else { "ended" },
            self.error_rate * 100.0,
            self.requests,
            self.threshold * 100.0
        )
    }
}
