//! Scenario files: the serde model, loading with located errors, and the validated
//! form the engine runs.

mod error;
mod file;
mod prompts;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::{Location, Problem, ScenarioError, line_col};
pub use file::DurationValue;
pub use prompts::{Prompt, Prompts};

use crate::mock::MockConfig;
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
    pub target: Target,
    pub mock: MockConfig,
    pub prompts: Prompts,
    pub request: RequestParams,
    /// Prices per model (built-in examples plus `[pricing]`), and the currency shown.
    pub pricing: crate::cost::Pricing,
    /// `[slo]`: what a request must meet to count toward goodput.
    pub slo: Option<crate::metrics::Slo>,
    /// `[check]`: what every response's content must be.
    pub check: Option<crate::check::Expect>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub base_url: BaseUrl,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrl {
    /// Start the embedded mock server on 127.0.0.1 with a free port.
    Mock,
    /// An OpenAI-compatible API root, e.g. `http://127.0.0.1:8000/v1`.
    Url(reqwest::Url),
}

impl Serialize for BaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BaseUrl::Mock => s.serialize_str("mock"),
            BaseUrl::Url(u) => s.serialize_str(&redact_url(u)),
        }
    }
}

/// A URL fit to print: user, password and query (where keys sometimes hide) removed.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("REDACTED"));
    }
    u.to_string().trim_end_matches('/').to_string()
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub name: String,
    #[serde(flatten)]
    pub load: Load,
    /// Measured requests; the stage ends at this count or `duration`, whichever comes first.
    pub requests: Option<u64>,
    #[serde(serialize_with = "ser_opt_secs", rename = "duration_s")]
    pub duration: Option<Duration>,
    /// Model override for this stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Requests run before the measured window, excluded from every figure.
    pub warmup: u64,
}

/// How a stage generates load. Open-loop arrival rates join this enum later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// Closed loop: exactly `concurrency` requests in flight, each worker sends its
    /// next request when the previous one finishes.
    Closed { concurrency: u32 },
}

impl Load {
    pub fn concurrency(&self) -> u32 {
        match self {
            Load::Closed { concurrency } => *concurrency,
        }
    }
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
        let shown = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            problems: vec![Problem { file: shown.clone(), location: Location::File, message: format!("cannot read scenario: {e}") }],
        })?;
        let mut scenario = Self::parse(&src, &shown, path.parent())?;
        scenario.source = Some(path.to_path_buf());
        Ok(scenario)
    }

    /// Parses scenario text. `file` names it in errors; relative prompt files resolve
    /// against `base_dir`.
    pub fn parse(src: &str, file: &str, base_dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let mut problems = Problems::new(file, src);
        let Some(raw) = ScenarioFile::parse(src, &mut problems) else {
            return Err(problems.into_error());
        };
        let scenario = validate(raw, &mut problems, base_dir.unwrap_or(Path::new(".")));
        problems.into_result(scenario)
    }

    /// The model a stage sends.
    pub fn stage_model<'a>(&'a self, stage: &'a Stage) -> &'a str {
        stage.model.as_deref().unwrap_or(&self.target.model)
    }
}

