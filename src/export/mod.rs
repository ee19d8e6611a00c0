//! Figures for other systems while a run goes on: a Prometheus scrape endpoint
//! (`prometheus`) served from the aggregator's snapshots, on its own task.

pub mod prometheus;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Snapshot;
pub use prometheus::Labels;

/// A bound listener: bound before the run starts, so a taken port is an error then.
pub struct Endpoint {
    listener: tokio::net::TcpListener,
}

impl Endpoint {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Endpoint> {
        Ok(Endpoint { listener: tokio::net::TcpListener::bind(addr).await? })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `/metrics` from the latest snapshot until the task is dropped.
    pub async fn serve(self, snapshots: watch::Receiver<Arc<Snapshot>>, labels: Labels) {
        let state = Arc::new((snapshots, labels));
        let app = Router::new().route("/metrics", get(metrics)).with_state(state);
        let _ = axum::serve(self.listener, app).await;
    }
}

type Shared = Arc<(watch::Receiver<Arc<Snapshot>>, Labels)>;

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let snap = state.0.borrow().clone();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], prometheus::text(&snap, &state.1))
}
