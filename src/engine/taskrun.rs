//! What a task stage's requests need beside the stage's own: the task, each step's
//! request builder (its API, model and fields) and the client that speaks its API, with
//! its prompt's text pieces counted once,
//! the prices its cost is reckoned in, and the stage-wide cap on requests in flight.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::client::Client;
use crate::workload::StageRequests;
use crate::workload::task::{Piece, TaskDef};

pub(super) struct TaskRun {
    pub def: Arc<TaskDef>,
    /// By step: its requests' builder, and its template's text pieces' token counts.
    pub steps: Vec<(StageRequests, Vec<u64>)>,
    /// By step: the client of the API it speaks.
    pub clients: Vec<Arc<Client>>,
    pub pricing: crate::cost::Pricing,
    /// The most requests in flight across the stage's tasks (`max_in_flight`).
    pub limit: Option<Arc<Semaphore>>,
}

impl TaskRun {
    /// `steps[k]`: step k's builder, its text pieces counted by it here (off the
    /// request path).
    pub fn new(
        def: Arc<TaskDef>,
        builders: Vec<(StageRequests, Arc<Client>)>,
        pricing: crate::cost::Pricing,
        limit: Option<u32>,
    ) -> TaskRun {
        let (builders, clients): (Vec<_>, Vec<_>) = builders.into_iter().unzip();
        let steps = def
            .steps
            .iter()
            .zip(builders)
            .map(|(step, requests)| {
                let counts = step
                    .template
                    .0
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Text(t) => Some(requests.count(t)),
                        _ => None,
                    })
                    .collect();
                (requests, counts)
            })
            .collect();
        TaskRun { def, steps, clients, pricing, limit: limit.map(|n| Arc::new(Semaphore::new(n as usize))) }
    }

    /// What `tokens` (prompt, completion) of step `k` cost, in USD, where its model
    /// has a price.
    pub fn cost_usd(&self, k: usize, tokens: (u64, u64)) -> Option<f64> {
        self.pricing.cost_usd(&self.def.steps[k].model, tokens.0, tokens.1)
    }
}
