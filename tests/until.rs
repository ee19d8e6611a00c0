//! Stages that run until their figures are known (`until`), on the mock: a steady
//! server's median is known to ±5 % once ten seconds can be batched, and the stage ends
//! then, well before its `max`; a precision it cannot reach runs to `max` and says so,
//! without failing the run; what `until` does not go with is refused in one line.

mod common;
use common::*;

use std::time::Duration;

const MOCK: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 20\njitter_ms = 10\nseed = 4\n[prompts]\ntemplate = \"q {i}\"\n";

#[test]
fn a_stage_ends_once_its_figures_are_known() {
    let (out, v) = run_headless(
        &format!("{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 4\nuntil = {{ metric = \"p50_ms\", within = \"5%\", max = \"60s\" }}\n"),
        &[],
    );
    let s = &v["stages"][0];
    let u = &s["until"];
    assert_eq!(u["converged"], true, "{u}");
    // Batch means need ten seconds (the last may be a part); a steady median is known then.
    let after = num(&u["after_s"]);
    assert!((9.0..20.0).contains(&after), "{u}");
    assert!(num(&s["wall_time_s"]) < after + 2.0, "the window ended when it converged: {}", s["wall_time_s"]);
    assert!(num(&u["figures"]["p50_ms"]["reached"]) <= 0.05, "{u}");
    assert!(count(&u["requests"]) > 100, "{u}");
    assert_eq!(v["scenario"]["stages"][0]["until"]["max_s"], 60.0);
    assert!(out.stdout.contains("s: until p50_ms ±5 %: converged after"), "{}", out.stdout);
}

#[test]
fn a_precision_never_reached_runs_to_max_and_says_so_without_failing() {
    let (out, v) = run_headless(
        &format!(
            "{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 4\nuntil = [{{ metric = \"p99_ms\", within = 0.001, max = \"11s\" }}, {{ metric = \"ok_rps\", within = \"50%\" }}]\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "not converging is reported, not failed");
    let s = &v["stages"][0];
    let u = &s["until"];
    assert_eq!((u["converged"].as_bool(), u["after_s"].is_null()), (Some(false), true), "{u}");
    assert!((10.5..13.0).contains(&num(&s["wall_time_s"])), "ran to its max: {}", s["wall_time_s"]);
    let said = u["said"].as_str().unwrap();
    assert!(said.starts_with("did not converge in 11") && said.contains("p99_ms ±") && !said.contains("ok_rps"), "{said}");
    assert!(out.stdout.contains("did not converge in"), "{}", out.stdout);
}

#[test]
fn what_until_does_not_go_with_is_one_located_line() {
    for (until, said) in [
        (
            "until = { metric = \"p99_ms\", within = \"5%\" }\nrequests = 10",
            "until ends the stage (at its max at the latest): give no requests or duration too",
        ),
        ("until = { metric = \"max_ms\", within = \"5%\" }", "\"max_ms\" has no interval"),
        ("until = { metric = \"p99_ms\", within = \"150%\" }", "within must be a share of the figure above 0 and below 100 %"),
    ] {
        let (_d, path) = scenario(&format!("{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 1\n{until}\n"));
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{until}: {}", out.stderr);
        let line = out.stderr.trim();
        assert!(line.lines().count() == 1 && line.contains(said) && line.contains("s.toml:"), "{until}: {line}");
    }
}

#[test]
fn a_sweep_runs_each_point_until_it_is_known() {
    let (_, v) = run_headless(
        &format!("{MOCK}[sweep]\nconcurrency = [1, 4]\nuntil = {{ metric = \"p50_ms\", within = \"5%\", max = \"40s\" }}\n"),
        &[],
    );
    for s in v["stages"].as_array().unwrap() {
        let u = &s["until"];
        assert_eq!(u["converged"], true, "{}: {u}", s["name"]);
        assert!(num(&s["wall_time_s"]) < 20.0, "{}: ended when known, not at 40 s", s["name"]);
    }
    assert!(v["sweep"]["summary"].as_str().is_some_and(|s| !s.is_empty()));
}
