//! What every part of a run shares: its error (each a line for the user, with whether
//! the input is at fault) and where notes for the user go.

use std::sync::Arc;

use crate::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the embedded mock on 127.0.0.1: {0}")]
    Mock(std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read target.api_key_file {path}: {error}")]
    KeyFile { path: String, error: std::io::Error },
    #[error("target.api_key_file {0} is empty")]
    EmptyKeyFile(String),
    #[error("target.headers.{name:?}: ${var} is not set (or empty)")]
    HeaderEnv { name: String, var: String },
    #[error("{0}")]
    OpenFiles(String),
    #[error("cannot write --requests-out {path}: {error}")]
    RequestsOut { path: String, error: std::io::Error },
    #[error("{0}")]
    ServerMetrics(String),
}

impl RunError {
    /// The scenario, its files or its environment are at fault, not the run: exit 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RunError::HeaderEnv { .. }
                | RunError::KeyFile { .. }
                | RunError::EmptyKeyFile(_)
                | RunError::Client(ClientError::BadHeader { .. })
                | RunError::ServerMetrics(_)
        )
    }
}

/// Receives notes for the user (key missing, stop requested), one line each.
pub type Notes = Arc<dyn Fn(&str) + Send + Sync>;
