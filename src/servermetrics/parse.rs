//! A server's exposition (the Prometheus text format) read into families by name: each
//! counter's, gauge's or untyped series with its labels and value, each histogram's
//! series with its cumulative buckets, sum and count. The text is parsed by
//! `prom_text_format_parser` (Cargo.toml says why that one); this turns its strings into
//! numbers and groups a histogram's lines, never failing on a value it cannot read.

use std::collections::BTreeMap;

use prom_text_format_parser::{Scrape, ScrapeParseError, Type, ValueType};

/// One label set's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One label set's histogram: cumulative counts by upper bound (`le`), ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    pub labels: Vec<(String, String)>,
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub kind: Kind,
    pub series: Vec<Series>,
    pub hists: Vec<Hist>,
}

/// Every family of one scrape, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    pub fn get(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }
}

/// Reads `text`; Err: why it is not the Prometheus text format (one line).
pub fn parse(text: &str) -> Result<Exposition, String> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(Exposition::default());
    }
    let scrape = Scrape::parse(text).map_err(|e| match e {
        ScrapeParseError::Parse(why) => first_line(&why),
        ScrapeParseError::Collect(errors) => errors.first().map_or("lines that make no metric".into(), |m| format!("{m:?}")),
    })?;
    let mut out = Exposition::default();
    for m in scrape.metrics {
        let kind = match m.kind {
            Type::Counter => Kind::Counter,
            Type::Gauge => Kind::Gauge,
            Type::Histogram => Kind::Histogram,
            Type::Summary => Kind::Summary,
            Type::Untyped => Kind::Untyped,
        };
        let family = out.families.entry(m.name.clone()).or_insert(Family { kind, series: Vec::new(), hists: Vec::new() });
        for s in m.samples {
            let Ok(value) = s.value.value.parse::<f64>() else { continue };
            let mut labels: Vec<(String, String)> = s.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
            if kind != Kind::Histogram {
                if s.value.value_type == ValueType::Sample {
                    family.series.push(Series { labels, value });
                }
                continue;
            }
            let le = labels.iter().position(|(k, _)| k == "le").map(|i| labels.remove(i).1);
            let hist = match family.hists.iter_mut().position(|h| h.labels == labels) {
                Some(i) => &mut family.hists[i],
                None => {
                    family.hists.push(Hist { labels, ..Hist::default() });
                    family.hists.last_mut().expect("just pushed")
                }
            };
            match (s.value.value_type, le) {
                (ValueType::Sum, _) => hist.sum = value,
                (ValueType::Count, _) => hist.count = value,
                (ValueType::Sample, Some(le)) => {
                    if let Ok(le) = le.parse::<f64>() {
                        hist.buckets.push((le, value));
                    }
                }
                (ValueType::Sample, None) => {}
            }
        }
        for h in &mut family.hists {
            h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    if out.families.is_empty() && !text.trim().is_empty() {
        return Err("no metric in it".into());
    }
    Ok(out)
}

/// Where the parser stopped ("parse error at line 3, column 1"), the rest of its
/// message being a picture of the line.
/// Never the text itself: it may be anything a server sent.
fn first_line(s: &str) -> String {
    s.lines().find(|l| l.contains("at line")).map_or_else(|| "its lines are not metrics".to_string(), |l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_series_and_histograms_are_read() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3 1700000000000\n\
                    # TYPE h histogram\nh_bucket{m=\"q\",le=\"0.5\"} 1\nh_bucket{m=\"q\",le=\"+Inf\"} 4\nh_bucket{m=\"q\",le=\"0.1\"} 0\nh_sum{m=\"q\"} 2.5\nh_count{m=\"q\"} 4\n\
                    # TYPE g gauge\ng NaN\nvllm:x 1.5e+06\n";
        let e = parse(text).unwrap();
        let a = e.get("a_total").unwrap();
        assert_eq!((a.kind, a.series.iter().map(|s| s.value).sum::<f64>()), (Kind::Counter, 5.0));
        let h = &e.get("h").unwrap().hists[0];
        assert_eq!(h.labels, [("m".to_string(), "q".to_string())]);
        assert_eq!(h.buckets, [(0.1, 0.0), (0.5, 1.0), (f64::INFINITY, 4.0)]);
        assert_eq!((h.sum, h.count), (2.5, 4.0));
        assert!(e.get("g").unwrap().series[0].value.is_nan());
        assert_eq!(e.get("vllm:x").unwrap().series[0].value, 1.5e6);
    }

    #[test]
    fn what_is_not_the_format_is_refused_in_a_line() {
        for bad in ["<!doctype html><html><body>Not found</body></html>", "{\"error\": \"nope\"}", "x{a=\"b\" 1"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
        assert_eq!(parse("").unwrap(), Exposition::default());
    }
}
