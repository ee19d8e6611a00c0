//! Serving the mock: its routes, on a listener the caller gives (`llmload mock`) or on
//! a thread and runtime of its own (the embedded mock of a run), stopped when dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;

use super::config::{MockConfig, MockStats};
use super::handler::{
    chat_completions, completions, embeddings, messages, metrics, models, not_found, rerank, reset_prefix_cache, responses, stats,
};
use super::state::{MockState, SeenRequest};
use crate::workload::tokens::Tokenizer;

/// Largest request body: room for a 128k-token prompt (about 0.6 MB of text, more in
/// JSON escapes and message parts) many times over; axum's default is 2 MB.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

fn app(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/rerank", post(rerank))
        .route("/rerank", post(rerank))
        .route("/v1/models", get(models))
        .route("/mock/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/reset_prefix_cache", post(reset_prefix_cache))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the mock on `listener` until `shutdown` resolves, counting tokens by o200k.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: MockConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_tokenizer(listener, cfg, Tokenizer::o200k(), shutdown).await
}

/// As [`serve`], counting prompts, prefix-cache blocks and replies by `tokenizer`.
pub async fn serve_with_tokenizer(
    listener: tokio::net::TcpListener,
    cfg: MockConfig,
    tokenizer: Tokenizer,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokenizer.warm_up();
    serve_state(listener, MockState::new(cfg, false, tokenizer), shutdown).await
}

async fn serve_state(
    listener: tokio::net::TcpListener,
    state: Arc<MockState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // No Nagle: a stream's token written while the client still delays its ACK of
    // the chunk before would wait for that ACK (up to 40 ms on Linux) and show as
    // the model's time.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// A mock running on its own thread and runtime, so its timers never queue behind the
/// load generator's work. Stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Binds `addr` (port 0 picks a free one) and starts serving, counting tokens by
    /// o200k. Returns once the mock serves: a mock that cannot (no runtime, no
    /// listener) is an error here, not a thread that dies silently and leaves every
    /// request to read as a connect error.
    pub fn start(cfg: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        MockServer::start_with(cfg, addr, false, Tokenizer::o200k())
    }

    /// As [`MockServer::start`], counting prompts, prefix-cache blocks and replies by
    /// `tokenizer` (a scenario's).
    pub fn start_with_tokenizer(cfg: MockConfig, addr: SocketAddr, tokenizer: Tokenizer) -> std::io::Result<MockServer> {
        MockServer::start_with(cfg, addr, false, tokenizer)
    }

    /// As [`MockServer::start`], keeping the last request it gets ([`MockServer::last_request`]).
    pub fn start_recording(cfg: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        MockServer::start_with(cfg, addr, true, Tokenizer::o200k())
    }

    fn start_with(cfg: MockConfig, addr: SocketAddr, record: bool, tokenizer: Tokenizer) -> std::io::Result<MockServer> {
        // Token counts need the tokenizer: load it before the first request is timed.
        tokenizer.warm_up();
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        let state = MockState::new(cfg, record, tokenizer);
        let served = state.clone();
        let thread = std::thread::Builder::new().name("llmload-mock".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => return drop(ready_tx.send(Err(e))),
                };
                let _ = ready_tx.send(Ok(()));
                let _ = serve_state(listener, served, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
        let ready = ready_rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("the mock's thread ended before it served")));
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        Ok(MockServer { addr, state, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The last request to a completions endpoint, when started recording.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.state.last()
    }

    /// What the mock has served and injected so far.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// API root to put in `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
