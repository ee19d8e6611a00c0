//! `[server_metrics]` validated: each endpoint an http(s) URL with a name of its own, an
//! interval from 100 ms to 1 h (default 1 s) and headers as `target.headers` take them;
//! each `keep` a regular expression; `reset_prefix_cache` true or a path; problems at
//! the field's place.

use std::time::Duration;

use toml::Spanned;

use super::error::Problems;
use super::file::ServerMetricsFile;
use super::{Header, MetricsEndpoint, ResetAt, ServerMetricsConfig};

/// Shortest and longest scrape interval.
const INTERVALS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

pub(super) fn server_metrics(f: Spanned<ServerMetricsFile>, p: &mut Problems<'_>) -> ServerMetricsConfig {
    let f = f.into_inner();
    let mut endpoints: Vec<MetricsEndpoint> = Vec::new();
    for (i, e) in f.endpoints.into_iter().enumerate() {
        let at = e.span();
        let e = e.into_inner();
        let what = format!("server_metrics.endpoints[{i}]");
        let url = match url::Url::parse(e.url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                p.at(
                    Some(e.url.span()),
                    format!("{what}.url {:?} is not an http(s) URL, e.g. \"http://127.0.0.1:8000/metrics\"", e.url.get_ref()),
                );
                None
            }
        };
        let name = e.name.unwrap_or_else(|| if i == 0 { "server".into() } else { format!("server{}", i + 1) });
        if endpoints.iter().any(|x| x.name == name) {
            p.at(Some(at.clone()), format!("{what}.name {name:?} is given twice; each endpoint needs a name of its own"));
        }
        let interval = match e.interval {
            Some(d) if !(INTERVALS.0..=INTERVALS.1).contains(&d.get_ref().0) => {
                p.at(Some(d.span()), format!("{what}.interval must be from 100ms to 1h"));
                Duration::from_secs(1)
            }
            Some(d) => d.into_inner().0,
            None => Duration::from_secs(1),
        };
        let headers: Vec<Header> =
            e.headers.as_ref().map(|h| super::headers::headers(h, &format!("{what}.headers"), p)).unwrap_or_default();
        if let Some(url) = url {
            endpoints.push(MetricsEndpoint { name, url, interval, headers });
        }
    }
    let mut keep = Vec::new();
    for (i, k) in f.keep.into_iter().enumerate() {
        match regex::Regex::new(k.get_ref()) {
            Ok(_) => keep.push(k.into_inner()),
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().rfind(|l| l.starts_with("error:")).unwrap_or("not a regular expression");
                p.at(Some(k.span()), format!("server_metrics.keep[{i}] {:?} is not a regular expression ({why})", k.get_ref()));
            }
        }
    }
    let reset_prefix_cache = f.reset_prefix_cache.and_then(|v| {
        let at = v.span();
        match v.into_inner() {
            toml::Value::Boolean(b) => b.then_some(ResetAt::Known),
            toml::Value::String(path) if path.starts_with('/') => Some(ResetAt::Path(path)),
            _ => {
                p.at(
                    Some(at),
                    "server_metrics.reset_prefix_cache is true (vLLM's or SGLang's route) or the server's path, e.g. \"/flush_cache\""
                        .to_string(),
                );
                None
            }
        }
    });
    ServerMetricsConfig { endpoints, probe: f.probe.unwrap_or(true), keep, reset_prefix_cache }
}

#[cfg(test)]
mod tests {
    use super::super::{ResetAt, Scenario};

    const BASE: &str = "name = \"t\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nconcurrency = 1\nrequests = 1\n";

    fn parsed(section: &str) -> Result<Scenario, Vec<String>> {
        Scenario::parse(&format!("{BASE}[server_metrics]\n{section}\n"), "s.toml", None)
            .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn keep_and_reset_are_read_and_checked_in_place() {
        let s = parsed("keep = [\"^vllm:spec_decode\"]\nreset_prefix_cache = \"/flush_cache\"").unwrap();
        assert_eq!(s.server_metrics.keep, ["^vllm:spec_decode"]);
        assert_eq!(s.server_metrics.reset_prefix_cache, Some(ResetAt::Path("/flush_cache".into())));
        assert_eq!(parsed("reset_prefix_cache = true").unwrap().server_metrics.reset_prefix_cache, Some(ResetAt::Known));
        assert_eq!(parsed("reset_prefix_cache = false").unwrap().server_metrics.reset_prefix_cache, None);
        let e = parsed("keep = [\"ok\", \"(unclosed\"]").unwrap_err();
        assert_eq!(e, ["s.toml:11:15: server_metrics.keep[1] \"(unclosed\" is not a regular expression (error: unclosed group)"]);
        let e = parsed("reset_prefix_cache = \"flush\"").unwrap_err();
        assert!(e[0].starts_with("s.toml:11:22: server_metrics.reset_prefix_cache is true"), "{e:?}");
    }
}
