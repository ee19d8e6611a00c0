use super::*;

const MINIMAL: &str = r#"
name = "t"
[target]
base_url = "mock"
model = "m"
[prompts]
list = ["hello"]
[[stage]]
concurrency = 4
requests = 10
"#;

fn errors(src: &str) -> Vec<String> {
    match Scenario::parse(src, "s.toml", None) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn minimal_scenario_gets_defaults() {
    let s = Scenario::parse(MINIMAL, "s.toml", None).unwrap();
    assert_eq!(s.target.base_url, BaseUrl::Mock);
    assert_eq!(s.target.api_key_env, "OPENAI_API_KEY");
    assert_eq!(s.target.timeout, DEFAULT_TIMEOUT);
    assert_eq!(s.stages[0].name, "4-way");
    assert_eq!(s.stages[0].load, Load::Closed { concurrency: 4 });
    assert_eq!(s.stages[0].requests, Some(10));
    assert_eq!(s.mock, MockConfig::default());
}

#[test]
fn unknown_key_names_line_and_column() {
    let src = MINIMAL.replace("concurrency = 4", "concurency = 4");
    let e = errors(&src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("s.toml:9:1: stage 1: unknown field `concurency`"), "{}", e[0]);
}

#[test]
fn wrong_type_names_the_value() {
    let e = errors(&MINIMAL.replace("requests = 10", "requests = \"ten\""));
    assert!(e[0].starts_with("s.toml:10:12:"), "{}", e[0]);
    assert!(e[0].contains("invalid type"), "{}", e[0]);
}

#[test]
fn zero_and_negative_counts_are_rejected_in_place() {
    let e = errors(&MINIMAL.replace("concurrency = 4", "concurrency = 0"));
    assert!(e[0].starts_with("s.toml:9:15:"), "{}", e[0]);
    assert!(e[0].contains("nonzero"), "{}", e[0]);
    let e = errors(&MINIMAL.replace("requests = 10", "requests = -5"));
    assert!(e[0].starts_with("s.toml:10:12:"), "{}", e[0]);
}

#[test]
fn syntax_error_is_one_line_with_position() {
    let e = errors("name = \"t\"\n[target\nbase_url = 1\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("s.toml:2:"), "{}", e[0]);
    assert!(!e[0].contains('\n'), "{}", e[0]);
}

#[test]
fn semantic_problems_are_all_reported() {
    let src = r#"
[target]
base_url = "ftp://x"
model = ""
[prompts]
list = []
[[stage]]
concurrency = 2
[[stage]]
name = "a"
requests = 1
duration = "0s"
"#;
    let e = errors(src);
    let all = e.join("\n");
    assert!(all.contains("s.toml:3:12: base_url must start with http:// or https://"), "{all}");
    assert!(all.contains("s.toml:4:9: target.model must not be empty"), "{all}");
    assert!(all.contains("s.toml:6:8: prompts.list is empty"), "{all}");
    assert!(all.contains("give `requests` or `duration`"), "{all}");
    assert!(all.contains("s.toml:12:12: stage \"a\": duration must be greater than zero"), "{all}");
    assert_eq!(e.len(), 5, "{all}");
}

#[test]
fn missing_prompts_file_names_the_field() {
    let src = MINIMAL.replace("list = [\"hello\"]", "file = \"nope.jsonl\"");
    let e = errors(&src);
    assert!(e[0].starts_with("s.toml:7:8: prompts.file \"nope.jsonl\": cannot read"), "{}", e[0]);
}

#[test]
fn speed_is_for_trace_stages() {
    let e = errors(&MINIMAL.replace("[[stage]]", "[[stage]]\nspeed = 2.0"));
    assert!(e.iter().any(|e| e.contains("speed is for stages whose prompts are a trace")), "{e:?}");
}

#[test]
fn prompts_need_exactly_one_source() {
    let e = errors(&MINIMAL.replace("list = [\"hello\"]", "list = [\"a\"]\ntemplate = \"b\""));
    assert!(e[0].contains("exactly one of `list`, `template`, `file`, `synthetic`, `sharegpt` or `trace`"), "{}", e[0]);
}

#[test]
fn jsonl_prompts_are_checked_per_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.jsonl"), "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n\n{\"prompt\":\"x\"}\n[1]\n")
        .unwrap();
    let src = MINIMAL.replace("list = [\"hello\"]", "file = \"p.jsonl\"");
    let e = match Scenario::parse(&src, "s.toml", Some(dir.path())) {
        Ok(_) => panic!("line 4 is not an object"),
        Err(e) => e.problems[0].to_string(),
    };
    assert!(e.contains("p.jsonl:4: expected an object with a `messages` array"), "{e}");

    std::fs::write(dir.path().join("p.jsonl"), "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n{\"prompt\":\"x\"}\n").unwrap();
    let s = Scenario::parse(&src, "s.toml", Some(dir.path())).unwrap();
    assert_eq!(s.prompts.len(), Some(2));
    assert_eq!(s.prompts.prompt(0).json.get(), r#"[{"content":"hi","role":"user"}]"#);
    assert_eq!(s.prompts.prompt(3).json.get(), r#"[{"content":"x","role":"user"}]"#, "fixed prompts cycle");
}

#[test]
fn template_substitutes_request_number_and_system() {
    let src = MINIMAL.replace("list = [\"hello\"]", "template = \"compute {i}!\"\nsystem = \"be brief\"");
    let s = Scenario::parse(&src, "s.toml", None).unwrap();
    assert_eq!(s.prompts.prompt(7).json.get(), r#"[{"content":"be brief","role":"system"},{"content":"compute 7!","role":"user"}]"#);
}

#[test]
fn durations_accept_text_and_seconds() {
    let s = Scenario::parse(&MINIMAL.replace("requests = 10", "duration = \"1m 30s\""), "s.toml", None).unwrap();
    assert_eq!(s.stages[0].duration, Some(Duration::from_secs(90)));
    let s = Scenario::parse(&MINIMAL.replace("requests = 10", "duration = 2.5"), "s.toml", None).unwrap();
    assert_eq!(s.stages[0].duration, Some(Duration::from_millis(2500)));
    let e = errors(&MINIMAL.replace("requests = 10", "duration = \"soon\""));
    assert!(e[0].contains("invalid duration \"soon\""), "{}", e[0]);
}

#[test]
fn mock_section_needs_mock_target_and_sane_knobs() {
    let src = MINIMAL.replace("base_url = \"mock\"", "base_url = \"http://127.0.0.1:9/v1\"") + "[mock]\nerror_rate = 2\n";
    let all = errors(&src).join("\n");
    assert!(all.contains("[mock] is only used with target.base_url = \"mock\""), "{all}");
    assert!(all.contains("mock.error_rate must be between 0 and 1"), "{all}");
}

#[test]
fn duplicate_stage_names_are_rejected() {
    let src = MINIMAL.to_string() + "[[stage]]\nconcurrency = 4\nrequests = 1\n";
    assert!(errors(&src)[0].contains("name \"4-way\" is used twice"));
}

#[test]
fn redacted_url_drops_credentials_and_query() {
    let u = url::Url::parse("https://user:secret@api.example.com/v1?key=abc").unwrap();
    assert_eq!(redact_url(&u), "https://api.example.com/v1?REDACTED");
}

#[test]
fn garbage_input_never_panics() {
    for src in ["", "\u{0}\u{1}", "[[stage]]\n[[stage]]", "target = 5", "[target]\nbase_url = []", "ＸＸ = 'ｙ'\n[target]"] {
        assert!(Scenario::parse(src, "s.toml", None).is_err());
    }
}

#[test]
fn every_broken_section_and_stage_is_reported() {
    let src = r#"
nmae = "typo"
[target]
base_url = "mock"
model = "m"
stream = "yes"
[[stage]]
concurrency = 0
requests = 1
[[stage]]
requests = 5
[[stage]]
requests = "x"
"#;
    let e = errors(src);
    assert_eq!(
        e,
        [
            "s.toml:2:1: unknown key `nmae`, expected one of `name`, `description`, `abort_on_error_rate`, `thresholds`, `target`, `mock`, `prompts`, `request`, `pricing`, `slo`, `check`, `retry`, `rate_limit`, `sweep`, `conversation`, `server_metrics`, `stage`, `task`",
            "s.toml:6:10: target: invalid type: string \"yes\", expected a boolean",
            "s.toml:8:15: stage 1: invalid value: integer `0`, expected a nonzero u32",
            "s.toml:13:12: stage 3: invalid type: string \"x\", expected a nonzero u64",
            "s.toml:14:1: missing [prompts] table (list, template or file)",
        ]
    );
}

#[test]
fn every_syntax_error_is_reported() {
    let e = errors("a = \nb = 1\nc = ]\n");
    assert!(e.len() >= 2, "{e:?}");
    assert!(e[0].starts_with("s.toml:1:"), "{e:?}");
}

#[test]
fn absurd_sizes_are_refused_not_panicked_on() {
    let all = errors(&MINIMAL.replace("requests = 10", "requests = 10\nduration = 1e30")).join("\n");
    assert!(all.contains("duration too long: at most 365 days"), "{all}");
    let all = errors(&MINIMAL.replace("requests = 10", "duration = \"100000000 days\"")).join("\n");
    assert!(all.contains("duration too long"), "{all}");
    let all = errors(&MINIMAL.replace("concurrency = 4", "concurrency = 4000000")).join("\n");
    assert!(all.contains("concurrency must be at most 100000"), "{all}");
    let all = errors(&(MINIMAL.to_string() + "[mock]\nbase_latency_ms = 1e300\n")).join("\n");
    assert!(all.contains("mock.base_latency_ms must be between 0 and 3600000"), "{all}");
}

#[test]
fn slo_check_and_pricing_are_validated() {
    let all = errors(&(MINIMAL.to_string() + "[slo]\n")).join("\n");
    assert!(all.contains("[slo] sets no objective"), "{all}");
    let all = errors(&(MINIMAL.to_string() + "[slo]\nttft_ms = 200\ne2e_ms = -1\n")).join("\n");
    assert!(all.contains("slo.e2e_ms must be between 0 (excluded) and 3600000 ms, got -1"), "{all}");
    assert!(all.contains("s.toml: slo: ttft_ms and itl_ms need target.stream = true"), "{all}");
    let all = errors(&(MINIMAL.to_string() + "[check]\nexpect = \"xml\"\n")).join("\n");
    assert!(all.contains("check.expect must be \"json\" (or give check.schema), got \"xml\""), "{all}");
    let all = errors(&(MINIMAL.to_string() + "[pricing.models.m]\ninput_per_million = -1\noutput_per_million = 1\n")).join("\n");
    assert!(all.contains("input_per_million must be zero or more"), "{all}");
    let all = errors(&(MINIMAL.to_string() + "[check]\nexpect = \"json\"\nrequired = [\"a\"]\n")).join("\n");
    assert!(all.contains("check: unknown field `required`"), "{all}");
}

#[test]
fn slo_check_and_pricing_parse() {
    let text = MINIMAL.replace("model = \"m\"", "model = \"m\"\nstream = true")
        + "[slo]\nttft_ms = 200\nitl_ms = 25\n[check]\nexpect = \"json\"\nrequired_keys = [\"summary\"]\n[pricing]\ncurrency = \"JPY\"\nper_usd = 7.3\n";
    let s = Scenario::parse(&text, "s.toml", None).unwrap();
    let slo = s.slo.unwrap();
    assert_eq!((slo.ttft, slo.itl, slo.e2e), (Some(Duration::from_millis(200)), Some(Duration::from_millis(25)), None));
    assert_eq!(s.check, Some(crate::check::Expect::Json { required_keys: vec!["summary".into()] }));
    assert_eq!(s.pricing.currency, "JPY");
    assert!((s.pricing.in_currency(8.0) - 58.4).abs() < 1e-9);
}

#[test]
fn open_loop_stages_parse_with_defaults() {
    let s = Scenario::parse(&MINIMAL.replace("concurrency = 4", "rate = 20\narrival = \"gamma\"\nburstiness = 3"), "s.toml", None).unwrap();
    assert_eq!(
        s.stages[0].load,
        Load::Open { rate: 20.0, arrival: Arrival::Gamma { burstiness: 3.0 }, max_in_flight: DEFAULT_MAX_IN_FLIGHT, seed: 0 }
    );
    assert_eq!(s.stages[0].name, "gamma 20/s");
    let s = Scenario::parse(&MINIMAL.replace("concurrency = 4", "rate = 2.5"), "s.toml", None).unwrap();
    assert_eq!(s.stages[0].load.rate(), Some(2.5));
    assert_eq!(s.stages[0].name, "constant 2.5/s");
}

#[test]
fn open_loop_mistakes_are_named() {
    for (edit, want) in [
        ("rate = 5\nconcurrency = 4", "give `concurrency` (closed loop) or `rate` (open loop), not both"),
        ("rate = 0", "rate must be from 0.001"),
        ("rate = 5\narrival = \"bursty\"", "arrival must be \"constant\", \"poisson\" or \"gamma\""),
        ("rate = 5\nburstiness = 2", "burstiness is for arrival = \"gamma\""),
        ("max_in_flight = 3", "max_in_flight is for open-loop stages"),
    ] {
        assert_edit_fails(MINIMAL, "concurrency = 4", edit, want);
    }
}

/// `base` with `from` replaced by `edit` fails, naming the place and saying `want`.
fn assert_edit_fails(base: &str, from: &str, edit: &str, want: &str) {
    let e = errors(&base.replace(from, edit)).join("\n");
    assert!(e.contains(want), "{edit}: {e}");
    assert!(e.starts_with("s.toml:"), "{e}");
}

/// MINIMAL with an automatic sweep for its stage (the lines keep their numbers).
fn sweep_scenario() -> String {
    let stage = "[[stage]]\nconcurrency = 4\nrequests = 10\n";
    assert!(MINIMAL.contains(stage));
    MINIMAL.replace(stage, "[sweep]\nconcurrency = \"auto\"\nduration = \"2s\"\n")
}

#[test]
fn an_automatic_sweep_parses_with_defaults_and_makes_its_stages_on_demand() {
    let s = Scenario::parse(&sweep_scenario(), "s.toml", None).unwrap();
    let sweep = s.sweep.as_ref().unwrap();
    assert!(s.stages.is_empty() && sweep.points.is_empty());
    assert_eq!(
        sweep.auto,
        Some(AutoSweep { start: 1.0, max: AUTO_MAX_CONCURRENCY, max_points: AUTO_MAX_POINTS, precision: AUTO_PRECISION })
    );
    let st = sweep.stage(12.0, 6);
    assert_eq!((st.name.as_str(), st.load, st.duration), ("12-way", Load::Closed { concurrency: 12 }, Some(Duration::from_secs(2))));
    assert_eq!(s.auto_sweep_max_concurrency(), Some(1024));

    let s = Scenario::parse(
        &sweep_scenario().replace("concurrency = \"auto\"", "rates = \"auto\"\nstart = 2.5\nmax = 100\narrival = \"poisson\""),
        "s.toml",
        None,
    )
    .unwrap();
    let sweep = s.sweep.as_ref().unwrap();
    assert_eq!(sweep.auto.map(|a| (a.start, a.max)), Some((2.5, 100.0)));
    let st = sweep.stage(13.8, 7);
    assert_eq!(st.load, Load::Open { rate: 13.8, arrival: Arrival::Poisson, max_in_flight: DEFAULT_MAX_IN_FLIGHT, seed: 7 });
    assert_eq!(st.name, "poisson 13.8/s");
    assert_eq!(sweep.stage(0.0123, 1).name, "poisson 0.0123/s");
    assert_eq!(sweep.stage(1230.0, 1).name, "poisson 1230/s");
    assert_eq!(sweep.stage(20.0, 1).name, "poisson 20/s");
}

#[test]
fn sweep_mistakes_are_named_in_place() {
    for (edit, want) in [
        ("concurrency = \"often\"", "s.toml:9:15: sweep: concurrency must be a list of worker counts (whole numbers) or \"auto\""),
        ("concurrency = [1, 2.5]", "s.toml:9:15: sweep: concurrency must list worker counts (whole numbers)"),
        ("rates = [1, \"x\"]", "s.toml:9:9: sweep: rates must list requests per second"),
        ("concurrency = \"auto\"\nstart = 0", "start must be a whole number from 1 to 100000, got 0"),
        ("concurrency = \"auto\"\nstart = 1.5", "start must be a whole number"),
        ("concurrency = \"auto\"\nstart = 8\nmax = 10", "max must be at least twice start (8) and at most 100000, got 10"),
        ("concurrency = \"auto\"\nmax_points = 2", "max_points must be from 3 to 64, got 2"),
        ("concurrency = \"auto\"\nprecision = 1.5", "precision must be from 0.01 to below 1"),
        ("concurrency = \"auto\"\nprecision = 0.001", "precision must be from 0.01 to below 1"),
        ("concurrency = \"auto\"\nrequests = 50", "max (1024) is more than requests (50): a point can never have more than 50 in flight"),
        ("concurrency = [1, 2]\nstart = 2", "start, max, max_points and precision are for `concurrency = \"auto\"`"),
        ("rates = \"auto\"\nstart = 0", "start must be a number from 0.001"),
    ] {
        assert_edit_fails(&sweep_scenario(), "concurrency = \"auto\"", edit, want);
    }
}

#[test]
fn a_fan_out_over_a_list_is_sized_by_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.jsonl"), "{\"prompt\":\"a\",\"docs\":[\"x\"]}\n{\"prompt\":\"b\",\"docs\":[\"x\",\"y\",\"z\"]}\n")
        .unwrap();
    let src = MINIMAL.replace("list = [\"hello\"]", "file = \"q.jsonl\"").replace(
        "[[stage]]",
        "[[task]]\nname = \"t\"\n[[task.step]]\nprompt = \"{item}\"\nfan_out = { field = \"docs\" }\n[[stage]]\ntask = \"t\"",
    );
    let s = Scenario::parse(&src, "s.toml", Some(dir.path())).unwrap();
    // Four tasks in flight, each at most three requests: twelve connections, not 40,000.
    assert_eq!(s.stages[0].requests_in_flight(), 12);
}
