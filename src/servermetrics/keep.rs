//! `keep`: families outside the vocabulary recorded raw. Each label set of a matching
//! family is a series of (time, value) points; a histogram's count and sum are kept as
//! `<name>_count` and `<name>_sum` (its buckets would be a series each). At most
//! [`MOST_SERIES`] series an endpoint, so a pattern that matches everything cannot
//! grow the record without bound; the rest are counted.

use std::collections::BTreeMap;

use regex::RegexSet;
use serde::{Deserialize, Serialize};

use super::parse::Exposition;

/// The most series an endpoint keeps raw.
pub const MOST_SERIES: usize = 1000;

/// A series by its family name and its labels.
type Key = (String, Vec<(String, String)>);

/// What `keep` recorded of one endpoint.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    series: BTreeMap<Key, Vec<[f64; 2]>>,
    /// Series left out once [`MOST_SERIES`] were kept.
    pub dropped: u64,
}

/// One series kept raw, as the result records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeptSeries {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `[unix seconds, value]`, one a scrape (values that are not finite are left out).
    pub points: Vec<[f64; 2]>,
}

impl Kept {
    /// Records each series of the families of `e` whose names `keep` matches, read at `at`.
    pub fn record(&mut self, keep: &RegexSet, e: &Exposition, at: f64) {
        for (name, family) in e.families.iter().filter(|(name, _)| keep.is_match(name)) {
            let plain = family.series.iter().map(|s| (name.clone(), &s.labels, s.value));
            let hists = family
                .hists
                .iter()
                .flat_map(|h| [(format!("{name}_count"), &h.labels, h.count), (format!("{name}_sum"), &h.labels, h.sum)]);
            for (name, labels, value) in plain.chain(hists) {
                if !value.is_finite() {
                    continue;
                }
                let key = (name, labels.clone());
                if let Some(points) = self.series.get_mut(&key) {
                    points.push([at, value]);
                } else if self.series.len() < MOST_SERIES {
                    self.series.insert(key, vec![[at, value]]);
                } else {
                    self.dropped += 1;
                }
            }
        }
    }

    pub fn series(&self) -> Vec<KeptSeries> {
        let series = self.series.iter();
        series
            .map(|((name, labels), points)| KeptSeries {
                name: name.clone(),
                labels: labels.iter().cloned().collect(),
                points: points.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servermetrics::parse::parse;

    #[test]
    fn matching_families_are_kept_by_label_set_and_histograms_by_count_and_sum() {
        let text = "# TYPE vllm:spec_decode_num_accepted_tokens_total counter\n\
                    vllm:spec_decode_num_accepted_tokens_total{engine=\"0\"} 7\n\
                    vllm:spec_decode_num_accepted_tokens_total{engine=\"1\"} 9\n\
                    # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n\
                    # TYPE vllm:iteration_tokens_total histogram\n\
                    vllm:iteration_tokens_total_bucket{le=\"1\"} 2\nvllm:iteration_tokens_total_bucket{le=\"+Inf\"} 5\n\
                    vllm:iteration_tokens_total_sum 40\nvllm:iteration_tokens_total_count 5\n\
                    # TYPE g gauge\ng NaN\n";
        let e = parse(text).unwrap();
        let keep = RegexSet::new(["spec_decode", "^vllm:iteration", "^g$"]).unwrap();
        let mut kept = Kept::default();
        kept.record(&keep, &e, 10.0);
        kept.record(&keep, &e, 11.0);
        let s = kept.series();
        let names: Vec<_> = s.iter().map(|k| (k.name.as_str(), k.labels.get("engine").map(String::as_str))).collect();
        assert_eq!(
            names,
            [
                ("vllm:iteration_tokens_total_count", None),
                ("vllm:iteration_tokens_total_sum", None),
                ("vllm:spec_decode_num_accepted_tokens_total", Some("0")),
                ("vllm:spec_decode_num_accepted_tokens_total", Some("1")),
            ]
        );
        assert_eq!(s[3].points, [[10.0, 9.0], [11.0, 9.0]]);
        assert_eq!(s[1].points[0], [10.0, 40.0]);
    }

    #[test]
    fn series_past_the_most_are_counted_not_kept() {
        let text: String = (0..MOST_SERIES + 5).map(|i| format!("x{{i=\"{i}\"}} 1\n")).collect();
        let mut kept = Kept::default();
        kept.record(&RegexSet::new(["x"]).unwrap(), &parse(&text).unwrap(), 1.0);
        assert_eq!((kept.series().len(), kept.dropped), (MOST_SERIES, 5));
    }
}
