//! A stage's tool calls: replies that made any, the calls and their arguments' bytes,
//! arguments that are not JSON, and the time to the first tool-call token of streams
//! (a reply made only of calls has no text: its first token is its first fragment).

use serde::de::IgnoredAny;

use super::latency::Latency;
use crate::model::{RequestRecord, ToolFault};

#[derive(Debug, Clone, Default)]
pub struct ToolStats {
    /// Successful replies that made a call, and the calls.
    pub replies: u64,
    pub calls: u64,
    pub argument_bytes: u64,
    /// Calls whose arguments do not parse as JSON.
    pub not_json: u64,
    /// Calls checked against the tools offered, by what was wrong (not JSON, a tool not
    /// offered, arguments that do not fit its parameters).
    pub faults: std::collections::BTreeMap<ToolFault, u64>,
    /// Streams: request sent → the first tool-call fragment.
    pub first_tool: Latency,
}

impl ToolStats {
    /// A successful reply's calls.
    pub fn record(&mut self, rec: &RequestRecord) {
        let Some(calls) = rec.tool_calls.as_deref().filter(|c| !c.is_empty()) else { return };
        self.replies += 1;
        self.calls += calls.len() as u64;
        for c in calls {
            self.argument_bytes += c.arguments.len() as u64;
            self.not_json += u64::from(serde_json::from_str::<IgnoredAny>(&c.arguments).is_err());
        }
        for f in rec.tool_faults.iter().flatten() {
            *self.faults.entry(*f).or_insert(0) += 1;
        }
        if let Some(t) = rec.first_tool {
            self.first_tool.record(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ToolCall;
    use std::time::Duration;

    #[test]
    fn calls_their_bytes_and_arguments_that_are_not_json_are_counted() {
        let call = |args: &str| ToolCall { id: "c".into(), name: "f".into(), arguments: args.into() };
        let mut t = ToolStats::default();
        t.record(&RequestRecord {
            tool_calls: Some(vec![call("{\"a\":1}"), call("{\"a\":")]),
            first_tool: Some(Duration::from_millis(40)),
            ..Default::default()
        });
        t.record(&RequestRecord::default());
        assert_eq!((t.replies, t.calls, t.argument_bytes, t.not_json), (1, 2, 12, 1));
        assert_eq!(t.first_tool.mean_ms(), Some(40.0));
    }
}
