//! `until = { metric = "p99_ms", within = "5%", confidence = 0.95, max = "10m" }` (or a
//! list of such tables): a stage that runs until every named figure's confidence
//! interval is that narrow, or until `max` — checked as written, each problem at its
//! place.

use std::time::Duration;

use toml::Spanned;

use super::error::Problems;
use crate::model::{Until, UntilSpec};

/// The figures that have intervals (`stages[].ci`), and so may be waited for.
pub const METRICS: &[&str] = &[
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "ttft_p50_ms",
    "ttft_p90_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p90_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "ok_rps",
    "output_tps",
    "error_rate",
];

/// The longest a stage may wait when `max` is not given.
pub const DEFAULT_MAX: Duration = Duration::from_secs(600);

/// `until` as written, named `what`; None (said) when it cannot be read.
pub(super) fn until(v: &Spanned<toml::Value>, what: &str, p: &mut Problems<'_>) -> Option<UntilSpec> {
    let at = Some(v.span());
    let tables: Vec<&toml::Table> = match v.get_ref() {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
            a.iter().filter_map(toml::Value::as_table).collect()
        }
        _ => {
            p.at(at, format!("{what}.until: give {{ metric = \"p99_ms\", within = \"5%\" }} (or a list of them)"));
            return None;
        }
    };
    let mut goals = Vec::new();
    let mut max = None::<Duration>;
    for t in tables {
        match goal(t, &mut max) {
            Ok(g) if goals.iter().any(|o: &Until| o.metric == g.metric) => {
                p.at(at.clone(), format!("{what}.until: {} is named twice", g.metric));
            }
            Ok(g) => goals.push(g),
            Err(e) => p.at(at.clone(), format!("{what}.until: {e}")),
        }
    }
    (!goals.is_empty()).then(|| UntilSpec { goals, max: max.unwrap_or(DEFAULT_MAX) })
}

/// One table: its figure, precision and level; its `max` taken into `max` (the
/// longest of them holds).
fn goal(t: &toml::Table, max: &mut Option<Duration>) -> Result<Until, String> {
    if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "metric" | "within" | "confidence" | "max")) {
        return Err(format!("unknown key {k:?} (metric, within, confidence, max)"));
    }
    let metric = t.get("metric").and_then(toml::Value::as_str).ok_or("give its metric, e.g. metric = \"p99_ms\"")?;
    if !METRICS.contains(&metric) {
        return Err(format!("{metric:?} has no interval; one of {}", METRICS.join(", ")));
    }
    let within = match t.get("within") {
        Some(toml::Value::String(s)) => s.trim().strip_suffix('%').and_then(|n| n.trim().parse::<f64>().ok()).map(|n| n / 100.0),
        Some(toml::Value::Float(x)) => Some(*x),
        _ => None,
    }
    .filter(|w| *w > 0.0 && *w < 1.0)
    .ok_or_else(|| format!("{metric}: within must be a share of the figure above 0 and below 100 %, e.g. \"5%\""))?;
    let confidence = match t.get("confidence") {
        None => crate::stats::LEVEL,
        Some(c) => c
            .as_float()
            .filter(|c| *c > 0.5 && *c < 1.0)
            .ok_or_else(|| format!("{metric}: confidence must be between 0.5 and 1, e.g. 0.95"))?,
    };
    if let Some(m) = t.get("max") {
        let d = m.as_str().and_then(|s| humantime::parse_duration(s).ok()).filter(|d| !d.is_zero());
        let d = d.ok_or_else(|| format!("{metric}: max must be a duration, e.g. \"10m\""))?;
        *max = Some(max.map_or(d, |x| x.max(d)));
    }
    Ok(Until { metric: metric.into(), within, confidence })
}
