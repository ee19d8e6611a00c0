//! llmload: a load tester for OpenAI-compatible LLM APIs.
//!
//! Data flows one way: scenario → engine → client → endpoint; the engine emits one
//! RequestRecord per request to the metrics aggregator, which publishes Snapshots for
//! live views and final stats for reports.

pub mod arrivals;
pub mod check;
pub mod cli;
pub mod client;
pub mod cost;
pub mod engine;
pub mod metrics;
pub mod mock;
pub mod ratelimit;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sweep;
pub mod tokens;
pub mod tui;
