//! Where a run's requests go: the embedded mock (started here) or the scenario's URL
//! with its key and headers read now, the client for it, and the server's own tokenizer
//! found through it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::contract::{Notes, RunError};
use crate::client::{Client, ClientConfig, ExtraHeader};
use crate::mock::MockServer;
use crate::model::Api;
use crate::scenario::{BaseUrl, HeaderSource, Scenario};

/// Where the requests go: the embedded mock (started here, kept running while the
/// target lives) or the scenario's URL, with the API key read for it.
pub(super) struct Target {
    pub mock: Option<MockServer>,
    pub base_url: url::Url,
    pub api_key: Option<String>,
}

impl Target {
    pub fn open(scenario: &Scenario, notes: &Notes) -> Result<Target, RunError> {
        match &scenario.target.base_url {
            // The mock needs no key, so none is read or sent. It counts, caches and
            // answers in the scenario's tokenizer, as a server serving that model would.
            BaseUrl::Mock => {
                let at = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                let mock = MockServer::start_with_tokenizer(scenario.mock.clone(), at, scenario.prompts.tokenizer().clone())
                    .map_err(RunError::Mock)?;
                let base_url = url::Url::parse(&mock.base_url()).expect("mock URL parses");
                Ok(Target { mock: Some(mock), base_url, api_key: None })
            }
            BaseUrl::Url(u) => {
                let api_key = match &scenario.target.api_key_file {
                    Some(path) => Some(read_key_file(path)?),
                    None => std::env::var(&scenario.target.api_key_env).ok().filter(|k| !k.is_empty()),
                };
                let own_auth = scenario.target.headers.iter().any(|h| h.name.eq_ignore_ascii_case("authorization"));
                if api_key.is_none() && !own_auth {
                    let var = &scenario.target.api_key_env;
                    let header = if scenario.target.api == crate::model::Api::Messages { "an x-api-key" } else { "an Authorization" };
                    notes(&format!("note: ${var} is not set; sending requests without {header} header"));
                }
                Ok(Target { mock: None, base_url: u.clone(), api_key })
            }
        }
    }
}

/// The client for `target`, its pool sized for the run's most requests in flight
/// (the open-file limit raised for them first).
pub(super) fn client(scenario: &Scenario, target: &Target, headers: Vec<ExtraHeader>, texts_out: bool) -> Result<Client, RunError> {
    let max_concurrency =
        scenario.stages.iter().map(|s| s.requests_in_flight()).chain(scenario.auto_sweep_max_concurrency()).max().unwrap_or(1);
    // Each connection is a file descriptor (and its other end too, with the mock here).
    crate::limits::ensure(crate::limits::needed(u64::from(max_concurrency), target.mock.is_some())).map_err(RunError::OpenFiles)?;
    Ok(Client::new(config(scenario, target, headers, texts_out, max_concurrency as usize))?)
}

/// A client for each API a stage speaks other than the target's (a stage's own `api`):
/// its endpoint, headers and reading that API's, `target.path` left to the target's.
pub(super) fn clients_of_stages(
    scenario: &Scenario,
    target: &Target,
    headers: &[ExtraHeader],
    texts_out: bool,
) -> Result<Vec<(Api, Arc<Client>)>, RunError> {
    // A stage's API, and each of its tasks' steps' (with the stage's load: a task's
    // requests may fan out beyond it, and the pool grows as they do).
    let spoken = stages(scenario).flat_map(|s| {
        let steps = s.task.iter().flat_map(|t| t.steps.iter().map(|k| k.api));
        std::iter::once(s.api).chain(steps).map(move |api| (api, s.load.concurrency()))
    });
    let mut apis: Vec<(Api, u32)> = Vec::new();
    for (api, load) in spoken.filter(|(a, _)| *a != scenario.target.api) {
        match apis.iter_mut().find(|(a, _)| *a == api) {
            Some((_, most)) => *most = (*most).max(load),
            None => apis.push((api, load)),
        }
    }
    let mut out: Vec<(Api, Arc<Client>)> = Vec::new();
    for (api, most) in apis {
        let cfg = ClientConfig {
            api,
            path: None,
            stream: scenario.target.stream && api.generates(),
            ..config(scenario, target, headers.to_vec(), texts_out, most as usize)
        };
        out.push((api, Arc::new(Client::new(cfg)?)));
    }
    Ok(out)
}

