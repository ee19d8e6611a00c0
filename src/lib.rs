//! llmload: a load tester for OpenAI-compatible LLM APIs.
//!
//! Data flows one way: scenario → workload → engine → client → endpoint; the engine
//! emits one RequestRecord per request to the metrics aggregator, which publishes
//! Snapshots for live views and final stats for reports. `model` is the contract room
//! every other room may import; it imports none. See docs/architecture.md.

pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod compare;
pub mod cost;
pub mod engine;
pub mod exit;
pub mod export;
pub mod gcra;
pub mod html;
pub mod launch;
pub mod limits;
pub mod merge;
pub mod metrics;
pub mod mock;
pub mod model;
pub mod progress;
pub mod quick;
pub mod report;
pub mod requests_out;
pub mod run;
pub mod scenario;
pub mod servermetrics;
pub mod stats;
pub mod trend;
pub mod tui;
pub mod workload;
