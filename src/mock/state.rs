//! What the mock server shares between requests: its knobs, the count in flight (the
//! latency model's input), arrival numbers, the rate limit, capacity slots and stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::{MockConfig, MockStats};
use crate::engine::ratelimit::Bucket;

pub(super) struct MockState {
    pub cfg: MockConfig,
    pub in_flight: AtomicU64,
    pub seq: AtomicU64,
    /// The server-side request limit, when `rate_limit_rpm` is set.
    limit: Option<Mutex<Bucket>>,
    /// Slots to be served in, when `capacity` is set (tokio's semaphore is fair: FIFO).
    pub capacity: Option<Arc<tokio::sync::Semaphore>>,
    stats: Mutex<MockStats>,
}

impl MockState {
    pub fn new(cfg: MockConfig) -> Arc<MockState> {
        let limit = cfg.rate_limit_rpm.map(|rpm| {
            let burst = cfg.rate_limit_burst.unwrap_or(rpm / 60.0).max(1.0);
            Mutex::new(Bucket::per_minute(rpm, burst, std::time::Instant::now()))
        });
        let capacity = cfg.capacity.map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize)));
        Arc::new(MockState { cfg, in_flight: AtomicU64::new(0), seq: AtomicU64::new(0), limit, capacity, stats: Mutex::default() })
    }

    pub fn count(&self, f: impl FnOnce(&mut MockStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn stats(&self) -> MockStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long until a request fits, when the limit refuses this one.
    pub fn over_limit(&self) -> Option<Duration> {
        let mut bucket = self.limit.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        bucket.try_take(std::time::Instant::now()).err()
    }
}

/// Decrements the in-flight count however the request ends (also on client disconnect,
/// and for streams only when the stream ends).
/// Holds the request's capacity slot too, so a stream keeps it until its end.
pub(super) struct InFlight(Arc<MockState>, #[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl InFlight {
    pub fn enter(state: &Arc<MockState>, slot: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(state.clone(), slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
