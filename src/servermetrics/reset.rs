//! `reset_prefix_cache`: the server's prefix cache emptied before each stage, so a stage
//! does not inherit the cache its predecessor filled. vLLM serves `POST
//! /reset_prefix_cache` (its dev router, attached only with `VLLM_SERVER_DEV_MODE=1`;
//! 200 once asked, "we currently do not check if the prefix cache is successfully
//! reset"), SGLang `POST /flush_cache` (200, or 400 when requests are running or
//! waiting; python/sglang/srt/entrypoints/http_server.py); any other server's route is
//! given as a path. Known routes are tried in turn until one
//! answers 2xx, then only that one. Each stage records whether it was done and worked;
//! a reset that fails never fails the run.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::ExtraHeader;
use crate::client::get::Getter;

/// The longest a reset may take (vLLM waits for its engine to reset).
const TIMEOUT: Duration = Duration::from_secs(10);

/// vLLM's, then SGLang's.
const KNOWN: [&str; 2] = ["/reset_prefix_cache", "/flush_cache"];

/// What a stage's reset did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetOutcome {
    /// Whether the server said it was done (2xx).
    pub ok: bool,
    /// The route that answered 2xx, or the last tried.
    pub path: String,
    /// Why not, when it did not work: each route tried and its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Resets the prefix cache of one server.
pub struct PrefixReset {
    origin: url::Url,
    headers: Vec<ExtraHeader>,
    insecure: bool,
    /// The routes to try, in order; once one worked, only it.
    paths: Mutex<Vec<String>>,
}

impl PrefixReset {
    /// For the server at `base` (its origin), sending `headers` (the target's key and
    /// headers: the admin routes sit beside the API); `path` given or the known ones.
    pub fn new(base: &url::Url, path: Option<&str>, headers: Vec<ExtraHeader>, insecure: bool) -> PrefixReset {
        let mut origin = base.clone();
        origin.set_path("/");
        origin.set_query(None);
        let paths = match path {
            Some(p) => vec![p.to_string()],
            None => KNOWN.iter().map(|p| p.to_string()).collect(),
        };
        PrefixReset { origin, headers, insecure, paths: Mutex::new(paths) }
    }

    /// One reset: each route in turn until one answers 2xx.
    pub async fn reset(&self) -> ResetOutcome {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut tried = Vec::new();
        for path in &paths {
            match self.post(path).await {
                Ok(()) => {
                    *self.paths.lock().unwrap_or_else(|e| e.into_inner()) = vec![path.clone()];
                    return ResetOutcome { ok: true, path: path.clone(), error: None };
                }
                Err(why) => tried.push(format!("POST {path}: {why}")),
            }
        }
        ResetOutcome { ok: false, path: paths.last().cloned().unwrap_or_default(), error: Some(tried.join("; ")) }
    }

    async fn post(&self, path: &str) -> Result<(), String> {
        let url = self.origin.join(path).map_err(|e| format!("not a path ({e})"))?;
        let poster = Getter::with_method(http::Method::POST, &url, &self.headers, TIMEOUT, self.insecure).map_err(|e| e.to_string())?;
        let got = poster.get().await?;
        match got.status {
            200..=299 => Ok(()),
            status => Err(format!("status {status}")),
        }
    }
}
