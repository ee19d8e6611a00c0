//! Scenario files: the serde model as written (`file`), loading and validation with
//! located errors (`validate`, `validate_stage`, `sweep`, `prompts`), the validated
//! form the engine runs (this file, `stage`, `sweep`), and CLI overrides (`overrides`).

mod apis;
mod conversation;
mod error;
mod file;
mod headers;
mod images;
mod overrides;
mod prompts;
mod request;
mod server_metrics;
mod shard;
mod stage;
mod sweep;
mod synthetic;
mod task;
mod tools;
mod trace;
pub mod until;
mod validate;
mod validate_stage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::{Location, Problem, ScenarioError, line_col};
pub use file::{DurationValue, MAX_DURATION};
pub use overrides::Overrides;

pub use stage::{Arrival, DEFAULT_MAX_IN_FLIGHT, Load, MAX_RATE, MIN_RATE, RetryOn, RetryPolicy, Stage};
pub use sweep::{AUTO_MAX_CONCURRENCY, AUTO_MAX_POINTS, AUTO_PRECISION, AutoSweep, Sweep, SweepKind};
pub use validate_stage::{MAX_ATTEMPTS, TPM_NEEDS_MAX_TOKENS};

use crate::mock::config::MockConfig;
use crate::model::{Api, RequestParams, Slo};
use crate::workload::Prompts;
use crate::workload::provenance::WorkloadInfo;
use error::Problems;
use file::ScenarioFile;

/// Most requests one stage keeps in flight (each is a task and a connection).
pub const MAX_CONCURRENCY: u32 = 100_000;
pub const DEFAULT_API_KEY_ENV: &str = "OPENAI_API_KEY";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated scenario: everything the engine needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Path the scenario was read from, for messages and the result.
    pub source: Option<PathBuf>,
    /// sha256 of the file's bytes as read, hex.
    pub source_sha256: Option<String>,
    pub target: Target,
    pub mock: MockConfig,
    pub prompts: Prompts,
    /// Stage *k*'s own prompts, where its `[[stage]]` gives some (sweep points have none).
    pub stage_prompts: Vec<Option<Prompts>>,
    /// What the prompts were made from: tokenizer, seed, files read (with sha256).
    pub workload: WorkloadInfo,
    pub request: RequestParams,
    /// Prices per model (built-in examples plus `[pricing]`), and the currency shown.
    pub pricing: crate::cost::Pricing,
    /// `[slo]`: what a request must meet to count toward goodput.
    pub slo: Option<Slo>,
    /// `[check]`: what every response's content must be.
    pub check: Option<crate::check::Expect>,
    /// Skip the remaining stages once a stage's error rate exceeds this (0..=1).
    pub abort_on_error_rate: Option<f64>,
    /// `[sweep]`: its stages are `stages[first_stage..]`, one per point.
    pub sweep: Option<Sweep>,
    pub stages: Vec<Stage>,
    /// `[conversation]`: every stage runs multi-turn sessions.
    pub conversation: Option<crate::workload::conversation::Conversation>,
    /// What the file allows but likely does not mean (file:line:col each), said by
    /// `validate` and before a run.
    pub warnings: Vec<Problem>,
    /// The shard of the run this scenario is (its stages cut to that share).
    pub shard: crate::model::Shard,
    /// `[server_metrics]`: the server's metrics endpoints, and whether the target's
    /// `/metrics` is probed when none is named.
    pub server_metrics: ServerMetricsConfig,
    /// The server's tokenizer is to be found before the run (the scenario then read
    /// again with it): Some(true) for `tokenizer = "server"` (none found: no run),
    /// Some(false) for `"auto"`, the default against a URL.
    pub server_tokenizer: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub base_url: BaseUrl,
    /// The endpoint spoken: chat completions, (text) completions, the Responses API or
    /// Anthropic's Messages.
    pub api: Api,
    /// The endpoint's path instead of the API's: after the API root, or from the host's
    /// root when it starts with `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub model: String,
    /// Name of the environment variable holding the key (never the key itself).
    pub api_key_env: String,
    pub stream: bool,
    /// With `stream`: send `stream_options.include_usage`.
    pub stream_usage: bool,
    #[serde(serialize_with = "ser_secs", rename = "timeout_s")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_secs", rename = "connect_timeout_s")]
    pub connect_timeout: Duration,
    /// Streams: longest wait for the next bytes of the body.
    #[serde(serialize_with = "ser_opt_secs", rename = "idle_timeout_s")]
    pub idle_timeout: Option<Duration>,
    /// A file holding the key, read when the run starts (its path only is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// TLS certificates not verified (`--insecure` only).
    pub insecure: bool,
    /// Extra headers sent with every request, by name.
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<Header>,
}

