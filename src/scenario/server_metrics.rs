//! `[server_metrics]` validated: each endpoint an http(s) URL with a name of its own, an
//! interval from 100 ms to 1 h (default 1 s) and headers as `target.headers` take them;
//! problems at the field's place.

use std::time::Duration;

use toml::Spanned;

use super::error::Problems;
use super::file::ServerMetricsFile;
use super::{Header, MetricsEndpoint, ServerMetricsConfig};

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
    ServerMetricsConfig { endpoints, probe: f.probe.unwrap_or(true) }
}
