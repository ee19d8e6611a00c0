//! The server beside the run: its metrics endpoints, found or checked before the first
//! request, and its prefix cache emptied before each stage when asked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::contract::{Notes, RunError};
use super::target::{Target, extra_headers, headers_of};
use crate::client::ExtraHeader;
use crate::scenario::{ResetAt, Scenario};
use crate::servermetrics::reset::{PrefixReset, ResetOutcome};
use crate::servermetrics::scrape::Endpoint;

/// The server's metrics endpoints to scrape, and a note when the target's was not
/// found: those named, each checked once (one that does not answer in the Prometheus
/// text format is refused, before any request); and the target's own `/metrics` unless
/// named among them or `probe = false`, used when it answers with a server's names (the
/// mock's too) — so a DCGM exporter named beside a vLLM target adds to its metrics
/// rather than replacing them. Only the first shard scrapes, so a merge carries the
/// server's series once.
pub(super) async fn server_endpoints(
    scenario: &Scenario,
    flags: &[url::Url],
    target: &Target,
    notes: &Notes,
) -> Result<(Vec<Endpoint>, Option<String>), RunError> {
    let config = &scenario.server_metrics;
    if scenario.shard.index != 0 {
        return Ok((Vec::new(), None));
    }
    let insecure = scenario.target.insecure;
    // Checked with the scenario: the set is made, or no family is kept.
    let keep = Some(&config.keep).filter(|k| !k.is_empty()).and_then(|k| regex::RegexSet::new(k).ok());
    // The scenario's, then the flags' (named after them).
    let mut named = Vec::new();
    for (i, e) in config.endpoints.iter().enumerate() {
        let headers = headers_of(&e.headers, false)?;
        named.push((
            format!("server_metrics.endpoints[{i}]"),
            Endpoint { name: e.name.clone(), url: e.url.clone(), interval: e.interval, headers, keep: keep.clone() },
        ));
    }
    for url in flags {
        let name = match named.len() {
            0 if flags.len() == 1 => "server".to_string(),
            n => format!("server{}", n + 1),
        };
        named.push((
            "--server-metrics".to_string(),
            Endpoint { name, url: url.clone(), interval: Duration::from_secs(1), headers: Vec::new(), keep: keep.clone() },
        ));
    }
    let mut out = Vec::new();
    for (from, e) in named {
        let checked = crate::servermetrics::scrape::check(e, insecure).await;
        out.push(checked.map_err(|why| RunError::ServerMetrics(format!("{from} {why}")))?);
    }
    let base = &target.base_url;
    let named_already = out.iter().any(|e| e.url.origin() == base.origin() && e.url.path() == "/metrics");
    if !config.probe || named_already {
        return Ok((out, None));
    }
    match crate::servermetrics::scrape::probe(base, insecure).await {
        Ok(e) => {
            let name = if out.iter().any(|x| x.name == "server") { "target" } else { "server" };
            out.push(Endpoint { name: name.into(), keep, ..e });
            Ok((out, None))
        }
        Err(why) => {
            let note = match out.is_empty() {
                true => format!("no server metrics found ({why})"),
                false => format!("the target's own metrics were not found ({why})"),
            };
            notes(&format!("note: {note}"));
            Ok((out, Some(note)))
        }
    }
}

/// What each stage's reset did, by its index.
pub(super) type Resets = Arc<Mutex<BTreeMap<usize, ResetOutcome>>>;

/// With `--reset-prefix-cache` (`at`, else the scenario's): the step before each stage
/// that empties the target's prefix cache, with the target's key and headers, and what
/// each did. The first that fails is noted; none fails the run. The first shard only.
pub(super) fn prefix_reset(
    scenario: &Scenario,
    at: Option<&ResetAt>,
    target: &Target,
    notes: &Notes,
) -> Result<Option<(crate::engine::BeforeStage, Resets)>, RunError> {
    let Some(at) = at.or(scenario.server_metrics.reset_prefix_cache.as_ref()) else { return Ok(None) };
    if scenario.shard.index != 0 {
        return Ok(None);
    }
    let mut headers = extra_headers(scenario)?;
    let own_auth = headers.iter().any(|h| h.name.eq_ignore_ascii_case("authorization"));
    if let (Some(key), false) = (&target.api_key, own_auth) {
        let from = format!("${}", scenario.target.api_key_env);
        headers.push(ExtraHeader { name: "Authorization".into(), value: format!("Bearer {key}"), secret_from: Some(from) });
    }
    let reset = Arc::new(PrefixReset::new(&target.base_url, at.path(), headers, scenario.target.insecure));
    let resets: Resets = Arc::default();
    let (into, notes, noted) = (resets.clone(), notes.clone(), Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let step: crate::engine::BeforeStage = Box::new(move |index| {
        let (reset, into, notes, noted) = (reset.clone(), into.clone(), notes.clone(), noted.clone());
        Box::pin(async move {
            let outcome = reset.reset().await;
            if let Some(why) = outcome.error.as_ref().filter(|_| !noted.swap(true, std::sync::atomic::Ordering::Relaxed)) {
                notes(&format!("note: the prefix cache could not be emptied before stage {} ({why}); the run goes on", index + 1));
            }
            into.lock().unwrap_or_else(|e| e.into_inner()).insert(index, outcome);
        })
    });
    Ok(Some((step, resets)))
}
