//! The verdict as a JUnit XML file (`--junit`), for CI systems that show test results:
//! one test case per threshold, and one per stage for "had a successful request".

use super::markup::escape;
use super::result::RunResult;

/// The XML text of `result`'s verdict.
pub fn junit(result: &RunResult) -> String {
    let mut cases = Vec::new();
    if let Some(v) = &result.verdict {
        for t in &v.thresholds {
            let failure = (!t.passed).then(|| match t.measured {
                Some(m) => format!("measured {m}"),
                None => "not measured".to_string(),
            });
            cases.push((format!("{}: {}", t.stage, t.threshold), failure));
        }
        let points = super::judge::sweep_points(result);
        for s in result.stages.iter().filter(|s| !points.contains(&s.name.as_str())) {
            let failure = v.stages_without_success.contains(&s.name).then(|| "no successful request".to_string());
            cases.push((format!("{}: a successful request", s.name), failure));
        }
    }
    let failures = cases.iter().filter(|c| c.1.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"llmload\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" timestamp=\"{}\" time=\"{:.3}\">\n",
        cases.len(),
        escape(result.scenario["name"].as_str().unwrap_or("llmload")),
        cases.len(),
        escape(&result.started_at),
        result.duration_s
    ));
    for (name, failure) in &cases {
        out.push_str(&format!("    <testcase classname=\"llmload\" name=\"{}\"", escape(name)));
        match failure {
            Some(msg) => out.push_str(&format!(">\n      <failure message=\"{}\"/>\n    </testcase>\n", escape(msg))),
            None => out.push_str("/>\n"),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
