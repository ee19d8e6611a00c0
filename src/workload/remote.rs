//! The server's own tokenizer, reached through its tokenize endpoint: each distinct
//! text sent once and its ids remembered, the calls counted, and no call made while a
//! stage is measured (`hold`): then an uncached text is estimated in o200k instead, and
//! counted as such, so a one-worker server never queues a generation behind a count.
//! The endpoint itself (HTTP, its shape) is the client's (`client/tokenize.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A tokenize endpoint, called from any thread (blocking until it answers).
pub trait Remote: Send + Sync {
    /// The ids of `text`, content only (no special tokens added).
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, String>;
    /// What it is, for results and messages: "llama.cpp POST /tokenize".
    fn describe(&self) -> String;
}

/// Most bytes of text remembered; past it the memory starts afresh.
const MOST_CACHED_BYTES: usize = 256 << 20;

pub struct Server {
    remote: Box<dyn Remote>,
    cache: Mutex<Cache>,
    /// Tokenize calls made, and texts estimated instead (held, or a failed call).
    calls: AtomicU64,
    estimated: AtomicU64,
    held: AtomicBool,
    /// The first failed call's reason.
    failure: Mutex<Option<String>>,
}

#[derive(Default)]
struct Cache {
    ids: HashMap<Box<str>, Arc<[u32]>>,
    bytes: usize,
}

/// What a server tokenizer did over a run, for its result.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemoteStats {
    pub calls: u64,
    pub estimated: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Server {
    pub fn new(remote: Box<dyn Remote>) -> Server {
        Server {
            remote,
            cache: Mutex::new(Cache::default()),
            calls: AtomicU64::new(0),
            estimated: AtomicU64::new(0),
            held: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    /// `text`'s ids: remembered, or asked of the server, or (held, or the call failed)
    /// estimated in o200k.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if let Some(ids) = self.lock().ids.get(text) {
            return ids.to_vec();
        }
        if self.held.load(Ordering::Relaxed) {
            return self.estimate(text);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.remote.tokenize(text) {
            Ok(ids) => {
                let mut c = self.lock();
                if c.bytes + text.len() > MOST_CACHED_BYTES {
                    *c = Cache::default();
                }
                c.bytes += text.len();
                c.ids.insert(text.into(), ids.as_slice().into());
                ids
            }
            Err(e) => {
                self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                self.estimate(text)
            }
        }
    }

    fn estimate(&self, text: &str) -> Vec<u32> {
        self.estimated.fetch_add(1, Ordering::Relaxed);
        let mut ids = Vec::new();
        super::bpe::o200k().encode_into(text, &mut ids);
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While held (a stage measured), no call goes to the server.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    pub fn stats(&self) -> RemoteStats {
        RemoteStats {
            calls: self.calls.load(Ordering::Relaxed),
            estimated: self.estimated.load(Ordering::Relaxed),
            failure: self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}
