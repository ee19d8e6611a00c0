//! The contract room: the vocabulary every room shares — what a request is (its
//! parameters and ready body), how it ended (the record, its outcome and failure kind),
//! what it is judged by (SLO, rate limits, thresholds), how a run can end early, and
//! which shard of a run this is. It imports nothing of the crate, so every room may
//! import it and the import graph stays a tree.

mod counted;
mod goals;
mod record;
mod request;
mod run;
mod shard;
pub mod threshold;

pub use counted::{TokenSource, TokenSources};
pub use goals::{RateLimit, Slo, Until, UntilSpec};
pub use record::{
    CheckFailure, FailureKind, FinishReason, FinishReasons, MAX_RETRY_AFTER, Outcome, RequestRecord, ServerTimings, ToolCall, ToolFault,
    Uncounted, Usage,
};
pub use request::{Api, Expect, Media, RequestParams, RequestSpec, TaskStep};
pub use run::Aborted;
pub use shard::{MAX_SHARDS, NUMBER_RANGE, Numbers, Shard};