/// An extra header: its name, and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSource {
    /// Written in the scenario.
    Literal(String),
    /// Read from this environment variable when the run starts: a secret, never shown.
    Env(String),
}

/// Headers as results record them: names and where each value came from, never a value.
fn ser_headers<S: serde::Serializer>(headers: &[Header], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(headers.len()))?;
    for h in headers {
        match &h.value {
            HeaderSource::Literal(_) => map.serialize_entry(&h.name, "literal")?,
            HeaderSource::Env(var) => map.serialize_entry(&h.name, &std::collections::BTreeMap::from([("env", var)]))?,
        }
    }
    map.end()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrl {
    /// Start the embedded mock server on 127.0.0.1 with a free port.
    Mock,
    /// An OpenAI-compatible API root, e.g. `http://127.0.0.1:8000/v1`.
    Url(url::Url),
}

impl Serialize for BaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BaseUrl::Mock => s.serialize_str("mock"),
            BaseUrl::Url(u) => s.serialize_str(&redact_url(u)),
        }
    }
}

/// `[server_metrics]` as validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerMetricsConfig {
    pub endpoints: Vec<MetricsEndpoint>,
    pub probe: bool,
    /// Regular expressions (each checked): families whose names match are kept raw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// The prefix cache emptied before each stage, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_prefix_cache: Option<ResetAt>,
}

impl Default for ServerMetricsConfig {
    fn default() -> Self {
        ServerMetricsConfig { endpoints: Vec::new(), probe: true, keep: Vec::new(), reset_prefix_cache: None }
    }
}

/// Where the prefix cache is emptied: the known routes (vLLM's, SGLang's), or a path.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetAt {
    Known,
    Path(String),
}

impl ResetAt {
    /// The path, when one was given.
    pub fn path(&self) -> Option<&str> {
        match self {
            ResetAt::Known => None,
            ResetAt::Path(p) => Some(p),
        }
    }
}

/// As written: `true`, or the path.
impl Serialize for ResetAt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ResetAt::Known => s.serialize_bool(true),
            ResetAt::Path(p) => s.serialize_str(p),
        }
    }
}

/// An endpoint to scrape: recorded without its headers' values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsEndpoint {
    pub name: String,
    #[serde(serialize_with = "ser_url")]
    pub url: url::Url,
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<Header>,
}

fn ser_url<S: serde::Serializer>(u: &url::Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(u))
}

/// A URL fit to print: user, password and query (where keys sometimes hide) removed.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("REDACTED"));
    }
    u.to_string().trim_end_matches('/').to_string()
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Scenario {
    /// Reads and validates a scenario file; every problem is reported with file:line:col.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Self::load_counting(path, None)
    }

    /// [`load`](Self::load), counting with `server` (the server's tokenizer, found)
    /// where the scenario asks for it.
    pub fn load_counting(path: &Path, server: Option<crate::workload::Tokenizer>) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            problems: vec![Problem { file: shown.clone(), location: Location::File, message: format!("cannot read scenario: {e}") }],
        })?;
        let mut scenario = Self::parse_counting(&src, &shown, path.parent(), server)?;
        scenario.source = Some(path.to_path_buf());
        scenario.source_sha256 = Some(crate::workload::provenance::FileRecord::of(&shown, src.as_bytes()).sha256);
        Ok(scenario)
    }

    /// Parses scenario text. `file` names it in errors; relative prompt files resolve
    /// against `base_dir`.
    pub fn parse(src: &str, file: &str, base_dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        Self::parse_counting(src, file, base_dir, None)
    }

    /// [`parse`](Self::parse), counting with `server` where the scenario asks for it.
    pub fn parse_counting(
        src: &str,
        file: &str,
        base_dir: Option<&Path>,
        server: Option<crate::workload::Tokenizer>,
    ) -> Result<Scenario, ScenarioError> {
        let mut problems = Problems::new(file, src);
        let Some(raw) = ScenarioFile::parse(src, &mut problems) else {
            return Err(problems.into_error());
        };
        let scenario = validate::validate(raw, &mut problems, base_dir.unwrap_or(Path::new(".")), server);
        let (mut scenario, warnings) = problems.into_result(scenario)?;
        scenario.warnings = warnings;
        Ok(scenario)
    }

    /// The model a stage sends.
    pub fn stage_model<'a>(&'a self, stage: &'a Stage) -> &'a str {
        stage.model.as_deref().unwrap_or(&self.target.model)
    }
}

/// Parses an API root such as `http://127.0.0.1:8000/v1`.
pub fn parse_base_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("base_url {text:?} is not a URL ({e}); use \"mock\" or e.g. \"http://127.0.0.1:8000/v1\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("base_url must start with http:// or https://, got {:?}", url.scheme()));
    }
    if url.host_str().is_none() {
        return Err("base_url has no host".to_string());
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