fn validate(raw: ScenarioFile, p: &mut Problems<'_>, base_dir: &Path) -> Scenario {
    let t = raw.target;
    let base_url = {
        let text = t.base_url.get_ref().trim();
        if text == "mock" {
            BaseUrl::Mock
        } else {
            match parse_base_url(text) {
                Ok(u) => BaseUrl::Url(u),
                Err(msg) => {
                    p.at(Some(t.base_url.span()), msg);
                    BaseUrl::Mock
                }
            }
        }
    };
    if t.model.get_ref().trim().is_empty() {
        p.at(Some(t.model.span()), "target.model must not be empty");
    }
    let api_key_env = match &t.api_key_env {
        Some(v) if v.get_ref().trim().is_empty() => {
            p.at(Some(v.span()), "target.api_key_env must name an environment variable");
            String::new()
        }
        Some(v) => v.get_ref().clone(),
        None => DEFAULT_API_KEY_ENV.to_string(),
    };
    let stream = t.stream.unwrap_or(false);
    let stream_usage = t.stream_usage.unwrap_or(true);
    let positive = |d: &Option<toml::Spanned<DurationValue>>, name: &str, default: Duration, p: &mut Problems<'_>| match d {
        Some(v) if v.get_ref().0.is_zero() => {
            p.at(Some(v.span()), format!("target.{name} must be greater than zero"));
            default
        }
        Some(v) => v.get_ref().0,
        None => default,
    };
    let timeout = positive(&t.timeout, "timeout", DEFAULT_TIMEOUT, p);
    let connect_timeout = positive(&t.connect_timeout, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, p);

    let mock = match raw.mock {
        Some(m) => {
            if base_url != BaseUrl::Mock {
                p.at(Some(m.span()), "[mock] is only used with target.base_url = \"mock\"; remove it or set base_url = \"mock\"");
            }
            for msg in m.get_ref().problems() {
                p.at(Some(m.span()), format!("mock.{msg}"));
            }
            m.into_inner()
        }
        None => MockConfig::default(),
    };

    let prompts = prompts::resolve(raw.prompts, p, base_dir);

    let mut request = RequestParams { max_tokens: raw.request.max_tokens.map(|n| n.get()), temperature: None };
    if let Some(t) = raw.request.temperature {
        let v = *t.get_ref();
        if !(0.0..=2.0).contains(&v) {
            p.at(Some(t.span()), format!("request.temperature must be between 0 and 2, got {v}"));
        }
        request.temperature = Some(v);
    }

    let pricing = match raw.pricing {
        Some(f) => {
            let span = f.span();
            crate::cost::Pricing::with_overrides(f.into_inner()).unwrap_or_else(|problems| {
                for msg in problems {
                    p.at(Some(span.clone()), msg);
                }
                crate::cost::Pricing::builtin()
            })
        }
        None => crate::cost::Pricing::builtin(),
    };
    let slo = raw.slo.map(|f| {
        let span = f.span();
        let f = f.into_inner();
        let mut ms = |name: &str, v: Option<f64>| {
            v.and_then(|v| {
                if v.is_finite() && v > 0.0 && v <= 3_600_000.0 {
                    Some(Duration::from_secs_f64(v / 1000.0))
                } else {
                    p.at(Some(span.clone()), format!("slo.{name} must be between 0 (excluded) and 3600000 ms, got {v}"));
                    None
                }
            })
        };
        let slo = crate::metrics::Slo { ttft: ms("ttft_ms", f.ttft_ms), itl: ms("itl_ms", f.itl_ms), e2e: ms("e2e_ms", f.e2e_ms) };
        if slo.is_empty() {
            p.at(Some(span.clone()), "[slo] sets no objective: give ttft_ms, itl_ms or e2e_ms");
        }
        slo
    });
    let check = raw.check.map(|f| {
        let span = f.span();
        let f = f.into_inner();
        if f.expect != "json" {
            p.at(Some(span), format!("check.expect must be \"json\", got {:?}", f.expect));
        }
        crate::check::Expect::Json { required_keys: f.required_keys }
    });
    if let Some(slo) = &slo
        && (slo.ttft.is_some() || slo.itl.is_some())
        && !stream
    {
        p.field("slo", "ttft_ms and itl_ms need target.stream = true (only streams have a first token)");
    }

    let stages_span = raw.stages.span();
    let raw_stages = raw.stages.into_inner();
    if raw_stages.is_empty() {
        p.at(Some(stages_span), "at least one [[stage]] is needed");
    }
    let mut stages = Vec::with_capacity(raw_stages.len());
    let mut names = std::collections::HashSet::new();
    for (i, s) in raw_stages.into_iter().enumerate() {
        let span = s.span();
        let s = s.into_inner();
        let concurrency = s.concurrency.map_or(1, |c| c.get());
        let name = s.name.clone().unwrap_or_else(|| default_stage_name(concurrency));
        if concurrency > MAX_CONCURRENCY {
            p.at(Some(span.clone()), format!("stage {}: concurrency must be at most {MAX_CONCURRENCY}, got {concurrency}", i + 1));
        }
        if name.trim().is_empty() {
            p.at(Some(span.clone()), format!("stage {}: name must not be empty", i + 1));
        }
        if !names.insert(name.clone()) {
            p.at(Some(span.clone()), format!("stage {}: name {name:?} is used twice; stage names label the results", i + 1));
        }
        let duration = match &s.duration {
            Some(d) if d.get_ref().0.is_zero() => {
                p.at(Some(d.span()), format!("stage {name:?}: duration must be greater than zero"));
                None
            }
            Some(d) => Some(d.get_ref().0),
            None => None,
        };
        if s.requests.is_none() && s.duration.is_none() {
            p.at(Some(span.clone()), format!("stage {name:?}: give `requests` or `duration` (or both; the first reached ends the stage)"));
        }
        if let Some(m) = &s.model
            && m.trim().is_empty()
        {
            p.at(Some(span), format!("stage {name:?}: model must not be empty"));
        }
        stages.push(Stage {
            name,
            load: Load::Closed { concurrency },
            requests: s.requests.map(|n| n.get()),
            duration,
            model: s.model,
            warmup: s.warmup,
        });
    }

    Scenario {
        name: raw.name.unwrap_or_else(|| "unnamed scenario".to_string()),
        description: raw.description,
        source: None,
        target: Target { base_url, model: t.model.into_inner(), api_key_env, stream, stream_usage, timeout, connect_timeout },
        mock,
        prompts,
        request,
        pricing,
        slo,
        check,
        stages,
    }
}

fn default_stage_name(concurrency: u32) -> String {
    if concurrency == 1 { "sequential".to_string() } else { format!("{concurrency}-way") }
}

/// Parses an API root such as `http://127.0.0.1:8000/v1`.
pub fn parse_base_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
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
