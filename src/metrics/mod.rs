//! Per-stage figures: HDR latency histograms (µs), outcome counters, tokens, and the
//! aggregator task that turns engine events into live Snapshots and final stats.
//! Memory is flat in the number of requests: no per-request sample is kept.
//!
//! Rooms: `info` (what the engine says of a stage and a request), `aggregator` (the
//! task, its events and the live Snapshot), `gauges` (what the engine and the aggregator
//! share of a running window: its counts and moments, read live), `stage` (one stage's figures), `latency` (a
//! distribution), `lengths` (a token-length distribution), `series` (per-second figures), `health`
//! (the generator's own: its scheduling delay and the cores it uses).

mod aggregator;
mod gauges;
pub mod hdr;
mod health;
pub mod images;
mod info;
mod items;
mod latency;
mod lengths;
mod series;
mod server;
pub mod sessions;
mod stage;
pub mod tasks;
mod tools;

pub use aggregator::{Aggregator, EngineEvent, RecordSink, Snapshot};
pub use gauges::Gauges;
pub use health::{Health, HealthView};
pub use info::{Attempts, FailedAttempt, Part, StageInfo};
pub use items::{Items, SizeGroup};
pub use latency::{Latency, LatencySummary};
pub use lengths::{LengthSummary, Lengths};
pub use series::{SecondStats, Series};
pub use server::ServerLive;
pub use stage::{StageStats, input_source, output_source, output_tokens};
pub use tools::ToolStats;