/// What a client of `target` is: its key and headers, timeouts, TLS, the stream asked.
fn config(scenario: &Scenario, target: &Target, headers: Vec<ExtraHeader>, texts_out: bool, pool_size: usize) -> ClientConfig {
    let t = &scenario.target;
    ClientConfig {
        base_url: target.base_url.clone(),
        api: t.api,
        path: t.path.clone(),
        api_key: target.api_key.clone(),
        // Names the key's source in the one message about a malformed key.
        api_key_env: match &t.api_key_file {
            Some(path) => format!("the file {}", path.display()),
            None => format!("${}", t.api_key_env),
        },
        timeout: t.timeout,
        connect_timeout: t.connect_timeout,
        idle_timeout: t.idle_timeout,
        insecure: t.insecure,
        pool_size,
        stream: t.stream,
        keep_content: scenario.check.is_some() || scenario.conversation.is_some() || stages(scenario).any(|s| s.task.is_some()),
        texts_out,
        headers,
        // The mock counts in the scenario's tokenizer: there, it is the model's.
        tokenizer: match target.mock {
            Some(_) => scenario.prompts.tokenizer().clone().as_the_models(),
            None => scenario.prompts.tokenizer().clone(),
        },
        body_budget: crate::client::BODY_BUDGET_BYTES,
    }
}

/// The longest a tokenize call may take: a count is quick, even of a long prompt (and a
/// server that does not answer must not hold the run back long).
const TOKENIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// The target server's own tokenizer (`tokenizer = "server"` or `"auto"`), found through
/// its tokenize endpoint and called with the target's key and headers. Err: why not,
/// in one line.
pub fn server_tokenizer(scenario: &Scenario) -> Result<crate::workload::Tokenizer, String> {
    let headers = extra_headers(scenario).map_err(|e| e.to_string())?;
    let quiet: Notes = Arc::new(|_| {});
    let target = Target::open(scenario, &quiet).map_err(|e| e.to_string())?;
    let mut cfg = config(scenario, &target, headers, false, 1);
    cfg.timeout = cfg.timeout.min(TOKENIZE_TIMEOUT);
    let endpoint = crate::client::tokenize::Endpoint::find(cfg, &scenario.target.model)?;
    Ok(crate::workload::Tokenizer::server(Box::new(endpoint)))
}

/// `[target] headers` with their values: literals as written, variables read now (for
/// the mock, which needs no secret, none is read or sent). An unset variable is an error
/// before any request.
pub(super) fn extra_headers(scenario: &Scenario) -> Result<Vec<ExtraHeader>, RunError> {
    headers_of(&scenario.target.headers, scenario.target.base_url == BaseUrl::Mock)
}

/// Headers with their values, variables read now (skipped for the mock, when `mock`).
pub(super) fn headers_of(headers: &[crate::scenario::Header], mock: bool) -> Result<Vec<ExtraHeader>, RunError> {
    let mut out = Vec::new();
    for h in headers {
        let (value, secret_from) = match &h.value {
            HeaderSource::Literal(v) => (v.clone(), None),
            HeaderSource::Env(_) if mock => continue,
            HeaderSource::Env(var) => match std::env::var(var).ok().filter(|v| !v.is_empty()) {
                Some(v) => (v, Some(format!("${var}"))),
                None => return Err(RunError::HeaderEnv { name: h.name.clone(), var: var.clone() }),
            },
        };
        out.push(ExtraHeader { name: h.name.clone(), value, secret_from });
    }
    Ok(out)
}

/// The key in `path`, surrounding whitespace (a trailing newline) removed. Errors name
/// the file, never its content.
fn read_key_file(path: &std::path::Path) -> Result<String, RunError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| RunError::KeyFile { path: shown.clone(), error })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(RunError::EmptyKeyFile(shown));
    }
    Ok(key.to_string())
}

/// The scenario's stages, with an automatic sweep's template (its points are made
/// from it as the run goes).
fn stages(scenario: &Scenario) -> impl Iterator<Item = &crate::scenario::Stage> {
    scenario.stages.iter().chain(scenario.sweep.as_ref().filter(|s| s.auto.is_some()).map(|s| &s.template))
}
