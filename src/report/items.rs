//! What a stage's requests carried and replies made beyond text, in the result: an
//! embeddings run's inputs, a rerank run's documents — their total and rate over
//! successful requests, and latency by how many a request carried, each group's
//! distribution encoded so shards merge exactly — and the tool calls replies made.

use serde::{Deserialize, Serialize};

use super::Dist;
use crate::metrics::{Items, Latency, LatencySummary, SizeGroup, StageStats};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemsResult {
    /// What they are: "inputs" (an embeddings batch's) or "documents" (a rerank's).
    pub kind: String,
    /// Carried by successful requests, and per second of the window.
    pub total: u64,
    pub per_s: f64,
    /// Per successful request.
    pub per_request: f64,
    /// Latency by how many a request carried: every size below 16, then four groups
    /// per doubling; each says the sizes it saw.
    pub by_size: Vec<SizeResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    /// The group (its lowest possible size), and the sizes seen in it.
    pub group: u32,
    pub min: u32,
    pub max: u32,
    pub requests: u64,
    pub latency_ms: Option<LatencySummary>,
    /// The latency distribution (µs); absent from a live view's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Dist>,
}

impl ItemsResult {
    /// Its rate's unit, for a column: "inputs/s", "docs/s".
    pub fn unit(&self) -> &'static str {
        match self.kind.as_str() {
            "documents" => "docs/s",
            _ => "inputs/s",
        }
    }
}

/// The unit of a column of these stages' rates: theirs when they all carry one kind,
/// "items/s" when some carry inputs and others documents (stages of their own APIs).
pub fn unit_of<'a>(stages: impl Iterator<Item = &'a super::StageResult>) -> Option<&'static str> {
    let mut units = stages.filter_map(|s| s.items.as_ref()).map(ItemsResult::unit);
    let first = units.next()?;
    Some(if units.all(|u| u == first) { first } else { "items/s" })
}

impl SizeResult {
    /// Its sizes as a label: "8", or "33–37".
    pub fn label(&self) -> String {
        match self.min == self.max {
            true => self.min.to_string(),
            false => format!("{}–{}", self.min, self.max),
        }
    }
}

/// The stage's texts; None when its requests carried none. With `full`, each group's
/// distribution too.
pub fn items(s: &StageStats, full: bool) -> Option<ItemsResult> {
    ItemsResult::of(s.info.items.unwrap_or("inputs"), &s.items, s.items_per_s(), full)
}

impl ItemsResult {
    /// `items` at `per_s` a second; with `full`, each group's distribution too.
    pub fn of(kind: &str, items: &Items, per_s: f64, full: bool) -> Option<ItemsResult> {
        let per_request = items.mean()?;
        let by_size = items
            .by_size
            .iter()
            .map(|(&group, g)| SizeResult {
                group,
                min: g.min,
                max: g.max,
                requests: g.latency.count(),
                latency_ms: g.latency.summary(),
                histogram: full.then(|| Dist::of_latency(&g.latency)).flatten(),
            })
            .collect();
        Some(ItemsResult { kind: kind.to_string(), total: items.total, per_s, per_request, by_size })
    }

    /// The figures back, for a merge: None when a group's distribution is missing or
    /// does not decode.
    pub fn to_items(&self) -> Option<Items> {
        let mut items = Items { total: self.total, requests: 0, by_size: Default::default() };
        for g in &self.by_size {
            let latency: Latency = g.histogram.as_ref()?.latency().ok()?;
            items.requests += g.requests;
            items.by_size.insert(g.group, SizeGroup { min: g.min, max: g.max, latency });
        }
        Some(items)
    }
}

/// A stage's tool calls, in the result: absent when no reply made one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCallsResult {
    /// Successful replies that made a call, and the calls they made.
    pub replies: u64,
    pub calls: u64,
    /// Calls per such reply.
    pub per_reply: f64,
    /// The arguments' bytes, all calls together.
    pub argument_bytes: u64,
    /// Calls whose arguments do not parse as JSON.
    pub arguments_not_json: u64,
    /// Calls checked against the tools offered that do not do, by why: `not_json`,
    /// `unknown_tool`, `schema` (arguments that do not fit its `parameters`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub invalid: std::collections::BTreeMap<String, u64>,
    /// Streams: request sent → the first tool-call fragment.
    pub first_tool_ms: Option<LatencySummary>,
    /// Its distribution (µs), for merges; absent from a live view's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_tool_us: Option<Dist>,
}

/// The stage's tool calls; with `full`, the first-fragment distribution too.
pub fn tool_calls(s: &StageStats, full: bool) -> Option<ToolCallsResult> {
    let t = &s.tools;
    (t.replies > 0).then(|| ToolCallsResult {
        replies: t.replies,
        calls: t.calls,
        per_reply: t.calls as f64 / t.replies as f64,
        argument_bytes: t.argument_bytes,
        arguments_not_json: t.not_json,
        invalid: t.faults.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
        first_tool_ms: t.first_tool.summary(),
        first_tool_us: full.then(|| Dist::of_latency(&t.first_tool)).flatten(),
    })
}
